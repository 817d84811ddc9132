from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import skimage.data
from scipy.stats import spearmanr

from lime_spark import ImageExplainer
from lime_spark.adapters import as_design_predictor
from lime_spark.exceptions import ClassifierOutputError, ConfigurationError, InvalidImageError
from lime_spark.explainer import predict_design
from lime_spark.images import resize_image
from lime_spark.metrics import deletion_insertion_auc, deletion_insertion_curves, stability

CHELSEA = resize_image(skimage.data.chelsea(), (128, 128))


def _quadrant_classifier(images):
    """Class 0 follows the top-left quadrant's brightness, class 1 the rest."""
    x = np.asarray(images, dtype=np.float64) / 255.0
    tl = x[:, :32, :32].mean(axis=(1, 2, 3))
    rest = (x.mean(axis=(1, 2, 3)) * 4 - tl) / 3
    logits = np.stack([6 * tl, 6 * rest, np.zeros_like(tl)], axis=1)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _grid_image():
    rng = np.random.default_rng(0)
    return rng.integers(150, 255, (64, 64, 3), dtype=np.uint8)


def test_callable_classifier_and_lime_fields():
    image = _grid_image()
    exp = ImageExplainer(segmentation="grid", n_superpixels=16, fill=0, n_samples=500,
                         random_state=0).explain(image, _quadrant_classifier, top_labels=2)
    assert exp.segments.shape == (64, 64) and exp.n_superpixels == 16
    assert exp.top_labels == [int(i) for i in np.argsort(exp.predictions)[::-1][:2]]
    for label in exp.top_labels:
        weights = [w for _, w in exp.local_exp[label]]
        assert weights == sorted(weights, key=abs, reverse=True)
        assert sorted(f for f, _ in exp.local_exp[label]) == list(range(16))
        assert 0.0 <= exp.score[label] <= 1.0
        assert exp.local_pred[label].shape == (1,)
    # class 0 depends only on the top-left quadrant = grid cells 0, 1, 4, 5
    top4 = {f for f, _ in exp.local_exp[0][:4]}
    assert top4 == {0, 1, 4, 5}
    assert all(w > 0 for _, w in exp.local_exp[0][:4])
    assert exp.score[0] > 0.9


def test_seed_makes_results_reproducible_and_labels_selects():
    explainer = ImageExplainer(segmentation="grid", n_superpixels=16, n_samples=300)
    a = explainer.explain(_grid_image(), _quadrant_classifier, random_state=5)
    b = explainer.explain(_grid_image(), _quadrant_classifier, random_state=5)
    c = explainer.explain(_grid_image(), _quadrant_classifier, random_state=6)
    assert a.local_exp == b.local_exp and a.local_exp != c.local_exp
    d = explainer.explain(_grid_image(), _quadrant_classifier, labels=[2], random_state=5)
    assert d.labels == [2] and len(d.top_labels) == 3


def test_float_images_are_accepted_in_0_255():
    seen = []

    def fn(images):
        seen.append(images.dtype)
        return _quadrant_classifier(images)

    ImageExplainer(segmentation="grid", n_superpixels=9, n_samples=50, random_state=0).explain(
        _grid_image().astype(np.float64), fn)
    assert set(seen) == {np.dtype(np.float64)}


def test_a_callable_is_adapted_once_and_predicts_like_a_classifier():
    seen = []

    def fn(images):
        seen.append(images.shape[0])
        return _quadrant_classifier(images)

    image = _grid_image()
    segments = ImageExplainer(segmentation="grid", n_superpixels=9).segment(image)
    design = np.random.default_rng(0).integers(0, 2, (70, 9)).astype(np.uint8)
    fill = np.zeros_like(image)
    plain = predict_design(fn, image, fill, segments, design, batch_size=32)
    assert seen == [32, 32, 6]
    steps = []
    predictor = as_design_predictor(fn, batch_size=32)
    assert as_design_predictor(predictor, batch_size=8) is predictor
    stepped = predict_design(predictor, image, fill, segments, design, batch_size=8,
                             checkpoint=steps.append)
    assert steps == ["predict batch 1/3", "predict batch 2/3", "predict batch 3/3"]
    assert seen[3:] == [32, 32, 6]
    np.testing.assert_array_equal(plain, stepped)
    np.testing.assert_allclose(plain, _quadrant_classifier(   # one batch: other sum order
        np.where(design[:, segments][..., None] > 0, image, fill)), rtol=1e-12)


def test_get_image_and_mask_matches_lime():
    from lime.lime_image import ImageExplanation as LimeExplanation

    exp = ImageExplainer(segmentation="grid", n_superpixels=16, fill=0, n_samples=300,
                         random_state=1).explain(_grid_image(), _quadrant_classifier, top_labels=2)
    ref = LimeExplanation(exp.image, exp.segments)
    ref.local_exp = exp.local_exp
    for kwargs in [dict(), dict(positive_only=False, num_features=6),
                   dict(positive_only=False, negative_only=True, num_features=3),
                   dict(hide_rest=True, num_features=2), dict(min_weight=0.01)]:
        ours, ours_mask = exp.get_image_and_mask(0, **kwargs)
        theirs, theirs_mask = ref.get_image_and_mask(0, **kwargs)
        np.testing.assert_array_equal(ours, theirs)
        np.testing.assert_array_equal(ours_mask, theirs_mask)
    with pytest.raises(KeyError):
        exp.get_image_and_mask(2)


def test_bad_inputs_are_typed_errors():
    explainer = ImageExplainer(segmentation="grid", n_superpixels=4, n_samples=20)
    with pytest.raises(InvalidImageError, match="Received: an object of type list"):
        explainer.explain([[1, 2]], _quadrant_classifier)
    with pytest.raises(InvalidImageError, match=r"Received: shape=\(8, 8, 2\)"):
        explainer.explain(np.zeros((8, 8, 2), np.uint8), _quadrant_classifier)
    with pytest.raises(InvalidImageError, match=r"values in \[0, 255\]"):
        explainer.explain(np.full((8, 8, 3), 300.0), _quadrant_classifier)
    with pytest.raises(InvalidImageError, match="dtype"):
        explainer.explain(np.zeros((8, 8, 3), bool), _quadrant_classifier)
    with pytest.raises(ClassifierOutputError, match="shape"):
        explainer.explain(_grid_image(), lambda x: np.ones(len(x)))
    with pytest.raises(ClassifierOutputError, match="finite"):
        explainer.explain(_grid_image(), lambda x: np.full((len(x), 2), np.nan))
    with pytest.raises(ConfigurationError, match="labels"):
        explainer.explain(_grid_image(), _quadrant_classifier, labels=[7])
    with pytest.raises(ConfigurationError, match="classifier"):
        explainer.explain(_grid_image(), "model.keras")
    with pytest.raises(ConfigurationError, match="n_samples"):
        ImageExplainer(n_samples=0)
    with pytest.raises(ConfigurationError, match="n_samples"):
        ImageExplainer(num_samples=0)                        # lime's name, the same option
    with pytest.raises(ConfigurationError, match="once"):
        ImageExplainer(n_samples=10, num_samples=10)
    assert ImageExplainer(num_samples=64).config.n_samples == 64
    with pytest.raises(ConfigurationError, match="segmentation"):
        ImageExplainer(segmentation="watershed")


def test_deletion_insertion_on_a_known_classifier():
    exp = ImageExplainer(segmentation="grid", n_superpixels=16, fill=0, n_samples=400,
                         random_state=0).explain(_grid_image(), _quadrant_classifier, labels=[0])
    deletion, insertion = deletion_insertion_curves(exp, _quadrant_classifier, 0)
    assert len(deletion) == len(insertion) == 17
    # class 0 rests on four cells: hiding them first collapses it, showing them
    # first (on black) makes it dominant
    assert deletion[4] < 0.1 * deletion[0]
    assert insertion[4] > 0.9 > insertion[0]
    d_auc, i_auc = deletion_insertion_auc(exp, _quadrant_classifier, 0)
    assert d_auc < i_auc
    # the same explanation with its ranking reversed (worst first) or shuffled
    # (fixed seed) hides the evidence later, so its deletion AUC is higher
    pairs = exp.local_exp[0]
    reversed_exp = replace(exp, local_exp={0: [(f, -w) for f, w in pairs]})
    shuffled = np.random.default_rng(0).permutation([w for _, w in pairs])
    random_exp = replace(exp, local_exp={0: [(f, float(w)) for (f, _), w
                                             in zip(pairs, shuffled)]})
    reversed_auc = deletion_insertion_auc(reversed_exp, _quadrant_classifier, 0)[0]
    random_auc = deletion_insertion_auc(random_exp, _quadrant_classifier, 0)[0]
    assert d_auc < random_auc < reversed_auc


def test_stability_is_high_for_a_clear_signal():
    explainer = ImageExplainer(segmentation="grid", n_superpixels=16, fill=0, n_samples=400)
    assert stability(explainer, _grid_image(), _quadrant_classifier, 0, top_k=4) == 1.0


# --------------------------------------------------------------------------
# the real ImageNet MobileNet
# --------------------------------------------------------------------------

CAT_CLASSES = {"tabby", "tiger_cat", "Egyptian_cat", "Persian_cat", "lynx", "Siamese_cat"}


def _centroid(segments, feature):
    ys, xs = np.nonzero(segments == feature)
    h, w = segments.shape
    return xs.mean() / w, ys.mean() / h


def _on_cat(segments, feature):
    """The superpixel's centre is on the cat: left of the background strip on the
    right (x > 0.8 W) and outside the top-left corner above its ear."""
    x, y = _centroid(segments, feature)
    return x <= 0.78 and not (x < 0.12 and y < 0.2)


def _background(segments, feature):
    return _centroid(segments, feature)[0] > 0.85


def test_real_model_explains_the_cat(mobilenet):
    exp = ImageExplainer(random_state=0).explain(CHELSEA, mobilenet)
    names = [mobilenet.label_name(label) for label in exp.top_labels]
    cat = next(label for label, name in zip(exp.top_labels, names) if name in CAT_CLASSES)
    ranked = [f for f, w in sorted(exp.local_exp[cat], key=lambda x: -x[1])]
    assert all(_on_cat(exp.segments, f) for f in ranked[:5]), ranked[:5]
    background = [f for f in ranked if _background(exp.segments, f)]
    assert background and not set(background) & set(ranked[:10]), (background, ranked[:10])
    d_auc, i_auc = deletion_insertion_auc(exp, mobilenet, cat)
    assert d_auc < i_auc


def test_end_to_end_parity_with_python_lime(mobilenet):
    """Same segments, mean fill, 4000 samples: weights rank-correlate >= 0.85."""
    from lime.lime_image import LimeImageExplainer

    segments = ImageExplainer().segment(CHELSEA)
    ours = ImageExplainer(fill="mean", n_samples=4000, sampling="independent", random_state=0).explain(
        CHELSEA, mobilenet, top_labels=3, segments=segments)
    theirs = LimeImageExplainer(random_state=0).explain_instance(
        CHELSEA, mobilenet, top_labels=3, hide_color=None, num_samples=4000,
        batch_size=128, segmentation_fn=lambda image: segments)
    assert ours.top_labels == [int(x) for x in theirs.top_labels]
    for label in ours.top_labels:
        a = ours.coefficients(label)
        b = np.zeros_like(a)
        for f, w in theirs.local_exp[label]:
            b[f] = w
        rho = spearmanr(a, b).statistic
        assert rho >= 0.85, (label, rho)
