"""Shared test setup: Keras' cache points at ../shared/models before Keras loads.

The real ImageNet MobileNet (alpha 0.25, 128 px) and Keras' class index live
in ``../shared/models`` beside the repository (or ``$LIME_SPARK_SHARED``).
They are linked into a private ``KERAS_HOME`` so ``weights="imagenet"`` and
``labels="imagenet"`` work offline, exactly as in a user's Keras cache.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIME_SPARK_SHARED", REPO.parent / "shared"))
MODELS = SHARED / "models"
MOBILENET_FILE = MODELS / "mobilenet_2_5_128_tf.h5"
CLASS_INDEX_FILE = MODELS / "imagenet_class_index.json"

_KERAS_HOME = Path(tempfile.mkdtemp(prefix="lime-spark-keras-home-"))
(_KERAS_HOME / "models").mkdir()
for _f in (MOBILENET_FILE, CLASS_INDEX_FILE):
    if _f.exists():
        (_KERAS_HOME / "models" / _f.name).symlink_to(_f)
os.environ["KERAS_HOME"] = str(_KERAS_HOME)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The Hive metastore of every test session lives in a private temporary folder.
os.environ["LIME_SPARK_CATALOG_DIR"] = tempfile.mkdtemp(prefix="lime-spark-test-catalog-")
os.environ.setdefault("TQDM_DISABLE", "1")


def _require(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the tests need ../shared/models beside the repository "
            "(or LIME_SPARK_SHARED pointing at a folder with models/)."
        )
    return path


@pytest.fixture(scope="session")
def mobilenet_path() -> Path:
    """Path of the real ImageNet MobileNet v1 (alpha 0.25, 128x128) weights."""
    return _require(MOBILENET_FILE)


@pytest.fixture(scope="session")
def mobilenet(mobilenet_path):
    """The real ImageNet MobileNet as a Classifier with ImageNet label names."""
    _require(CLASS_INDEX_FILE)
    from lime_spark.models import load_classifier

    return load_classifier("mobilenet", weights=str(mobilenet_path), labels="imagenet")


def make_model(path: Path, *, input_shape=(32, 32, 3), outputs: int = 3,
               activation: str | None = "softmax", scale: float = 1.0) -> str:
    """A tiny untrained CNN saved as .keras at ``path`` (deterministic weights); its path.

    Rescaling(scale / 255) -> Conv2D(4, 3, relu) -> global average pooling ->
    Dense(outputs, activation): ``activation=None, scale=40`` gives a logits
    model with spread-out outputs.
    """
    tiny_keras_model(input_shape=input_shape, outputs=outputs, activation=activation,
                     scale=scale).save(path)
    return str(path)


def tiny_keras_model(*, input_shape=(32, 32, 3), outputs: int = 3,
                     activation: str | None = "softmax", scale: float = 1.0):
    """The tiny untrained CNN of :func:`make_model`, in memory (deterministic weights)."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input(input_shape), keras.layers.Rescaling(scale / 255),
        keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(outputs, activation=activation)])


@pytest.fixture(scope="module")
def tiny_classifier():
    """:func:`tiny_keras_model` as a Classifier with three labels, batches of 32."""
    from lime_spark.models import Classifier

    return Classifier(tiny_keras_model(), label_names=["a", "b", "c"], batch_size=32,
                      name="tiny")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """Path of :func:`make_model`'s default model (32x32 RGB in, 3 softmax classes)."""
    return make_model(tmp_path_factory.mktemp("tiny-model") / "tiny.keras")
