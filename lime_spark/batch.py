"""One image record in, its rows of the three output tables out (no Spark here).

:func:`explain_record` reads an image through fsspec, explains it, computes
the metrics, writes the overlay PNGs and returns the ``images``,
``explanations`` and ``features`` rows of ``shared/DESIGN.md``.  Every
failure of one image becomes an error row: the caller never sees an
exception for a bad image, and an error row never leaves overlays behind.
The Spark partition function and a plain Python loop both call it.

A per-image time limit (``BatchSettings.image_timeout``) is cooperative: the
elapsed time is checked between the stages of one image and before every
model batch, and an image over its limit becomes an ``ImageTimeoutError``
row.  A running stage (one model batch, one decode) is never interrupted:
TensorFlow calls cannot be, and a thread left running would keep the
worker's CPU and memory busy while the next image starts.  See
``docs/reliability.md``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .config import check_run_id
from .explainer import ImageExplainer, ImageExplanation
from .exceptions import (
    ClassifierOutputError,
    ImageTimeoutError,
    InvalidImageError,
    LimeSparkError,
    SegmentationError,
)
from .images import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_PIXELS, decode_image, resize_image
from .metrics import deletion_insertion_auc
from .models import Classifier
from .render import encode_png, render_explanation, render_superpixels, thumbnail, upsample_segments
from .sampling import derive_seed
from .segmentation import segment_image
from .storage import (DEFAULT_MAX_BYTES, join_uri, read_bytes, redact, remove_tree, safe_key,
                      write_bytes)

__all__ = ["BatchSettings", "ImageRecord", "RecordResult", "explain_record", "image_id_for_path",
           "renamed_image_id", "check_classifier_outputs", "base_row", "error_row",
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

RENAME_DIGEST_HEX = 16
"""Hex digits of sha256(path) in a renamed duplicate id (64 bits)."""


def image_id_for_path(path: str) -> str:
    """The stable id of an image given only by its path: 16 hex digits of sha256."""
    return hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def renamed_image_id(image_id: str, path: str | None, occurrence: int = 1) -> str:
    """The id given to an input row whose ``image_id`` other rows share too.

    ``image_id@`` + the first 16 hex digits of sha256(path) (of ``""`` for a
    null path), and ``~k`` for the k-th (k >= 2) row with the same id *and*
    digest (ordered by path, then expected label), the tiebreaker that keeps
    two paths whose digests collide apart.  It depends only on the rows' own
    values, never on the input's order or partitioning, so each row's seed and
    results are stable.  The Spark job applies the same rule in SQL
    (``lime_spark.spark.job``).

    Examples
    --------
    >>> renamed_image_id("cat", "s3://b/cat.jpg")
    'cat@0d3c85df51709e96'
    >>> renamed_image_id("cat", "s3://b/cat.jpg", 2)
    'cat@0d3c85df51709e96~2'
    """
    digest = hashlib.sha256((path or "").encode("utf-8", "surrogatepass")).hexdigest()[:RENAME_DIGEST_HEX]
    return f"{image_id}@{digest}" + (f"~{occurrence}" if occurrence > 1 else "")


def check_classifier_outputs(classifier: Classifier) -> None:
    """Fail fast, before any image, when a model does not return probabilities.

    Runs the model eagerly on two images of its input size (mid grey and
    noise), so no compiled batch function is built on the driver.  A logits
    model can happen to stay within [0, 1] on these two images; it is then
    caught only by its rows' implausible probabilities.

    Raises
    ------
    ClassifierOutputError
        Non-finite outputs, or outputs outside [0, 1] (logits): the message
        names ``--output-activation``.
    """
    height, width = classifier.input_size
    rng = np.random.default_rng(0)
    probe = np.stack([np.full((height, width, 3), 128, np.float32),
                      rng.integers(0, 256, (height, width, 3)).astype(np.float32)])
    try:
        out = np.asarray(classifier._predict(classifier._prepare(probe)), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - Keras raises anything for a wrong input
        raise ClassifierOutputError(
            f"Expected the model {classifier.name!r} to accept images of "
            f"{height}x{width}x{classifier.input_channels}. Received: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if out.ndim != 2 or out.shape != (2, classifier.n_classes):
        raise ClassifierOutputError(
            f"Expected the model {classifier.name!r} to return probabilities of shape "
            f"(2, {classifier.n_classes}) for 2 images. Received: shape={out.shape}")
    if not np.all(np.isfinite(out)):
        raise ClassifierOutputError(
            f"Expected finite probabilities from the model {classifier.name!r}. Received: "
            "NaN or infinite outputs for a grey and a noise image")
    low, high = float(out.min()), float(out.max())
    if low < -1e-4 or high > 1 + 1e-4:
        raise ClassifierOutputError(
            f"Expected the model {classifier.name!r} to return probabilities in [0, 1]. "
            f"Received: outputs in [{low:.4g}, {high:.4g}] for a grey and a noise image "
            f"with output_activation={classifier.output_activation!r}; if the model returns "
            "logits, pass --output-activation softmax (one class per image) or sigmoid "
            "(independent classes)")


@dataclass(frozen=True)
class BatchSettings:
    """Per-run values the per-image work needs (taken from ``JobConfig``)."""

    run_id: str
    run_seed: int
    output_root: str
    top_labels: int = 5
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES
    read_retries: int = 3
    overlays: bool = True
    overlay_display: str = "outline"
    overlay_features: int = 5
    overlay_max_side: int = 1024
    metrics: bool = True
    image_timeout: float | None = None
    overlay_root: str | None = None
    """Where overlay files are written (a staging area); ``None``: ``output_root``.
    The tables always name them under ``output_root``, where they are published."""

    def __post_init__(self) -> None:
        check_run_id(self.run_id)      # it becomes part of every overlay path


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
    segmentation_fallback: bool = False


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


class _Deadline:
    """The per-image time limit: ``deadline(stage)`` raises once it has passed."""

    def __init__(self, timeout: float | None, started: float):
        self.timeout = timeout
        self.started = started

    def __call__(self, stage: str) -> None:
        if self.timeout is None:
            return
        elapsed = time.perf_counter() - self.started
        if elapsed > self.timeout:
            raise ImageTimeoutError(
                f"Expected the image to be explained within image_timeout={self.timeout:g}s. "
                f"Received: {elapsed:.1f}s elapsed before stage '{stage}'; raise "
                "--image-timeout, or lower --num-samples or --n-superpixels")


def base_row(classifier: Classifier, explainer: ImageExplainer) -> dict[str, Any]:
    """An ``images`` row with the run's model and sampling values, everything else null."""
    base = dict.fromkeys(IMAGE_COLUMNS)
    base.update(model_name=classifier.name, model_digest=classifier.digest,
                n_samples=explainer.config.num_samples)
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


def _overlay_folder(root: str, settings: BatchSettings, image_id: str) -> str:
    return join_uri(root, "overlays", f"run_id={settings.run_id}", safe_key(image_id))


def _write_overlays(settings: BatchSettings, folder: str,
                    original: NDArray[np.uint8], explanation: ImageExplanation) -> None:
    canvas = original
    if settings.overlay_max_side and max(original.shape[:2]) > settings.overlay_max_side:
        canvas = thumbnail(original, settings.overlay_max_side)
    segments = upsample_segments(explanation.segments, canvas.shape[:2])
    write_bytes(join_uri(folder, "segments.png"), render_superpixels(canvas, segments))
    # a canvas thinner than the model input (a 2 x 4000 strip) can miss superpixels
    visible = set(np.unique(segments).tolist())
    for label in explanation.labels:
        positive = sorted((fw for fw in explanation.local_exp[label]
                           if fw[1] > 0 and fw[0] in visible),
                          key=lambda fw: -fw[1])[:settings.overlay_features]
        png = render_explanation(canvas, segments, positive, display=settings.overlay_display,
                                 threshold=0.0)
        write_bytes(join_uri(folder, f"{label}.png"), png)


def explain_record(record: ImageRecord, *, classifier: Classifier, explainer: ImageExplainer,
                   settings: BatchSettings) -> RecordResult:
    """Explain one input row; never raises for a bad image.

    The stages run in this order: read (retried), decode, resize, explain
    (segment, predict, fit), metrics, table rows, overlays.  A time limit is
    checked before every stage and model batch up to the overlays.  Overlays
    are written last; an error row removes the image's overlay folder (also
    one an earlier attempt of the same task wrote), so it never has
    overlays.  When the segmenter cannot split the image (``SegmentationError``,
    e.g. SLIC merging a fine texture into one region) the image is explained
    on a regular grid of ``n_superpixels`` cells instead
    (``RecordResult.segmentation_fallback``).

    Returns
    -------
    RecordResult
        ``image`` always holds one row (``status`` ``ok`` or ``error``);
        explanations and features are empty for errors.
    """
    started = time.perf_counter()
    deadline = _Deadline(settings.image_timeout, started)
    image_id = record.image_id
    if image_id is None and record.path is not None:
        image_id = image_id_for_path(record.path)
    image_id = image_id if image_id is not None else ""
    base = base_row(classifier, explainer)
    retries = 0
    fallback = False
    overlay_folder = None

    def count_retry(exc: BaseException) -> None:
        nonlocal retries
        retries += 1
        logger.warning("retrying read of %s after %s", record.path, type(exc).__name__)

    try:
        if settings.overlays:
            overlay_folder = _overlay_folder(settings.overlay_root or settings.output_root,
                                             settings, image_id)
        if record.path is None or not str(record.path).strip():
            raise InvalidImageError(
                f"Expected an image path (URI) in the input row. Received: path={record.path!r}")
        seed = derive_seed(settings.run_seed, image_id)
        base["seed"] = seed
        data = read_bytes(record.path, retries=settings.read_retries, on_retry=count_retry,
                          max_bytes=settings.max_bytes)
        deadline("decode")
        original = decode_image(data, max_pixels=settings.max_pixels,
                                max_decode_bytes=settings.max_decode_bytes)
        del data
        height, width = original.shape[:2]
        base.update(width=width, height=height)
        deadline("resize")
        model_image = resize_image(original, classifier.input_size)
        checkpoint = deadline if settings.image_timeout else None
        try:
            explanation = explainer.explain(model_image, classifier,
                                            top_labels=settings.top_labels, random_state=seed,
                                            checkpoint=checkpoint)
        except SegmentationError as exc:
            # The segmenter cannot split this image (SLIC merges a fine texture into one
            # region): explain it on a regular grid of n_superpixels cells instead.
            grid = segment_image(model_image, method="grid",
                                 n_superpixels=explainer.config.n_superpixels)
            logger.warning("image %s: %s; explained on a %d-cell grid instead", image_id, exc,
                           int(grid.max()) + 1)
            explanation = explainer.explain(model_image, classifier,
                                            top_labels=settings.top_labels, random_state=seed,
                                            segments=grid, checkpoint=checkpoint)
            fallback = True
        top = explanation.top_labels[0]
        deletion = insertion = None
        if settings.metrics:
            deadline("metrics")
            deletion, insertion = deletion_insertion_auc(explanation, classifier, top)
        deadline("rows")
        stats = _pixel_stats(explanation.segments, (height, width))
        published = _overlay_folder(settings.output_root, settings, image_id)
        overlay_uris = ({label: join_uri(published, f"{label}.png") for label in explanation.labels}
                        if settings.overlays else {})
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
               "top_prob": float(explanation.predictions[top])}
        deadline("overlays")
        if settings.overlays:
            _write_overlays(settings, overlay_folder, original, explanation)
        row["seconds"] = time.perf_counter() - started
        return RecordResult(row, explanations, features, retries, fallback)
    except Exception as exc:  # noqa: BLE001 - one bad image must never fail the batch
        if overlay_folder is not None:
            # also what an earlier attempt of this task wrote for the image
            _remove_overlays(overlay_folder)
        level = logging.DEBUG if isinstance(exc, LimeSparkError) else logging.WARNING
        logger.log(level, "image %s failed: %s: %s", image_id, type(exc).__name__,
                   redact(str(exc)), exc_info=level == logging.WARNING)
        return RecordResult(error_row(record, image_id, exc, started, base), read_retries=retries)


def _remove_overlays(folder: str) -> None:
    """Best effort: an error row must not leave a half-written overlay folder."""
    try:
        remove_tree(folder)
    except Exception as exc:  # noqa: BLE001 - the error row says what went wrong first
        logger.warning("could not remove overlays %s: %s: %s", folder, type(exc).__name__, exc)
