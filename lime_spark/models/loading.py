"""Loading a :class:`~lime_spark.models.Classifier`: a model file or a ``keras.applications`` name.

:func:`load_classifier` tells the two apart (:func:`model_is_file`), builds
the Keras model (:func:`_load_application` or :func:`_load_file`, from a
local copy of any fsspec URI), and wraps it with the preprocessing and label
names that ``"auto"`` means for that kind of model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigurationError, ModelLoadError
from .applications import application_names, find_application, infer_application_kwargs
from .classifier import Classifier
from .labels import load_label_names
from .onnx import select_runtime

__all__ = ["load_classifier", "model_is_file"]

logger = logging.getLogger(__name__)


def model_is_file(model: str) -> bool:
    """Whether ``model`` names a file (any URI) rather than a keras.applications name."""
    return ("://" in model or model.endswith((".keras", ".h5", ".hdf5"))
            or os.sep in model or os.path.exists(model))


@dataclass(frozen=True)
class _LoadedModel:
    """A Keras model as loaded, with what ``"auto"`` preprocessing and labels mean for it."""

    net: Any
    name: str
    digest: str | None
    auto_preprocess: str | None
    auto_labels: str | None


def _local_copy(uri: str, tmpdir: str) -> str:
    """A local path for a file at any fsspec URI (the path itself when local)."""
    import fsspec

    if "://" not in uri or uri.startswith("file://"):
        path = uri[len("file://"):] if uri.startswith("file://") else uri
        if not os.path.isfile(path):
            raise ModelLoadError(f"Expected a model file. Received: {uri!r} (no such file)")
        return path
    target = os.path.join(tmpdir, os.path.basename(uri.rstrip("/")) or "model")
    try:
        with fsspec.open(uri, "rb") as src, open(target, "wb") as dst:
            dst.write(src.read())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"Could not read model file {uri!r}: {type(exc).__name__}: {exc}") from exc
    return target


def _file_digest(path: str) -> str:
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_application(model: str, application: tuple[Callable, str], weights: str | None,
                      application_kwargs: dict[str, Any], tmpdir: str) -> _LoadedModel:
    """Build a ``keras.applications`` model with ImageNet weights or a weights file.

    ``auto`` means the application's own preprocessing, and ImageNet names
    for 1000 classes.
    """
    constructor, module = application
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in application_kwargs.items()}
    weights_path = weights
    digest = None
    if weights not in (None, "imagenet"):
        weights_path = _local_copy(weights, tmpdir)
        digest = _file_digest(weights_path)
        for key, value in infer_application_kwargs(model, weights).items():
            kwargs.setdefault(key, value)
    try:
        net = constructor(weights=weights_path, **kwargs)
    except Exception as exc:
        raise ModelLoadError(
            f"Could not build keras.applications.{constructor.__name__} with "
            f"weights={weights!r} and {kwargs}: {type(exc).__name__}: {exc}"
        ) from exc
    auto_labels = "imagenet" if net.output_shape[-1] == 1000 else None
    return _LoadedModel(net, model, digest, auto_preprocess=module, auto_labels=auto_labels)


def _load_file(model: str, application_kwargs: dict[str, Any], tmpdir: str) -> _LoadedModel:
    """Load a ``.keras`` (or ``.h5``) file; ``auto`` means no preprocessing and no names."""
    import keras

    if application_kwargs:
        raise ConfigurationError(
            "Application arguments only apply to keras.applications names. "
            f"Received: {sorted(application_kwargs)} for model={model!r}"
        )
    if not model_is_file(model):
        raise ModelLoadError(
            f"Expected a .keras file or one of the keras.applications names "
            f"({', '.join(application_names())}). Received: model={model!r}"
        )
    path = _local_copy(model, tmpdir)
    digest = _file_digest(path)
    try:
        net = keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise ModelLoadError(
            f"Could not load a Keras model from {model!r}: {type(exc).__name__}: {exc}"
        ) from exc
    return _LoadedModel(net, os.path.basename(model), digest,
                        auto_preprocess=None, auto_labels=None)


def load_classifier(model: str, *, weights: str | None = "imagenet",
                    preprocess: str | Callable | None = "auto",
                    label_names: str | Sequence[str] | None = "auto", batch_size: int = 128,
                    output_activation: str = "none",
                    input_size: tuple[int, int] | None = None, runtime: str = "auto",
                    gpu: bool | None = None, **application_kwargs: Any) -> Classifier:
    """Load a :class:`Classifier` from a model file or a ``keras.applications`` name.

    Parameters
    ----------
    model : str
        A ``.keras`` (or legacy ``.h5``) file, local or at any fsspec URI, or a
        ``keras.applications`` name (``"mobilenet"``, ``"vgg16"``,
        ``"resnet50"``, ``"efficientnetb0"``, ...; case and ``_`` ignored).
    weights : "imagenet", a path/URI, or None
        For application names: Keras' ImageNet weights (from its cache,
        downloaded when absent) or a weights file.  For MobileNet v1/v2 the
        alpha and input size are read from Keras' weight file names.
    preprocess : "auto", a ``keras.applications`` module name, "none" or callable
        ``auto`` uses the application's own ``preprocess_input`` and none
        for model files.
    label_names : "auto", "imagenet", list, path or None
        Class names; ``auto`` uses ImageNet names for application models with
        1000 classes.  ``labels=`` (R lime's ``as_classifier`` name) is
        accepted too.
    batch_size : int, default 128
    output_activation : {"none", "softmax", "sigmoid"}
    input_size : (int, int), optional
    runtime : {"auto", "tensorflow", "onnx"}, default "auto"
        What runs the model (:func:`~lime_spark.models.select_runtime`):
        ``auto`` uses ONNX Runtime on CPU when it agrees with TensorFlow on a
        probe to 1e-4, else TensorFlow, and says why in
        ``Classifier.runtime_reason``.
    gpu : bool, optional
        Whether the model will run on a GPU (for ``auto``); None looks at
        this process' devices.
    **application_kwargs
        Passed to the application constructor (``alpha=0.25``,
        ``input_shape=(128, 128, 3)``, ...).

    Raises
    ------
    ModelLoadError, ConfigurationError
    """
    if "labels" in application_kwargs:
        if label_names != "auto":
            raise ConfigurationError(
                "Expected class names once. Received both label_names= and labels= "
                "(R lime's name for the same argument)")
        label_names = application_kwargs.pop("labels")
    application = None if model_is_file(model) else find_application(model)
    with tempfile.TemporaryDirectory(prefix="lime-spark-model-") as tmp:
        if application is not None:
            loaded = _load_application(model, application, weights, application_kwargs, tmp)
        else:
            loaded = _load_file(model, application_kwargs, tmp)
    logger.info("loaded model %s (%d parameters)", loaded.name, loaded.net.count_params())
    if preprocess == "auto":
        preprocess = loaded.auto_preprocess
    if label_names == "auto":
        label_names = loaded.auto_labels
    classifier = Classifier(loaded.net, preprocess=preprocess,
                            label_names=load_label_names(label_names), batch_size=batch_size,
                            output_activation=output_activation, input_size=input_size,
                            name=loaded.name, digest=loaded.digest)
    return select_runtime(classifier, runtime, gpu=gpu)
