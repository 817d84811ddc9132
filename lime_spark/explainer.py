"""``ImageExplainer``: LIME for image classifiers, as separate, testable steps.

segment -> sample design -> fill -> predict perturbed batches -> kernel
weights -> weighted ridge per label.  With ``fill="mean"`` this is Python
lime's ``LimeImageExplainer`` algorithm, and the result carries lime's field
names (``segments``, ``top_labels``, ``local_exp``, ``intercept``, ``score``,
``local_pred``) and ``get_image_and_mask``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .adapters import Checkpoint, as_design_predictor, check_image, predict_design
from .exceptions import ConfigurationError
from .models import Classifier, ClassifierFn
from .adaptive import sample_steps
from .options import (Int, IntOrAuto, MappingOf, OneOf, Optional, Real, configured, option,
                      validate)
from .perturb import FillSpec, make_fill
from .sampling import SAMPLINGS, as_generator
from .segmentation import SEGMENTERS, check_segments, segment_image
from .steps import Steps, run_steps
from .surrogate import FEATURE_SELECTIONS, fit_surrogate

__all__ = [
    "DEFAULT_FILL",
    "ExplainerConfig",
    "ImageExplainer",
    "ImageExplanation",
    "Prepared",
    "Checkpoint",
    "predict_design",
]

logger = logging.getLogger(__name__)

DEFAULT_FILL: FillSpec = "median"
"""The default fill, chosen from the pointing-game measurements in ``docs/benchmarks.md``."""


@dataclass(frozen=True)
class ExplainerConfig:
    """The LIME settings of :class:`ImageExplainer`, each declared once with its constraint.

    The job's options of the same names are these fields
    (:class:`lime_spark.config.JobConfig` is composed of them).
    """

    segmentation: str | Callable = option(
        "slic", "superpixels: slic, quickshift, felzenszwalb or grid",
        OneOf(SEGMENTERS, or_callable=True))
    n_superpixels: int = option(50, "target number of superpixels (R lime's default)", Int(2))
    segmentation_params: dict = option(
        {}, "extra segmenter parameters, e.g. {compactness: 20}", MappingOf())
    n_samples: int | str = option(
        "auto", "perturbed images per explanation, the original included; auto: from "
        "min_samples, a batch at a time, until the top superpixels are stable (at most "
        "max_samples)", IntOrAuto(2), aliases=("num_samples",))
    max_samples: int = option(1000, "n_samples=auto: most perturbed images", Int(2))
    min_samples: int = option(256, "n_samples=auto: fewest perturbed images", Int(2))
    sampling: str = option(
        "paired", "design rows: paired (each mask with its complement) or independent "
        "(Python lime's)", OneOf(SAMPLINGS))
    delta: float = option(
        0.05, "n_samples=auto stops when every label's top superpixels are the true ones "
        "with probability >= 1 - delta", Real(0, exclusive=True))
    tie_tolerance: float = option(
        0.5, "superpixels whose weights differ by less than this share of the largest "
        "|weight| may trade places in the stability rule (chosen by measurement, "
        "docs/benchmarks.md)", Real(0))
    batch_size: int = option(
        128, "images per model call (fixed shape, last batch padded)", Int(1))
    fill: Any = option(
        DEFAULT_FILL, "hidden superpixels: median, mean, blur, a colour name or [r, g, b]")
    fill_params: dict = option(
        {}, "fill parameters, e.g. {sigma: 8} for blur", MappingOf())
    kernel_width: float = option(
        0.25, "width of lime's exponential kernel on cosine distance", Real(0, exclusive=True))
    feature_selection: str = option(
        "auto", "auto, forward_selection, highest_weights, lasso_path, none",
        OneOf(FEATURE_SELECTIONS))
    num_features: int | None = option(
        None, "most superpixels per label in the surrogate (null: all)", Optional(Int(1)))
    alpha: float = option(1.0, "ridge penalty of the surrogate", Real(0))

    def __post_init__(self) -> None:
        validate(self)
        if self.min_samples > self.max_samples:
            raise ConfigurationError(
                f"Expected min_samples <= max_samples. Received: min_samples="
                f"{self.min_samples}, max_samples={self.max_samples}")
        if self.delta >= 1:
            raise ConfigurationError(f"Expected delta < 1. Received: delta={self.delta!r}")


@dataclass(frozen=True, eq=False)
class ImageExplanation:
    """The explanation of one image, with Python lime's field names.

    Attributes
    ----------
    image : ndarray of shape (H, W, 3)
        The image as explained (at the classifier's input size).
    segments : ndarray of shape (H, W), int32, ids 0..K-1
    top_labels : list of int
        Labels by decreasing probability on the original image.
    local_exp : dict label -> list of (superpixel, weight)
        Sorted by decreasing ``|weight|``.
    intercept, score : dict label -> float
        The surrogate's intercept and weighted R squared ("explanation fit").
    local_pred : dict label -> ndarray of shape (1,)
        The surrogate's prediction on the original image.
    predictions : ndarray of shape (n_classes,)
        The classifier's probabilities for the original image.
    fill_image : ndarray of shape (H, W, 3)
        What hidden superpixels were replaced with.
    label_names : list of str or None
    seed : int or None
    seconds : float
    n_samples : int
        Perturbed images used, the original included (with ``n_samples="auto"``
        at most ``max_samples``).
    stability : dict label -> float
        Estimated probability that the label's reported top superpixels
        (``num_features`` or 5, by weight) are the true ones
        (:mod:`lime_spark.stability`).
    """

    image: NDArray
    segments: NDArray[np.int32]
    top_labels: list[int]
    local_exp: dict[int, list[tuple[int, float]]]
    intercept: dict[int, float]
    score: dict[int, float]
    local_pred: dict[int, NDArray[np.float64]]
    predictions: NDArray[np.float64]
    fill_image: NDArray
    label_names: list[str] | None = None
    seed: int | None = None
    seconds: float = 0.0
    n_samples: int = 0
    stability: dict[int, float] = field(default_factory=dict)

    @property
    def n_superpixels(self) -> int:
        """Number of superpixels K."""
        return int(self.segments.max()) + 1

    @property
    def labels(self) -> list[int]:
        """The explained labels, in the order they were explained."""
        return list(self.local_exp)

    def label_name(self, label: int) -> str:
        """Name of ``label`` (its number as text without names)."""
        if self.label_names is None:
            return str(int(label))
        return self.label_names[int(label)]

    def as_list(self, label: int) -> list[tuple[int, float]]:
        """``local_exp[label]``: (superpixel, weight) pairs by decreasing |weight|."""
        return self.local_exp[label]

    def coefficients(self, label: int) -> NDArray[np.float64]:
        """The surrogate's per-superpixel coefficients for ``label``, dense, shape (K,)."""
        out = np.zeros(self.n_superpixels)
        for feature, weight in self.local_exp[label]:
            out[feature] = weight
        return out

    def get_image_and_mask(self, label: int, positive_only: bool = True,
                           negative_only: bool = False, num_features: int = 5,
                           min_weight: float = 0.0, hide_rest: bool = False
                           ) -> tuple[NDArray, NDArray]:
        """Python lime's ``get_image_and_mask``, same arguments and results.

        Returns
        -------
        image : ndarray of shape (H, W, 3)
        mask : ndarray of shape (H, W), segments' dtype; 1 for shown positive
            superpixels, -1 for negative ones (when neither ``positive_only``
            nor ``negative_only``), 0 elsewhere.
        """
        if label not in self.local_exp:
            raise KeyError(f"Label not in explanation: {label!r}; explained labels are "
                           f"{self.labels}")
        if positive_only and negative_only:
            raise ValueError("Positive_only and negative_only cannot be true at the same time.")
        segments, image, exp = self.segments, self.image, self.local_exp[label]
        mask = np.zeros(segments.shape, segments.dtype)
        temp = np.zeros(image.shape) if hide_rest else image.copy()
        if positive_only or negative_only:
            if positive_only:
                fs = [f for f, w in exp if w > 0 and w > min_weight][:num_features]
            else:
                fs = [f for f, w in exp if w < 0 and abs(w) > min_weight][:num_features]
            for f in fs:
                temp[segments == f] = image[segments == f].copy()
                mask[segments == f] = 1
            return temp, mask
        for f, w in exp[:num_features]:
            if np.abs(w) < min_weight:
                continue
            c = 0 if w < 0 else 1
            mask[segments == f] = -1 if w < 0 else 1
            temp[segments == f] = image[segments == f].copy()
            temp[segments == f, c] = np.max(image)
        return temp, mask


@dataclass(frozen=True, eq=False)
class Prepared:
    """An image ready for the model: what :meth:`ImageExplainer.prepare` returns.

    Attributes
    ----------
    image : ndarray of shape (H, W, 3)
        At the classifier's input size.
    segments : ndarray of shape (H, W), int32, ids 0..K-1
    fill_image : ndarray of shape (H, W, 3)
    rng : Generator
        The seed's generator after the segmenter's draw: it draws the design.
    seed : int or None
    """

    image: NDArray
    segments: NDArray[np.int32]
    fill_image: NDArray
    rng: np.random.Generator
    seed: int | None


class ImageExplainer:
    """Explain image classifiers with LIME.

    Parameters
    ----------
    config : ExplainerConfig, optional
        All settings at once (the job builds one from its options); the
        keyword arguments below override its fields.
    segmentation : {"slic", "quickshift", "felzenszwalb", "grid"} or callable
        Superpixel algorithm; ``slic`` with R lime's 50 superpixels and
        compactness 20 by default.
    n_superpixels : int, default 50
    segmentation_params : dict, optional
        Extra parameters of the segmenter (unknown names are an error).
    n_samples : int or "auto", default "auto"
        Perturbed images per explanation, the original included
        (``num_samples``, lime's name, is accepted too).  ``auto`` predicts
        ``min_samples`` rows, then a batch at a time, and stops when every
        explained label's top superpixels are stable
        (:mod:`lime_spark.adaptive`), after ``max_samples`` at the most.
    max_samples, min_samples : int, default 1000 and 256
    sampling : {"paired", "independent"}, default "paired"
        ``paired`` uses every mask together with its complement;
        ``independent`` is Python lime's design.
    delta : float, default 0.05
        ``auto`` stops once the estimated probability that the reported top
        superpixels are the true ones is at least ``1 - delta``.
    tie_tolerance : float, default 0.5
    batch_size : int, default 128
        Images per classifier call.
    fill : str, number, (r, g, b) or callable, default ``"median"``
        What replaces a hidden superpixel: ``"mean"`` (Python lime's
        default), ``"median"`` (the image's median colour), ``"blur"``, a
        colour name (R lime hides with ``"grey"``) or RGB triple.  See
        ``docs/benchmarks.md`` for the measurements behind the default.
    fill_params : dict, optional
    kernel_width : float, default 0.25
    feature_selection : {"auto", "forward_selection", "highest_weights", "lasso_path", "none"}
    num_features : int or None
        Most superpixels per label; None keeps all (lime's default 100000).
    alpha : float, default 1.0
        Ridge penalty.
    random_state : int or None
        Seed of the design matrix and of stochastic segmenters.

    Examples
    --------
    >>> explainer = ImageExplainer(random_state=0)          # doctest: +SKIP
    >>> exp = explainer.explain(image, classifier)          # doctest: +SKIP
    >>> exp.local_exp[exp.top_labels[0]][:3]                # doctest: +SKIP
    """

    def __init__(self, config: ExplainerConfig | None = None, *,
                 random_state: int | None = None, **overrides: Any):
        self.config = configured(ExplainerConfig, config, overrides, what="ImageExplainer")
        self.random_state = random_state

    def segment(self, image: NDArray, *, random_state: int | None = None) -> NDArray[np.int32]:
        """The superpixels this explainer would use for ``image`` (lime's segmentation_fn)."""
        cfg = self.config
        return segment_image(image, method=cfg.segmentation,
                             n_superpixels=cfg.n_superpixels,
                             random_state=random_state, **cfg.segmentation_params)

    def explain(self, image: NDArray, classifier: Classifier | ClassifierFn, *,
                top_labels: int | None = 5, labels: Sequence[int] | None = None,
                segments: NDArray | None = None,
                random_state: int | None = None,
                checkpoint: Checkpoint | None = None) -> ImageExplanation:
        """Explain the classifier's prediction for one image.

        Parameters
        ----------
        image : ndarray of shape (H, W, 3), uint8 or float in 0..255
            With a :class:`Classifier` of another input size the image is
            resized to it first.
        classifier : Classifier or callable
            A callable maps (N, H, W, 3) images to (N, n_classes) probabilities.
        top_labels : int or None, default 5
            Explain the labels with the highest probabilities.
        labels : sequence of int, optional
            Explain exactly these labels instead (``top_labels`` still ranks).
        segments : ndarray of shape (H, W), optional
            A precomputed segmentation.
        random_state : int, optional
            Overrides the explainer's seed for this call.
        checkpoint : callable, optional
            Called with a step name (``"segment"``, ``"predict batch i/n"``,
            ``"fit"``) before each step and model batch; an exception raised
            by it ends the explanation (the batch job's per-image time limit).

        Returns
        -------
        ImageExplanation
        """
        started = time.perf_counter()
        predictor = as_design_predictor(classifier, batch_size=self.config.batch_size)
        prepared = self.prepare(image, predictor, segments=segments, random_state=random_state,
                                checkpoint=checkpoint)
        steps = self.steps(prepared, top_labels=top_labels, labels=labels,
                           label_names=getattr(classifier, "label_names", None),
                           checkpoint=checkpoint)
        explanation = run_steps(steps, predictor, batch_size=self.config.batch_size,
                                checkpoint=checkpoint)
        return replace(explanation, seconds=time.perf_counter() - started)

    def prepare(self, image: NDArray, classifier: Any, *, segments: NDArray | None = None,
                random_state: int | None = None,
                checkpoint: Checkpoint | None = None) -> Prepared:
        """Everything before the model: the image checked and resized, superpixels, fill.

        ``classifier`` is only looked at for its input size (a
        :class:`Classifier` gets the image resized to it).  The seed's generator
        is drawn from for the segmenter first and then handed on for the design.
        """
        cfg = self.config
        image = check_image(image)
        if isinstance(classifier, Classifier) and image.shape[:2] != classifier.input_size:
            from .images import resize_image

            image = resize_image(np.clip(np.rint(image), 0, 255).astype(np.uint8),
                                 classifier.input_size)
        seed = self.random_state if random_state is None else random_state
        rng = as_generator(seed)
        if checkpoint is not None:
            checkpoint("segment")
        if segments is None:
            seg_seed = int(rng.integers(0, 2**31 - 1))
            segments = segment_image(image, method=cfg.segmentation,
                                     n_superpixels=cfg.n_superpixels,
                                     random_state=seg_seed, **cfg.segmentation_params)
        else:
            segments = check_segments(segments, image.shape)
        fill_image = make_fill(image, segments, cfg.fill, **cfg.fill_params)
        return Prepared(image=image, segments=segments, fill_image=fill_image, rng=rng,
                        seed=seed if isinstance(seed, int) else None)

    def steps(self, prepared: Prepared, *, top_labels: int | None = 5,
              labels: Sequence[int] | None = None, label_names: Sequence[str] | None = None,
              checkpoint: Checkpoint | None = None) -> Steps[ImageExplanation]:
        """The explanation of a prepared image as a step generator (:mod:`lime_spark.steps`).

        It yields the design blocks to predict and returns the
        :class:`ImageExplanation` (``seconds`` counts from the first step).
        """
        started = time.perf_counter()
        cfg = self.config

        def choose_labels(original: NDArray) -> tuple[list[int], list[int]]:
            return _explained_labels(original, top_labels, labels)

        run = yield from sample_steps(prepared.image, prepared.fill_image, prepared.segments,
                                      config=cfg, rng=prepared.rng, choose_labels=choose_labels)
        if checkpoint is not None:
            checkpoint("fit")
        fits = fit_surrogate(run.design, run.probs[:, run.explained], run.kernel,
                             alpha=cfg.alpha, feature_selection=cfg.feature_selection,
                             num_features=cfg.num_features)
        explained, top, probs = run.explained, run.top, run.probs
        return ImageExplanation(
            image=prepared.image, segments=prepared.segments, top_labels=top,
            local_exp={lab: fit.local_exp for lab, fit in zip(explained, fits)},
            intercept={lab: fit.intercept for lab, fit in zip(explained, fits)},
            score={lab: fit.score for lab, fit in zip(explained, fits)},
            local_pred={lab: fit.local_pred for lab, fit in zip(explained, fits)},
            predictions=np.asarray(probs[0], dtype=np.float64),
            fill_image=prepared.fill_image,
            label_names=list(label_names) if label_names is not None else None,
            seed=prepared.seed, seconds=time.perf_counter() - started,
            n_samples=int(run.design.shape[0]), stability=run.stability)


def _explained_labels(original: NDArray, top_labels: int | None,
                      labels: Sequence[int] | None) -> tuple[list[int], list[int]]:
    """(top labels, labels to explain) from the original image's probabilities."""
    n_classes = original.shape[0]
    top = [int(x) for x in np.argsort(original)[-top_labels:][::-1]] if top_labels else []
    if labels is not None:
        explained = [int(x) for x in labels]
        if any(not 0 <= x < n_classes for x in explained):
            raise ConfigurationError(
                f"Expected labels in 0..{n_classes - 1} (the classifier's classes). "
                f"Received: labels={list(labels)}")
        return top, explained
    if not top:
        raise ConfigurationError(
            "Expected top_labels >= 1 or a list of labels. "
            f"Received: top_labels={top_labels!r}, labels=None")
    return top, top
