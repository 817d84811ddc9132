"""The report's JPEG thumbnails: decoding within a memory budget, on threads.

:func:`write_all_thumbnails` writes ``thumbs/KEY/NAME.jpg`` for every
:class:`~lime_spark.report.records.ReportImage` (its original, superpixels and
label overlays, ``anchor_L``: its top label's anchor overlay when the run
computed anchors, and ``baseline-L``: the baseline run's overlay of the label
compared in the "Changed since A" view, under the same limits) on
:func:`thread_plan` threads that share a memory budget,
then the thumbnails that needed more than a thread's share, one at a time
with the whole budget; it sets each record's ``thumbs``.  Decoding is
:func:`lime_spark.images.decode_image`, the job's own decoder (its formats,
``max_pixels`` and ``max_decode_bytes``).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from ..exceptions import ImageTooLargeError
from ..images import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_PIXELS, decode_image
from ..storage import join_uri, read_bytes, write_bytes
from .records import ANCHOR_THUMB, ReportImage

__all__ = ["DEFAULT_MEMORY_BUDGET", "THREAD_BUDGET", "Limits", "anchor_outline_colours",
           "default_memory_budget", "outline_colours", "thread_plan", "thumbnail_jpeg",
           "write_all_thumbnails", "write_thumbnails"]

logger = logging.getLogger(__name__)

DEFAULT_MEMORY_BUDGET = 2 << 30
"""Default memory the report's thumbnail threads may hold at once: 2 GiB (at most 1/4 of RAM)."""

THREAD_BUDGET = 256 << 20
"""Least memory one thumbnail thread gets (256 MiB): threads = budget // this, at most."""

_JPEG_QUALITY = 82

RGB = tuple[int, int, int]

_ANCHOR_PREFIX = ANCHOR_THUMB.split("{", 1)[0]


def outline_colours() -> tuple[RGB, ...]:
    """RGB of the overlays' default outline colours (:data:`lime_spark.render.OUTLINE_COLOURS`)."""
    from PIL import ImageColor

    from ..render import OUTLINE_COLOURS

    return tuple(ImageColor.getrgb(c)[:3] for c in OUTLINE_COLOURS)


def anchor_outline_colours() -> tuple[RGB, ...]:
    """RGB of the anchor overlays' outline (:func:`lime_spark.render.draw_mask`'s default colour,
    which :func:`lime_spark.overlays.draw_anchor` draws with), whatever the run's display."""
    import inspect

    from PIL import ImageColor

    from ..render import draw_mask

    colour = inspect.signature(draw_mask).parameters["colour"].default
    return (ImageColor.getrgb(colour)[:3],)


def _shrink(rgb: Any, side: int, outlines: Sequence[RGB]) -> Any:
    """Resize an RGB array to a Pillow image that fits ``side``, keeping thin outlines visible.

    Pixels of exactly an ``outlines`` colour (the overlays' lines) are found
    at full size and painted again after resizing wherever they covered at
    least a quarter of a thumbnail pixel: Lanczos alone would fade a
    2-pixel line on a 1000-pixel overlay into the photo.
    """
    import numpy as np
    from PIL import Image

    small = Image.fromarray(rgb)
    full_size = small.size
    small.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if not outlines or small.size == full_size:
        return small
    out = None
    for colour in outlines:
        red, green, blue = colour
        mask = rgb[..., 1] == green           # one channel first: 3x cheaper than np.all
        mask &= rgb[..., 0] == red
        mask &= rgb[..., 2] == blue
        if not mask.any():
            continue
        coverage = Image.fromarray(mask.astype(np.uint8) * 255).resize(
            small.size, Image.Resampling.BOX)
        if out is None:
            out = np.array(small)
        out[np.asarray(coverage) >= 64] = colour
    return small if out is None else Image.fromarray(out)


def thumbnail_jpeg(data: bytes, side: int, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                   max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
                   outlines: Sequence[RGB] = ()) -> bytes:
    """A JPEG whose longest side is at most ``side``, from encoded image bytes.

    Decoded by :func:`lime_spark.images.decode_image` (only its formats,
    within ``max_decode_bytes``); without ``outlines`` at reduced scale
    (``reduce_to=side``: JPEG DCT scaling, box averaging), with them at full
    size so that the lines of those colours are found and kept visible.
    """
    rgb = decode_image(data, max_pixels=max_pixels, max_decode_bytes=max_decode_bytes,
                       reduce_to=None if outlines else side)
    small = _shrink(rgb, side, outlines)
    del rgb
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=_JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class Limits:
    """What one thumbnail may cost: the job's limits and this thread's share of memory."""

    max_pixels: int
    max_bytes: int
    max_decode_bytes: int
    budget: int          # bytes one thumbnail may hold: the file plus its decode


def write_thumbnails(image: ReportImage, folder: str, side: int, limits: Limits,
                     outlines: Sequence[RGB],
                     names: Sequence[str] | None = None, *,
                     anchor_outlines: Sequence[RGB] = ()) -> tuple[list[str], int, list[str]]:
    """Write ``image``'s thumbnails (those of ``names``, default all) under ``folder/KEY/``.

    The lines of ``outlines`` are kept visible on the label overlays, those of
    ``anchor_outlines`` on the anchor overlays (:data:`~.records.ANCHOR_THUMB`).
    Returns the names written, the number of failures, and the names whose
    file or decode needs more than ``limits.budget`` (to retry with more).
    """
    written: list[str] = []
    failed = 0
    too_large: list[str] = []
    for name in names if names is not None else list(image.sources):
        source = image.sources[name]
        try:
            data = read_bytes(source, retries=1, max_bytes=min(limits.max_bytes, limits.budget))
            keep = (() if name in ("original", "segments")
                    else anchor_outlines if name.startswith(_ANCHOR_PREFIX) else outlines)
            decode_budget = max(1, min(limits.max_decode_bytes, limits.budget - len(data)))
            jpeg = thumbnail_jpeg(data, side, max_pixels=limits.max_pixels,
                                  max_decode_bytes=decode_budget, outlines=keep)
            del data
            write_bytes(join_uri(folder, image.key, f"{name}.jpg"), jpeg)
            written.append(name)
        except ImageTooLargeError as exc:
            too_large.append(name)
            logger.debug("no thumbnail %s of image %r from %s within %d bytes: %s", name,
                         image.record.id, source, limits.budget, exc)
        except Exception as exc:  # noqa: BLE001 - a missing preview never fails the report
            failed += 1
            logger.debug("no thumbnail %s of image %r from %s: %s: %s", name,
                         image.record.id, source, type(exc).__name__, exc)
    return written, failed, too_large


def thread_plan(memory_budget: int, workers: int | None) -> tuple[int, int]:
    """Threads and each one's share of ``memory_budget``.

    Default threads: ``min(16, 2 * cores, memory_budget // THREAD_BUDGET)``,
    at least one.
    """
    if workers is None:
        workers = max(1, min(16, 2 * (os.cpu_count() or 1), memory_budget // THREAD_BUDGET))
    return workers, max(1, memory_budget // workers)


def default_memory_budget() -> int:
    """:data:`DEFAULT_MEMORY_BUDGET`, or a quarter of physical memory if that is less."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return DEFAULT_MEMORY_BUDGET
    return max(THREAD_BUDGET, min(DEFAULT_MEMORY_BUDGET, physical // 4))


def write_all_thumbnails(images: Sequence[ReportImage], folder: str, *, side: int,
                         limits: Limits, memory_budget: int, workers: int,
                         outlines: Sequence[RGB], anchor_outlines: Sequence[RGB] = ()) -> int:
    """Write every image's thumbnails under ``folder`` and set each ``record.thumbs``.

    ``outlines`` and ``anchor_outlines``: as for :func:`write_thumbnails`.

    ``workers`` threads each hold at most ``limits.budget`` bytes; what needs
    more is made afterwards, one at a time, with the whole ``memory_budget``.
    Returns the number of thumbnails that could not be made (unreadable,
    undecodable, or larger than the whole budget).
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(
            lambda im: write_thumbnails(im, folder, side, limits, outlines,
                                        anchor_outlines=anchor_outlines), images))
    alone = replace(limits, budget=memory_budget)
    failed = 0
    for image, (written, misses, too_large) in zip(images, results):
        if too_large and memory_budget > limits.budget:
            more, more_misses, too_large = write_thumbnails(image, folder, side, alone,
                                                            outlines, too_large,
                                                            anchor_outlines=anchor_outlines)
            written += more
            misses += more_misses
        failed += misses + len(too_large)
        image.record.thumbs = written
    return failed
