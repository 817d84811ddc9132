"""Paired sampling, running-sum refits, the stability estimate and ``n_samples="auto"``."""

from __future__ import annotations

import numpy as np
import pytest

from lime_spark import ImageExplainer
from lime_spark.exceptions import ConfigurationError
from lime_spark.sampling import sample_design
from lime_spark.stability import (RunningRidge, coefficient_covariance, top_k,
                                  top_k_stability)
from lime_spark.surrogate import _WeightedProblem, cosine_distances, kernel_weights

GRID = 4                      # a 4x4 grid of 8x8-pixel superpixels on a 32x32 image


def _image():
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)


def _segments():
    cells = np.arange(32) // 8
    return (cells[:, None] * GRID + cells[None, :]).astype(np.int32)


def _visible(images, superpixel):
    """Whether ``superpixel`` shows the image (not the grey fill) in each image."""
    rows, cols = divmod(superpixel, GRID)
    block = images[:, rows * 8:(rows + 1) * 8, cols * 8:(cols + 1) * 8].astype(np.float64)
    original = _image()[rows * 8:(rows + 1) * 8, cols * 8:(cols + 1) * 8].astype(np.float64)
    return (np.abs(block - original).mean(axis=(1, 2, 3)) < 1e-6).astype(np.float64)


def _one_superpixel_model(images):
    """Probability of class 1 is 0.2 + 0.6 * (superpixel 5 visible): nothing else matters."""
    p = 0.2 + 0.6 * _visible(images, 5)
    return np.column_stack([1 - p, p])


def _noise_model(images):
    """Outputs that depend on every pixel chaotically: no top-5 ever settles."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    h = np.sin(flat @ np.linspace(0.1, 1.7, flat.shape[1]) * 1e-3) * 0.5 + 0.5
    return np.column_stack([1 - h, h])


def _explainer(**options):
    base = {"segmentation": "grid", "n_superpixels": GRID * GRID, "fill": 128,
            "batch_size": 64, "max_samples": 640, "min_samples": 128}
    return ImageExplainer(**{**base, **options}, random_state=11)


def test_paired_designs_are_exact_complements_and_uniform():
    design = sample_design(1000, 40, random_state=3, sampling="paired")
    assert design.shape == (1000, 40) and design.dtype == np.uint8
    assert (design[0] == 1).all() and (design[1] == 0).all()
    assert (design[0::2] + design[1::2] == 1).all()               # every pair z, 1 - z
    assert abs(design[2:].mean() - 0.5) < 0.01                     # still fair coins
    odd = sample_design(7, 5, random_state=3, sampling="paired")
    assert (odd[0:6:2] + odd[1:6:2] == 1).all()
    independent = sample_design(1000, 40, random_state=3)
    assert (independent[0::2] + independent[1::2] == 1).all(axis=1).mean() < 0.01
    with pytest.raises(ConfigurationError, match="sampling"):
        sample_design(10, 4, sampling="antithetic")


def test_running_sums_refit_equals_a_fresh_fit():
    rng = np.random.default_rng(0)
    design = sample_design(700, 30, random_state=1, sampling="paired")
    targets = rng.random((700, 3))
    weights = kernel_weights(cosine_distances(design))
    ridge = RunningRidge(30, 3)
    for start, stop in ((0, 256), (256, 384), (384, 700)):
        ridge.add(design[start:stop], targets[start:stop], weights[start:stop])
    fresh = _WeightedProblem(design, targets, weights).solve(np.arange(30), slice(None), 1.0)
    np.testing.assert_allclose(ridge.coefficients(1.0), fresh, rtol=0, atol=1e-9)
    assert ridge.n == 700


def test_sandwich_covariance_matches_the_spread_of_repeated_fits():
    # a known linear truth with heteroskedastic noise: the estimated variances must
    # match what 300 independent repetitions of the same experiment show
    truth = np.linspace(-0.3, 0.3, 8)
    fits, predicted = [], []
    for rep in range(300):
        rng = np.random.default_rng(100 + rep)
        design = sample_design(400, 8, random_state=rng)
        weights = kernel_weights(cosine_distances(design))
        noise = rng.standard_normal(400) * (0.05 + 0.1 * design[:, 0])
        targets = (0.5 + design @ truth + noise)[:, None]
        ridge = RunningRidge(8, 1)
        ridge.add(design, targets, weights)
        coef = ridge.coefficients(1.0)
        fits.append(coef[:, 0])
        predicted.append(np.diag(coefficient_covariance(ridge, design, targets, weights,
                                                        coef, 1.0)[0]))
    empirical = np.var(np.array(fits), axis=0)
    ratio = np.mean(predicted, axis=0) / empirical
    assert np.all((ratio > 0.7) & (ratio < 1.4)), ratio


def test_top_k_stability_reads_separation_and_ties():
    coef = np.array([0.5, 0.4, 0.3, 0.02, 0.01, 0.0])
    assert list(top_k(coef, 3)) == [0, 1, 2]
    tight = np.eye(6) * 1e-6
    assert top_k_stability(coef, tight, 3) == 1.0
    wide = np.eye(6) * 0.25                                      # sd 0.5: anything goes
    assert top_k_stability(coef, wide, 3) < 0.5
    # 0.30 and 0.29 swap places half the time, but within the tie tolerance
    tied = np.array([0.5, 0.4, 0.30, 0.29, 0.0, 0.0])
    noisy = np.eye(6) * 0.005 ** 2
    assert top_k_stability(tied, noisy, 3, tie_tolerance=0.1) > 0.99
    assert top_k_stability(tied, noisy, 3, tie_tolerance=0.0) < 0.95
    assert top_k_stability(coef, wide, 6) == 1.0                # everything reported


def test_auto_stops_at_min_samples_when_one_superpixel_decides():
    exp = _explainer().explain(_image(), _one_superpixel_model, segments=_segments(),
                               top_labels=1)
    assert exp.n_samples == 128                                   # min_samples
    assert exp.top_labels == [1] and exp.stability[1] >= 0.95
    assert exp.local_exp[1][0][0] == 5                            # the deciding superpixel


def test_auto_never_exceeds_max_samples_and_reports_an_unstable_result():
    calls = []

    def counted(images):
        calls.append(len(images))
        return _noise_model(images)

    exp = _explainer().explain(_image(), counted, segments=_segments(), top_labels=2)
    assert exp.n_samples == 640 == sum(calls)                     # max_samples, not one more
    assert max(calls) <= 64                                       # batches of batch_size
    assert min(exp.stability.values()) < 0.95                     # and it says so
    assert set(exp.stability) == set(exp.labels)


def test_fixed_n_samples_keeps_todays_behaviour_and_still_reports_stability():
    calls = []

    def counted(images):
        calls.append(len(images))
        return _one_superpixel_model(images)

    exp = _explainer(n_samples=300).explain(_image(), counted, segments=_segments(),
                                            top_labels=1)
    assert exp.n_samples == 300 == sum(calls)
    assert 0.0 <= exp.stability[1] <= 1.0
    # the design of a fixed run is sampling_design's rows, independent ones as lime's
    lime_like = _explainer(n_samples=300, sampling="independent")
    again = lime_like.explain(_image(), _one_superpixel_model, segments=_segments(),
                              top_labels=1)
    assert again.n_samples == 300


def test_auto_is_reproducible_and_a_prefix_of_the_full_design():
    a = _explainer().explain(_image(), _noise_model, segments=_segments(), top_labels=1)
    b = _explainer().explain(_image(), _noise_model, segments=_segments(), top_labels=1)
    assert a.n_samples == b.n_samples and a.local_exp == b.local_exp
    assert a.stability == b.stability
    # the same rows with a fixed budget give the same surrogate
    fixed = _explainer(n_samples=a.n_samples, max_samples=a.n_samples).explain(
        _image(), _noise_model, segments=_segments(), top_labels=1)
    assert fixed.local_exp == a.local_exp


def test_bad_sampling_options_name_the_option():
    with pytest.raises(ConfigurationError, match="n_samples"):
        ImageExplainer(n_samples="many")
    with pytest.raises(ConfigurationError, match="min_samples <= max_samples"):
        ImageExplainer(min_samples=500, max_samples=400)
    with pytest.raises(ConfigurationError, match="delta"):
        ImageExplainer(delta=1.0)
    with pytest.raises(ConfigurationError, match="sampling"):
        ImageExplainer(sampling="sobol")
