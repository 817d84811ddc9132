"""AnchorExplainer: anchors (Ribeiro et al. 2018) as step generators.

Most tests use an image of 5 x 5 grid cells and numpy classifiers that look
only at which cells are visible (a hidden cell takes the black fill), so the
right anchors are known.  The slow test trains the shapes CNN
(:mod:`lime_spark.shapes`, as ``test_known_evidence.py`` does) and checks
that anchors lie on the object and hold their precision.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lime_spark import AnchorExplainer, AnchorExplanation, ConfigurationError
from lime_spark.adapters import FunctionClassifier
from lime_spark.anchors import (
    AnchorConfig,
    AnchorRequest,
    anchor_coverage,
    anchor_precision,
    coverage_masks,
)
from lime_spark.sampling import derive_seed
from lime_spark.shapes import superpixel_overlap
from lime_spark.steps import run_steps

from .test_known_evidence import MIN_EXPLAINED, explained, trained  # noqa: F401 (fixtures)

GRID, CELL = 5, 8
K = GRID * GRID
SIDE = GRID * CELL
CENTRES = (np.arange(GRID) * CELL + CELL // 2)
BLACK = (0, 0, 0)


def _cells_image(seed: int = 0) -> np.ndarray:
    """SIDE x SIDE image of GRID x GRID cells, each a distinct non-black colour."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 256, size=(K, 3), dtype=np.uint8)
    segments = _grid_segments()
    return colours[segments]


def _grid_segments() -> np.ndarray:
    ids = np.arange(SIDE) // CELL
    return (ids[:, None] * GRID + ids[None, :]).astype(np.int32)


def _visible(images: np.ndarray) -> np.ndarray:
    """(N, K) bool: which cells are shown (the black fill hides a cell)."""
    centres = images[:, CENTRES[:, None], CENTRES[None, :]]       # (N, GRID, GRID, 3)
    return centres.reshape(len(images), K, 3).any(axis=-1)


def _score_classifier(weights: np.ndarray, cutoff: float):
    """Class 0 when the visible cells' weights add up to more than ``cutoff``, else 1."""
    def classify(images):
        score = _visible(np.asarray(images)) @ weights
        p0 = np.where(score > cutoff, 0.9, 0.1)
        return np.stack([p0, 1 - p0], axis=1)
    return classify


def _explainer(**options) -> AnchorExplainer:
    return AnchorExplainer(fill=BLACK, segmentation="grid", n_superpixels=K, **options)


def _both_cells(images):
    """Class 0 exactly when cells 6 and 7 are both visible."""
    visible = _visible(np.asarray(images))
    p0 = np.where(visible[:, 6] & visible[:, 7], 0.95, 0.05)
    return np.stack([p0, 1 - p0], axis=1)


def _noisy(images):
    """Class 0 when enough of cells 0-9 show (weights differ), so precisions are spread."""
    weights = np.r_[np.linspace(3, 1, 10), np.zeros(K - 10)]
    return _score_classifier(weights, 7.0)(images)


# --------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("threshold", 0), ("threshold", 1.5), ("threshold", "high"),
    ("delta", 0), ("delta", 1), ("tau", 0), ("tau", 1.0), ("epsilon_stop", 0),
    ("beam_size", 0), ("beam_size", 1.5), ("batch_size", 0), ("coverage_samples", 0),
    ("max_anchor_size", 0), ("n_superpixels", 1), ("segmentation", "watershed"),
    ("fill_params", 3),
])
def test_bad_options_name_the_option(name, value):
    with pytest.raises(ConfigurationError, match=rf"Expected {name}\b.*Received: {name}="):
        AnchorExplainer(**{name: value})


def test_unknown_option_and_bad_config():
    with pytest.raises(ConfigurationError, match="Unknown AnchorExplainer option.*thresh"):
        AnchorExplainer(thresh=0.9)
    with pytest.raises(ConfigurationError, match="Expected config to be an AnchorConfig"):
        AnchorExplainer({"threshold": 0.9})
    config = AnchorConfig(threshold=0.9, beam_size=1)
    assert AnchorExplainer(config, delta=0.2).config == AnchorConfig(
        threshold=0.9, beam_size=1, delta=0.2)


def test_bad_label_and_classifier():
    image = _cells_image()
    with pytest.raises(ConfigurationError, match=r"Expected label in 0\.\.1"):
        _explainer(random_state=0).explain(image, _both_cells, label=2)
    with pytest.raises(ConfigurationError, match="Expected classifier"):
        _explainer(random_state=0).explain(image, "not a model")


# --------------------------------------------------------------------------
# known anchors
# --------------------------------------------------------------------------

def test_two_cell_object_is_the_anchor():
    image = _cells_image()
    exp = _explainer(random_state=0).explain(image, _both_cells)
    assert isinstance(exp, AnchorExplanation)
    assert exp.label == 0 and exp.success
    assert sorted(exp.anchor) == [6, 7]
    assert exp.precision == 1.0 and 0.9 < exp.precision_lower <= 1.0
    assert abs(exp.coverage - 0.25) < 0.02          # both cells shown in 1/4 of the masks
    assert exp.n_samples > exp.n_model_calls >= 2
    assert exp.predictions.shape == (2,) and exp.predictions.argmax() == 0
    assert exp.label_name() == "0" and exp.n_superpixels == K
    shown, mask = exp.get_image_and_mask()
    np.testing.assert_array_equal(shown, image)
    np.testing.assert_array_equal(mask, np.isin(_grid_segments(), [6, 7]))
    hidden, _ = exp.get_image_and_mask(hide_rest=True)
    assert hidden[mask == 1].tolist() == image[mask == 1].tolist()
    assert not hidden[mask == 0].any()


def test_empty_anchor_when_the_label_always_holds():
    def always_zero(images):
        return np.tile([0.8, 0.2], (len(images), 1))

    explainer = _explainer(random_state=0)
    exp = explainer.explain(_cells_image(), always_zero)
    assert exp.anchor == () and exp.success
    assert exp.precision == 1.0 and exp.coverage == 1.0
    # one request: the original image and the empty anchor's first batch
    assert exp.n_model_calls == 1 and exp.n_samples == 1 + explainer.config.batch_size
    assert not exp.get_image_and_mask()[1].any()


def test_empty_anchor_precision_is_the_share_of_perturbations_with_the_label():
    # class 0 unless all of cells 0-3 are hidden: the empty anchor's precision is 15/16
    def mostly_zero(images):
        p0 = np.where(_visible(np.asarray(images))[:, :4].any(axis=1), 0.9, 0.1)
        return np.stack([p0, 1 - p0], axis=1)

    exp = _explainer(random_state=1, threshold=0.9).explain(_cells_image(), mostly_zero)
    assert exp.anchor == ()
    assert abs(exp.precision - 15 / 16) < 0.04


def test_no_anchor_reaches_an_impossible_label():
    def always_zero(images):
        return np.tile([0.8, 0.2], (len(images), 1))

    exp = _explainer(random_state=0, max_anchor_size=2).explain(_cells_image(), always_zero,
                                                                 label=1)
    assert not exp.success and exp.label == 1
    assert 1 <= len(exp.anchor) <= 2 and exp.precision == 0.0


# --------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------

def _key(exp):
    return (exp.anchor, exp.precision, exp.precision_lower, exp.coverage, exp.n_samples,
            exp.n_model_calls, exp.label)


def test_deterministic_per_seed_and_image():
    image = _cells_image()
    first = _explainer(random_state=3).explain(image, _noisy)
    again = _explainer(random_state=3).explain(image, _noisy)
    assert _key(first) == _key(again)
    assert _key(_explainer().explain(image, _noisy, random_state=3)) == _key(first)
    others = {_key(_explainer(random_state=seed).explain(image, _noisy)) for seed in (4, 5, 6)}
    assert len(others | {_key(first)}) > 1


def test_result_does_not_depend_on_batch_mates():
    # two images' requests answered together, one predict_rows call per round,
    # as the pipeline does: each result equals its explanation alone
    images = [_cells_image(0), _cells_image(1)]
    explainer = _explainer()
    alone = [explainer.explain(img, _noisy, random_state=i) for i, img in enumerate(images)]
    predictor = FunctionClassifier(_noisy, batch_size=100)
    gens = [explainer.steps(explainer.prepare(img, predictor, random_state=i))
            for i, img in enumerate(images)]
    pending = [next(g) for g in gens]
    results = [None, None]
    while any(r is None for r in results):
        live = [i for i in range(2) if results[i] is None]
        width = max(pending[i].design.shape[1] for i in live)
        design = np.zeros((0, width), np.uint8)
        row_image = []
        for j, i in enumerate(live):
            d = pending[i].design
            design = np.vstack([design, np.pad(d, ((0, 0), (0, width - d.shape[1])))])
            row_image += [j] * d.shape[0]
        probs = predictor.predict_rows(
            np.stack([pending[i].image for i in live]),
            np.stack([pending[i].fill_image for i in live]),
            np.stack([pending[i].segments for i in live]), np.array(row_image), design)
        offset = 0
        for i in live:
            n = pending[i].design.shape[0]
            try:
                pending[i] = gens[i].send(probs[offset:offset + n])
            except StopIteration as stop:
                results[i] = stop.value
            offset += n
    assert [_key(r) for r in results] == [_key(a) for a in alone]


# --------------------------------------------------------------------------
# requests
# --------------------------------------------------------------------------

def test_requests_carry_several_arms_and_all_columns():
    # an anchor of several cells, so the beam holds two parents and pulls go in pairs
    image = _cells_image()
    weights = np.r_[np.linspace(3, 1, 12), np.zeros(K - 12)]
    classify = _score_classifier(weights, 0.6 * weights.sum())
    explainer = _explainer(random_state=2, batch_size=50)
    prepared = explainer.prepare(image, classify)
    steps = explainer.steps(prepared)
    requests, probs = [], None
    predictor = FunctionClassifier(classify, batch_size=100)
    while True:
        try:
            request = steps.send(probs)
        except StopIteration as stop:
            exp = stop.value
            break
        requests.append(request)
        probs = predictor.predict_design(request.image, request.fill_image, request.segments,
                                         request.design)
    assert all(isinstance(r, AnchorRequest) for r in requests)
    assert all(r.design.shape[1] == K and set(np.unique(r.design)) <= {0, 1}
               for r in requests)
    first = requests[0]
    assert first.original and first.arms == ((),) and first.design[0].all()
    assert first.design.shape[0] == 1 + 50
    for r in requests:
        blocks = r.design[1:] if r.original else r.design
        assert blocks.shape[0] == len(r.arms) * r.rows_per_arm
        for i, arm in enumerate(r.arms):                  # each block keeps its anchor
            block = blocks[i * r.rows_per_arm:(i + 1) * r.rows_per_arm]
            assert block[:, list(arm)].all()
    pulled = sum(len(r.arms) for r in requests)
    assert max(len(r.arms) for r in requests) >= 2
    assert pulled > len(requests)                         # arms share requests
    assert exp.n_model_calls == len(requests)
    assert exp.n_samples == sum(r.design.shape[0] for r in requests)


# --------------------------------------------------------------------------
# the threshold
# --------------------------------------------------------------------------

REMEASURE = 2000


@pytest.mark.parametrize("threshold", [0.8, 0.9, 0.95])
def test_threshold_is_honoured_on_fresh_samples(threshold):
    # Margin: the acceptance rule's own slack (epsilon_stop: mean >= threshold, lower
    # bound > threshold - epsilon_stop) plus 3 standard errors of the re-measurement
    # on REMEASURE samples.
    explainer = _explainer(threshold=threshold)
    margin = explainer.config.epsilon_stop + 3 * math.sqrt(
        threshold * (1 - threshold) / REMEASURE)
    remeasured = []
    for case in range(4):
        rng = np.random.default_rng(100 + case)
        weights = np.where(rng.random(K) < 0.4, rng.uniform(0.5, 3, K), 0.0)
        classify = _score_classifier(weights, 0.45 * weights.sum())
        image = _cells_image(case)
        exp = explainer.explain(image, classify, random_state=case)
        assert exp.success
        p = anchor_precision(image, exp.fill_image, exp.segments, exp.anchor, exp.label,
                             classify, n_samples=REMEASURE,
                             random_state=derive_seed(case, "remeasure"))
        remeasured.append(p)
        assert p >= threshold - margin, (case, exp.anchor, exp.precision, p)
    assert np.mean(remeasured) >= threshold - 3 * math.sqrt(
        threshold * (1 - threshold) / REMEASURE / len(remeasured))


def test_coverage_helpers():
    masks = coverage_masks(4000, 10, random_state=0)
    assert masks.shape == (4000, 10) and set(np.unique(masks)) == {0, 1}
    assert anchor_coverage((), masks) == 1.0
    assert abs(anchor_coverage((3,), masks) - 0.5) < 0.03
    assert abs(anchor_coverage((1, 2, 7), masks) - 0.125) < 0.02


# --------------------------------------------------------------------------
# a project Classifier (the tiny Keras model)
# --------------------------------------------------------------------------

def test_project_classifier_and_its_plain_function(tiny_classifier):
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    explainer = AnchorExplainer(segmentation="grid", n_superpixels=16, random_state=0,
                                max_anchor_size=4)
    exp = explainer.explain(image, tiny_classifier)
    assert exp.label == int(np.argmax(tiny_classifier(image[None])[0]))
    assert exp.label_names == ["a", "b", "c"] and exp.label_name() in ("a", "b", "c")
    assert len(exp.anchor) <= 4 and 0 <= exp.precision <= 1
    again = explainer.explain(image, tiny_classifier)
    assert _key(again) == _key(exp)
    plain = explainer.explain(image, lambda x: tiny_classifier(x))
    assert plain.label == exp.label and plain.label_names is None


# --------------------------------------------------------------------------
# known evidence: the shapes CNN (slow: trains the model)
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_anchors_lie_on_the_object_and_hold(trained, explained):  # noqa: F811
    classifier, test_x, *_ = trained
    ids, labels, masks = explained
    assert len(ids) >= MIN_EXPLAINED
    explainer = AnchorExplainer()
    on_object, holds = [], []
    for i, label, mask in zip(ids, labels, masks):
        exp = explainer.explain(test_x[i], classifier, random_state=int(i))
        assert exp.label == label
        overlap = superpixel_overlap(exp.segments, mask)
        on_object.append(bool(len(exp.anchor)) and overlap[list(exp.anchor)].max() > 0.5)
        p = anchor_precision(test_x[i], exp.fill_image, exp.segments, exp.anchor, exp.label,
                             classifier, n_samples=1000,
                             random_state=derive_seed(int(i), "remeasure"))
        # sampling error of 1000 fresh samples at 0.95: 3 standard errors
        holds.append(p >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / 1000))
    assert np.mean(on_object) >= 0.90
    assert np.mean(holds) >= 0.95
