"""How settled an explanation is: running ridge sums, the coefficients' covariance, top-k stability.

``n_samples="auto"`` (:class:`~lime_spark.explainer.ImageExplainer`) predicts
the design in blocks and, after each block, asks for every explained label:
how probable is it that the reported top-k superpixels are the true top-k?
The pieces:

* :class:`RunningRidge` keeps the kernel-weighted sums of the design and the
  targets (``sum w``, ``sum w x``, ``sum w y``, ``sum w x x^T``, ``sum w x
  y^T``), so a refit after a block is a K x K solve from the sums, not a new
  pass over all rows; it equals a fresh fit of the same rows
  (:class:`lime_spark.surrogate` centres by the weighted means the same way).
* :func:`coefficient_covariance`: the heteroskedasticity-robust sandwich
  estimator (HC1) of the weighted ridge coefficients,
  ``A^-1 (sum_i w_i^2 r_i^2 x_i x_i^T) A^-1 * n / (n - K - 1)`` with
  ``A = X^T W X + alpha I`` on centred rows.  Chosen over independent chunks
  because it uses every row at every check (chunks of 128 rows for 50
  superpixels would each be a barely determined fit) and needs no i.i.d.
  chunk structure, which paired rows would break; the residuals of LIME's
  surrogate are far from homoskedastic (the kernel weights and the model's
  non-linearity), hence the robust form.
* :func:`top_k_stability`: draws coefficient vectors from the normal
  approximation ``N(coef, cov)`` and counts the share in which the reported
  top-k (by weight, descending: the superpixels that most support the label)
  is still the top-k, up to a tie tolerance: a draw agrees when every
  reported superpixel is at least the best unreported one minus
  ``tie_tolerance * max |coef|``, so two superpixels of nearly equal weight
  swapping places do not count as a different answer.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray
from scipy import linalg

__all__ = ["RunningRidge", "coefficient_covariance", "top_k_stability", "top_k",
           "DEFAULT_DRAWS"]

DEFAULT_DRAWS = 1000
"""Monte Carlo draws per stability estimate (its standard error is at most 0.016)."""


class RunningRidge:
    """Kernel-weighted sums of design rows and targets, added block by block.

    Parameters
    ----------
    n_features : int
        Superpixels K.
    n_targets : int
        Explained labels L.
    """

    def __init__(self, n_features: int, n_targets: int):
        self.n = 0
        self.sw = 0.0
        self.sx = np.zeros(n_features)
        self.sy = np.zeros(n_targets)
        self.sxx = np.zeros((n_features, n_features))
        self.sxy = np.zeros((n_features, n_targets))

    def add(self, design: NDArray, targets: NDArray, sample_weight: NDArray) -> None:
        """Add rows: design (m, K) 0/1, targets (m, L), their kernel weights (m,)."""
        x = np.asarray(design, dtype=np.float64)
        y = np.asarray(targets, dtype=np.float64)
        w = np.asarray(sample_weight, dtype=np.float64)
        xw = x * w[:, None]
        self.n += x.shape[0]
        self.sw += float(w.sum())
        self.sx += xw.sum(axis=0)
        self.sy += w @ y
        self.sxx += xw.T @ x
        self.sxy += xw.T @ y

    def means(self) -> tuple[NDArray, NDArray]:
        """The weighted means of the design columns (K,) and of the targets (L,)."""
        return self.sx / self.sw, self.sy / self.sw

    def gram(self, alpha: float = 0.0) -> NDArray:
        """``X_c^T W X_c + alpha I`` of the centred rows, (K, K)."""
        g = self.sxx - np.outer(self.sx, self.sx) / self.sw
        return g + alpha * np.eye(len(self.sx)) if alpha else g

    def coefficients(self, alpha: float) -> NDArray:
        """Ridge coefficients on every superpixel, one column per target: (K, L)."""
        b = self.sxy - np.outer(self.sx, self.sy) / self.sw
        try:
            return linalg.solve(self.gram(alpha), b, assume_a="pos")
        except (linalg.LinAlgError, ValueError):
            return linalg.lstsq(self.gram(alpha), b)[0]


def coefficient_covariance(ridge: RunningRidge, design: NDArray, targets: NDArray,
                           sample_weight: NDArray, coef: NDArray, alpha: float) -> NDArray:
    """HC1 sandwich covariance of the ridge coefficients, one (K, K) block per target.

    Parameters
    ----------
    ridge : RunningRidge
        Holding exactly the rows given here.
    design, targets, sample_weight : the rows (n, K), (n, L), (n,)
    coef : ndarray of shape (K, L)
        :meth:`RunningRidge.coefficients` of those rows.
    alpha : float

    Returns
    -------
    ndarray of shape (L, K, K)
    """
    x_mean, y_mean = ridge.means()
    xc = np.asarray(design, dtype=np.float64) - x_mean
    residuals = (np.asarray(targets, dtype=np.float64) - y_mean) - xc @ coef      # (n, L)
    w = np.asarray(sample_weight, dtype=np.float64)
    n, k = xc.shape
    try:
        a_inv = linalg.inv(ridge.gram(alpha))
    except (linalg.LinAlgError, ValueError):
        a_inv = linalg.pinv(ridge.gram(alpha))
    scale = n / max(n - k - 1, 1)
    out = np.empty((coef.shape[1], k, k))
    for j in range(coef.shape[1]):
        g = xc * (w * residuals[:, j])[:, None]                                 # (n, K)
        out[j] = scale * (a_inv @ (g.T @ g) @ a_inv)
    return out


@functools.lru_cache(maxsize=64)
def _seeded_normals(seed: int, draws: int, n: int) -> NDArray:
    out = np.random.default_rng(seed).standard_normal((draws, n))
    out.flags.writeable = False
    return out


def _normals(random_state: int | np.random.Generator, draws: int, n: int) -> NDArray:
    """``default_rng(random_state).standard_normal((draws, n))``, cached for an int seed.

    Every check of every image draws the same normals (the seed is fixed), so
    they are drawn once per (seed, draws, K): a third of a check's time.
    """
    if isinstance(random_state, (int, np.integer)):
        return _seeded_normals(int(random_state), draws, n)
    return np.random.default_rng(random_state).standard_normal((draws, n))


def top_k(coef: NDArray, k: int) -> NDArray:
    """The k superpixels of largest weight (descending), ties broken by the lower id."""
    order = np.lexsort((np.arange(len(coef)), -np.asarray(coef)))
    return order[:k]


def top_k_stability(coef: NDArray, cov: NDArray, k: int, *, tie_tolerance: float = 0.5,
                    draws: int = DEFAULT_DRAWS,
                    random_state: int | np.random.Generator = 0) -> float:
    """Estimated probability that ``top_k(coef, k)`` is the true top-k, up to ties.

    Parameters
    ----------
    coef : ndarray of shape (K,)
    cov : ndarray of shape (K, K)
        Its covariance (:func:`coefficient_covariance`).
    k : int
        How many superpixels are reported; k >= K is always stable.
    tie_tolerance : float
        Two superpixels whose weights differ by less than
        ``tie_tolerance * max |coef|`` may trade places.
    draws : int
    random_state : int or Generator
        The draws are seeded, so the estimate is reproducible.

    Returns
    -------
    float in [0, 1]
    """
    coef = np.asarray(coef, dtype=np.float64)
    n = len(coef)
    if k >= n:
        return 1.0
    reported = np.zeros(n, bool)
    reported[top_k(coef, k)] = True
    tolerance = tie_tolerance * float(np.max(np.abs(coef))) if n else 0.0
    cov = (cov + cov.T) / 2
    try:   # Cholesky with a whisper of jitter; eigh for a singular or indefinite one
        root = np.linalg.cholesky(cov + np.eye(n) * (1e-12 * float(np.trace(cov)) / n + 1e-300))
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(cov)
        root = vectors * np.sqrt(np.clip(values, 0.0, None))
    sampled = coef + _normals(random_state, draws, n) @ root.T                 # (draws, K)
    agree = sampled[:, reported].min(axis=1) >= sampled[:, ~reported].max(axis=1) - tolerance
    return float(agree.mean())
