"""``predict_rows``: design rows of several images in one fixed-shape device batch.

The contract the batch job relies on: an image's rows get the same
probabilities, bitwise, whichever other images' rows share their batches and
wherever they sit in them (same runtime, same ``row_batch_size``), and those
probabilities are the model's on the perturbed images (``perturb_batch``).
"""

from __future__ import annotations

import numpy as np
import pytest

from lime_spark.adapters import FunctionClassifier
from lime_spark.exceptions import (ConfigurationError, InvalidImageError, ModelLoadError,
                                   SegmentationError)
from lime_spark.models import Classifier, export_onnx, select_runtime
from lime_spark.models.onnx import rows_graph
from lime_spark.perturb import perturb_batch, perturb_rows
from lime_spark.spark.model_cache import ModelPayload
from tests.conftest import tiny_keras_model

TOLERANCE = 1e-5


def _grid(height: int, width: int, rows: int, cols: int, *, transpose: bool = False):
    r = np.minimum(np.arange(height) * rows // height, rows - 1)
    c = np.minimum(np.arange(width) * cols // width, cols - 1)
    return ((c[None, :] * rows + r[:, None]) if transpose
            else (r[:, None] * cols + c[None, :])).astype(np.int32)


def _images(size, seed=0):
    """Three images with different segmentations: K = 16, 6 and 64."""
    height, width = size
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (3, height, width, 3)).astype(np.float32)
    fills = np.stack([np.full((height, width, 3), 117.0, np.float32),
                      np.full((height, width, 3), 255.0, np.float32),
                      rng.integers(0, 256, (height, width, 3)).astype(np.float32)])
    segments = np.stack([_grid(height, width, 4, 4), _grid(height, width, 2, 3, transpose=True),
                         _grid(height, width, 8, 8)])
    return images, fills, segments, (16, 6, 64)


def _design(rng, n, k, width=None):
    z = np.zeros((n, width or k), np.float32)
    z[:, :k] = rng.integers(0, 2, (n, k))
    z[0, :k] = 1
    return z


def _reference(clf, images, fills, segments, row_image, design):
    """The model on the perturbed images built with numpy (perturb_batch per image)."""
    return clf(perturb_rows(images, fills, segments, row_image, design))


@pytest.fixture(scope="module")
def tiny_tf():
    return Classifier(tiny_keras_model(), label_names=["a", "b", "c"], batch_size=32, name="tiny")


@pytest.fixture(scope="module")
def tiny_onnx(tiny_tf):
    clf = Classifier(tiny_tf.model, label_names=["a", "b", "c"], batch_size=32, name="tiny",
                     digest=tiny_tf.digest)
    return select_runtime(clf, "onnx")


@pytest.fixture(params=["tensorflow", "onnx"])
def tiny(request, tiny_tf, tiny_onnx):
    return tiny_tf if request.param == "tensorflow" else tiny_onnx


def _assert_rows_do_not_depend_on_the_batch(clf, images, fills, segments, ks, seed=0):
    """Image 0's 64 rows alone (2 runs of 32) against interleaved with images 1 and 2."""
    rng = np.random.default_rng(seed)
    a = _design(rng, 64, ks[0])
    alone = clf.predict_rows(images[:1], fills[:1], segments[:1], np.zeros(64, np.int32), a)
    assert alone.shape == (64, clf.n_classes)
    # the rows of the other images; every row padded to a wider Kmax than any K (so
    # TensorFlow's design is 128 columns here, 64 alone)
    others = [_design(rng, 40, ks[1]), _design(rng, 23, ks[2])]
    width = max(ks) + 6
    design = np.zeros((64 + 40 + 23, width), np.float32)
    design[:64, :ks[0]] = a
    design[64:104, :ks[1]] = others[0][:, :ks[1]]
    design[104:, :ks[2]] = others[1][:, :ks[2]]
    row_image = np.repeat(np.arange(3, dtype=np.int32), [64, 40, 23])
    for trial in range(3):
        order = rng.permutation(len(row_image)) if trial else np.arange(len(row_image))[::-1]
        # the images in another order too: image 0 is image 2 of the batch
        relabel = np.array([2, 0, 1])
        inverse = np.argsort(relabel)
        got = clf.predict_rows(images[inverse], fills[inverse], segments[inverse],
                               relabel[row_image[order]].astype(np.int32), design[order])
        back = np.empty_like(got)
        back[order] = got
        assert np.array_equal(back[:64], alone), (clf.runtime, trial)
        # and the other images' rows are theirs alone
        for m, rows in ((1, slice(64, 104)), (2, slice(104, None))):
            z = design[rows][:, :ks[m]]
            own = clf.predict_rows(images[m:m + 1], fills[m:m + 1], segments[m:m + 1],
                                   np.zeros(len(z), np.int32), z)
            assert np.array_equal(back[rows], own), (clf.runtime, trial, m)
    return alone


def test_rows_are_identical_whatever_shares_their_batch(tiny):
    images, fills, segments, ks = _images(tiny.input_size)
    assert tiny.row_batch_size == 32
    _assert_rows_do_not_depend_on_the_batch(tiny, images, fills, segments, ks)


def test_rows_agree_with_the_numpy_reference_and_predict_design(tiny):
    images, fills, segments, ks = _images(tiny.input_size, seed=1)
    rng = np.random.default_rng(1)
    # three images (M not a power of two), Kmax 70 > every K, rows of all images mixed
    row_image = rng.integers(0, 3, 77).astype(np.int32)
    design = np.zeros((77, 70), np.float32)
    for m, k in enumerate(ks):
        rows = row_image == m
        design[rows, :k] = rng.integers(0, 2, (rows.sum(), k))
    got = tiny.predict_rows(images, fills, segments, row_image, design)
    expected = _reference(tiny, images, fills, segments, row_image, design)
    assert got.shape == (77, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    assert np.ptp(got, axis=0).max() > 100 * TOLERANCE          # rows differ from each other
    for m, k in enumerate(ks):
        rows = row_image == m
        by_design = tiny.predict_design(images[m], fills[m], segments[m], design[rows, :k])
        np.testing.assert_allclose(got[rows], by_design, rtol=0, atol=TOLERANCE)


def test_fewer_and_more_rows_than_the_device_batch(tiny):
    images, fills, segments, ks = _images(tiny.input_size, seed=2)
    rng = np.random.default_rng(2)
    design = _design(rng, 70, ks[0])
    row_image = np.zeros(70, np.int32)
    full = tiny.predict_rows(images[:1], fills[:1], segments[:1], row_image, design)
    # 5 rows (padded to one run of 32 inside) are the first 5 of the 70
    few = tiny.predict_rows(images[:1], fills[:1], segments[:1], row_image[:5], design[:5])
    assert np.array_equal(few, full[:5])
    # a call of 32 rows after 32 rows: the same runs as the 70-row call's
    second = tiny.predict_rows(images[:1], fills[:1], segments[:1], row_image[32:64],
                               design[32:64])
    assert np.array_equal(second, full[32:64])
    empty = tiny.predict_rows(images[:1], fills[:1], segments[:1], row_image[:0], design[:0])
    assert empty.shape == (0, 3)


def test_rows_compile_once_for_every_number_of_images_and_width(tiny_tf):
    images, fills, segments, ks = _images(tiny_tf.input_size, seed=3)
    rng = np.random.default_rng(3)
    tiny_tf.predict_rows(images[:1], fills[:1], segments[:1], np.zeros(3, np.int32),
                         _design(rng, 3, ks[0]))
    traces = tiny_tf.trace_count
    for m in (1, 2, 3):
        for width in (64, 65, 200):
            row_image = (np.arange(40) % m).astype(np.int32)
            design = np.zeros((40, width), np.float32)
            design[:, :16] = rng.integers(0, 2, (40, 16))
            tiny_tf.predict_rows(images[:m], fills[:m], segments[:m], row_image, design)
    assert tiny_tf.trace_count == traces           # XLA compiles shapes; nothing retraces
    assert tiny_tf.jit


def test_row_batch_size_sets_the_device_batch():
    clf = Classifier(tiny_keras_model(), batch_size=32, name="tiny", row_batch_size=16)
    assert clf.row_batch_size == 16
    images, fills, segments, ks = _images(clf.input_size, seed=4)
    _assert_rows_do_not_depend_on_the_batch(clf, images, fills, segments, ks, seed=4)
    rng = np.random.default_rng(4)
    design = _design(rng, 20, ks[0])
    before = clf.predict_rows(images[:1], fills[:1], segments[:1], np.zeros(20, np.int32), design)
    clf.row_batch_size = 64
    after = clf.predict_rows(images[:1], fills[:1], segments[:1], np.zeros(20, np.int32), design)
    np.testing.assert_allclose(before, after, rtol=0, atol=TOLERANCE)
    plain = Classifier(clf.model, batch_size=32, jit=False)
    np.testing.assert_allclose(
        plain.predict_rows(images[:1], fills[:1], segments[:1], np.zeros(20, np.int32), design),
        after, rtol=0, atol=TOLERANCE)
    with pytest.raises(ConfigurationError, match="row_batch_size >= 1"):
        clf.row_batch_size = 0


@pytest.mark.parametrize("runtime", ["tensorflow", "onnx"])
def test_grayscale_binary_model(runtime):
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((20, 36, 1)), keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(3, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(1)])                                          # one logit
    clf = select_runtime(Classifier(model, output_activation="sigmoid", batch_size=16,
                                    name="binary-grey"), runtime)
    assert (clf.input_channels, clf.n_classes, clf.row_batch_size) == (1, 2, 16)
    images, fills, segments, ks = _images((20, 36), seed=5)
    alone = _assert_rows_do_not_depend_on_the_batch(clf, images, fills, segments, ks, seed=5)
    np.testing.assert_allclose(alone.sum(axis=1), 1.0, rtol=1e-6)
    rng = np.random.default_rng(5)
    row_image = rng.integers(0, 3, 21).astype(np.int32)
    design = rng.integers(0, 2, (21, 64)).astype(np.float32)
    design[row_image == 0, 16:] = 0
    design[row_image == 1, 6:] = 0
    np.testing.assert_allclose(
        clf.predict_rows(images, fills, segments, row_image, design),
        _reference(clf, images, fills, segments, row_image, design), rtol=0, atol=TOLERANCE)


def test_real_mobilenet_on_onnx_runtime(mobilenet):
    if mobilenet.runtime == "onnx":
        clf = Classifier.from_onnx(mobilenet.onnx_bytes, input_size=mobilenet.input_size,
                                   n_classes=mobilenet.n_classes, preprocess="mobilenet",
                                   batch_size=mobilenet.batch_size, digest=mobilenet.digest,
                                   threads=1)
    else:
        clf = select_runtime(Classifier(mobilenet.model, preprocess="mobilenet",
                                        name="mobilenet", digest=mobilenet.digest), "onnx")
    assert clf.runtime == "onnx" and clf.row_batch_size == 32
    from skimage import data

    from lime_spark import resize_image

    height, width = clf.input_size
    cat = resize_image(data.chelsea(), (height, width)).astype(np.float32)
    coffee = resize_image(data.coffee(), (height, width)).astype(np.float32)
    astronaut = resize_image(data.astronaut(), (height, width)).astype(np.float32)
    images = np.stack([cat, coffee, astronaut])
    fills = np.stack([np.full_like(cat, 128.0), coffee[::-1], np.zeros_like(cat)])
    segments = np.stack([_grid(height, width, 6, 6), _grid(height, width, 4, 5, transpose=True),
                         _grid(height, width, 8, 8)])
    alone = _assert_rows_do_not_depend_on_the_batch(clf, images, fills, segments, (36, 20, 64))
    rng = np.random.default_rng(0)
    a = _design(rng, 64, 36)
    np.testing.assert_allclose(alone, clf.predict_design(cat, fills[0], segments[0], a),
                               rtol=0, atol=TOLERANCE)
    assert np.ptp(alone, axis=0).max() > 0.01


def test_function_classifier_builds_rows_on_the_host():
    calls = []

    def fn(batch):
        calls.append(batch.shape)
        flat = batch.reshape(len(batch), -1).astype(np.float64)
        return np.stack([flat.mean(1), flat.std(1)], axis=1)

    predictor = FunctionClassifier(fn, batch_size=4)
    images, fills, segments, ks = _images((12, 10), seed=6)
    rng = np.random.default_rng(6)
    row_image = np.array([2, 0, 1, 0, 2, 2, 1], np.int32)
    design = rng.integers(0, 2, (7, 64)).astype(np.float32)
    got = predictor.predict_rows(images, fills, segments, row_image, design)
    assert calls == [(7, 12, 10, 3)]                # one call for all rows, whatever batch_size
    expected = np.stack([fn(perturb_batch(images[m], fills[m], segments[m], design[b:b + 1]))[0]
                         for b, m in enumerate(row_image)])
    np.testing.assert_array_equal(got, expected)
    assert predictor.n_classes == 2
    empty = predictor.predict_rows(images, fills, segments, row_image[:0], design[:0])
    assert empty.shape == (0, 2)


def test_perturb_rows_is_perturb_batch_row_by_row():
    images, fills, segments, ks = _images((9, 7), seed=9)
    images, fills = images.astype(np.uint8), fills.astype(np.uint8)
    rng = np.random.default_rng(9)
    row_image = rng.integers(0, 3, 40).astype(np.int32)
    design = rng.integers(0, 2, (40, 64)).astype(np.float32)
    got = perturb_rows(images, fills, segments, row_image, design)
    assert got.dtype == np.uint8 and got.shape == (40, 9, 7, 3)
    for b, m in enumerate(row_image):
        assert np.array_equal(got[b], perturb_batch(images[m], fills[m], segments[m],
                                                    design[b:b + 1])[0])


@pytest.mark.parametrize("make", ["tensorflow", "onnx", "function"])
def test_wrong_inputs_are_typed_errors_that_say_what_was_wrong(make, tiny_tf, tiny_onnx):
    predictor = {"tensorflow": tiny_tf, "onnx": tiny_onnx,
                 "function": FunctionClassifier(tiny_tf, batch_size=8)}[make]
    images, fills, segments, ks = _images((32, 32), seed=7)
    row_image = np.array([0, 1, 1], np.int32)
    design = np.ones((3, 16), np.float32)
    ok = (images[:2], fills[:2], segments[:2], row_image, design)
    assert predictor.predict_rows(*ok).shape == (3, 3)

    def call(**change):
        args = dict(zip(("images", "fills", "segments", "row_image", "design"), ok))
        args.update(change)
        return predictor.predict_rows(**args)

    with pytest.raises(ConfigurationError, match=r"Expected row_image in 0\.\.1 .*Received: "
                                                 r"values in 0\.\.2"):
        call(row_image=np.array([0, 2, 1], np.int32))
    with pytest.raises(ConfigurationError, match=r"Expected row_image of shape \(3,\)"):
        call(row_image=np.array([0, 1], np.int32))
    with pytest.raises(ConfigurationError, match=r"Expected design with at least 16 columns "
                                                 r"\(image 0 has superpixel ids up to 15\)"):
        call(design=np.ones((3, 12), np.float32))
    with pytest.raises(ConfigurationError, match=r"Expected design of shape \(B, Kmax\)"):
        call(design=np.ones(3, np.float32))
    with pytest.raises(InvalidImageError, match=r"Expected fills of the images' shape "
                                                r"\(2, 32, 32, 3\).*Received: shape=\(3, 32"):
        call(fills=fills)                                          # M mismatch
    with pytest.raises(SegmentationError, match=r"Expected segments of shape \(M, H, W\) = "
                                                r"\(2, 32, 32\).*Received: shape=\(1, 32, 32\)"):
        call(segments=segments[:1])
    with pytest.raises(SegmentationError, match="Expected superpixel ids >= 0"):
        call(segments=segments[:2] - 1)
    with pytest.raises(InvalidImageError, match=r"Expected images of shape \(M, H, W, 3\)"):
        call(images=images[0], fills=fills[0])
    if make != "function":
        with pytest.raises(InvalidImageError, match="Expected images of size 32x32x3"):
            call(images=images[:2, :16], fills=fills[:2, :16], segments=segments[:2, :16])


def test_executor_copy_predicts_rows_from_the_shipped_graph(tiny_onnx):
    copy = ModelPayload.from_classifier(tiny_onnx).build(threads=1)
    assert copy.model is None and copy.runtime == "onnx" and copy.row_batch_size == 32
    images, fills, segments, ks = _images(copy.input_size, seed=8)
    row_image = np.array([1, 0, 2, 2, 0], np.int32)
    design = np.ones((5, 64), np.float32)
    design[:, ::3] = 0
    assert np.array_equal(copy.predict_rows(images, fills, segments, row_image, design),
                          tiny_onnx.predict_rows(images, fills, segments, row_image, design))


def test_rows_graph_needs_a_graph_of_this_version(tiny_tf):
    import onnx

    model = onnx.load_from_string(export_onnx(tiny_tf))
    assert {p.key for p in model.metadata_props} == {"lime_spark.front"}
    del model.metadata_props[:]
    with pytest.raises(ModelLoadError, match="export the model again"):
        rows_graph(model.SerializeToString())
    twice = onnx.load_from_string(rows_graph(rows_graph(export_onnx(tiny_tf))))
    assert [i.name.split(":")[0] for i in twice.graph.input] == [
        "design", "segments", "image", "fill", "row_image"]


def test_auto_probes_the_multi_image_graph_too(tiny_tf, monkeypatch):
    from lime_spark.models import onnx as onnx_module

    other = Classifier(tiny_keras_model(scale=3.0), batch_size=32, name="other")
    other_rows = onnx_module.rows_graph(export_onnx(other))
    monkeypatch.setattr(onnx_module, "rows_graph", lambda data: other_rows)
    clf = Classifier(tiny_tf.model, batch_size=32, name="tiny")
    select_runtime(clf, "auto", gpu=False)
    assert clf.runtime == "tensorflow"
    assert "disagree on the multi-image probe" in clf.runtime_reason
