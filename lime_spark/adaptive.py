"""Sampling and predicting the design of one explanation, fixed or until it is stable.

With an integer ``n_samples`` the design has that many rows, all predicted.
With ``n_samples="auto"`` it has ``max_samples`` rows drawn up front (so the
rows, and the result, depend only on the seed), predicted as a prefix: first
``min_samples`` rows, then one batch at a time; after each block the ridge
is refit from running sums and the explanation stops as soon as, for every
explained label, the estimated probability that its reported top-k
superpixels are the true top-k (:mod:`lime_spark.stability`) is at least
``1 - delta``.  Whatever the mode, that probability is reported per label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .sampling import sample_design
from .stability import RunningRidge, coefficient_covariance, top_k_stability
from .steps import ModelRequest, Steps
from .surrogate import cosine_distances, kernel_weights

if TYPE_CHECKING:
    from .explainer import ExplainerConfig

__all__ = ["Sampled", "sample_steps", "stopping_points", "STABILITY_TOP_K"]

STABILITY_TOP_K = 5
"""k of the stability rule when ``num_features`` leaves it open."""

LabelChooser = Callable[[NDArray], tuple[list[int], list[int]]]
"""``probabilities of the original image -> (top labels, explained labels)``."""


@dataclass(frozen=True)
class Sampled:
    """The rows one explanation used and what the model said of them."""

    design: NDArray          # (n, K) 0/1, the rows used
    probs: NDArray           # (n, n_classes)
    kernel: NDArray          # (n,) lime's kernel weights
    top: list[int]
    explained: list[int]
    stability: dict[int, float]


def stopping_points(config: ExplainerConfig) -> list[int]:
    """Numbers of rows after which the rule is checked; the last is the budget."""
    if config.n_samples != "auto":
        return [config.n_samples]
    total = config.max_samples
    points = [min(config.min_samples, total)]
    while points[-1] < total:
        points.append(min(points[-1] + config.batch_size, total))
    return points


def _stability(ridge: RunningRidge, design: NDArray, targets: NDArray, kernel: NDArray,
               explained: list[int], config: ExplainerConfig) -> dict[int, float]:
    coef = ridge.coefficients(config.alpha)
    cov = coefficient_covariance(ridge, design, targets, kernel, coef, config.alpha)
    k = min(config.num_features or STABILITY_TOP_K, design.shape[1])
    return {label: top_k_stability(coef[:, j], cov[j], k, tie_tolerance=config.tie_tolerance)
            for j, label in enumerate(explained)}


def sample_steps(image: NDArray, fill_image: NDArray, segments: NDArray, *,
                 config: ExplainerConfig, rng: np.random.Generator,
                 choose_labels: LabelChooser) -> Steps[Sampled]:
    """Draw the design and ask for its probabilities: all of it, or block by block until stable.

    A step generator (:mod:`lime_spark.steps`): it yields one
    :class:`~lime_spark.steps.ModelRequest` per block of rows (``n_samples``
    rows at once for a fixed budget) and returns the :class:`Sampled` rows.

    Parameters
    ----------
    image, fill_image : ndarray of shape (H, W, 3)
    segments : ndarray of shape (H, W), ids 0..K-1
    config : ExplainerConfig
    rng : Generator
        Draws the design.
    choose_labels : callable
        Picks the labels to explain from the original image's probabilities
        (row 0, in the first block).
    """
    n_superpixels = int(segments.max()) + 1
    points = stopping_points(config)
    design = sample_design(points[-1], n_superpixels, random_state=rng,
                           sampling=config.sampling)
    kernel = kernel_weights(cosine_distances(design), config.kernel_width)
    blocks: list[NDArray] = []
    ridge: RunningRidge | None = None
    top: list[int] = []
    explained: list[int] = []
    stability: dict[int, float] = {}
    done = 0
    for stop in points:
        block = yield ModelRequest(image, fill_image, segments, design[done:stop])
        blocks.append(block)
        if ridge is None:
            top, explained = choose_labels(block[0])
            ridge = RunningRidge(n_superpixels, len(explained))
        ridge.add(design[done:stop], block[:, explained], kernel[done:stop])
        done = stop
        if config.n_samples == "auto" or stop == points[-1]:
            probs = np.concatenate(blocks)
            stability = _stability(ridge, design[:done], probs[:, explained],
                                   kernel[:done], explained, config)
            if min(stability.values()) >= 1 - config.delta:
                break
    return Sampled(design=design[:done], probs=np.concatenate(blocks), kernel=kernel[:done],
                   top=top, explained=explained, stability=stability)
