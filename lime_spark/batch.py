"""One image record in, its rows of the three output tables out (no Spark here).

:func:`explain_record` reads an image through fsspec, explains it, computes
the metrics, writes the overlay PNGs and returns the ``images``,
``explanations`` and ``features`` rows of ``shared/DESIGN.md``.  Every
failure of one image becomes an error row: the caller never sees an
exception for a bad image.  The Spark partition function and a plain Python
loop both call it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .explainer import ImageExplainer, ImageExplanation
from .exceptions import InvalidImageError, LimeSparkError
from .images import decode_image, resize_image
from .metrics import deletion_insertion_auc
from .models import Classifier
from .render import encode_png, render_explanation, render_superpixels, thumbnail, upsample_segments
from .sampling import derive_seed
from .storage import join_uri, read_bytes, redact, safe_key, write_bytes

__all__ = ["BatchSettings", "ImageRecord", "RecordResult", "explain_record", "image_id_for_path",
           "IMAGE_COLUMNS", "EXPLANATION_COLUMNS", "FEATURE_COLUMNS"]

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image_id", "path", "expected_label", "status", "error_class", "error_message",
                 "width", "height", "n_superpixels", "n_samples", "top_label", "top_label_name",
                 "top_prob", "seconds", "model_name", "model_digest", "seed")
EXPLANATION_COLUMNS = ("image_id", "label", "label_name", "label_rank", "label_prob", "model_r2",
                       "intercept", "local_pred", "deletion_auc", "insertion_auc", "overlay_uri")
FEATURE_COLUMNS = ("image_id", "label", "feature", "feature_weight", "feature_rank",
                   "pixel_count", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")

_MAX_MESSAGE = 2000


def image_id_for_path(path: str) -> str:
    """The stable id of an image given only by its path: 16 hex digits of sha256."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class BatchSettings:
    """Per-run values the per-image work needs (taken from ``JobConfig``)."""

    run_id: str
    run_seed: int
    output_root: str
    top_labels: int = 5
    max_pixels: int = 89_478_485
    read_retries: int = 3
    overlays: bool = True
    overlay_display: str = "outline"
    overlay_features: int = 5
    overlay_max_side: int = 1024
    metrics: bool = True


@dataclass(frozen=True)
class ImageRecord:
    """One input row."""

    image_id: str | None
    path: str | None
    expected_label: str | None = None


@dataclass
class RecordResult:
    """The rows one image contributes to each table."""

    image: dict[str, Any]
    explanations: list[dict[str, Any]] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)
    read_retries: int = 0


def _pixel_stats(segments: NDArray, shape: tuple[int, int]) -> dict[int, tuple[int, int, int, int, int]]:
    """Pixel count and half-open bbox (x0, y0, x1, y1) of each superpixel at ``shape``.

    The segments (h, w) map onto the original (H, W) by nearest neighbour
    (pixel centres), as the overlays draw them; computed on the small grid.
    """
    h, w = segments.shape
    big_h, big_w = shape
    row_src = np.minimum(((np.arange(big_h) + 0.5) * h / big_h).astype(np.int64), h - 1)
    col_src = np.minimum(((np.arange(big_w) + 0.5) * w / big_w).astype(np.int64), w - 1)
    row_mult = np.bincount(row_src, minlength=h)
    col_mult = np.bincount(col_src, minlength=w)
    row_first = np.full(h, -1)
    row_last = np.full(h, -1)
    col_first = np.full(w, -1)
    col_last = np.full(w, -1)
    for src, first, last in ((row_src, row_first, row_last), (col_src, col_first, col_last)):
        idx = np.arange(len(src))
        np.maximum.at(last, src, idx)
        first[:] = len(src)
        np.minimum.at(first, src, idx)
    weight = row_mult[:, None] * col_mult[None, :]
    n = int(segments.max()) + 1
    counts = np.bincount(segments.ravel(), weights=weight.ravel(), minlength=n)
    stats = {}
    ys, xs = np.nonzero(weight > 0)
    seg_visible = segments[ys, xs]
    for k in range(n):
        sel = seg_visible == k
        if not np.any(sel):
            stats[k] = (0, 0, 0, 0, 0)
            continue
        y, x = ys[sel], xs[sel]
        stats[k] = (int(counts[k]), int(col_first[x.min()]), int(row_first[y.min()]),
                    int(col_last[x.max()]) + 1, int(row_last[y.max()]) + 1)
    return stats


def _error_row(record: ImageRecord, image_id: str, exc: BaseException, started: float,
               base: dict[str, Any]) -> dict[str, Any]:
    message = redact(str(exc) or type(exc).__name__)
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE - 3] + "..."
    return {**base, "image_id": image_id, "path": record.path,
            "expected_label": record.expected_label, "status": "error",
            "error_class": type(exc).__name__, "error_message": message,
            "seconds": time.perf_counter() - started}


def _write_overlays(settings: BatchSettings, key: str, original: NDArray[np.uint8],
                    explanation: ImageExplanation) -> dict[int, str]:
    folder = join_uri(settings.output_root, "overlays", f"run_id={settings.run_id}", key)
    canvas = original
    if settings.overlay_max_side and max(original.shape[:2]) > settings.overlay_max_side:
        canvas = thumbnail(original, settings.overlay_max_side)
    segments = upsample_segments(explanation.segments, canvas.shape[:2])
    write_bytes(join_uri(folder, "segments.png"), render_superpixels(canvas, segments))
    uris = {}
    for label in explanation.labels:
        positive = sorted((fw for fw in explanation.local_exp[label] if fw[1] > 0),
                          key=lambda fw: -fw[1])[:settings.overlay_features]
        png = render_explanation(canvas, segments, positive, display=settings.overlay_display,
                                 threshold=0.0)
        uri = join_uri(folder, f"{label}.png")
        write_bytes(uri, png)
        uris[label] = uri
    return uris


def explain_record(record: ImageRecord, *, classifier: Classifier, explainer: ImageExplainer,
                   settings: BatchSettings) -> RecordResult:
    """Explain one input row; never raises for a bad image.

    Returns
    -------
    RecordResult
        ``image`` always holds one row (``status`` ``ok`` or ``error``);
        explanations and features are empty for errors.
    """
    started = time.perf_counter()
    image_id = record.image_id
    if image_id is None and record.path is not None:
        image_id = image_id_for_path(record.path)
    image_id = image_id if image_id is not None else ""
    base = dict.fromkeys(IMAGE_COLUMNS)
    base.update(model_name=classifier.name, model_digest=classifier.digest,
                n_samples=explainer.config.num_samples)
    retries = 0

    def count_retry(exc: BaseException) -> None:
        nonlocal retries
        retries += 1
        logger.warning("retrying read of %s after %s", record.path, type(exc).__name__)

    try:
        if record.path is None or not str(record.path).strip():
            raise InvalidImageError(f"Expected an image path. Received: path={record.path!r}")
        seed = derive_seed(settings.run_seed, image_id)
        base["seed"] = seed
        data = read_bytes(record.path, retries=settings.read_retries, on_retry=count_retry)
        original = decode_image(data, max_pixels=settings.max_pixels)
        del data
        height, width = original.shape[:2]
        base.update(width=width, height=height)
        model_image = resize_image(original, classifier.input_size)
        explanation = explainer.explain(model_image, classifier, top_labels=settings.top_labels,
                                        random_state=seed)
        top = explanation.top_labels[0]
        deletion = insertion = None
        if settings.metrics:
            deletion, insertion = deletion_insertion_auc(explanation, classifier, top)
        key = safe_key(image_id)
        overlay_uris = (_write_overlays(settings, key, original, explanation)
                        if settings.overlays else {})
        stats = _pixel_stats(explanation.segments, (height, width))
        explanations, features = [], []
        for rank, label in enumerate(explanation.labels, start=1):
            explanations.append({
                "image_id": image_id, "label": int(label),
                "label_name": classifier.label_name(label), "label_rank": rank,
                "label_prob": float(explanation.predictions[label]),
                "model_r2": float(explanation.score[label]),
                "intercept": float(explanation.intercept[label]),
                "local_pred": float(explanation.local_pred[label][0]),
                "deletion_auc": deletion if label == top else None,
                "insertion_auc": insertion if label == top else None,
                "overlay_uri": overlay_uris.get(label)})
            for feature_rank, (feature, weight) in enumerate(explanation.local_exp[label], start=1):
                count, x0, y0, x1, y1 = stats[feature]
                features.append({
                    "image_id": image_id, "label": int(label), "feature": int(feature),
                    "feature_weight": float(weight), "feature_rank": feature_rank,
                    "pixel_count": count, "bbox_x0": x0, "bbox_y0": y0,
                    "bbox_x1": x1, "bbox_y1": y1})
        row = {**base, "image_id": image_id, "path": record.path,
               "expected_label": record.expected_label, "status": "ok",
               "n_superpixels": explanation.n_superpixels, "top_label": int(top),
               "top_label_name": classifier.label_name(top),
               "top_prob": float(explanation.predictions[top]),
               "seconds": time.perf_counter() - started}
        return RecordResult(row, explanations, features, retries)
    except Exception as exc:  # noqa: BLE001 - one bad image must never fail the batch
        level = logging.DEBUG if isinstance(exc, LimeSparkError) else logging.WARNING
        logger.log(level, "image %s failed: %s: %s", image_id, type(exc).__name__,
                   redact(str(exc)), exc_info=level == logging.WARNING)
        return RecordResult(_error_row(record, image_id, exc, started, base), read_retries=retries)
