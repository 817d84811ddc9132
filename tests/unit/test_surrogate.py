"""The surrogate against Python lime's LimeBase on identical inputs."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics
from lime.lime_base import LimeBase

from lime_spark.exceptions import ClassifierOutputError, ConfigurationError
from lime_spark.sampling import sample_design
from lime_spark.surrogate import (
    cosine_distances,
    fit_surrogate,
    kernel_weights,
)


def _lime_kernel(d, kernel_width=0.25):
    return np.sqrt(np.exp(-(d ** 2) / kernel_width ** 2))


def _problem(seed, n_samples=400, n_superpixels=20, n_classes=6):
    rng = np.random.default_rng(seed)
    design = sample_design(n_samples, n_superpixels, random_state=rng).astype(np.int64)
    true = rng.normal(size=(n_superpixels, n_classes))
    logits = design @ true + 0.3 * rng.normal(size=(n_samples, n_classes))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return design, probs


def test_cosine_distances_match_sklearn():
    design, _ = _problem(0)
    design[5] = 0  # an all-zero row
    expected = sklearn.metrics.pairwise_distances(
        design, design[0].reshape(1, -1), metric="cosine").ravel()
    np.testing.assert_allclose(cosine_distances(design), expected, atol=1e-12)
    assert cosine_distances(design)[5] == pytest.approx(1.0)


@pytest.mark.parametrize("method,num_features", [
    ("none", 100000), ("auto", 100000), ("highest_weights", 100000),
    ("highest_weights", 8), ("forward_selection", 5), ("auto", 4),
    ("lasso_path", 7), ("lasso_path", 100000),
])
@pytest.mark.parametrize("seed", [1, 2])
def test_parity_with_lime_base(method, num_features, seed):
    design, probs = _problem(seed)
    distances = cosine_distances(design)
    labels = [0, 3, 5]
    base = LimeBase(_lime_kernel, random_state=0)
    fits = fit_surrogate(design, probs[:, labels], kernel_weights(distances),
                         feature_selection=method,
                         num_features=min(num_features, design.shape[1]))
    for fit, label in zip(fits, labels):
        intercept, exp, score, local_pred = base.explain_instance_with_data(
            design, probs, distances, label, num_features, feature_selection=method)
        assert [f for f, _ in fit.local_exp] == [int(f) for f, _ in exp]
        np.testing.assert_allclose([w for _, w in fit.local_exp], [w for _, w in exp],
                                   atol=1e-6, rtol=0)
        assert fit.intercept == pytest.approx(intercept, abs=1e-6)
        assert fit.score == pytest.approx(score, abs=1e-6)
        np.testing.assert_allclose(fit.local_pred, local_pred, atol=1e-6)


def test_recovers_a_known_linear_model():
    rng = np.random.default_rng(3)
    design = sample_design(2000, 10, random_state=rng)
    true = np.linspace(-0.5, 0.5, 10)
    target = 0.2 + design @ true
    fit, = fit_surrogate(design, target[:, None], np.ones(2000), alpha=0.0,
                         feature_selection="none")
    np.testing.assert_allclose(fit.coef, true, atol=1e-10)
    assert fit.intercept == pytest.approx(0.2, abs=1e-10)
    assert fit.score == pytest.approx(1.0, abs=1e-12)
    assert fit.local_pred[0] == pytest.approx(0.2 + true.sum(), abs=1e-10)


def test_rejects_bad_input():
    design, probs = _problem(4)
    w = np.ones(len(design))
    with pytest.raises(ConfigurationError, match="feature_selection"):
        fit_surrogate(design, probs, w, feature_selection="magic")
    bad = probs.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ClassifierOutputError, match="finite"):
        fit_surrogate(design, bad, w)
    with pytest.raises(ClassifierOutputError, match="shape"):
        fit_surrogate(design, probs[:10], w)
    with pytest.raises(ConfigurationError, match="kernel_width"):
        kernel_weights(np.zeros(3), kernel_width=0)
