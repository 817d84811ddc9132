"""``AnchorExplainer``: anchors (Ribeiro, Singh & Guestrin, AAAI 2018) for image classifiers.

An *anchor* is a set of superpixels such that, when they are kept and every
other superpixel is hidden at random (each present with probability 1/2),
the model still predicts the label with probability at least ``threshold``:
its *precision*.  Its *coverage* is the share of random perturbations in
which all its superpixels are present (about ``2 ** -len(anchor)``).  Among
the anchors that reach the threshold the search prefers the smallest, and
among those the one of largest coverage.

The search is the paper's (and alibi's ``AnchorBaseBeam``): a beam search
over anchor sizes, candidates grown one superpixel at a time, the best
``beam_size`` candidates of each size picked by the KL-LUCB bandit
(Kaufmann & Kalyanakrishnan 2013), their precision then sampled until its
KL confidence bounds decide it.  Like :meth:`lime_spark.explainer.ImageExplainer.steps`
it is a step generator (:mod:`lime_spark.steps`): it yields design rows
(0/1 per superpixel) and is sent their probabilities, the samples of every
arm pulled in a bandit round in one request; :meth:`AnchorExplainer.explain`
answers them at once, the batch pipeline from shared device batches.

What differs from alibi 0.9.6 (``docs/anchors.md`` has the measurements):

* a perturbation sample counts for an anchor A whenever it was drawn for a
  subset of A and shows all of A: it is then a draw of A's own perturbation
  distribution (alibi counts only samples of A's ancestors in its beam);
* KL-LUCB pulls its two critical arms through their parents: a sample drawn
  for a beam member P counts for every candidate P + {f} whose f it shows.
  A round draws ``2 * batch_size`` rows, as alibi's, split between the
  critical arms' parents: each critical arm gets about ``batch_size``
  samples when they share a parent (half that otherwise), and every
  sibling as many;
* KL-LUCB stops as soon as some candidate passes the acceptance rule with
  its lower bound at KL-LUCB's own confidence level (which holds for all
  arms and rounds at once); alibi first ranks the whole beam, then samples
  the beam until it is decided;
* the empty anchor is decided by the same rule as any other (alibi accepts
  it only when its lower bound clears the threshold after its first
  samples, and stops sampling it at ``threshold - tau``);
* the first request holds the original image and the empty anchor's first
  ``batch_size`` samples (alibi calls the model on the image alone first);
* everything is drawn from the image's seed (``numpy.random.Generator``), so
  the anchor, its precision and coverage depend only on the seed and the
  image, not on the process' global random state nor on batch mates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .adapters import Checkpoint, as_design_predictor, predict_design
from .exceptions import ConfigurationError
from .explainer import DEFAULT_FILL, ImageExplainer, Prepared
from .models import Classifier, ClassifierFn
from .options import Int, MappingOf, OneOf, Optional, Real, configured, option, validate
from .sampling import as_generator
from .segmentation import SEGMENTERS
from .steps import ModelRequest, Steps, run_steps

__all__ = [
    "AnchorConfig",
    "AnchorExplainer",
    "AnchorExplanation",
    "AnchorRequest",
    "anchor_coverage",
    "anchor_precision",
    "coverage_masks",
]

_N_BISECTIONS = 17
"""Bisection steps of the KL confidence bounds (alibi's ``n_iter``)."""


@dataclass(frozen=True)
class AnchorConfig:
    """The settings of :class:`AnchorExplainer`, each declared once with its constraint.

    Segmentation and fill have :class:`~lime_spark.explainer.ExplainerConfig`'s
    defaults and go through the same code (:meth:`ImageExplainer.prepare
    <lime_spark.explainer.ImageExplainer.prepare>`).
    """

    segmentation: str | Callable = option(
        "slic", "superpixels: slic, quickshift, felzenszwalb or grid",
        OneOf(SEGMENTERS, or_callable=True))
    n_superpixels: int = option(50, "target number of superpixels", Int(2))
    segmentation_params: dict = option(
        {}, "extra segmenter parameters, e.g. {compactness: 20}", MappingOf())
    fill: Any = option(
        DEFAULT_FILL, "hidden superpixels: median, mean, blur, a colour name or [r, g, b]")
    fill_params: dict = option({}, "fill parameters, e.g. {sigma: 8} for blur", MappingOf())
    threshold: float = option(
        0.95, "an anchor's precision (share of perturbations keeping it that the model "
        "still gives the label) must reach this", Real(0, exclusive=True))
    delta: float = option(
        0.1, "confidence: the precision bounds hold with probability >= 1 - delta",
        Real(0, exclusive=True))
    tau: float = option(
        0.15, "KL-LUCB tolerance: the beam holds candidates within tau of the best "
        "precision", Real(0, exclusive=True))
    epsilon_stop: float = option(
        0.05, "an anchor is accepted when its mean precision >= threshold and its lower "
        "bound > threshold - epsilon_stop (alibi's and the paper code's rule)",
        Real(0, exclusive=True))
    beam_size: int = option(2, "candidates kept per anchor size", Int(1))
    batch_size: int = option(100, "perturbation samples per arm per pull", Int(1))
    coverage_samples: int = option(
        10000, "random masks on which coverage is measured", Int(1))
    max_anchor_size: int | None = option(
        None, "most superpixels in an anchor (null: no limit)", Optional(Int(1)))

    def __post_init__(self) -> None:
        validate(self)
        if self.threshold > 1:
            raise ConfigurationError(
                f"Expected threshold <= 1. Received: threshold={self.threshold!r}")
        for name in ("delta", "tau", "epsilon_stop"):
            if getattr(self, name) >= 1:
                raise ConfigurationError(
                    f"Expected {name} < 1. Received: {name}={getattr(self, name)!r}")


@dataclass(frozen=True, eq=False)
class AnchorExplanation:
    """The anchor of one image and label.

    Attributes
    ----------
    image : ndarray of shape (H, W, 3)
        The image as explained (at the classifier's input size).
    segments : ndarray of shape (H, W), int32, ids 0..K-1
    label : int
        The explained label (the predicted one unless one was asked for).
    anchor : tuple of int
        The anchor's superpixels, in the order the search added them; ``()``
        when the label holds whatever is hidden.
    precision : float
        Estimated precision of the anchor: share of its perturbation samples
        (anchor kept, each other superpixel present with probability 1/2)
        that the model gives ``label`` (argmax).
    precision_lower : float
        KL lower confidence bound of ``precision`` (level ``delta``).
    coverage : float
        Share of the ``coverage_samples`` random masks that contain the
        whole anchor (1.0 for the empty anchor).
    success : bool
        Whether the anchor met the precision rule; when no candidate did
        (within ``max_anchor_size``), the most precise candidate is returned
        with ``success=False``.
    predictions : ndarray of shape (n_classes,)
        The classifier's probabilities for the original image.
    fill_image : ndarray of shape (H, W, 3)
        What hidden superpixels were replaced with.
    label_names : list of str or None
    n_samples : int
        Model rows evaluated for this explanation, the original image included.
    n_model_calls : int
        Requests (step generator yields): each is answered by one or more
        forward batches, and the pipeline packs several images' requests
        into shared batches.
    seconds : float
    seed : int or None
    """

    image: NDArray
    segments: NDArray[np.int32]
    label: int
    anchor: tuple[int, ...]
    precision: float
    precision_lower: float
    coverage: float
    success: bool
    predictions: NDArray[np.float64]
    fill_image: NDArray
    label_names: list[str] | None = None
    n_samples: int = 0
    n_model_calls: int = 0
    seconds: float = 0.0
    seed: int | None = None

    @property
    def n_superpixels(self) -> int:
        """Number of superpixels K."""
        return int(self.segments.max()) + 1

    def label_name(self, label: int | None = None) -> str:
        """Name of ``label`` (default: the explained label); its number without names."""
        label = self.label if label is None else int(label)
        if self.label_names is None:
            return str(label)
        return self.label_names[label]

    def mask(self) -> NDArray[np.bool_]:
        """Pixels of the anchor's superpixels, shape (H, W)."""
        keep = np.zeros(self.n_superpixels, bool)
        keep[list(self.anchor)] = True
        return keep[self.segments]

    def get_image_and_mask(self, hide_rest: bool = False) -> tuple[NDArray, NDArray]:
        """The image and the anchor's mask, like lime's ``get_image_and_mask``.

        Returns
        -------
        image : ndarray of shape (H, W, 3)
            The image; with ``hide_rest`` zero outside the anchor.
        mask : ndarray of shape (H, W), segments' dtype
            1 on the anchor's superpixels, 0 elsewhere.
        """
        inside = self.mask()
        mask = inside.astype(self.segments.dtype)
        if hide_rest:
            out = np.zeros(self.image.shape)
            out[inside] = self.image[inside]
            return out, mask
        return self.image.copy(), mask


# --------------------------------------------------------------------------
# KL confidence bounds (Kaufmann & Kalyanakrishnan 2013), as in the paper's code
# --------------------------------------------------------------------------

def _kl_bernoulli(p: NDArray, q: NDArray) -> NDArray:
    p = np.clip(p, 1e-7, 1 - 1e-16)
    q = np.clip(q, 1e-7, 1 - 1e-16)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def kl_upper_bound(mean: NDArray, level: NDArray) -> NDArray:
    """Largest q >= mean with KL(mean || q) <= level (bisection)."""
    mean = np.asarray(mean, np.float64)
    lo = mean.copy()
    hi = np.minimum(mean + np.sqrt(np.asarray(level) / 2), 1.0)
    for _ in range(1, _N_BISECTIONS):
        mid = (hi + lo) / 2
        over = _kl_bernoulli(mean, mid) > level
        hi = np.where(over, mid, hi)
        lo = np.where(over, lo, mid)
    return hi


def kl_lower_bound(mean: NDArray, level: NDArray) -> NDArray:
    """Smallest q <= mean with KL(mean || q) <= level (bisection)."""
    mean = np.asarray(mean, np.float64)
    hi = mean.copy()
    lo = np.clip(mean - np.sqrt(np.asarray(level) / 2), 0.0, 1.0)
    for _ in range(1, _N_BISECTIONS):
        mid = (hi + lo) / 2
        over = _kl_bernoulli(mean, mid) > level
        lo = np.where(over, mid, lo)
        hi = np.where(over, hi, mid)
    return lo


def _lucb_beta(n_arms: int, round_: int, delta: float) -> float:
    """The exploration rate of KL-LUCB at round t (the constants of the paper's code)."""
    temp = math.log(405.5 * n_arms * round_ ** 1.1 / delta)
    return temp + math.log(temp)


# --------------------------------------------------------------------------
# coverage and re-measured precision (also used by the tests and the benchmark)
# --------------------------------------------------------------------------

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.int64)


def coverage_masks(n_masks: int, n_superpixels: int, *,
                   random_state: int | np.random.Generator | None = None) -> NDArray[np.uint8]:
    """Random 0/1 masks, each superpixel present with probability 1/2: shape (n, K), uint8."""
    rng = as_generator(random_state)
    return rng.integers(0, 2, size=(n_masks, n_superpixels), dtype=np.uint8)


def anchor_coverage(anchor: Sequence[int], masks: NDArray) -> float:
    """Share of the rows of ``masks`` (n, K) in which every superpixel of ``anchor`` is 1."""
    masks = np.asarray(masks)
    if len(anchor) == 0:
        return 1.0
    return float(np.mean(np.all(masks[:, list(anchor)] != 0, axis=1)))


def anchor_precision(image: NDArray, fill_image: NDArray, segments: NDArray,
                     anchor: Sequence[int], label: int,
                     classifier: Classifier | ClassifierFn, *, n_samples: int = 1000,
                     random_state: int | np.random.Generator | None = None,
                     batch_size: int = 100) -> float:
    """Precision of ``anchor`` measured afresh: the share of ``n_samples`` perturbations
    (anchor kept, every other superpixel present with probability 1/2) that the
    classifier gives ``label`` (argmax).

    The standard error is ``sqrt(p (1 - p) / n_samples)`` (0.007 at p = 0.95,
    n = 1000).
    """
    rng = as_generator(random_state)
    k = int(np.max(segments)) + 1
    design = rng.integers(0, 2, size=(n_samples, k), dtype=np.uint8)
    design[:, list(anchor)] = 1
    probs = predict_design(classifier, image, fill_image, segments, design,
                           batch_size=batch_size)
    return float(np.mean(np.argmax(probs, axis=1) == int(label)))


# --------------------------------------------------------------------------
# the search
# --------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class AnchorRequest(ModelRequest):
    """A :class:`~lime_spark.steps.ModelRequest` of the anchor search, saying what its rows are.

    Answered like any request; the extra fields are diagnostics.

    Attributes
    ----------
    arms : tuple of tuple of int
        The anchor each block of ``rows_per_arm`` rows was drawn for (its
        superpixels forced to 1, the others present with probability 1/2),
        in row order.
    rows_per_arm : int
    original : bool
        Whether row 0 is the original image (all ones), before the blocks.
    """

    arms: tuple[tuple[int, ...], ...] = ()
    rows_per_arm: int = 0
    original: bool = False


class _Pool:
    """Every perturbation sample drawn for one image: its row, the anchor it was drawn
    for (columns forced to 1) and whether the model gave the label."""

    def __init__(self, n_superpixels: int):
        self.k = n_superpixels
        self.rows = np.zeros((1024, n_superpixels), np.uint8)
        self.drawn = np.zeros((1024, n_superpixels), np.uint8)
        self.hits = np.zeros(1024, bool)
        self.size = 0

    def add(self, rows: NDArray, drawn: NDArray, hits: NDArray) -> None:
        n = rows.shape[0]
        if self.size + n > self.rows.shape[0]:
            cap = max(2 * self.rows.shape[0], self.size + n)
            for name in ("rows", "drawn", "hits"):
                old = getattr(self, name)
                new = np.zeros((cap, *old.shape[1:]), old.dtype)
                new[:self.size] = old[:self.size]
                setattr(self, name, new)
        self.rows[self.size:self.size + n] = rows
        self.drawn[self.size:self.size + n] = drawn
        self.hits[self.size:self.size + n] = hits
        self.size += n


class _Arms:
    """Running (samples, positives) of a list of anchors over the pool.

    A sample counts for anchor A when the anchor it was drawn for is a subset
    of A and its row keeps all of A: it is then a draw of A's perturbation
    distribution.  Counting is two 0/1 matrix products per block of new rows.
    """

    def __init__(self, pool: _Pool, keys: Sequence[tuple[int, ...]]):
        self.pool = pool
        self.keys = list(keys)
        self.mat = np.zeros((len(self.keys), pool.k), np.float32)
        for i, key in enumerate(self.keys):
            self.mat[i, list(key)] = 1
        self.n = np.zeros(len(self.keys))
        self.pos = np.zeros(len(self.keys))
        self.seen = 0
        self.update()

    def update(self) -> None:
        pool = self.pool
        if self.seen == pool.size or not self.keys:
            self.seen = pool.size
            return
        rows = pool.rows[self.seen:pool.size].astype(np.float32)
        drawn = pool.drawn[self.seen:pool.size].astype(np.float32)
        # row keeps all of A: sum of A's columns hidden in the row is 0;
        # drawn for a subset of A: sum of the drawn columns outside A is 0
        applies = ((1 - rows) @ self.mat.T < 0.5) & (drawn @ (1 - self.mat).T < 0.5)
        self.n += applies.sum(axis=0)
        self.pos += pool.hits[self.seen:pool.size].astype(np.float64) @ applies
        self.seen = pool.size

    def means(self) -> NDArray[np.float64]:
        return self.pos / np.maximum(self.n, 1)


class _Search:
    """The state of one image's anchor search (all numpy; the generator methods yield)."""

    def __init__(self, prepared: Prepared, rng: np.random.Generator, config: AnchorConfig,
                 label: int | None, checkpoint: Checkpoint | None):
        self.prepared, self.rng, self.cfg = prepared, rng, config
        self.checkpoint = checkpoint
        self.k = int(prepared.segments.max()) + 1
        self.pool = _Pool(self.k)
        self.label = label
        self.predictions: NDArray | None = None
        self.n_rows = 0
        self.n_requests = 0
        self.order: dict[tuple[int, ...], tuple[int, ...]] = {(): ()}
        bits = coverage_masks(config.coverage_samples, self.k, random_state=rng)
        self.n_coverage = bits.shape[0]
        self.coverage_bits = np.packbits(bits.astype(bool), axis=0).T.copy()  # (K, bytes)
        self.coverage_cache: dict[tuple[int, ...], float] = {(): 1.0}

    # -- model requests -----------------------------------------------------
    def pull(self, keys: Sequence[tuple[int, ...]], n_each: int,
             original: bool = False) -> Steps[None]:
        """Draw ``n_each`` samples of every anchor in ``keys``; one request for all."""
        forced = np.zeros((len(keys), self.k), np.uint8)
        for i, key in enumerate(keys):
            forced[i, list(key)] = 1
        drawn = np.repeat(forced, n_each, axis=0)
        rows = self.rng.integers(0, 2, size=drawn.shape, dtype=np.uint8) | drawn
        design = np.concatenate([np.ones((1, self.k), np.uint8), rows]) if original else rows
        if self.checkpoint is not None:
            self.checkpoint(f"anchors request {self.n_requests + 1}")
        prepared = self.prepared
        probs = yield AnchorRequest(prepared.image, prepared.fill_image, prepared.segments,
                                    design, arms=tuple(tuple(key) for key in keys),
                                    rows_per_arm=n_each, original=original)
        probs = np.asarray(probs)
        self.n_requests += 1
        self.n_rows += design.shape[0]
        if original:
            self.predictions = np.asarray(probs[0], np.float64)
            if self.label is None:
                self.label = int(np.argmax(probs[0]))
            elif not 0 <= self.label < probs.shape[1]:
                raise ConfigurationError(
                    f"Expected label in 0..{probs.shape[1] - 1} (the classifier's classes). "
                    f"Received: label={self.label}")
            probs = probs[1:]
        self.pool.add(rows, drawn, np.argmax(probs, axis=1) == self.label)

    # -- coverage -------------------------------------------------------------
    def coverage(self, key: tuple[int, ...]) -> float:
        if key not in self.coverage_cache:
            both = np.bitwise_and.reduce(self.coverage_bits[list(key)], axis=0)
            self.coverage_cache[key] = float(_POPCOUNT[both].sum()) / self.n_coverage
        return self.coverage_cache[key]

    # -- candidates -----------------------------------------------------------
    def propose(self, previous: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """Every anchor one superpixel larger than one of ``previous``, first found first."""
        out: dict[tuple[int, ...], None] = {}
        for f in range(self.k):
            for parent in previous:
                if f in parent:
                    continue
                key = tuple(sorted(parent + (f,)))
                if key not in out:
                    out[key] = None
                    self.order.setdefault(key, self.order[parent] + (f,))
        return list(out)

    def parent(self, key: tuple[int, ...]) -> tuple[int, ...]:
        """The beam member that proposed ``key`` (``key`` without its last superpixel)."""
        return tuple(sorted(self.order[key][:-1]))

    # -- KL-LUCB ----------------------------------------------------------------
    def kl_lucb(self, arms: _Arms, top_n: int, *, accept: bool = False
                ) -> Steps[tuple[NDArray[np.intp], NDArray | None]]:
        """KL-LUCB: indices of ``top_n`` arms within ``tau`` of the best precisions.

        With ``accept``, it stops as soon as some arms pass the acceptance
        rule at KL-LUCB's own (all arms, all rounds) confidence level, and
        returns those arms with their lower bounds instead (else None).
        """
        cfg = self.cfg
        unsampled = np.flatnonzero(arms.n == 0)
        if unsampled.size:
            yield from self.pull([arms.keys[i] for i in unsampled], 1)
            arms.update()
        m = len(arms.keys)
        t = 1
        while True:
            means = arms.means()
            beta = _lucb_beta(m, t, cfg.delta)
            if accept:
                lower = kl_lower_bound(means, beta / arms.n)
                passed = np.flatnonzero((means >= cfg.threshold)
                                        & (lower > cfg.threshold - cfg.epsilon_stop))
                if passed.size:
                    return passed, lower[passed]
            if m == top_n:
                return np.arange(m), None
            ranked = np.argsort(means, kind="stable")
            best, rest = ranked[-top_n:], ranked[:-top_n]
            upper = kl_upper_bound(means[rest], beta / arms.n[rest])
            lower = kl_lower_bound(means[best], beta / arms.n[best])
            if upper.max() - lower.min() <= cfg.tau:
                return best, None
            pair = [arms.keys[rest[np.argmax(upper)]], arms.keys[best[np.argmin(lower)]]]
            # through their parents: a parent's sample is one of every child that it shows
            parents = list(dict.fromkeys(self.parent(key) for key in pair))
            yield from self.pull(parents, 2 * cfg.batch_size // len(parents))
            arms.update()
            t += 1

    def decide(self, arms: _Arms, beta: float) -> Steps[tuple[NDArray, NDArray]]:
        """Sample the arms until each one's bounds (at exploration rate ``beta``) put it
        clearly above or below the threshold; return (means, lower bounds)."""
        cfg = self.cfg
        while True:
            means = arms.means()
            level = beta / np.maximum(arms.n, 1)
            lower = kl_lower_bound(means, level)
            upper = kl_upper_bound(means, level)
            more = (((means >= cfg.threshold) & (lower < cfg.threshold - cfg.epsilon_stop))
                    | ((means < cfg.threshold) & (upper >= cfg.threshold + cfg.epsilon_stop)))
            if not more.any():
                return means, lower
            yield from self.pull([arms.keys[i] for i in np.flatnonzero(more)], cfg.batch_size)
            arms.update()

    def run(self) -> Steps[tuple[tuple[int, ...], float, float, float, bool]]:
        """The search: (anchor as added, precision, lower bound, coverage, success)."""
        cfg = self.cfg
        # the original image and the empty anchor's first samples, in one request
        yield from self.pull([()], cfg.batch_size, original=True)
        # the empty anchor, decided by the rule of every anchor (one arm: beta = log 1/delta)
        means, lowers = yield from self.decide(_Arms(self.pool, [()]), math.log(1 / cfg.delta))
        if means[0] >= cfg.threshold and lowers[0] > cfg.threshold - cfg.epsilon_stop:
            return (), float(means[0]), float(lowers[0]), 1.0, True
        beam_beta = math.log((1 + (cfg.beam_size - 1) * self.k) / cfg.delta)

        max_size = self.k if cfg.max_anchor_size is None else min(cfg.max_anchor_size, self.k)
        best_of_size: dict[int, list[tuple[int, ...]]] = {0: [()]}
        best: tuple[int, ...] | None = None
        best_coverage, best_mean, best_lower = -1.0, 0.0, 0.0
        size = 1
        while size <= max_size:
            candidates = [key for key in self.propose(best_of_size[size - 1])
                          if self.coverage(key) > best_coverage]
            if not candidates:
                break
            arms = _Arms(self.pool, candidates)
            chosen, passed = yield from self.kl_lucb(
                arms, min(cfg.beam_size, len(candidates)), accept=True)
            beam = [candidates[i] for i in chosen]
            best_of_size[size] = beam
            if passed is not None:               # accepted already, at KL-LUCB's level
                means, lowers = arms.means()[chosen], passed
            else:
                means, lowers = yield from self.decide(_Arms(self.pool, beam), beam_beta)
            coverages = np.array([self.coverage(key) for key in beam])
            valid = (means >= cfg.threshold) & (lowers > cfg.threshold - cfg.epsilon_stop)
            better = np.flatnonzero(valid & (coverages > best_coverage))
            if better.size:
                i = better[np.argmax(coverages[better])]
                best, best_coverage = beam[i], float(coverages[i])
                best_mean, best_lower = float(means[i]), float(lowers[i])
                if best_coverage == 1.0:
                    break
            size += 1
        if best is not None:
            return self.order[best], best_mean, best_lower, best_coverage, True

        # no anchor met the rule: the most precise candidate of every size
        everyone = [key for s in range(1, size) for key in best_of_size.get(s, [])]
        if not everyone:
            everyone = [()]
        arms = _Arms(self.pool, everyone)
        (i,), _ = yield from self.kl_lucb(arms, 1)
        key = everyone[int(i)]
        final = _Arms(self.pool, [key])
        mean = float(final.means()[0])
        lower = float(kl_lower_bound(mean, beam_beta / max(final.n[0], 1)))
        return self.order[key], mean, lower, self.coverage(key), False


class AnchorExplainer:
    """Explain image classifiers with anchors: superpixels that suffice for the label.

    Parameters
    ----------
    config : AnchorConfig, optional
        All settings at once; the keyword arguments below override its fields.
    segmentation, n_superpixels, segmentation_params, fill, fill_params
        As :class:`~lime_spark.explainer.ImageExplainer`'s (same defaults,
        same code: SLIC with about 50 superpixels, the image's median colour).
    threshold : float, default 0.95
        Precision an anchor must reach.
    delta : float, default 0.1
        The confidence bounds hold with probability ``1 - delta``.
    tau : float, default 0.15
        KL-LUCB's tolerance: each size's beam holds, with probability
        ``1 - delta``, candidates within ``tau`` of the best precision.
    epsilon_stop : float, default 0.05
        An anchor is accepted when its mean precision is ``>= threshold``
        and its lower bound ``> threshold - epsilon_stop`` (0 makes the lower
        bound itself clear the threshold, at the cost of more samples).
    beam_size : int, default 2
    batch_size : int, default 100
        Samples per arm per pull (alibi's ``batch_size``).
    coverage_samples : int, default 10000
    max_anchor_size : int, optional
    random_state : int or None
        Seed of the segmenter (when stochastic), the coverage masks and every
        perturbation sample: the same seed and image give the same anchor,
        precision and coverage, bit for bit, whoever answers the requests.

    Examples
    --------
    >>> exp = AnchorExplainer(random_state=0).explain(image, classifier)  # doctest: +SKIP
    >>> exp.anchor, exp.precision, exp.coverage                          # doctest: +SKIP
    ((12, 30), 0.97, 0.25)
    """

    def __init__(self, config: AnchorConfig | None = None, *,
                 random_state: int | None = None, **overrides: Any):
        self.config = configured(AnchorConfig, config, overrides, what="AnchorExplainer")
        self.random_state = random_state
        cfg = self.config
        self._images = ImageExplainer(
            segmentation=cfg.segmentation, n_superpixels=cfg.n_superpixels,
            segmentation_params=cfg.segmentation_params, fill=cfg.fill,
            fill_params=cfg.fill_params, random_state=random_state)

    def segment(self, image: NDArray, *, random_state: int | None = None) -> NDArray[np.int32]:
        """The superpixels this explainer would use for ``image``."""
        return self._images.segment(image, random_state=random_state)

    def prepare(self, image: NDArray, classifier: Any, *, segments: NDArray | None = None,
                random_state: int | None = None,
                checkpoint: Checkpoint | None = None) -> Prepared:
        """Everything before the model, exactly as :meth:`ImageExplainer.prepare
        <lime_spark.explainer.ImageExplainer.prepare>`: the image checked (and
        resized to a :class:`Classifier`'s input), superpixels, fill, and the
        seed's generator (after the segmenter's draw) for the search."""
        seed = self.random_state if random_state is None else random_state
        return self._images.prepare(image, classifier, segments=segments, random_state=seed,
                                    checkpoint=checkpoint)

    def steps(self, prepared: Prepared, *, label: int | None = None,
              label_names: Sequence[str] | None = None,
              random_state: int | np.random.Generator | None = None,
              checkpoint: Checkpoint | None = None) -> Steps[AnchorExplanation]:
        """The anchor search of a prepared image as a step generator (:mod:`lime_spark.steps`).

        It yields :class:`~lime_spark.steps.ModelRequest` objects (0/1 design
        rows over the image's K superpixels; the first holds the original
        image as its row 0), is sent their (n, n_classes) probabilities, and
        returns the :class:`AnchorExplanation` (``seconds`` counts from the
        first step).

        Parameters
        ----------
        prepared : Prepared
            From :meth:`prepare` (or :meth:`ImageExplainer.prepare
            <lime_spark.explainer.ImageExplainer.prepare>`: then the LIME
            settings' segments and fill are used).
        label : int, optional
            The label to anchor; by default the one predicted for the image.
        label_names : sequence of str, optional
        random_state : int or Generator, optional
            Draws the coverage masks and samples instead of ``prepared.rng``:
            pass one (e.g. ``derive_seed(seed, "anchors")``) when the same
            ``Prepared`` also feeds :meth:`ImageExplainer.steps`, so neither
            result depends on the other having run.
        checkpoint : callable, optional
            Called with ``"anchors request i"`` before each request; raise
            from it to stop (the batch job's per-image time limit).
        """
        started = time.perf_counter()
        rng = prepared.rng if random_state is None else as_generator(random_state)
        search = _Search(prepared, rng, self.config, label, checkpoint)
        anchor, precision, lower, coverage, success = yield from search.run()
        return AnchorExplanation(
            image=prepared.image, segments=prepared.segments, label=int(search.label),
            anchor=tuple(int(f) for f in anchor), precision=float(precision),
            precision_lower=float(lower), coverage=float(coverage), success=bool(success),
            predictions=search.predictions, fill_image=prepared.fill_image,
            label_names=list(label_names) if label_names is not None else None,
            n_samples=search.n_rows, n_model_calls=search.n_requests,
            seconds=time.perf_counter() - started, seed=prepared.seed)

    def explain(self, image: NDArray, classifier: Classifier | ClassifierFn, *,
                label: int | None = None, segments: NDArray | None = None,
                random_state: int | None = None,
                checkpoint: Checkpoint | None = None) -> AnchorExplanation:
        """The anchor of the classifier's prediction (or of ``label``) for one image.

        Parameters
        ----------
        image : ndarray of shape (H, W, 3), uint8 or float in 0..255
            With a :class:`Classifier` of another input size the image is
            resized to it first.
        classifier : Classifier or callable
            A callable maps (N, H, W, 3) images to (N, n_classes)
            probabilities (lime's ``classifier_fn``); it gets batches of at
            most ``batch_size`` images.
        label : int, optional
            Anchor this label instead of the predicted one.
        segments : ndarray of shape (H, W), optional
            A precomputed segmentation.
        random_state : int, optional
            Overrides the explainer's seed for this call.
        checkpoint : callable, optional

        Returns
        -------
        AnchorExplanation
        """
        started = time.perf_counter()
        predictor = as_design_predictor(classifier, batch_size=self.config.batch_size)
        prepared = self.prepare(image, predictor, segments=segments, random_state=random_state,
                                checkpoint=checkpoint)
        steps = self.steps(prepared, label=label,
                           label_names=getattr(classifier, "label_names", None),
                           checkpoint=checkpoint)
        explanation = run_steps(steps, predictor, batch_size=self.config.batch_size,
                                checkpoint=checkpoint)
        return replace(explanation, seconds=time.perf_counter() - started)
