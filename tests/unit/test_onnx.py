"""The ONNX Runtime runtime: the exported fused graph against TensorFlow, and ``auto``'s choice.

Every comparison runs the real conversion (tf2onnx) and the real ONNX
Runtime session against the Classifier's own TensorFlow path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from lime_spark import ImageExplainer
from lime_spark.exceptions import ConfigurationError, ModelLoadError
from lime_spark.models import Classifier, export_onnx, select_runtime
from lime_spark.spark.model_cache import ModelPayload
from tests.conftest import make_model, tiny_keras_model

TOLERANCE = 1e-4


def _twin(classifier: Classifier, runtime: str = "onnx") -> Classifier:
    """A second Classifier on the same Keras model, on ``runtime``."""
    twin = Classifier(classifier.model, preprocess=classifier.preprocess_name,
                      label_names=classifier.label_names, batch_size=classifier.batch_size,
                      output_activation=classifier.output_activation,
                      input_size=classifier.input_size, name=classifier.name,
                      digest=classifier.digest)
    return select_runtime(twin, runtime)


def _inputs(classifier: Classifier, seed: int = 0):
    height, width = classifier.input_size
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
    fill = np.full((height, width, 3), 117.0, np.float32)
    segments = (np.arange(height)[:, None] * 3 // height * 3
                + np.arange(width)[None, :] * 3 // width).astype(np.int32)
    design = rng.integers(0, 2, (70, 9)).astype(np.float32)   # 70: a batch and a partial one
    images = rng.integers(0, 256, (37, height, width, 3)).astype(np.uint8)
    return image, fill, segments, design, images


def _assert_runtimes_agree(tf_clf: Classifier, onnx_clf: Classifier) -> None:
    assert (tf_clf.runtime, onnx_clf.runtime) == ("tensorflow", "onnx")
    image, fill, segments, design, images = _inputs(tf_clf)
    a = tf_clf.predict_design(image, fill, segments, design)
    b = onnx_clf.predict_design(image, fill, segments, design)
    assert a.shape == b.shape == (70, tf_clf.n_classes)
    assert np.abs(a - b).max() <= TOLERANCE
    a, b = tf_clf(images), onnx_clf(images)
    assert a.shape == b.shape == (37, tf_clf.n_classes)
    assert np.abs(a - b).max() <= TOLERANCE
    # the rows differ from each other, so agreement is not a constant output agreeing
    assert np.ptp(a, axis=0).max() > 10 * TOLERANCE


def test_real_mobilenet_agrees_on_both_paths_and_in_explanations(mobilenet):
    onnx_clf, tf_clf = _twin(mobilenet), _twin(mobilenet, "tensorflow")
    _assert_runtimes_agree(tf_clf, onnx_clf)
    from skimage import data

    explainer = ImageExplainer(n_samples=300, random_state=3)
    a = explainer.explain(data.chelsea(), tf_clf)
    b = explainer.explain(data.chelsea(), onnx_clf)
    assert a.top_labels == b.top_labels
    for label in a.top_labels:
        rho = spearmanr(a.coefficients(label), b.coefficients(label)).statistic
        assert rho >= 0.999, (label, rho)


@pytest.mark.parametrize("preprocess,scale", [
    ("vgg16", 255 / 64),            # caffe: BGR minus ImageNet means, about -124..151
    ("mobilenet", 255 * 4),         # tf: -1..1
    ("densenet", 255 * 2),          # torch: /255, ImageNet mean and std, about -2..2.6
])
def test_every_preprocess_input_mode_is_inside_the_graph(preprocess, scale):
    clf = Classifier(tiny_keras_model(input_shape=(24, 24, 3), outputs=4, scale=scale),
                     preprocess=preprocess, batch_size=32, name=f"tiny-{preprocess}")
    _assert_runtimes_agree(clf, _twin(clf))


def test_non_square_grayscale_input_and_sigmoid_output():
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((20, 36, 1)), keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(3, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(1)])                                          # one logit
    clf = Classifier(model, output_activation="sigmoid", batch_size=16, name="binary-grey")
    assert (clf.input_size, clf.input_channels, clf.n_classes) == ((20, 36), 1, 2)
    _assert_runtimes_agree(clf, _twin(clf))


def test_executor_copy_rebuilt_from_the_onnx_payload(tiny_classifier):
    onnx_clf = _twin(tiny_classifier)
    payload = ModelPayload.from_classifier(onnx_clf)
    assert payload.runtime == "onnx" and payload.keras_bytes == b"" and payload.onnx_bytes
    copy = payload.build(threads=1)
    assert copy.model is None and copy.runtime == "onnx"
    assert (copy.digest, copy.label_names, copy.n_classes) == (
        tiny_classifier.digest, ["a", "b", "c"], 3)
    image, fill, segments, design, images = _inputs(tiny_classifier)
    assert np.array_equal(copy.predict_design(image, fill, segments, design),
                          onnx_clf.predict_design(image, fill, segments, design))
    assert payload.key != ModelPayload.from_classifier(tiny_classifier).key
    with pytest.raises(ConfigurationError, match="only its ONNX graph"):
        copy.use_tensorflow("no")


def test_the_same_model_shipped_again_hits_the_workers_cache(tiny_model):
    """tf2onnx names nodes anew on every export and .keras files carry their saving time:
    the cache key must not depend on either, or every job reloads the model."""
    from lime_spark.models import load_classifier

    for runtime in ("onnx", "tensorflow"):
        first, second = (ModelPayload.from_classifier(
            load_classifier(tiny_model, runtime=runtime, preprocess="none"))
            for _ in range(2))
        assert first.key == second.key, runtime
    other = make_model(Path(tiny_model).with_name("other.keras"), outputs=4)
    assert ModelPayload.from_classifier(load_classifier(other, runtime="onnx")).key != first.key


def test_auto_uses_onnx_on_cpu_and_says_why(tiny_classifier):
    clf = Classifier(tiny_classifier.model, batch_size=32, name="tiny")
    select_runtime(clf, "auto", gpu=False)
    assert clf.runtime == "onnx"
    assert "agrees with TensorFlow" in clf.runtime_reason


def test_auto_keeps_tensorflow_on_gpu_executors(tiny_classifier):
    clf = Classifier(tiny_classifier.model, batch_size=32, name="tiny")
    select_runtime(clf, "auto", gpu=True)
    assert clf.runtime == "tensorflow" and clf.onnx_bytes is None
    assert "GPU" in clf.runtime_reason


def test_auto_falls_back_on_a_forced_disagreement(tiny_classifier, caplog):
    clf = Classifier(tiny_classifier.model, batch_size=32, name="tiny")
    other = Classifier(tiny_keras_model(scale=3.0), batch_size=32, name="other")  # other weights
    with caplog.at_level("WARNING", logger="lime_spark.models.onnx"):
        select_runtime(clf, "auto", gpu=False, export=lambda _: export_onnx(other))
    assert clf.runtime == "tensorflow"
    assert "disagree on the probe" in clf.runtime_reason and "> 0.0001" in clf.runtime_reason
    assert clf.runtime_reason in caplog.text
    # and a tolerance the difference fits in switches over
    select_runtime(clf, "auto", gpu=False, export=lambda _: export_onnx(other), tolerance=1.0)
    assert clf.runtime == "onnx"


def _custom_layer_model():
    import keras
    import tensorflow as tf

    class PythonScale(keras.layers.Layer):
        """Calls back into Python (tf.numpy_function): nothing ONNX can hold."""

        def call(self, x):
            y = tf.numpy_function(lambda a: (a * 0.5).astype(np.float32), [x], tf.float32)
            return tf.reshape(y, tf.shape(x))

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((16, 16, 3)), PythonScale(),
                             keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(3, activation="softmax")])


def test_auto_falls_back_for_a_model_tf2onnx_cannot_convert():
    clf = Classifier(_custom_layer_model(), batch_size=8, name="custom")
    select_runtime(clf, "auto", gpu=False)
    assert clf.runtime == "tensorflow"
    assert "Could not convert the model 'custom' to ONNX" in clf.runtime_reason
    with pytest.raises(ModelLoadError, match="Could not convert"):
        select_runtime(clf, "onnx")
    image = np.zeros((16, 16, 3), np.uint8)
    assert clf.predict_design(image, image, np.zeros((16, 16), np.int32),
                              np.ones((2, 1), np.float32)).shape == (2, 3)


def test_unknown_runtime_is_a_configuration_error(tiny_classifier):
    with pytest.raises(ConfigurationError, match="runtime"):
        select_runtime(tiny_classifier, "torch")
