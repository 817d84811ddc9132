"""Writing a run's report (:func:`write_report`) and the ``lime-spark report`` command.

:func:`write_report` reads the run (:mod:`.records`: its ``anchors`` partition
too when the run computed anchors), and its ``drift`` partition when
``lime-spark compare`` wrote one, writes its thumbnails
(:mod:`.thumbnails`) and renders ``index.html`` (:mod:`.page`).
"""

from __future__ import annotations

import argparse
import logging
import time

from .._validation import check_int
from ..config import check_run_id
from ..exceptions import StorageError
from ..images import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_PIXELS
from ..storage import DEFAULT_MAX_BYTES, exists, join_uri, redact_value, remove_tree, write_bytes
from .page import render_page
from .records import anchor_stats, build_drift, build_images, read_drift, read_run, read_summary
from .thumbnails import (
    Limits,
    anchor_outline_colours,
    default_memory_budget,
    outline_colours,
    thread_plan,
    write_all_thumbnails,
)

__all__ = ["PAGE_SIZE", "THUMBNAIL_SIDE", "add_arguments", "run", "write_report"]

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 192
"""Default longest side in pixels of the report's JPEG thumbnails."""

PAGE_SIZE = 50
"""Default number of cards per page."""


def write_report(output_root: str, run_id: str, *, thumbnail_side: int = THUMBNAIL_SIDE,
                 page_size: int = PAGE_SIZE, workers: int | None = None,
                 memory_budget: int | None = None) -> str:
    """Write the HTML audit report of run ``run_id`` under ``output_root``.

    Parameters
    ----------
    output_root : str
        The job's ``--output`` (local path, ``s3a://``, ``s3://``, ``gs://``, ...).
    run_id : str
        A finished run: ``images/run_id=R/`` must exist under the root.
    thumbnail_side : int, default 192
        Longest side in pixels of the JPEG thumbnails, >= 16.
    page_size : int, default 50
        Cards per page when the report opens (the page offers 25 to 200).
    workers : int, optional
        Threads that make thumbnails (reads, decodes and JPEG work); default
        ``min(16, 2 * os.cpu_count(), memory_budget // THREAD_BUDGET)``, at
        least 1.
    memory_budget : int, optional
        Bytes the thumbnail threads may hold at once, shared equally: each
        thread reads a file and decodes it within its share (the decode's
        estimate, see :func:`lime_spark.images.decode_image`). Default
        :data:`DEFAULT_MEMORY_BUDGET` (2 GiB), or a quarter of physical
        memory if that is less. Images whose thumbnail needs more than a
        share are made afterwards, one at a time, with the whole budget.

    Returns
    -------
    str
        The URI of ``index.html`` (``ROOT/report/run_id=R/index.html``).

    Raises
    ------
    StorageError
        If the run's ``images`` table is missing or unreadable.
    ConfigurationError
        For a bad ``run_id``, ``thumbnail_side``, ``page_size``, ``workers``
        or ``memory_budget``.

    Notes
    -----
    Re-running replaces the report and its thumbnails.  An image whose
    original or overlay cannot be read or decoded gets a placeholder in its
    card; the count is logged, the report is still written.  The limits of
    the run (``max_pixels``, ``max_bytes``, ``max_decode_bytes`` in
    ``summary.json``'s ``config``, defaults otherwise) apply to the
    thumbnails too.  Failed images (``status = 'error'``) get no thumbnail of
    their original: it is never read again.

    When ``drift/run_id=R/`` exists (``lime-spark compare`` against a
    baseline run A), the page has a "Changed since A" view: per compared
    image its numbers and the overlays of A and of this run side by side (A's
    thumbnails are made from ``overlays/run_id=A/`` within the same limits).

    When ``anchors/run_id=R/`` exists (``--methods lime,anchors``), each card
    has an anchor panel for its top label (the thumbnail of its
    ``anchor_<label>.png``, its size, precision and coverage, "below
    threshold" when it missed ``anchor_threshold``), the summary an anchors
    tile, and the cards two more sorts (largest anchor, lowest anchor
    precision).
    """
    check_run_id(run_id)
    side = check_int("thumbnail_side", thumbnail_side, minimum=16)
    page_size = check_int("page_size", page_size, minimum=1)
    if workers is not None:
        workers = check_int("workers", workers, minimum=1)
    memory_budget = check_int("memory_budget", memory_budget if memory_budget is not None
                              else default_memory_budget(), minimum=1)
    workers, share = thread_plan(memory_budget, workers)
    started = time.perf_counter()
    root = output_root.rstrip("/")
    summary = redact_value(read_summary(root, run_id))   # the run line quotes input/config
    config = summary.get("config") or {}
    overlay_features = int(config.get("overlay_features") or 5)
    limits = Limits(max_pixels=int(config.get("max_pixels") or DEFAULT_MAX_PIXELS),
                    max_bytes=int(config.get("max_bytes") or DEFAULT_MAX_BYTES),
                    max_decode_bytes=int(config.get("max_decode_bytes")
                                         or DEFAULT_MAX_DECODE_BYTES),
                    budget=share)

    tables = read_run(root, run_id, overlay_features=overlay_features)
    entries = build_images(root, run_id, tables,
                           stable_at=1.0 - float(config.get("delta") or 0.05))
    anchors = anchor_stats(tables.anchors)
    drift_tables = read_drift(root, run_id, summary)
    drift = build_drift(drift_tables, entries) if drift_tables is not None else None
    outlines = (outline_colours() if config.get("overlay_display", "outline") == "outline"
                else ())
    anchor_outlines = anchor_outline_colours() if anchors is not None else ()
    folder = join_uri(root, "report", f"run_id={run_id}")
    thumbs = join_uri(folder, "thumbs")
    remove_tree(thumbs)
    failed = write_all_thumbnails(entries, thumbs, side=side, limits=limits,
                                  memory_budget=memory_budget, workers=workers,
                                  outlines=outlines, anchor_outlines=anchor_outlines)
    records = [e.record for e in entries]
    names = tables.images["model_name"].dropna()
    page = render_page(run_id, records, summary, page_size=page_size,
                       overlay_features=overlay_features,
                       model_name=str(names.iloc[0]) if len(names) else None, drift=drift,
                       anchors=anchors)
    uri = join_uri(folder, "index.html")
    write_bytes(uri, page.encode("utf-8"))
    if failed:
        logger.warning("report of run %s: %d thumbnail(s) could not be made (original or "
                       "overlay unreadable, or larger than the memory budget; DEBUG logging "
                       "names them)", run_id, failed)
    if drift is not None:
        logger.info("report of run %s: %d of %d compared images drifted since run %s", run_id,
                    drift.drifted, len(drift.records), drift.baseline_run_id)
    if anchors is not None:
        logger.info("report of run %s: %d anchors of %d images, %d met the threshold", run_id,
                    anchors.anchors, anchors.images, anchors.succeeded)
    logger.info("report of run %s: %d images, %.1f MB of HTML, in %.1fs: %s", run_id,
                len(records), len(page) / 1e6, time.perf_counter() - started, uri)
    return uri


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lime-spark report``."""
    parser.add_argument("--output", required=True, help="the job's output root (any URI)")
    parser.add_argument("--run-id", required=True, help="the run to report")
    parser.add_argument("--thumbnail-side", type=int, default=THUMBNAIL_SIDE,
                        help=f"longest side of thumbnails in pixels (default {THUMBNAIL_SIDE})")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE,
                        help=f"cards per page when the report opens (default {PAGE_SIZE})")


def run(args: argparse.Namespace) -> int:
    """``lime-spark report``: write the report and print its URI."""
    check_run_id(args.run_id)
    if not exists(join_uri(args.output, "images", f"run_id={args.run_id}")):
        raise StorageError(
            f"Expected a finished run under {args.output!r}. Received: run_id={args.run_id!r} "
            f"has no images/run_id={args.run_id}/ table")
    uri = write_report(args.output, args.run_id,
                       thumbnail_side=getattr(args, "thumbnail_side", THUMBNAIL_SIDE),
                       page_size=getattr(args, "page_size", PAGE_SIZE))
    print(uri)
    return 0
