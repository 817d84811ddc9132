"""The static HTML audit report of a run (``ROOT/report/run_id=R/index.html``).

:func:`write_report` reads a finished run's three tables (``images``,
``explanations``, ``features``) and ``runs/run_id=R/summary.json`` through
fsspec (any URI the job writes to), writes small JPEG thumbnails of each
image's original, superpixels and label overlays under
``report/run_id=R/thumbs/`` and one self-contained ``index.html`` beside
them.  Thumbnails are decoded by :func:`lime_spark.images.decode_image`, the
job's own decoder (the same allowed formats, memory budget and EXIF and
transparency rules); the original of an image the job could not explain is
never read again.  The page has:

* a summary: images, errors by class, median explanation fit, time, the
  distribution of fits, the most frequent predictions and confusions;
* one card per image: original, superpixels and one overlay per explained
  label (R lime's ``plot_image_explanation`` panels), label probabilities,
  explanation fit (``model_r2``), deletion/insertion AUC, expected against
  predicted label, or the error of a failed image;
* sorting (lowest fit first, ...), filters (mismatches only, errors only)
  and a search box, 50 cards per page.

The page has no external resource (inline CSS and JS, a Content Security
Policy that forbids any network request); the per-image data is one inline
JSON array rendered page by page, images are thumbnails loaded lazily and
linked to the full-size overlays by relative paths, so the ``report`` folder
works opened from disk next to ``overlays/`` and from a served bucket.  The
page stays usable for tens of thousands of images (about 0.5 kB of HTML and
15-40 kB of thumbnails per image).

No pyspark here: the job calls :func:`write_report` after ``summary.json``
and ``lime-spark report --output ROOT --run-id R`` calls it for a past run.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import hashlib
import html
import io
import json
import logging
import math
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ._validation import check_int
from .config import check_run_id
from .exceptions import ConfigurationError, ImageTooLargeError, StorageError
from .images import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_PIXELS, decode_image
from .storage import (
    DEFAULT_MAX_BYTES,
    exists,
    filesystem,
    join_uri,
    read_bytes,
    redact_value,
    remove_tree,
    safe_key,
    write_bytes,
)

__all__ = ["add_arguments", "run", "write_report", "THUMBNAIL_SIDE", "PAGE_SIZE",
           "DEFAULT_MEMORY_BUDGET"]

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 192
"""Default longest side in pixels of the report's JPEG thumbnails."""

PAGE_SIZE = 50
"""Default number of cards per page."""

DEFAULT_MEMORY_BUDGET = 2 << 30
"""Default memory the report's thumbnail threads may hold at once: 2 GiB (at most 1/4 of RAM)."""

THREAD_BUDGET = 256 << 20
"""Least memory one thumbnail thread gets (256 MiB): threads = budget // this, at most."""

_JPEG_QUALITY = 82
_MAX_MESSAGE = 600        # characters of an error message kept in the page
_MAX_PATH = 400           # characters of an image path kept in the page
_IMAGE_COLUMNS = ("image_id", "path", "expected_label", "status", "error_class",
                  "error_message", "width", "height", "n_superpixels", "n_samples",
                  "top_label", "top_label_name", "top_prob", "seconds", "model_name",
                  "model_digest", "seed")
_EXPLANATION_COLUMNS = ("image_id", "label", "label_name", "label_rank", "label_prob",
                        "model_r2", "deletion_auc", "insertion_auc", "overlay_uri")
_FEATURE_COLUMNS = ("image_id", "label", "feature_weight", "pixel_count")


# --------------------------------------------------------------------------
# reading a run
# --------------------------------------------------------------------------

def _read_table(root: str, name: str, run_id: str, columns: Sequence[str], *,
                required: bool = False, filter_expr: Any = None) -> Any:
    """One run's partition of a table as a pandas DataFrame with ``columns``.

    Columns absent from the files (older runs) come back as nulls; a missing
    partition is an empty frame, or an error when ``required``.
    """
    import pandas as pd
    import pyarrow.dataset as ds

    uri = join_uri(root, name, f"run_id={run_id}")
    fs, path = filesystem(uri)
    if not fs.exists(path):
        if required:
            raise StorageError(
                f"Expected the run's {name} table at {uri!r}. Received: no such folder "
                f"(is run_id={run_id!r} a finished run under {root!r}?)")
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    dataset = ds.dataset(path, filesystem=fs, format="parquet",
                         ignore_prefixes=[".", "_"])
    present = [c for c in columns if c in dataset.schema.names]
    table = dataset.to_table(columns=present, filter=filter_expr)
    frame = table.to_pandas()
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    return frame[list(columns)]


def _read_summary(root: str, run_id: str) -> dict[str, Any]:
    uri = join_uri(root, "runs", f"run_id={run_id}", "summary.json")
    try:
        return json.loads(read_bytes(uri, retries=1).decode("utf-8"))
    except (StorageError, ValueError) as exc:
        logger.warning("report of run %s without summary.json: %s", run_id, exc)
        return {}


# --------------------------------------------------------------------------
# per-image records
# --------------------------------------------------------------------------

def _num(value: Any, digits: int = 4) -> float | None:
    """A finite float rounded to ``digits`` decimals, or None."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return round(number, digits)


def _int(value: Any) -> int | None:
    number = _num(value, 0)
    return None if number is None else int(number)


def _text(value: Any, limit: int | None = None) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit - 1] + "\u2026"
    return text


def _same_label(expected: str | None, predicted: str | None) -> bool:
    """Whether an expected label names the predicted class (case, '_' and ' ' ignored)."""
    def norm(s: str) -> str:
        return " ".join(s.replace("_", " ").split()).casefold()
    return expected is not None and predicted is not None and norm(expected) == norm(predicted)


def _original_link(path: str | None) -> str | None:
    """A link to the original image for the page: local files and http(s) only."""
    if not path:
        return None
    if path.startswith("/"):
        return "file://" + quote(path)
    lowered = path.lower()
    if lowered.startswith(("file:///", "http://", "https://")):
        return path
    return None


@dataclass
class _Image:
    """What the page shows of one image, before thumbnails are known."""

    record: dict[str, Any]
    key: str
    sources: dict[str, str] = field(default_factory=dict)   # thumbnail name -> source URI


def _top_area(features: Any, explanations: Any, images: Any, k: int) -> dict[str, float]:
    """Share of each image's pixels in the ``k`` strongest supporting superpixels of its top label.

    These are the superpixels the top label's overlay outlines.
    """
    import numpy as np
    import pandas as pd

    if features.empty or explanations.empty:
        return {}
    top = explanations.loc[explanations["label_rank"] == 1, ["image_id", "label"]]
    chosen = features.merge(top, on=["image_id", "label"])
    if chosen.empty:
        return {}
    chosen = chosen.sort_values(["image_id", "feature_weight"], ascending=[True, False])
    pixels = chosen.groupby("image_id", sort=False).head(k).groupby("image_id")["pixel_count"].sum()
    sizes = images.set_index("image_id")
    area = (pd.to_numeric(sizes["width"], errors="coerce")
            * pd.to_numeric(sizes["height"], errors="coerce"))
    area = area[~area.index.duplicated()]
    share = pixels / area.reindex(pixels.index)
    return {str(i): float(v) for i, v in share.items() if np.isfinite(v)}


def _build_images(root: str, run_id: str, images: Any, explanations: Any,
                  areas: dict[str, float]) -> list[_Image]:
    run = f"run_id={run_id}"
    by_image: dict[str, list[dict[str, Any]]] = {}
    if not explanations.empty:
        ordered = explanations.sort_values(["image_id", "label_rank"])
        for row in ordered.to_dict("records"):
            by_image.setdefault(str(row["image_id"]), []).append(row)
    out = []
    for order, row in enumerate(images.to_dict("records")):
        image_id = _text(row["image_id"]) or ""
        key = safe_key(image_id)
        status = "ok" if row["status"] == "ok" else "error"
        expected = _text(row["expected_label"])
        predicted = _text(row["top_label_name"])
        labels = by_image.get(image_id, []) if status == "ok" else []
        top = labels[0] if labels else {}
        expected_rank = None
        if expected is not None:
            for lab in labels:
                if _same_label(expected, _text(lab["label_name"])):
                    expected_rank = _int(lab["label_rank"])
                    break
        record = {
            "n": order, "id": image_id, "k": quote(key, safe=""), "s": status,
            "p": _text(row["path"], _MAX_PATH), "ol": _original_link(_text(row["path"])),
            "x": expected, "t": predicted, "tp": _num(row["top_prob"]),
            "m": bool(status == "ok" and expected is not None
                      and not _same_label(expected, predicted)),
            "xr": expected_rank, "w": _int(row["width"]), "h": _int(row["height"]),
            "sp": _int(row["n_superpixels"]), "sec": _num(row["seconds"], 2),
            "f": _num(top.get("model_r2")), "da": _num(top.get("deletion_auc")),
            "ia": _num(top.get("insertion_auc")), "ar": _num(areas.get(image_id), 3),
            "L": [[_int(lab["label"]), _text(lab["label_name"]), _num(lab["label_prob"]),
                   _num(lab["model_r2"]), 0] for lab in labels],
            "th": "",
        }
        if status == "error":
            record["ec"] = _text(row["error_class"])
            record["em"] = _text(row["error_message"], _MAX_MESSAGE)
        image = _Image(record, key)
        path = _text(row["path"])
        if status == "ok":
            # an error row's original is never read: decoding may be what refused it
            if path:
                image.sources["original"] = path
            overlays = join_uri(root, "overlays", run, key)
            if any(_text(lab["overlay_uri"]) for lab in labels):
                image.sources["segments"] = join_uri(overlays, "segments.png")
            for lab in labels:
                if _text(lab["overlay_uri"]):
                    image.sources[str(_int(lab["label"]))] = str(lab["overlay_uri"])
        out.append(image)
    return out


# --------------------------------------------------------------------------
# thumbnails
# --------------------------------------------------------------------------

def _outline_colours() -> tuple[tuple[int, int, int], ...]:
    """RGB of the overlays' default outline colours (:data:`lime_spark.render.OUTLINE_COLOURS`)."""
    from PIL import ImageColor

    from .render import OUTLINE_COLOURS

    return tuple(ImageColor.getrgb(c)[:3] for c in OUTLINE_COLOURS)


def _shrink(rgb: Any, side: int, outlines: Sequence[tuple[int, int, int]]) -> Any:
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


def _thumbnail_jpeg(data: bytes, side: int, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
                    outlines: Sequence[tuple[int, int, int]] = ()) -> bytes:
    """A JPEG whose longest side is at most ``side``, from encoded image bytes.

    Decoded by :func:`lime_spark.images.decode_image` (only its formats,
    within ``max_decode_bytes``); without ``outlines`` at reduced scale
    (``reduce_to=side``: JPEG DCT scaling, box averaging), with them at full
    size so that :func:`_shrink` finds the lines.
    """
    rgb = decode_image(data, max_pixels=max_pixels, max_decode_bytes=max_decode_bytes,
                       reduce_to=None if outlines else side)
    small = _shrink(rgb, side, outlines)
    del rgb
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=_JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class _Limits:
    """What one thumbnail may cost: the job's limits and this thread's share of memory."""

    max_pixels: int
    max_bytes: int
    max_decode_bytes: int
    budget: int          # bytes one thumbnail may hold: the file plus its decode


def _write_thumbnails(image: _Image, folder: str, side: int, limits: _Limits,
                      outlines: Sequence[tuple[int, int, int]],
                      names: Sequence[str] | None = None) -> tuple[list[str], int, list[str]]:
    """Write ``image``'s thumbnails (those of ``names``, default all).

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
            keep = () if name in ("original", "segments") else outlines
            decode_budget = max(1, min(limits.max_decode_bytes, limits.budget - len(data)))
            jpeg = _thumbnail_jpeg(data, side, max_pixels=limits.max_pixels,
                                   max_decode_bytes=decode_budget, outlines=keep)
            del data
            write_bytes(join_uri(folder, image.key, f"{name}.jpg"), jpeg)
            written.append(name)
        except ImageTooLargeError as exc:
            too_large.append(name)
            logger.debug("no thumbnail %s of image %r from %s within %d bytes: %s", name,
                         image.record["id"], source, limits.budget, exc)
        except Exception as exc:  # noqa: BLE001 - a missing preview never fails the report
            failed += 1
            logger.debug("no thumbnail %s of image %r from %s: %s: %s", name,
                         image.record["id"], source, type(exc).__name__, exc)
    return written, failed, too_large


def _thread_plan(memory_budget: int, workers: int | None) -> tuple[int, int]:
    """Threads and each one's share of ``memory_budget``.

    Default threads: ``min(16, 2 * cores, memory_budget // THREAD_BUDGET)``,
    at least one.
    """
    if workers is None:
        workers = max(1, min(16, 2 * (os.cpu_count() or 1), memory_budget // THREAD_BUDGET))
    return workers, max(1, memory_budget // workers)


def _default_memory_budget() -> int:
    """:data:`DEFAULT_MEMORY_BUDGET`, or a quarter of physical memory if that is less."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return DEFAULT_MEMORY_BUDGET
    return max(THREAD_BUDGET, min(DEFAULT_MEMORY_BUDGET, physical // 4))


# --------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------

def _median(values: Iterable[float | None]) -> float | None:
    import statistics

    finite = [v for v in values if v is not None]
    return statistics.median(finite) if finite else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _histogram_svg(values: Sequence[float], bins: int = 10) -> str:
    """An inline SVG bar chart of ``values`` in [0, 1] (clipped), ``bins`` bins."""
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    top = max(counts) or 1
    width, height, gap = 24, 64, 3
    bars = []
    for i, c in enumerate(counts):
        h = round(height * c / top) if c else 0
        x = i * (width + gap)
        hue = "#c0392b" if i < 2 else "#d68910" if i < 5 else "#1e8449"
        bars.append(f'<rect x="{x}" y="{height - h}" width="{width}" height="{h}" fill="{hue}">'
                    f"<title>fit {i / bins:.1f}-{(i + 1) / bins:.1f}: {c} images</title></rect>")
    total_w = bins * (width + gap) - gap
    return (f'<svg class="hist" role="img" aria-label="distribution of explanation fit" '
            f'width="{total_w}" height="{height + 14}" viewBox="0 0 {total_w} {height + 14}">'
            + "".join(bars)
            + f'<text x="0" y="{height + 12}">0</text>'
            + f'<text x="{total_w}" y="{height + 12}" text-anchor="end">1</text></svg>')


def _counts_table(rows: Sequence[tuple[Any, ...]], headers: Sequence[str], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="counts {cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _summary_html(run_id: str, records: Sequence[dict[str, Any]],
                  summary: dict[str, Any]) -> str:
    n = len(records)
    ok = [r for r in records if r["s"] == "ok"]
    errors = Counter(r.get("ec") or "unknown" for r in records if r["s"] == "error")
    with_expected = [r for r in ok if r["x"] is not None]
    mismatches = [r for r in ok if r["m"]]
    fits = [r["f"] for r in ok if r["f"] is not None]
    timings = summary.get("timings", {})
    total = timings.get("total_seconds")
    if total is None:
        total = sum(r["sec"] or 0.0 for r in records) or None
    rate = timings.get("images_per_second")

    def tile(label: str, value: str, note: str = "", cls: str = "") -> str:
        return (f'<div class="tile {cls}"><div class="tile-label">{_e(label)}</div>'
                f'<div class="tile-value">{value}</div>'
                f'<div class="tile-note">{note}</div></div>')

    tiles = [
        tile("Images", f"{n:,}", f"{len(ok):,} explained, {sum(errors.values()):,} errors"),
        tile("Errors", f"{sum(errors.values()):,}",
             _e(", ".join(f"{k} {v}" for k, v in errors.most_common(3))) or "none",
             "bad" if errors else "good"),
        tile("Mismatches", f"{len(mismatches):,}",
             f"of {len(with_expected):,} images with an expected label" if with_expected
             else "no expected labels in the input", "warn" if mismatches else ""),
        tile("Median explanation fit", _fmt(_median(fits)),
             "weighted R\u00b2 of the top label's local model"),
        tile("Median deletion AUC", _fmt(_median(r["da"] for r in ok), 3),
             "top label; lower is more faithful"),
        tile("Median insertion AUC", _fmt(_median(r["ia"] for r in ok), 3),
             "top label; higher is more faithful"),
        tile("Time", _e(_fmt_seconds(total)),
             f"{rate:.2f} images/s" if isinstance(rate, (int, float)) else ""),
    ]
    parts = [f'<section class="tiles">{"".join(tiles)}</section>']

    details = []
    if fits:
        details.append('<div class="panel"><h3>Explanation fit (top label)</h3>'
                       + _histogram_svg(fits)
                       + f'<p class="muted">{sum(f < 0.2 for f in fits):,} images below 0.2</p></div>')
    if errors:
        details.append('<div class="panel"><h3>Errors by class</h3>'
                       + _counts_table(errors.most_common(), ("error class", "images"))
                       + "</div>")
    predicted = Counter(r["t"] for r in ok if r["t"] is not None)
    if predicted:
        details.append('<div class="panel"><h3>Most frequent predictions</h3>'
                       + _counts_table(predicted.most_common(6), ("top label", "images"))
                       + "</div>")
    confusions = Counter((r["x"], r["t"]) for r in mismatches)
    if confusions:
        details.append('<div class="panel"><h3>Most frequent mismatches</h3>'
                       + _counts_table([(x, t, c) for (x, t), c in confusions.most_common(6)],
                                       ("expected", "predicted", "images"))
                       + "</div>")
    parts.append(f'<section class="details">{"".join(details)}</section>')
    return "".join(parts)


def _run_facts_html(summary: dict[str, Any], model_name: str | None, generated: str) -> str:
    """One line under the title: model, settings, input, versions, time of writing."""
    model = summary.get("model") or {}
    config = summary.get("config") or {}
    digest = (model.get("digest") or "")[:12]
    name = model.get("name") or model_name
    facts = [
        f"model {name}" + (f" ({digest})" if digest else "") if name else None,
        f"{config['num_samples']} samples per image" if config.get("num_samples") else None,
        f"{config['segmentation']}, ~{config.get('n_superpixels')} superpixels"
        if config.get("segmentation") else None,
        f"top {config['top_labels']} labels explained" if config.get("top_labels") else None,
        f"input {summary['input']}" if summary.get("input") else None,
        f"Spark {(summary.get('spark') or {}).get('master')}"
        if (summary.get("spark") or {}).get("master") else None,
        f"lime-spark {(summary.get('versions') or {}).get('lime-spark')}"
        if (summary.get("versions") or {}).get("lime-spark") else None,
        f"report written {generated}",
    ]
    return " &middot; ".join(f"<span>{_e(f)}</span>" for f in facts if f)


def _json_for_script(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _csp_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()


def _render_page(run_id: str, records: list[dict[str, Any]], summary: dict[str, Any], *,
                 page_size: int, overlay_features: int, model_name: str | None = None) -> str:
    run = quote(f"run_id={run_id}", safe="=")
    data = {"run": run_id, "overlays": f"../../overlays/{run}/", "thumbs": "thumbs/",
            "pageSize": page_size, "overlayFeatures": overlay_features, "images": records}
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    csp = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
           f"script-src '{_csp_hash(_SCRIPT)}'; base-uri 'none'; form-action 'none'")
    values = {
        "CSP": _e(csp), "TITLE": _e(f"lime-spark audit: run {run_id}"), "RUN": _e(run_id),
        "FACTS": _run_facts_html(summary, model_name, generated),
        "SUMMARY": _summary_html(run_id, records, summary),
        "FEATURES": _e(overlay_features), "STYLE": _STYLE, "DATA": _json_for_script(data),
        "SCRIPT": _SCRIPT,
    }
    # one pass: text that came from the data is never scanned for placeholders again
    return re.sub(r"%([A-Z]+)%", lambda m: values[m.group(1)], _PAGE)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------

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
    """
    import pyarrow.dataset as ds

    check_run_id(run_id)
    side = check_int("thumbnail_side", thumbnail_side, minimum=16)
    page_size = check_int("page_size", page_size, minimum=1)
    if workers is not None:
        workers = check_int("workers", workers, minimum=1)
    memory_budget = check_int("memory_budget", memory_budget if memory_budget is not None
                              else _default_memory_budget(), minimum=1)
    workers, share = _thread_plan(memory_budget, workers)
    started = time.perf_counter()
    root = output_root.rstrip("/")
    summary = redact_value(_read_summary(root, run_id))   # the run line quotes input/config
    config = summary.get("config") or {}
    overlay_features = int(config.get("overlay_features") or 5)
    limits = _Limits(max_pixels=int(config.get("max_pixels") or DEFAULT_MAX_PIXELS),
                     max_bytes=int(config.get("max_bytes") or DEFAULT_MAX_BYTES),
                     max_decode_bytes=int(config.get("max_decode_bytes")
                                          or DEFAULT_MAX_DECODE_BYTES),
                     budget=share)

    images = _read_table(root, "images", run_id, _IMAGE_COLUMNS, required=True)
    explanations = _read_table(root, "explanations", run_id, _EXPLANATION_COLUMNS)
    features = _read_table(root, "features", run_id, _FEATURE_COLUMNS,
                           filter_expr=ds.field("feature_weight") > 0)
    areas = _top_area(features, explanations, images, overlay_features)
    del features
    entries = _build_images(root, run_id, images, explanations, areas)

    outlines = (_outline_colours() if config.get("overlay_display", "outline") == "outline"
                else ())
    folder = join_uri(root, "report", f"run_id={run_id}")
    thumbs = join_uri(folder, "thumbs")
    remove_tree(thumbs)
    failed = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(
            lambda im: _write_thumbnails(im, thumbs, side, limits, outlines), entries))
    # what needs more than one thread's share: one at a time, with the whole budget
    alone = _Limits(limits.max_pixels, limits.max_bytes, limits.max_decode_bytes, memory_budget)
    for entry, (written, misses, too_large) in zip(entries, results):
        if too_large and memory_budget > share:
            more, more_misses, too_large = _write_thumbnails(entry, thumbs, side, alone,
                                                             outlines, too_large)
            written += more
            misses += more_misses
        failed += misses + len(too_large)
        entry.record["th"] = ",".join(written)
        for lab in entry.record["L"]:
            lab[4] = int(str(lab[0]) in written)
    records = [e.record for e in entries]
    names = images["model_name"].dropna()
    page = _render_page(run_id, records, summary, page_size=page_size,
                        overlay_features=overlay_features,
                        model_name=str(names.iloc[0]) if len(names) else None)
    uri = join_uri(folder, "index.html")
    write_bytes(uri, page.encode("utf-8"))
    if failed:
        logger.warning("report of run %s: %d thumbnail(s) could not be made (original or "
                       "overlay unreadable, or larger than the memory budget; DEBUG logging "
                       "names them)", run_id, failed)
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


# --------------------------------------------------------------------------
# page template (inline CSS and JS; the script's hash goes into the CSP)
# --------------------------------------------------------------------------

_STYLE = """
:root { --fg:#1d2330; --muted:#667085; --line:#e3e6ec; --bg:#f5f6f8; --card:#fff;
  --good:#1e8449; --warn:#b9770e; --bad:#c0392b; --accent:#2f6fd0; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  color:var(--fg); background:var(--bg); }
header.top { padding:18px 24px 6px; }
header.top h1 { margin:0; font-size:20px; }
header.top p { margin:4px 0 0; color:var(--muted); font-size:13px; overflow-wrap:anywhere; }
main { padding:0 24px 40px; }
.tiles { display:grid; grid-template-columns:repeat(auto-fit,minmax(160px,1fr)); gap:10px; margin:12px 0; }
.tile { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
.tile-label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
.tile-value { font-size:24px; font-weight:600; margin:2px 0; }
.tile-note { color:var(--muted); font-size:12px; overflow-wrap:anywhere; }
.tile.bad .tile-value { color:var(--bad); } .tile.warn .tile-value { color:var(--warn); }
.tile.good .tile-value { color:var(--good); }
.details { display:flex; flex-wrap:wrap; gap:10px; margin-bottom:14px; }
.panel { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 14px;
  min-width:220px; max-width:420px; }
.panel h3 { margin:0 0 6px; font-size:13px; }
.hist text { font-size:10px; fill:var(--muted); }
table.counts { border-collapse:collapse; font-size:12px; }
table.counts th, table.counts td { text-align:left; padding:2px 10px 2px 0; border-bottom:1px solid var(--line);
  overflow-wrap:break-word; max-width:220px; }
table.counts th { white-space:nowrap; color:var(--muted); font-weight:500; }
table.counts td:last-child, table.counts th:last-child { text-align:right; padding-right:0;
  white-space:nowrap; }
dl.facts { display:grid; grid-template-columns:auto 1fr; gap:2px 10px; margin:0; font-size:12px; }
dl.facts dt { color:var(--muted); white-space:nowrap; } dl.facts dd { margin:0; overflow-wrap:anywhere; }
.muted { color:var(--muted); font-size:12px; margin:4px 0 0; }
.toolbar { position:sticky; top:0; z-index:2; background:var(--bg); border-bottom:1px solid var(--line);
  padding:8px 0; display:flex; flex-wrap:wrap; align-items:center; gap:8px 14px; }
.filters button { font:inherit; border:1px solid var(--line); background:var(--card); padding:4px 10px;
  border-radius:14px; cursor:pointer; color:var(--fg); }
.filters button[aria-pressed="true"] { background:var(--accent); border-color:var(--accent); color:#fff; }
.toolbar select, .toolbar input { font:inherit; padding:3px 6px; border:1px solid var(--line); border-radius:6px;
  background:var(--card); color:var(--fg); }
.toolbar input[type=search] { width:220px; }
.pager { display:flex; align-items:center; gap:6px; margin-left:auto; }
.pager button { font:inherit; padding:3px 10px; border:1px solid var(--line); border-radius:6px;
  background:var(--card); cursor:pointer; }
.pager button:disabled { opacity:.4; cursor:default; }
#count { color:var(--muted); }
.legend { color:var(--muted); font-size:12px; margin:8px 0 10px; }
.cards { display:flex; flex-direction:column; gap:10px; }
.card { background:var(--card); border:1px solid var(--line); border-left:4px solid var(--good);
  border-radius:8px; padding:10px 12px; display:grid; grid-template-columns:230px 1fr; gap:12px; }
.card.mismatch { border-left-color:var(--warn); } .card.error { border-left-color:var(--bad); }
.card h2 { font-size:14px; margin:0 0 4px; overflow-wrap:anywhere; font-family:ui-monospace,Menlo,Consolas,monospace; }
.badge { display:inline-block; font-size:11px; padding:1px 7px; border-radius:9px; margin-right:4px;
  color:#fff; background:var(--good); }
.badge.mismatch { background:var(--warn); } .badge.error { background:var(--bad); }
.badge.neutral { background:#8a94a6; }
.meta dl { margin:6px 0 0; }
.meta .path { color:var(--muted); font-size:11px; overflow-wrap:anywhere; margin-top:6px; }
.meta .path a { color:inherit; }
.fit-low { color:var(--bad); font-weight:600; } .fit-mid { color:var(--warn); font-weight:600; }
.fit-high { color:var(--good); font-weight:600; }
.panels { display:flex; flex-wrap:wrap; gap:8px; align-content:flex-start; }
figure { margin:0; width:150px; }
figure .frame { width:150px; height:150px; background:#eef0f3; border-radius:4px; display:flex;
  align-items:center; justify-content:center; overflow:hidden; }
figure img { max-width:100%; max-height:100%; display:block; }
figure .none { color:var(--muted); font-size:12px; padding:8px; text-align:center; }
figcaption { font-size:12px; margin-top:3px; line-height:1.3; }
figcaption .name { font-weight:600; overflow-wrap:anywhere; }
figcaption .num { color:var(--muted); }
figure.expected .frame { outline:2px solid var(--good); outline-offset:1px; }
.errbox { background:#fdf0ef; border:1px solid #f3c7c2; border-radius:6px; padding:8px 10px; }
.errbox .cls { font-weight:600; color:var(--bad); }
.errbox pre { white-space:pre-wrap; overflow-wrap:anywhere; margin:4px 0 0; font-size:12px; }
.empty { padding:30px; text-align:center; color:var(--muted); background:var(--card); border-radius:8px; }
footer { color:var(--muted); font-size:12px; padding:0 24px 24px; }
@media (max-width:800px) { .card { grid-template-columns:1fr; } }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="%CSP%">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>%TITLE%</title>
<style>%STYLE%</style>
</head>
<body>
<header class="top">
<h1>lime-spark audit report &middot; run <span id="run-id">%RUN%</span></h1>
<p class="runfacts">%FACTS%</p>
</header>
<main>
%SUMMARY%
<div class="toolbar" role="toolbar" aria-label="sort and filter">
<div class="filters" role="group" aria-label="show">
<button type="button" data-filter="all" aria-pressed="true">All</button>
<button type="button" data-filter="mismatch" aria-pressed="false">Mismatches only</button>
<button type="button" data-filter="error" aria-pressed="false">Errors only</button>
</div>
<label>Sort <select id="sort">
<option value="fit">lowest fit first</option>
<option value="-fit">highest fit first</option>
<option value="prob">lowest top probability first</option>
<option value="-del">highest deletion AUC first</option>
<option value="ins">lowest insertion AUC first</option>
<option value="-sec">slowest first</option>
<option value="id">image id</option>
<option value="input">input order</option>
</select></label>
<input type="search" id="search" placeholder="search id, label, error" aria-label="search">
<div class="pager">
<span id="count"></span>
<button type="button" id="prev" aria-label="previous page">&lsaquo;</button>
<span id="page"></span>
<button type="button" id="next" aria-label="next page">&rsaquo;</button>
<select id="size" aria-label="cards per page">
<option value="25">25 / page</option><option value="50">50 / page</option>
<option value="100">100 / page</option><option value="200">200 / page</option>
</select>
</div>
</div>
<p class="legend">Each card: the original, its superpixels, and one overlay per explained
label outlining the %FEATURES% superpixels that most support it (click for full size).
<b>fit</b> is the explanation fit, the weighted R&sup2; of the local linear model (low: do
not trust the overlay); <b>deletion AUC</b> (lower is better) and <b>insertion AUC</b> (higher
is better) measure how much the top label's probability depends on the highlighted
superpixels; <b>area</b> is the share of the image they cover.</p>
<noscript><p class="empty">The image cards need JavaScript.</p></noscript>
<div id="cards" class="cards" aria-live="polite"></div>
<div class="toolbar bottom"><div class="pager"><button type="button" id="prev2">&lsaquo; previous</button>
<span id="page2"></span><button type="button" id="next2">next &rsaquo;</button></div></div>
</main>
<footer>lime-spark &middot; static report, no network access; thumbnails in thumbs/, full-size
overlays in ../../overlays/</footer>
<script type="application/json" id="report-data">%DATA%</script>
<script>%SCRIPT%</script>
</body>
</html>
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var IMAGES = DATA.images;
  var SIZES = [25, 50, 100, 200];
  var state = {filter: "all", sort: "fit", q: "", page: 1,
               size: SIZES.indexOf(DATA.pageSize) >= 0 ? DATA.pageSize : 50};
  var view = [];

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function fmt(v, d) { return (v === null || v === undefined) ? "n/a" : v.toFixed(d); }
  function pct(v) { return (v === null || v === undefined) ? "n/a" : Math.round(v * 100) + "%"; }
  function fitClass(v) {
    if (v === null || v === undefined) { return ""; }
    return v < 0.2 ? "fit-low" : (v < 0.5 ? "fit-mid" : "fit-high");
  }
  // Links of the page: file:, http(s): and relative URLs (the overlays, ../../overlays/...);
  // never javascript:, data: or another scheme, nor a protocol-relative //host/ URL.
  function safeHref(url) {
    if (typeof url !== "string" || !url) { return null; }
    var bare = url.replace(/[\t\n\r]/g, "").replace(/^[\u0000-\u0020]+/, "");
    if (/^[\\/]{2}/.test(bare)) { return null; }
    try {
      return /^(file|https?):$/.test(new URL(bare, document.baseURI).protocol) ? url : null;
    } catch (e) {
      return null;
    }
  }
  function has(img, name) { return ("," + img.th + ",").indexOf("," + name + ",") >= 0; }

  // -- sorting and filtering -------------------------------------------------
  var KEYS = {
    fit: function (r) { return r.f; }, "-fit": function (r) { return r.f === null ? null : -r.f; },
    prob: function (r) { return r.tp; }, "-del": function (r) { return r.da === null ? null : -r.da; },
    ins: function (r) { return r.ia; }, "-sec": function (r) { return r.sec === null ? null : -r.sec; },
    input: function (r) { return r.n; }
  };
  function compare(key) {
    if (key === "id") {
      return function (a, b) { return a.id < b.id ? -1 : (a.id > b.id ? 1 : a.n - b.n); };
    }
    var f = KEYS[key] || KEYS.fit;
    return function (a, b) {
      var x = f(a), y = f(b);
      if (x === null || x === undefined) { return (y === null || y === undefined) ? a.n - b.n : 1; }
      if (y === null || y === undefined) { return -1; }
      return x - y || a.n - b.n;
    };
  }
  function matches(r, q) {
    if (!q) { return true; }
    var hay = [r.id, r.x, r.t, r.ec, r.em, r.p].concat(r.L.map(function (l) { return l[1]; }));
    for (var i = 0; i < hay.length; i++) {
      if (hay[i] && String(hay[i]).toLowerCase().indexOf(q) >= 0) { return true; }
    }
    return false;
  }
  function select() {
    var q = state.q.trim().toLowerCase();
    view = IMAGES.filter(function (r) {
      if (state.filter === "error" && r.s !== "error") { return false; }
      if (state.filter === "mismatch" && !r.m) { return false; }
      return matches(r, q);
    });
    view.sort(compare(state.sort));
  }

  // -- cards -----------------------------------------------------------------
  function panel(img, name, full, caption, cls) {
    var fig = el("figure", cls || "");
    var frame = el("div", "frame");
    if (has(img, name)) {
      var pic = el("img");
      pic.loading = "lazy";
      pic.decoding = "async";
      pic.alt = caption[0] + " of " + img.id;
      pic.src = DATA.thumbs + img.k + "/" + name + ".jpg";
      var href = safeHref(full);
      if (href) {
        var a = el("a");
        a.href = href; a.target = "_blank"; a.rel = "noopener";
        a.title = "open full size";
        a.appendChild(pic); frame.appendChild(a);
      } else {
        frame.appendChild(pic);
      }
    } else {
      frame.appendChild(el("div", "none", "no preview"));
    }
    fig.appendChild(frame);
    var cap = el("figcaption");
    cap.appendChild(el("div", "name", caption[0]));
    if (caption[1]) { cap.appendChild(el("div", "num", caption[1])); }
    fig.appendChild(cap);
    return fig;
  }
  function fact(dl, term, value, cls) {
    dl.appendChild(el("dt", "", term));
    dl.appendChild(el("dd", cls || "", value));
  }
  function card(r) {
    var art = el("article", "card" + (r.s === "error" ? " error" : (r.m ? " mismatch" : "")));
    art.setAttribute("data-image-id", r.id);
    var meta = el("div", "meta");
    meta.appendChild(el("h2", "", r.id));
    if (r.s === "error") {
      meta.appendChild(el("span", "badge error", "error"));
    } else if (r.m) {
      meta.appendChild(el("span", "badge mismatch", "mismatch"));
    } else if (r.x !== null) {
      meta.appendChild(el("span", "badge", "match"));
    } else {
      meta.appendChild(el("span", "badge neutral", "no expected label"));
    }
    var dl = el("dl", "facts");
    fact(dl, "expected", r.x === null ? "\u2014" : r.x);
    if (r.s === "ok") {
      fact(dl, "predicted", r.t + " (" + fmt(r.tp, 2) + ")", r.m ? "fit-mid" : "");
      if (r.m && r.xr) { fact(dl, "expected label", "explained as #" + r.xr); }
      fact(dl, "explanation fit", fmt(r.f, 2), fitClass(r.f));
      fact(dl, "deletion AUC", fmt(r.da, 3));
      fact(dl, "insertion AUC", fmt(r.ia, 3));
      fact(dl, "area", pct(r.ar));
      fact(dl, "superpixels", r.sp === null ? "n/a" : r.sp);
    }
    if (r.w) { fact(dl, "size", r.w + " \u00d7 " + r.h); }
    if (r.sec !== null) { fact(dl, "seconds", fmt(r.sec, 2)); }
    meta.appendChild(dl);
    var path = el("div", "path");
    var href = safeHref(r.ol);
    if (href) {
      var a = el("a", "", r.p); a.href = href; a.target = "_blank"; a.rel = "noopener";
      path.appendChild(a);
    } else {
      path.textContent = r.p || "";
    }
    meta.appendChild(path);
    art.appendChild(meta);

    var right = el("div");
    if (r.s === "error") {
      var box = el("div", "errbox");
      box.appendChild(el("div", "cls", r.ec || "error"));
      box.appendChild(el("pre", "", r.em || ""));
      right.appendChild(box);
    }
    var panels = el("div", "panels");
    if (r.s === "ok" || has(r, "original")) {
      panels.appendChild(panel(r, "original", r.ol, ["original", r.w ? r.w + "\u00d7" + r.h : ""]));
    }
    if (r.s === "ok") {
      var base = DATA.overlays + r.k + "/";
      panels.appendChild(panel(r, "segments", base + "segments.png",
                               ["superpixels", r.sp ? r.sp + " superpixels" : ""]));
      r.L.forEach(function (l, i) {
        var isExpected = r.x !== null && r.xr === i + 1;
        panels.appendChild(panel(r, String(l[0]), base + l[0] + ".png",
          ["#" + (i + 1) + " " + (l[1] === null ? l[0] : l[1]),
           "p " + fmt(l[2], 2) + " \u00b7 fit " + fmt(l[3], 2) + (isExpected ? " \u00b7 expected" : "")],
          isExpected ? "expected" : ""));
      });
    }
    right.appendChild(panels);
    art.appendChild(right);
    return art;
  }

  // -- page ------------------------------------------------------------------
  function pages() { return Math.max(1, Math.ceil(view.length / state.size)); }
  function render() {
    state.page = Math.min(Math.max(1, state.page), pages());
    var start = (state.page - 1) * state.size;
    var slice = view.slice(start, start + state.size);
    var box = document.getElementById("cards");
    var frag = document.createDocumentFragment();
    slice.forEach(function (r) { frag.appendChild(card(r)); });
    if (!slice.length) { frag.appendChild(el("div", "empty", "No image matches.")); }
    box.replaceChildren(frag);
    var label = "page " + state.page + " of " + pages();
    document.getElementById("page").textContent = label;
    document.getElementById("page2").textContent = label;
    document.getElementById("count").textContent = view.length === IMAGES.length
      ? IMAGES.length + " images"
      : view.length + " of " + IMAGES.length + " images";
    ["prev", "prev2"].forEach(function (id) { document.getElementById(id).disabled = state.page <= 1; });
    ["next", "next2"].forEach(function (id) { document.getElementById(id).disabled = state.page >= pages(); });
    var buttons = document.querySelectorAll("[data-filter]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].setAttribute("aria-pressed", String(buttons[i].getAttribute("data-filter") === state.filter));
    }
    document.getElementById("sort").value = state.sort;
    document.getElementById("size").value = String(state.size);
    if (document.getElementById("search").value !== state.q) {
      document.getElementById("search").value = state.q;
    }
    var hash = "filter=" + state.filter + "&sort=" + encodeURIComponent(state.sort) +
      "&page=" + state.page + "&size=" + state.size + (state.q ? "&q=" + encodeURIComponent(state.q) : "");
    if (location.hash.slice(1) !== hash) { history.replaceState(null, "", "#" + hash); }
  }
  function update(changes, keepPage) {
    for (var k in changes) { if (Object.prototype.hasOwnProperty.call(changes, k)) { state[k] = changes[k]; } }
    if (!keepPage) { state.page = 1; }
    select();
    render();
  }
  function readHash() {
    var params = {};
    location.hash.slice(1).split("&").forEach(function (part) {
      var i = part.indexOf("=");
      if (i > 0) {
        try { params[part.slice(0, i)] = decodeURIComponent(part.slice(i + 1)); } catch (e) { /* ignore */ }
      }
    });
    if (["all", "mismatch", "error"].indexOf(params.filter) >= 0) { state.filter = params.filter; }
    if (params.sort && (KEYS[params.sort] || params.sort === "id")) { state.sort = params.sort; }
    if (params.q) { state.q = params.q; }
    var size = parseInt(params.size, 10);
    if (SIZES.indexOf(size) >= 0) { state.size = size; }
    var page = parseInt(params.page, 10);
    if (page > 0) { state.page = page; }
  }

  var buttons = document.querySelectorAll("[data-filter]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener("click", function (ev) {
      update({filter: ev.currentTarget.getAttribute("data-filter")});
    });
  }
  document.getElementById("sort").addEventListener("change", function (ev) { update({sort: ev.target.value}); });
  document.getElementById("size").addEventListener("change", function (ev) {
    update({size: parseInt(ev.target.value, 10)});
  });
  var timer = null;
  document.getElementById("search").addEventListener("input", function (ev) {
    clearTimeout(timer);
    var value = ev.target.value;
    timer = setTimeout(function () { update({q: value}); }, 150);
  });
  function go(delta) {
    return function () {
      update({page: state.page + delta}, true);
      var top = document.getElementById("cards").getBoundingClientRect().top + window.scrollY - 60;
      if (window.scrollY > top) { window.scrollTo(0, top); }
    };
  }
  document.getElementById("prev").addEventListener("click", go(-1));
  document.getElementById("next").addEventListener("click", go(1));
  document.getElementById("prev2").addEventListener("click", go(-1));
  document.getElementById("next2").addEventListener("click", go(1));

  var counts = {all: IMAGES.length, mismatch: 0, error: 0};
  IMAGES.forEach(function (r) { if (r.m) { counts.mismatch++; } if (r.s === "error") { counts.error++; } });
  for (var j = 0; j < buttons.length; j++) {
    var b = buttons[j];
    b.appendChild(el("span", "n", " (" + counts[b.getAttribute("data-filter")] + ")"));
  }

  readHash();
  select();
  render();
  window.limeSparkReport = {state: state, view: function () { return view; }, update: update};
})();
"""
