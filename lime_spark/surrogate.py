"""The local surrogate: kernel weights and a weighted ridge per label.

This is Python lime's ``LimeBase.explain_instance_with_data`` (same cosine
distance, exponential kernel, feature selection, ``Ridge(alpha=1)`` and
weighted R squared), rewritten as array-in, array-out solvers that fit every
label at once: the weighted, centred Gram matrix of the design is computed
once and shared by all labels and all feature-selection steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import linalg

from ._validation import check_int, check_one_of, check_real
from .exceptions import ClassifierOutputError

__all__ = [
    "FEATURE_SELECTIONS",
    "SurrogateFit",
    "cosine_distances",
    "kernel_weights",
    "fit_surrogate",
]

FEATURE_SELECTIONS = ("auto", "forward_selection", "highest_weights", "lasso_path", "none")


@dataclass(frozen=True)
class SurrogateFit:
    """One label's local linear model.

    Attributes
    ----------
    features : ndarray of shape (m,), int64
        Superpixels used, in selection order.
    coef : ndarray of shape (m,), float64
        Their coefficients, aligned with ``features``.
    intercept : float
    score : float
        Weighted R squared of the fit on the samples ("explanation fit").
    local_pred : ndarray of shape (1,), float64
        The surrogate's prediction for the original image (design row 0).
    """

    features: NDArray[np.int64]
    coef: NDArray[np.float64]
    intercept: float
    score: float
    local_pred: NDArray[np.float64]

    @property
    def local_exp(self) -> list[tuple[int, float]]:
        """``[(superpixel, weight), ...]`` sorted by decreasing ``|weight|`` (lime's order)."""
        return sorted(((int(f), float(c)) for f, c in zip(self.features, self.coef)),
                      key=lambda x: abs(x[1]), reverse=True)


def cosine_distances(design: NDArray) -> NDArray[np.float64]:
    """Cosine distance of every design row to row 0.

    Parameters
    ----------
    design : ndarray of shape (n_samples, n_superpixels)

    Returns
    -------
    ndarray of shape (n_samples,), float64 in [0, 2]
        An all-zero row has similarity 0 (distance 1), as in
        ``sklearn.metrics.pairwise_distances(..., metric="cosine")``.
    """
    x = np.asarray(design, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    ref = x[0]
    ref_norm = norms[0] if norms[0] > 0 else 1.0
    safe = np.where(norms > 0, norms, 1.0)
    similarity = (x @ ref) / (safe * ref_norm)
    return np.clip(1.0 - similarity, 0.0, 2.0)


def kernel_weights(distances: NDArray, kernel_width: float = 0.25) -> NDArray[np.float64]:
    """lime's exponential kernel, ``sqrt(exp(-d**2 / kernel_width**2))``.

    Parameters
    ----------
    distances : ndarray of shape (n_samples,)
    kernel_width : float, default 0.25

    Returns
    -------
    ndarray of shape (n_samples,), float64 in (0, 1]
    """
    kernel_width = check_real("kernel_width", kernel_width, minimum=0, exclusive_minimum=True)
    d = np.asarray(distances, dtype=np.float64)
    return np.sqrt(np.exp(-(d ** 2) / kernel_width ** 2))


class _WeightedProblem:
    """Weighted, centred design and targets shared by all labels."""

    def __init__(self, design: NDArray, targets: NDArray, sample_weight: NDArray):
        self.x = np.asarray(design, dtype=np.float64)
        self.y = np.asarray(targets, dtype=np.float64)
        self.w = np.asarray(sample_weight, dtype=np.float64)
        sw = self.w.sum()
        self.x_mean = self.w @ self.x / sw
        self.y_mean = self.w @ self.y / sw
        root = np.sqrt(self.w)[:, None]
        self.xw = (self.x - self.x_mean) * root
        self.yw = (self.y - self.y_mean) * root
        self.gram = self.xw.T @ self.xw                      # (K, K)
        self.xty = self.xw.T @ self.yw                       # (K, L)

    def solve(self, features: NDArray, labels: NDArray | slice, alpha: float) -> NDArray:
        """Ridge coefficients, shape (len(features), n_labels), for shared features."""
        g = self.gram[np.ix_(features, features)]
        b = self.xty[features][:, labels]
        if alpha:
            g = g + alpha * np.eye(len(features))
        try:
            return linalg.solve(g, b, assume_a="pos")
        except (linalg.LinAlgError, ValueError):
            return linalg.lstsq(g, b)[0]

    def finish(self, label: int, features: NDArray, coef: NDArray) -> SurrogateFit:
        intercept = float(self.y_mean[label] - self.x_mean[features] @ coef)
        y = self.y[:, label]
        pred = self.x[:, features] @ coef + intercept
        y_avg = np.average(y, weights=self.w)
        numerator = float(self.w @ (y - pred) ** 2)
        denominator = float(self.w @ (y - y_avg) ** 2)
        if denominator == 0.0:
            score = 1.0 if numerator == 0.0 else 0.0
        else:
            score = 1.0 - numerator / denominator
        local_pred = np.array([self.x[0, features] @ coef + intercept])
        return SurrogateFit(features=np.asarray(features, dtype=np.int64),
                            coef=np.asarray(coef, dtype=np.float64),
                            intercept=intercept, score=score, local_pred=local_pred)


def _forward_selection(problem: _WeightedProblem, label: int, num_features: int) -> NDArray:
    """lime's greedy forward selection with ``Ridge(alpha=0)``, from the Gram matrix."""
    n_features = problem.gram.shape[0]
    b_all = problem.xty[:, label]
    yy = float(problem.yw[:, label] @ problem.yw[:, label])
    used: list[int] = []
    for _ in range(min(num_features, n_features)):
        candidates = np.array([f for f in range(n_features) if f not in used])
        sets = np.column_stack([np.tile(used, (len(candidates), 1)).astype(int), candidates])
        g = problem.gram[sets[:, :, None], sets[:, None, :]]     # (C, s, s)
        b = b_all[sets]                                          # (C, s)
        try:
            coef = np.linalg.solve(g, b[..., None])[..., 0]
        except np.linalg.LinAlgError:
            coef = np.stack([np.linalg.lstsq(gi, bi, rcond=None)[0] for gi, bi in zip(g, b)])
        rss = yy - 2 * np.einsum("ij,ij->i", coef, b) + np.einsum("ij,ijk,ik->i", coef, g, coef)
        score = 1.0 - rss / yy if yy > 0 else np.where(rss <= 0, 1.0, 0.0)
        used.append(int(candidates[int(np.argmax(score))]))
    return np.array(used, dtype=np.int64)


def _lasso_path(problem: _WeightedProblem, label: int, num_features: int) -> NDArray:
    """lime's LARS-lasso path selection: the largest model with <= num_features."""
    from sklearn.linear_model import lars_path

    x, y, w = problem.x, problem.y[:, label], problem.w
    weighted_data = (x - np.average(x, axis=0, weights=w)) * np.sqrt(w[:, None])
    weighted_labels = (y - np.average(y, weights=w)) * np.sqrt(w)
    _, _, coefs = lars_path(weighted_data, weighted_labels, method="lasso", verbose=False)
    nonzero = np.arange(weighted_data.shape[1])
    for i in range(len(coefs.T) - 1, 0, -1):
        nonzero = coefs.T[i].nonzero()[0]
        if len(nonzero) <= num_features:
            break
    return np.asarray(nonzero, dtype=np.int64)


def fit_surrogate(design: NDArray, targets: NDArray, sample_weight: NDArray, *,
                  alpha: float = 1.0, feature_selection: str = "auto",
                  num_features: int | None = None) -> list[SurrogateFit]:
    """Fit lime's weighted ridge surrogate for several labels at once.

    Parameters
    ----------
    design : ndarray of shape (n_samples, n_superpixels), 0/1
        Row 0 is the original image.
    targets : ndarray of shape (n_samples, n_labels), float
        The classifier's probability of each explained label for each sample.
    sample_weight : ndarray of shape (n_samples,), float > 0
        The kernel weights of the samples (:func:`kernel_weights` of :func:`cosine_distances`).
    alpha : float, default 1.0
        Ridge penalty of the final fit.
    feature_selection : {"auto", "forward_selection", "highest_weights", "lasso_path", "none"}
        As in lime: ``auto`` is forward selection for ``num_features <= 6``
        and ``highest_weights`` otherwise.
    num_features : int or None
        Most superpixels per label; ``None`` means all of them.

    Returns
    -------
    list of SurrogateFit, one per column of ``targets``.
    """
    check_one_of("feature_selection", feature_selection, FEATURE_SELECTIONS)
    alpha = check_real("alpha", alpha, minimum=0)
    design = np.asarray(design)
    targets = np.asarray(targets, dtype=np.float64)
    n_samples, n_superpixels = design.shape
    if targets.ndim != 2 or targets.shape[0] != n_samples:
        raise ClassifierOutputError(
            f"Expected targets of shape ({n_samples}, n_labels). "
            f"Received: shape={targets.shape}"
        )
    if not np.all(np.isfinite(targets)):
        raise ClassifierOutputError("Expected finite probabilities. Received: NaN or inf values")
    if num_features is None:
        num_features = n_superpixels
    num_features = check_int("num_features", num_features, minimum=1)
    method = feature_selection
    if method == "auto":
        method = "forward_selection" if num_features <= 6 else "highest_weights"

    problem = _WeightedProblem(design, targets, sample_weight)
    n_labels = targets.shape[1]
    all_features = np.arange(n_superpixels)

    if method == "none" or (method == "highest_weights" and num_features >= n_superpixels):
        if method == "none":
            selected = [all_features] * n_labels
        else:
            coarse = problem.solve(all_features, slice(None), 0.01)
            # lime sorts by |coef * data[0]| (stable); data[0] is all ones.
            selected = [np.array(sorted(all_features, key=lambda f, c=coarse[:, j]:
                                        abs(c[f] * design[0, f]), reverse=True))
                        for j in range(n_labels)]
        coef_all = problem.solve(all_features, slice(None), alpha)
        return [problem.finish(j, selected[j], coef_all[selected[j], j])
                for j in range(n_labels)]

    fits = []
    if method == "highest_weights":
        coarse = problem.solve(all_features, slice(None), 0.01)
    for j in range(n_labels):
        if method == "highest_weights":
            order = sorted(all_features, key=lambda f: abs(coarse[f, j] * design[0, f]),
                           reverse=True)
            features = np.array(order[:num_features], dtype=np.int64)
        elif method == "forward_selection":
            features = _forward_selection(problem, j, num_features)
        else:
            features = _lasso_path(problem, j, num_features)
        coef = problem.solve(features, [j], alpha)[:, 0] if len(features) else np.zeros(0)
        fits.append(problem.finish(j, features, coef))
    return fits
