"""The table rows of one image: ``images``, ``explanations`` and ``features`` (no I/O).

Pure functions from an explanation (and the run's values) to the dicts whose
keys are the columns declared in :mod:`lime_spark.tables`.  The per-image
pipeline (:func:`lime_spark.batch.explain_record`) calls them in its ``rows``
stage; :func:`error_row` is its error policy's row.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .storage import redact
from .tables import IMAGE_COLUMNS

if TYPE_CHECKING:
    from .anchors import AnchorExplanation
    from .batch import ImageRecord
    from .explainer import ImageExplanation
    from .models import Classifier

__all__ = ["base_row", "error_row", "ok_row", "explanation_rows", "feature_rows", "anchor_rows",
           "pixel_stats"]

_MAX_MESSAGE = 2000
"""Characters of an error message kept in the ``images`` table."""

PixelStats = dict[int, tuple[int, int, int, int, int]]
"""Superpixel id -> (pixel count, x0, y0, x1, y1) at the original size."""


def base_row(classifier: Classifier, explainer_digest: str) -> dict[str, Any]:
    """An ``images`` row with the run's model values and explainer digest, everything else
    null."""
    base = dict.fromkeys(IMAGE_COLUMNS)
    base.update(model_name=classifier.name, model_digest=classifier.digest,
                runtime=getattr(classifier, "runtime", "python"),
                explainer_digest=explainer_digest)
    return base


def error_row(record: ImageRecord, image_id: str, exc: BaseException, started: float,
              base: dict[str, Any]) -> dict[str, Any]:
    """The ``images`` row of an input row that failed with ``exc`` (message redacted, capped)."""
    message = redact(str(exc) or type(exc).__name__)
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE - 3] + "..."
    return {**base, "image_id": image_id, "path": record.path,
            "expected_label": record.expected_label, "status": "error",
            "error_class": type(exc).__name__, "error_message": message,
            "seconds": time.perf_counter() - started}


def ok_row(record: ImageRecord, image_id: str, explanation: ImageExplanation,
           classifier: Classifier, base: dict[str, Any]) -> dict[str, Any]:
    """The ``images`` row of an explained image; ``seconds`` is left to the caller."""
    top = explanation.top_labels[0]
    return {**base, "image_id": image_id, "path": record.path,
            "expected_label": record.expected_label, "status": "ok",
            "n_superpixels": explanation.n_superpixels, "n_samples": explanation.n_samples,
            "top_label": int(top),
            "top_label_name": classifier.label_name(top),
            "top_prob": float(explanation.predictions[top])}


def anchor_rows(image_id: str, anchors: list[AnchorExplanation], classifier: Classifier, *,
                overlay_uris: dict[int, str]) -> list[dict[str, Any]]:
    """One ``anchors`` row per anchored label; ``overlay_uris`` maps a label to its anchor
    overlay (empty: no overlays)."""
    return [{"image_id": image_id, "label": int(a.label),
             "label_name": classifier.label_name(a.label),
             "anchor": [int(f) for f in a.anchor], "anchor_size": len(a.anchor),
             "precision": float(a.precision), "precision_lower": float(a.precision_lower),
             "coverage": float(a.coverage), "success": bool(a.success),
             "n_samples": int(a.n_samples), "n_model_calls": int(a.n_model_calls),
             "overlay_uri": overlay_uris.get(int(a.label)), "seconds": float(a.seconds)}
            for a in anchors]


def explanation_rows(image_id: str, explanation: ImageExplanation, classifier: Classifier, *,
                     auc: dict[int, tuple[float, float]],
                     overlay_uris: dict[int, str]) -> list[dict[str, Any]]:
    """One ``explanations`` row per explained label, in rank order.

    ``auc`` maps a label with metrics to its (deletion, insertion) AUC (empty:
    no metrics); ``overlay_uris`` maps a label to its overlay (empty: no
    overlays).
    """
    return [{"image_id": image_id, "label": int(label),
             "label_name": classifier.label_name(label), "label_rank": rank,
             "label_prob": float(explanation.predictions[label]),
             "model_r2": float(explanation.score[label]),
             "intercept": float(explanation.intercept[label]),
             "local_pred": float(explanation.local_pred[label][0]),
             "deletion_auc": auc[label][0] if label in auc else None,
             "insertion_auc": auc[label][1] if label in auc else None,
             "overlay_uri": overlay_uris.get(label),
             "stability": float(explanation.stability[label])}
            for rank, label in enumerate(explanation.labels, start=1)]


def feature_rows(image_id: str, explanation: ImageExplanation,
                 stats: PixelStats) -> list[dict[str, Any]]:
    """One ``features`` row per (explained label, superpixel), labels in rank order.

    ``stats`` is :func:`pixel_stats` of the explanation's segments at the
    original image's size.
    """
    rows = []
    for label in explanation.labels:
        for feature_rank, (feature, weight) in enumerate(explanation.local_exp[label], start=1):
            count, x0, y0, x1, y1 = stats[feature]
            rows.append({"image_id": image_id, "label": int(label), "feature": int(feature),
                         "feature_weight": float(weight), "feature_rank": feature_rank,
                         "pixel_count": count, "bbox_x0": x0, "bbox_y0": y0,
                         "bbox_x1": x1, "bbox_y1": y1})
    return rows


def pixel_stats(segments: NDArray, shape: tuple[int, int]) -> PixelStats:
    """Pixel count and half-open bbox (x0, y0, x1, y1) of each superpixel at ``shape``.

    The segments (h, w) map onto the original (H, W) by nearest neighbour
    (pixel centres), as the overlays draw them; computed on the small grid.

    Parameters
    ----------
    segments : ndarray of shape (h, w), int
        Superpixel ids 0..n-1 at the model's input size.
    shape : (H, W)
        The original image's size.
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
