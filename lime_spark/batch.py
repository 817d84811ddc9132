"""Image records in, their rows of the three output tables out (no Spark here).

:func:`explain_records` reads images through fsspec, explains them, computes
the metrics, writes the overlay PNGs and yields the ``images``,
``explanations`` and ``features`` rows of ``shared/DESIGN.md`` per image.
Every failure of one image becomes an error row: the caller never sees an
exception for a bad image, and an error row never leaves overlays behind.
The Spark partition function and a plain Python loop
(:func:`explain_record` for one image) both call it.

An image is a sequence of small stages under one error policy
(:func:`_error_result`): :func:`_prepare` (read, decode, resize, overlay
canvas, segment), the model's steps (:class:`_ImageTask`: explanation, then
the top label's deletion/insertion curves) and :meth:`_ImageTask.finish`
(table rows from :mod:`lime_spark.rows`, overlay pictures from
:mod:`lime_spark.overlays`, encoding, writing).  :mod:`lime_spark.pipeline`
runs them: the stages around the model in a small thread pool, the model's
batches shared between images; each stage's seconds go into the image's
``RecordResult.stages`` (:mod:`lime_spark.timings`).

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .adapters import as_design_predictor
from .anchors import AnchorConfig, AnchorExplainer, AnchorExplanation
from .explainer import ImageExplainer, ImageExplanation, Prepared
from .exceptions import (
    ClassifierOutputError,
    ConfigurationError,
    ImageTimeoutError,
    InvalidImageError,
    LimeSparkError,
    SegmentationError,
)
from .keys import content_sha256, explainer_digest, explainer_options
from .images import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_PIXELS, decode_image, resize_image
from .metrics import auc, deletion_insertion_steps
from .models import Classifier
from .options import Bool, Int, IntOrAuto, OneOf, Optional, Real, option, validate
from .overlays import (ANCHOR_PREFIX, encode_overlays, overlay_folder, overlay_pictures,
                       overlay_uris, remove_overlays)
from .pipeline import resolve_device_batch, resolve_in_flight, run_pipeline
from .render import thumbnail
from .rows import (anchor_rows, base_row, error_row, explanation_rows, feature_rows, ok_row,
                   pixel_stats)
from .run_ids import check_run_id
from .sampling import derive_seed
from .segmentation import segment_image
from .steps import Steps
from .storage import DEFAULT_MAX_BYTES, join_uri, read_bytes, redact, write_bytes
from .tables import EXPLANATION_COLUMNS, FEATURE_COLUMNS, IMAGE_COLUMNS  # re-exported
from .timings import StageClock

__all__ = ["BatchSettings", "ImageRecord", "RecordResult", "explain_record", "explain_records",
           "image_id_for_path", "explainer_key", "uses_anchors", "METHODS",
           "renamed_image_id", "check_classifier_outputs", "base_row", "error_row",
           "IMAGE_COLUMNS", "EXPLANATION_COLUMNS", "FEATURE_COLUMNS"]

logger = logging.getLogger(__name__)


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


def explainer_key(explainer: ImageExplainer, settings: BatchSettings, classifier: Any) -> str:
    """The run's ``explainer_digest`` (:mod:`lime_spark.keys`): every option that changes an
    image's rows or overlays, the seed rule and the classifier's facts outside its weights."""
    return explainer_digest(explainer_options(explainer.config, settings, classifier))


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


METHODS = ("lime", "anchors")
"""Explanation methods of the job (``--methods``): LIME always, anchors on request."""


def _method_list(methods: Any) -> Any:
    """``--methods`` as a list of names (a list given as such stays one)."""
    return [m.strip() for m in methods.split(",")] if isinstance(methods, str) else methods


def _methods(name: str, value: Any) -> Any:
    methods = _method_list(value)
    if (not isinstance(methods, (list, tuple)) or not methods
            or any(m not in METHODS for m in methods)):
        raise ConfigurationError(
            f"Expected {name} to be a comma-separated list of {', '.join(METHODS)}. "
            f"Received: {name}={value!r}")
    if "lime" not in methods:
        raise ConfigurationError(
            f"Expected {name} to include lime (the images and explanations tables come from "
            f"it; anchors are added to it). Received: {name}={value!r}")
    return value


def uses_anchors(methods: str | list[str]) -> bool:
    """Whether ``--methods`` asks for anchors."""
    return "anchors" in [str(m).strip() for m in _method_list(methods)]


def _anchor_option(name: str) -> Any:
    """A job option with :class:`~lime_spark.anchors.AnchorConfig` ``name``'s default, help
    and constraint (the job's name is ``anchor_<name>``)."""
    f = next(f for f in fields(AnchorConfig) if f.name == name)
    return option(f.default, "anchors: " + f.metadata["help"], f.metadata["constraint"])


@dataclass(frozen=True)
class BatchSettings:
    """The per-image settings: job options (declared here once) and the run's own values.

    ``run_id``, ``run_seed``, ``output_root`` and ``overlay_root`` are set by the
    job (or :func:`lime_spark.spark.explain_images`); the other fields are
    options of ``lime-spark explain``.
    """

    run_id: str = option("adhoc", "the run (names the overlay folder)", job=False)
    run_seed: int = option(0, "the run's seed", Int(), job=False)
    output_root: str = option("", "where the tables name the overlays", job=False)
    top_labels: int = option(5, "explain this many most probable labels per image", Int(1))
    max_pixels: int = option(
        DEFAULT_MAX_PIXELS, "decompression-bomb guard: largest width x height decoded", Int(1))
    max_bytes: int = option(
        DEFAULT_MAX_BYTES, "largest image file read, in bytes (checked from its size first)",
        Int(1))
    max_decode_bytes: int = option(
        DEFAULT_MAX_DECODE_BYTES,
        "largest memory one decode may need, in bytes (estimated from the header)", Int(1))
    read_retries: int = option(
        3, "retries with backoff of transient storage read errors per image", Int(0))
    image_timeout: float | None = option(
        None, "seconds one image may take before it becomes an error row (null: no limit)",
        Optional(Real(0, exclusive=True)))
    overlays: bool = option(
        True, "write overlay PNGs per explained label and a superpixel PNG per image", Bool())
    overlay_display: str = option(
        "outline", "overlay style: outline or block (R lime's display), or heatmap (every "
        "superpixel's weight on a diverging colour map)", OneOf(("outline", "block", "heatmap")))
    overlay_caption: bool = option(
        True, "a caption strip under each label overlay: label, probability, explanation fit "
        "and stability", Bool())
    overlay_features: int = option(5, "most positive superpixels drawn per label overlay", Int(1))
    overlay_max_side: int = option(
        1024, "longest side of overlay PNGs in pixels (0: the original size)", Int(0))
    metrics: bool = option(True, "compute deletion/insertion AUC for the top label", Bool())
    metric_labels: int = option(
        1, "with metrics: labels per image with deletion/insertion AUC, most probable first "
        "(their curves share the model's batches)", Int(1))
    device_batch_size: int | str = option(
        "auto", "rows per model call, packed from the pending samples of several images; "
        "auto: 32 with ONNX Runtime and 128 with TensorFlow on CPU, 1024 on a GPU",
        IntOrAuto(1))
    images_in_flight: int | str = option(
        "auto", "images whose samples may share model batches (1: one image per batch); "
        "auto: enough to fill two device batches, 2 to 32", IntOrAuto(1))
    prefetch: int = option(
        2, "images read, decoded and segmented ahead of the model, per task", Int(1))
    methods: str = option(
        "lime", "explanation methods, comma-separated: lime, or lime,anchors (also an anchor "
        "per image and label: the anchors table)", _methods)
    anchor_labels: int = option(
        1, "with anchors: labels per image with an anchor, most probable first", Int(1))
    anchor_threshold: float = _anchor_option("threshold")
    anchor_delta: float = _anchor_option("delta")
    anchor_tau: float = _anchor_option("tau")
    anchor_epsilon_stop: float = _anchor_option("epsilon_stop")
    anchor_beam_size: int = _anchor_option("beam_size")
    anchor_batch_size: int = _anchor_option("batch_size")
    anchor_coverage_samples: int = _anchor_option("coverage_samples")
    anchor_max_size: int | None = _anchor_option("max_anchor_size")
    overlay_root: str | None = option(
        None, "where overlay files are written (a staging area; null: output_root)", job=False)

    @property
    def anchors(self) -> bool:
        """Whether anchors are computed (``methods`` includes ``anchors``)."""
        return uses_anchors(self.methods)

    def anchor_explainer(self, explainer: ImageExplainer) -> AnchorExplainer:
        """The anchor search with these options and ``explainer``'s segmentation and fill."""
        cfg = explainer.config
        return AnchorExplainer(AnchorConfig(
            segmentation=cfg.segmentation, n_superpixels=cfg.n_superpixels,
            segmentation_params=cfg.segmentation_params, fill=cfg.fill,
            fill_params=cfg.fill_params, threshold=self.anchor_threshold,
            delta=self.anchor_delta, tau=self.anchor_tau, epsilon_stop=self.anchor_epsilon_stop,
            beam_size=self.anchor_beam_size, batch_size=self.anchor_batch_size,
            coverage_samples=self.anchor_coverage_samples,
            max_anchor_size=self.anchor_max_size))

    def __post_init__(self) -> None:
        validate(self)
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
    stages: dict[str, float] = field(default_factory=dict)
    """Seconds per stage (:data:`lime_spark.timings.STAGES`) the image took."""
    anchors: list[dict[str, Any]] = field(default_factory=list)
    """The image's ``anchors`` rows (``--methods lime,anchors``)."""


class _Deadline:
    """The per-image time limit: ``deadline(stage)`` raises once it has passed.

    It counts the image's own seconds (its stages, and its rows' share of the
    model batches: :class:`~lime_spark.timings.StageClock`), not the time it
    waits in the pipeline's queues behind other images.
    """

    def __init__(self, timeout: float | None, clock: StageClock):
        self.timeout = timeout
        self.clock = clock

    def __call__(self, stage: str) -> None:
        if self.timeout is None:
            return
        elapsed = self.clock.total()
        if elapsed > self.timeout:
            raise ImageTimeoutError(
                f"Expected the image to be explained within image_timeout={self.timeout:g}s. "
                f"Received: {elapsed:.1f}s elapsed before stage '{stage}'; raise "
                "--image-timeout, or lower --num-samples or --n-superpixels")


@dataclass
class _ImageState:
    """What the stages have learnt about one image so far; the error policy reads it.

    ``base`` is the ``images`` row's common part (seed, width and height are
    filled in as they become known, so an error row keeps them);
    ``overlay_folder`` is set once overlays may exist, so an error removes it.
    """

    record: ImageRecord
    image_id: str
    base: dict[str, Any]
    started: float
    retries: int = 0
    overlay_folder: str | None = None
    clock: StageClock = field(default_factory=StageClock)

    def count_retry(self, exc: BaseException) -> None:
        """``read_bytes``'s ``on_retry``: count and log one retried read."""
        self.retries += 1
        logger.warning("retrying read of %s after %s", self.record.path, type(exc).__name__)


_Rows = tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]
"""One image's ``images`` row, ``explanations`` rows and ``features`` rows."""

_Areas = dict[int, tuple[float, float]]
"""Label -> (deletion AUC, insertion AUC) of the labels with metrics."""


# The stages of one image, in order: each does one job on plain values.

def _image_id(record: ImageRecord) -> str:
    """The row's id: its own, else sha256 of its path, else ``""``."""
    if record.image_id is not None:
        return record.image_id
    return image_id_for_path(record.path) if record.path is not None else ""


def _require_path(record: ImageRecord) -> str:
    if record.path is None or not str(record.path).strip():
        raise InvalidImageError(
            f"Expected an image path (URI) in the input row. Received: path={record.path!r}")
    return record.path


def _read(path: str, settings: BatchSettings, *,
          on_retry: Callable[[BaseException], None]) -> bytes:
    """Read the image's bytes; transient errors are retried, each reported to ``on_retry``."""
    return read_bytes(path, retries=settings.read_retries, on_retry=on_retry,
                      max_bytes=settings.max_bytes)


def _decode(data: bytes, settings: BatchSettings) -> NDArray[np.uint8]:
    """Decode to RGB (H, W, 3) uint8 within the pixel and memory limits."""
    return decode_image(data, max_pixels=settings.max_pixels,
                        max_decode_bytes=settings.max_decode_bytes)


def _segment(model_image: NDArray, *, image_id: str, seed: int, classifier: Classifier,
             explainer: ImageExplainer) -> tuple[Prepared, bool]:
    """Superpixels and fill; on a grid of ``n_superpixels`` cells if the segmenter fails.

    Returns the prepared image and whether the grid fallback was taken.
    """
    try:
        return explainer.prepare(model_image, classifier, random_state=seed), False
    except SegmentationError as exc:
        # The segmenter cannot split this image (SLIC merges a fine texture into one
        # region): explain it on a regular grid of n_superpixels cells instead.
        grid = segment_image(model_image, method="grid",
                             n_superpixels=explainer.config.n_superpixels)
        logger.warning("image %s: %s; explained on a %d-cell grid instead", image_id, exc,
                       int(grid.max()) + 1)
        return explainer.prepare(model_image, classifier, segments=grid,
                                 random_state=seed), True


def _canvas(original: NDArray[np.uint8], settings: BatchSettings) -> NDArray[np.uint8]:
    """What the overlays are drawn on: the image shrunk to ``overlay_max_side``."""
    max_side = settings.overlay_max_side
    if max_side and max(original.shape[:2]) > max_side:
        return thumbnail(original, max_side)
    return original


def _rows(state: _ImageState, explanation: ImageExplanation, auc: _Areas, *,
          shape: tuple[int, int],
          classifier: Classifier, settings: BatchSettings) -> _Rows:
    """The image's rows of the three tables (``seconds`` not yet set).

    ``shape`` is the original image's (H, W): pixel counts and bboxes are
    given at that size.  Overlay URIs name the published folder.
    """
    published = overlay_folder(settings.output_root, settings.run_id, state.image_id)
    uris = overlay_uris(published, explanation.labels) if settings.overlays else {}
    stats = pixel_stats(explanation.segments, shape)
    return (ok_row(state.record, state.image_id, explanation, classifier, state.base),
            explanation_rows(state.image_id, explanation, classifier, auc=auc,
                             overlay_uris=uris),
            feature_rows(state.image_id, explanation, stats))


def _error_result(state: _ImageState, exc: Exception) -> RecordResult:
    """The one error policy: remove the image's overlays, log, return its error row.

    Expected failures (``LimeSparkError``: a bad file, a timeout) log at
    DEBUG; anything else at WARNING with its traceback.
    """
    if state.overlay_folder is not None:
        # also what an earlier attempt of this task wrote for the image
        remove_overlays(state.overlay_folder)
    level = logging.DEBUG if isinstance(exc, LimeSparkError) else logging.WARNING
    logger.log(level, "image %s failed: %s: %s", state.image_id, type(exc).__name__,
               redact(str(exc)), exc_info=exc if level == logging.WARNING else False)
    return RecordResult(error_row(state.record, state.image_id, exc, state.started, state.base),
                        read_retries=state.retries, stages=state.clock.as_dict())


class _ImageTask:
    """One prepared image in the pipeline (:class:`lime_spark.pipeline.ImageTask`).

    Its steps are the explanation, then the top label's deletion/insertion
    curves; :meth:`finish` builds the rows and writes the overlays (in the
    pipeline's pool); :meth:`fail` is the error policy.
    """

    def __init__(self, state: _ImageState, prepared: Prepared, *, canvas: NDArray | None,
                 shape: tuple[int, int], fallback: bool, deadline: _Deadline,
                 classifier: Classifier, explainer: ImageExplainer, settings: BatchSettings):
        self.state, self.prepared, self.canvas = state, prepared, canvas
        self.shape, self.fallback, self.check = shape, fallback, deadline
        self.classifier, self.explainer, self.settings = classifier, explainer, settings
        self.clock = state.clock
        self.stage = "fit"

    def steps(self) -> Steps[tuple[ImageExplanation, _Areas, list[AnchorExplanation]]]:
        settings = self.settings
        explanation = yield from self.explainer.steps(
            self.prepared, top_labels=settings.top_labels,
            label_names=self.classifier.label_names)
        areas: _Areas = {}
        if settings.metrics:
            self.check("metrics")
            self.stage = "metrics"
            labels = explanation.labels[:settings.metric_labels]
            curves = yield from deletion_insertion_steps(explanation, labels)
            areas = {label: (auc(deletion), auc(insertion))
                     for label, (deletion, insertion) in curves.items()}
        anchors: list[AnchorExplanation] = []
        if settings.anchors:
            self.stage = "anchors"
            search = settings.anchor_explainer(self.explainer)
            for label in explanation.top_labels[:settings.anchor_labels]:
                self.check("anchors")
                # its own seed per label: the anchor depends on neither LIME's draws nor
                # the other labels' searches
                anchors.append((yield from search.steps(
                    self.prepared, label=label, label_names=self.classifier.label_names,
                    random_state=derive_seed(self.state.base["seed"], f"anchors/{label}"),
                    checkpoint=self.check)))
        return explanation, areas, anchors

    def finish(self, value: tuple[ImageExplanation, _Areas, list[AnchorExplanation]]
               ) -> RecordResult:
        explanation, areas, anchors = value
        state, settings, clock = self.state, self.settings, self.clock
        try:
            self.check("rows")
            row, explanations, features = _rows(state, explanation, areas, shape=self.shape,
                                                classifier=self.classifier, settings=settings)
            published = overlay_folder(settings.output_root, settings.run_id, state.image_id)
            anchor_uris = ({a.label: join_uri(published, f"{ANCHOR_PREFIX}{a.label}.png")
                            for a in anchors} if settings.overlays else {})
            anchor_table = anchor_rows(state.image_id, anchors, self.classifier,
                                       overlay_uris=anchor_uris)
            self.check("overlays")
            if settings.overlays:
                with clock.time("render"):
                    pictures = overlay_pictures(
                        self.canvas, explanation, max_side=settings.overlay_max_side,
                        n_features=settings.overlay_features, display=settings.overlay_display,
                        caption=settings.overlay_caption, anchors=anchors)
                with clock.time("encode"):
                    encoded = encode_overlays(pictures)
                with clock.time("write"):
                    for name, data in encoded.items():
                        write_bytes(join_uri(state.overlay_folder, f"{name}.png"), data)
            row["seconds"] = time.perf_counter() - state.started
            return RecordResult(row, explanations, features, state.retries, self.fallback,
                                clock.as_dict(), anchor_table)
        except Exception as exc:  # noqa: BLE001 - one bad image must never fail the batch
            return _error_result(state, exc)

    def fail(self, exc: Exception) -> RecordResult:
        return _error_result(self.state, exc)


def _prepare(record: ImageRecord, *, classifier: Classifier, explainer: ImageExplainer,
             settings: BatchSettings, digest: str) -> _ImageTask | RecordResult:
    """Read, decode, resize, segment: an image ready for the model, or its error row."""
    started = time.perf_counter()
    state = _ImageState(record, _image_id(record), base_row(classifier, digest), started)
    clock = state.clock
    deadline = _Deadline(settings.image_timeout, clock)
    try:
        if settings.overlays:
            state.overlay_folder = overlay_folder(settings.overlay_root or settings.output_root,
                                                  settings.run_id, state.image_id)
        path = _require_path(record)
        with clock.time("read"):
            data = _read(path, settings, on_retry=state.count_retry)
            content = state.base["content_sha256"] = content_sha256(data)
        seed = state.base["seed"] = derive_seed(settings.run_seed, content)
        deadline("decode")
        with clock.time("decode"):
            original = _decode(data, settings)
            del data
            state.base.update(height=original.shape[0], width=original.shape[1])
            model_image = resize_image(original, classifier.input_size)
        canvas = None
        if settings.overlays:
            with clock.time("render"):
                canvas = _canvas(original, settings)
        shape = original.shape[:2]
        del original                      # only the canvas is kept for the overlays
        deadline("segment")
        with clock.time("segment"):
            prepared, fallback = _segment(model_image, image_id=state.image_id, seed=seed,
                                          classifier=classifier, explainer=explainer)
        return _ImageTask(state, prepared, canvas=canvas, shape=shape, fallback=fallback,
                          deadline=deadline, classifier=classifier, explainer=explainer,
                          settings=settings)
    except Exception as exc:  # noqa: BLE001 - one bad image must never fail the batch
        return _error_result(state, exc)


def explain_records(records: Iterable[ImageRecord], *, classifier: Classifier,
                    explainer: ImageExplainer, settings: BatchSettings, threads: int = 0,
                    gpu: bool = False) -> Iterator[RecordResult]:
    """Explain input rows through the pipeline (:mod:`lime_spark.pipeline`); never raises
    for a bad image.

    Per image the stages run in this order: read (retried), decode, resize,
    segment, then the model's batches (shared with other images, see
    ``device_batch_size`` and ``images_in_flight``) for the explanation and
    the deletion/insertion curves of the ``metric_labels`` most probable
    labels, then table rows and overlays.
    A time limit is checked before every stage and model batch up to the
    overlays.  Overlays are written last; an error row removes the image's
    overlay folder (also one an earlier attempt of the same task wrote), so it
    never has overlays.  When the segmenter cannot split the image
    (``SegmentationError``, e.g. SLIC merging a fine texture into one
    region) the image is explained on a regular grid of ``n_superpixels``
    cells instead (``RecordResult.segmentation_fallback``).

    Parameters
    ----------
    records : iterable of ImageRecord
        Read lazily from the calling thread.
    threads : int, default 0
        Threads for the stages around the model (0: all in the calling thread).
    gpu : bool, default False
        Whether the model runs on a GPU (chooses ``device_batch_size="auto"``).
        A :class:`Classifier`'s ``row_batch_size`` is set to the device batch.

    Yields
    ------
    RecordResult
        One per record, in the order they finish; ``image`` always holds one
        row (``status`` ``ok`` or ``error``); explanations and features are
        empty for errors.
    """
    predictor = as_design_predictor(classifier, batch_size=explainer.config.batch_size)
    runtime = getattr(classifier, "runtime", "python")
    device_batch = resolve_device_batch(settings.device_batch_size, runtime, gpu)
    if isinstance(classifier, Classifier):
        classifier.row_batch_size = device_batch        # recompiles only when it changes
    in_flight = resolve_in_flight(settings.images_in_flight, device_batch,
                                  explainer.config.batch_size)
    return run_pipeline(
        records, prepare=partial(_prepare, classifier=classifier, explainer=explainer,
                                 settings=settings,
                                 digest=explainer_key(explainer, settings, classifier)),
        is_task=lambda value: isinstance(value, _ImageTask), predictor=predictor,
        device_batch=device_batch, in_flight=in_flight, prefetch=settings.prefetch,
        threads=threads, n_classes=getattr(classifier, "n_classes", None),
        single_image=runtime == "onnx")


def explain_record(record: ImageRecord, *, classifier: Classifier, explainer: ImageExplainer,
                   settings: BatchSettings) -> RecordResult:
    """Explain one input row (:func:`explain_records` of one record); never raises for a
    bad image.

    Returns
    -------
    RecordResult
        ``image`` always holds one row (``status`` ``ok`` or ``error``);
        explanations and features are empty for errors.
    """
    (result,) = explain_records([record], classifier=classifier, explainer=explainer,
                                settings=settings)
    return result
