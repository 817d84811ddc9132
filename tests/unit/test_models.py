from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.data

from lime_spark.exceptions import ClassifierOutputError, ConfigurationError, InvalidImageError, ModelLoadError
from lime_spark.images import resize_image
from lime_spark.models import Classifier, check_probabilities, load_classifier, load_label_names
from lime_spark.models.applications import find_application, infer_application_kwargs
from lime_spark.perturb import perturb_batch


def _tiny_model(input_shape=(16, 16, 3), outputs=3, activation="softmax", seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(outputs, activation=activation),
    ])


def _images(n, size=(16, 16), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)


def test_keras_file_round_trip_and_fixed_batches(tmp_path):
    model = _tiny_model()
    path = tmp_path / "tiny.keras"
    model.save(path)
    clf = load_classifier(str(path), batch_size=8, labels=["a", "b", "c"], runtime="tensorflow")
    assert clf.input_size == (16, 16) and clf.n_classes == 3
    assert clf.label_name(2) == "c" and clf.name == "tiny.keras" and len(clf.digest) == 64
    images = _images(21)
    expected = model.predict(images.astype(np.float32), verbose=0)
    np.testing.assert_allclose(clf(images), expected, rtol=1e-5, atol=1e-6)
    traces = clf.trace_count
    for n in (3, 8, 1, 17):   # ragged sizes must not retrace
        np.testing.assert_allclose(clf(images[:n]), expected[:n], rtol=1e-5, atol=1e-6)
    assert clf.trace_count == traces == 2       # preparation + model
    # the default runtime (auto, on this CPU: ONNX Runtime) predicts the same
    auto = load_classifier(str(path), batch_size=8, label_names=["a", "b", "c"])
    assert auto.runtime == "onnx"
    np.testing.assert_allclose(auto(images), expected, rtol=1e-5, atol=1e-6)


def test_predict_design_equals_predicting_the_perturbed_images():
    clf = Classifier(_tiny_model(), batch_size=16)
    image = _images(1)[0]
    fill = np.full_like(image, 128)
    segments = (np.arange(16)[:, None] // 4 * 4 + np.arange(16)[None, :] // 4).astype(np.int32)
    design = np.random.default_rng(1).integers(0, 2, (37, 16), dtype=np.uint8)
    design[0] = 1
    direct = clf(perturb_batch(image, fill, segments, design))
    np.testing.assert_allclose(clf.predict_design(image, fill, segments, design), direct,
                               rtol=1e-5, atol=1e-6)
    traces = clf.trace_count
    segments2 = (np.arange(16)[:, None] // 8 * 2 + np.arange(16)[None, :] // 8).astype(np.int32)
    clf.predict_design(image, fill, segments2, design[:, :4])   # other K: no retrace
    assert clf.trace_count == traces == 3      # preparation of images and of masks + model
    plain = Classifier(clf.model, batch_size=16, jit=False)
    np.testing.assert_allclose(plain.predict_design(image, fill, segments, design), direct,
                               rtol=1e-5, atol=1e-6)


def test_binary_sigmoid_grayscale_and_logits():
    binary = Classifier(_tiny_model(outputs=1, activation="sigmoid"))
    probs = binary(_images(5))
    assert probs.shape == (5, 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)

    gray = Classifier(_tiny_model(input_shape=(12, 20, 1)))
    assert gray.input_size == (12, 20)
    assert gray(_images(4, size=(12, 20))).shape == (4, 3)

    logits_model = _tiny_model(activation=None)
    raw = logits_model.predict(_images(4).astype(np.float32), verbose=0)
    soft = Classifier(logits_model, output_activation="softmax")(_images(4))
    np.testing.assert_allclose(soft, np.exp(raw) / np.exp(raw).sum(1, keepdims=True), rtol=1e-5)


def test_wrong_image_size_and_bad_options():
    clf = Classifier(_tiny_model())
    with pytest.raises(InvalidImageError, match=r"16x16x3.*Received: shape=\(2, 10, 10, 3\)"):
        clf(_images(2, size=(10, 10)))
    with pytest.raises(ConfigurationError, match="output_activation"):
        Classifier(_tiny_model(), output_activation="relu")
    with pytest.raises(ConfigurationError, match="label names"):
        Classifier(_tiny_model(), label_names=["a"])
    with pytest.raises(ConfigurationError, match="preprocess.*Received: preprocess='vgg17'"):
        Classifier(_tiny_model(), preprocess="vgg17")


def test_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_classifier(str(tmp_path / "missing.keras"))
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="bad.keras"):
        load_classifier(str(bad))
    with pytest.raises(ModelLoadError, match="keras.applications names"):
        load_classifier("alexnet")
    model = tmp_path / "tiny.keras"
    _tiny_model().save(model)
    with pytest.raises(ConfigurationError, match=r"Received: \['alpha'\] for model="):
        load_classifier(str(model), alpha=0.25)


def test_the_package_keeps_its_public_names():
    import lime_spark.models as models

    assert {"Classifier", "ClassifierFn", "load_classifier", "load_label_names",
            "check_probabilities", "model_is_file"} <= set(models.__all__)
    assert all(getattr(models, name) is not None for name in models.__all__)


def test_application_names_and_keras_weight_file_names():
    assert find_application("MobileNet_V2") == find_application("mobilenetv2") is not None
    assert find_application("alexnet") is None
    assert infer_application_kwargs("mobilenet", "/w/mobilenet_2_5_128_tf.h5") == {
        "alpha": 0.25, "input_shape": (128, 128, 3)}
    assert infer_application_kwargs("MobileNet", "mobilenet_1_0_224_tf_no_top.h5") == {
        "alpha": 1.0, "input_shape": (224, 224, 3)}
    v2 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96.h5"
    assert infer_application_kwargs("mobilenet_v2", v2) == {
        "alpha": 0.35, "input_shape": (96, 96, 3)}
    assert infer_application_kwargs("mobilenet", "my_weights.h5") == {}
    assert infer_application_kwargs("vgg16", "mobilenet_2_5_128_tf.h5") == {}
    assert infer_application_kwargs("mobilenet", None) == {}


def test_label_names_from_list_file_and_json(tmp_path):
    (tmp_path / "names.txt").write_text("cat\ndog\n\nbird\n")
    (tmp_path / "names.json").write_text(json.dumps({"1": ["n1", "dog"], "0": ["n0", "cat"]}))
    assert load_label_names(str(tmp_path / "names.txt")) == ["cat", "dog", "bird"]
    assert load_label_names(str(tmp_path / "names.json")) == ["cat", "dog"]
    assert load_label_names(("x", "y")) == ["x", "y"]
    with pytest.raises(ConfigurationError, match="labels="):
        load_label_names(str(tmp_path / "nope.txt"))


def test_check_probabilities():
    with pytest.raises(ClassifierOutputError, match=r"shape \(4, n_classes\).*Received: shape=\(4,\)"):
        check_probabilities(np.zeros(4), 4)
    with pytest.raises(ClassifierOutputError, match="1 NaN"):
        check_probabilities(np.array([[0.5, np.nan]]), 1)
    with pytest.raises(ClassifierOutputError, match=r"\(2, 3\)"):
        check_probabilities(np.zeros((2, 2)), 2, 3)


def test_real_mobilenet_sees_a_cat(mobilenet):
    assert mobilenet.input_size == (128, 128) and mobilenet.n_classes == 1000
    probs = mobilenet(resize_image(skimage.data.chelsea(), (128, 128))[None])[0]
    top5 = [mobilenet.label_name(i) for i in np.argsort(probs)[::-1][:5]]
    assert {"tabby", "tiger_cat", "Egyptian_cat", "Persian_cat", "lynx"} & set(top5[:3])
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)


def test_imagenet_weights_from_the_keras_cache(mobilenet):
    """weights='imagenet' resolves through KERAS_HOME, as on a user's machine."""
    clf = load_classifier("MobileNet", weights="imagenet", alpha=0.25, input_shape=(128, 128, 3))
    image = resize_image(skimage.data.coffee(), (128, 128))[None]
    np.testing.assert_allclose(clf(image), mobilenet(image), rtol=1e-5, atol=1e-6)
    assert clf.label_names == mobilenet.label_names
