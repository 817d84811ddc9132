"""Classifiers: a Keras model with its preprocessing, input size and labels.

A :class:`Classifier` predicts probabilities for batches of RGB images in
0..255 through compiled functions of one fixed batch shape (the last batch is
padded), so shapes never retrace.  Its :meth:`Classifier.predict_masks` also
builds the perturbed images inside the compiled function from the design
rows, so on a GPU only the 0/1 masks travel per batch.

Any plain callable ``fn(images) -> probabilities`` (lime's ``classifier_fn``)
can be used in place of a Classifier by the explainer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._validation import check_int, check_one_of
from .exceptions import ClassifierOutputError, ConfigurationError, InvalidImageError, ModelLoadError
from .perturb import perturb_tensor

__all__ = [
    "ClassifierFn",
    "Classifier",
    "load_classifier",
    "load_label_names",
    "imagenet_label_names",
    "application_names",
    "preprocess_function",
    "check_probabilities",
]

logger = logging.getLogger(__name__)

ClassifierFn = Callable[[NDArray], NDArray]
"""``fn(images (N, H, W, 3) in 0..255) -> probabilities (N, C)``."""

OUTPUT_ACTIVATIONS = ("none", "softmax", "sigmoid")


def check_probabilities(probs: Any, n_rows: int, n_classes: int | None = None) -> NDArray:
    """Validate a classifier's output block and return it as a float array.

    Parameters
    ----------
    probs : array-like of shape (n_rows, C)
    n_rows : int
        Number of images that were passed in.
    n_classes : int or None
        Expected C (from earlier batches), or None to accept any C >= 1.

    Raises
    ------
    ClassifierOutputError
        On a wrong shape or non-finite values.
    """
    try:
        arr = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ClassifierOutputError(
            "Expected the classifier to return an array of probabilities of shape "
            f"({n_rows}, n_classes). Received: {type(probs).__name__}"
        ) from None
    if arr.ndim != 2 or arr.shape[0] != n_rows or arr.shape[1] < 1 or (
            n_classes is not None and arr.shape[1] != n_classes):
        want = f"({n_rows}, {n_classes if n_classes is not None else 'n_classes'})"
        raise ClassifierOutputError(
            f"Expected the classifier to return probabilities of shape {want} for "
            f"{n_rows} images. Received: shape={arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ClassifierOutputError(
            "Expected finite probabilities from the classifier. Received: "
            f"{bad} NaN or infinite value(s)"
        )
    return arr


# --------------------------------------------------------------------------
# keras.applications names and preprocessing
# --------------------------------------------------------------------------

def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def model_is_file(model: str) -> bool:
    """Whether ``model`` names a file (any URI) rather than a keras.applications name."""
    return ("://" in model or model.endswith((".keras", ".h5", ".hdf5"))
            or os.sep in model or os.path.exists(model))


def _applications() -> dict[str, tuple[Callable, str]]:
    """Normalised application name -> (constructor, preprocessing module name)."""
    import keras

    table = {}
    for attr in dir(keras.applications):
        obj = getattr(keras.applications, attr)
        if attr[:1].isupper() and callable(obj):
            module = obj.__module__.rsplit(".", 1)[-1]
            table[_norm(attr)] = (obj, module)
    return table


def application_names() -> list[str]:
    """The ``keras.applications`` model names accepted by :func:`load_classifier`."""
    import keras

    return sorted(a for a in dir(keras.applications)
                  if a[:1].isupper() and callable(getattr(keras.applications, a)))


def preprocess_function(name: str | Callable | None) -> Callable | None:
    """The ``preprocess_input`` of a ``keras.applications`` module, by name.

    Parameters
    ----------
    name : str, callable or None
        A module name such as ``"mobilenet"``, ``"vgg16"``, ``"resnet50"``,
        ``"none"``/None for identity, or a callable taking a float tensor of
        shape (N, H, W, 3) in 0..255.
    """
    import keras

    if name is None or callable(name):
        return name
    if name == "none":
        return None
    module = getattr(keras.applications, name, None)
    if module is None or not hasattr(module, "preprocess_input"):
        modules = sorted(m for m in dir(keras.applications)
                         if hasattr(getattr(keras.applications, m), "preprocess_input"))
        listed = ", ".join(f"`{m}`" for m in ["none", *modules])
        raise ConfigurationError(
            f"Expected preprocess to be one of {listed}. Received: preprocess={name!r}"
        )
    return module.preprocess_input


# --------------------------------------------------------------------------
# label names
# --------------------------------------------------------------------------

def imagenet_label_names() -> list[str]:
    """The 1000 ImageNet class names from Keras' own class index.

    Keras reads ``imagenet_class_index.json`` from its cache
    (``$KERAS_HOME/models``) and downloads it there when absent.
    """
    from keras.src.applications import imagenet_utils
    from keras.utils import get_file

    try:
        path = get_file("imagenet_class_index.json", imagenet_utils.CLASS_INDEX_PATH,
                        cache_subdir="models", file_hash="c2c37ea517e94d9795004a39431a14cb")
    except Exception as exc:  # network or cache errors all mean the same here
        raise ModelLoadError(
            "Could not get Keras' ImageNet class index (imagenet_class_index.json); put "
            "it in $KERAS_HOME/models/ to work offline. Cause: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    with open(path, encoding="utf-8") as fh:
        index = json.load(fh)
    return [index[str(i)][1] for i in range(len(index))]


def load_label_names(labels: str | Sequence[str] | None) -> list[str] | None:
    """Label names from ``"imagenet"``, a list, or a file (like R lime's ``as_classifier``).

    A file (any fsspec URI) holds either a JSON list, a JSON object mapping
    index to name (or to ``[wnid, name]`` as Keras' class index does), or one
    name per line.
    """
    if labels is None:
        return None
    if isinstance(labels, str):
        if labels == "imagenet":
            return imagenet_label_names()
        import fsspec

        try:
            with fsspec.open(labels, "rt", encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"Expected labels to be `imagenet`, a list of names or a readable file. "
                f"Received: labels={labels!r} ({type(exc).__name__}: {exc})"
            ) from exc
        stripped = text.strip()
        if stripped.startswith(("[", "{")):
            data = json.loads(stripped)
            if isinstance(data, dict):
                keys = sorted(data, key=lambda k: int(k))
                return [data[k][-1] if isinstance(data[k], list) else str(data[k]) for k in keys]
            return [str(x) for x in data]
        return [line.strip() for line in text.splitlines() if line.strip()]
    return [str(x) for x in labels]


# --------------------------------------------------------------------------
# the classifier
# --------------------------------------------------------------------------

class Classifier:
    """A Keras image classifier with preprocessing, input size and label names.

    Parameters
    ----------
    model : keras.Model
        Input (N, H, W, C) with C = 3 or 1 (grayscale models get the
        luminance of the RGB input), output (N, n_outputs).
    preprocess : str, callable or None
        See :func:`preprocess_function`; applied to float32 RGB in 0..255.
    label_names : sequence of str, optional
    batch_size : int, default 128
        Every compiled call sees exactly this many images.
    output_activation : {"none", "softmax", "sigmoid"}
        Applied to the model's output: use ``softmax`` for a model that
        returns logits.  A model with one output unit is read as a binary
        classifier with classes ``[1 - p, p]``.
    input_size : (int, int), optional
        (height, width) when the model's input shape leaves them open.
    name : str, optional
    digest : str, optional
        Identifies the weights (``model_digest`` in the job's tables).
    jit : bool, default True
        Compile the element-wise preparation (mask gather, fill, preprocessing)
        with XLA; falls back to plain graphs where XLA is unavailable.

    Notes
    -----
    Calling the classifier is thread-compatible but not thread-safe: use one
    per thread.
    """

    def __init__(self, model: Any, *, preprocess: str | Callable | None = None,
                 label_names: Sequence[str] | None = None, batch_size: int = 128,
                 output_activation: str = "none",
                 input_size: tuple[int, int] | None = None,
                 name: str | None = None, digest: str | None = None, jit: bool = True):
        self.model = model
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.output_activation = check_one_of(
            "output_activation", output_activation or "none", OUTPUT_ACTIVATIONS)
        self._preprocess = preprocess_function(preprocess)
        self.preprocess_name = preprocess if isinstance(preprocess, str) or preprocess is None \
            else getattr(preprocess, "__name__", "callable")
        shape = tuple(model.input_shape)
        if len(shape) != 4:
            raise ModelLoadError(
                "Expected a model with image input of shape (N, H, W, C). "
                f"Received: input_shape={shape}"
            )
        height, width, channels = shape[1:]
        if input_size is not None:
            height, width = (int(v) for v in input_size)
        if height is None or width is None:
            raise ConfigurationError(
                "The model's input shape leaves the image size open; pass "
                f"input_size=(height, width). Received: input_shape={shape}"
            )
        if channels not in (1, 3):
            raise ModelLoadError(
                "Expected a model with 1 (grayscale) or 3 (RGB) input channels. "
                f"Received: input_shape={shape}"
            )
        self.input_size = (int(height), int(width))
        self.input_channels = int(channels)
        out = tuple(model.output_shape)
        if len(out) != 2 or out[1] is None:
            raise ModelLoadError(
                f"Expected a model with output shape (N, n_classes). Received: output_shape={out}"
            )
        self._binary = out[1] == 1
        self.n_classes = 2 if self._binary else int(out[1])
        self.label_names = list(label_names) if label_names is not None else None
        if self.label_names is not None and len(self.label_names) != self.n_classes:
            raise ConfigurationError(
                f"Expected {self.n_classes} label names for the model's {self.n_classes} "
                f"classes. Received: {len(self.label_names)} names"
            )
        self.name = name or getattr(model, "name", "model")
        self._digest = digest
        self.jit = bool(jit)
        self.trace_count = 0
        self._prepare_fn = self._masks_fn = self._model_fn = None

    # -- metadata ---------------------------------------------------------
    @property
    def digest(self) -> str:
        """sha256 (hex) of the model's weights, unless given at construction."""
        if self._digest is None:
            h = hashlib.sha256()
            for w in self.model.get_weights():
                h.update(np.ascontiguousarray(w).tobytes())
            self._digest = h.hexdigest()
        return self._digest

    def label_name(self, label: int) -> str:
        """The name of class ``label`` (its number as text when no names were given)."""
        if self.label_names is None:
            return str(int(label))
        return self.label_names[int(label)]

    # -- compiled functions -------------------------------------------------
    def _prepare(self, x: Any) -> Any:
        """Float32 RGB in 0..255 to the model's input: grey conversion and preprocessing.

        Every ``keras.applications`` preprocessing is per pixel, so it commutes
        with choosing pixels from the image or the fill.
        """
        from keras import ops

        if self.input_channels == 1:
            x = ops.sum(x * ops.convert_to_tensor([0.299, 0.587, 0.114], "float32"),
                        axis=-1, keepdims=True)
        if self._preprocess is not None:
            x = self._preprocess(x)
        return x

    def _predict(self, x: Any) -> Any:
        """Run the model on prepared input and return probabilities (float32)."""
        from keras import ops

        y = self.model(x, training=False)
        if self.output_activation == "softmax":
            y = ops.softmax(y, axis=-1)
        elif self.output_activation == "sigmoid":
            y = ops.sigmoid(y)
        if self._binary:
            y = ops.concatenate([1.0 - y, y], axis=-1)
        return ops.cast(y, "float32")

    def _compiled(self) -> tuple[Callable, Callable, Callable]:
        """(prepare images, prepare perturbed images from masks, model) compiled functions.

        The two preparation steps are element-wise and are compiled with XLA
        (``jit_compile``) when ``self.jit`` holds, fusing the mask gather, the
        select and the preprocessing into one pass; the model runs as a plain
        ``tf.function`` (XLA is slower for convolutions on CPU).  Every input has
        a fixed shape: batches are padded to ``batch_size`` and the design to a
        multiple of 64 columns, so nothing retraces.
        """
        if self._model_fn is None:
            import tensorflow as tf

            height, width = self.input_size
            batch = self.batch_size

            def prepare_images(x):
                self.trace_count += 1
                return self._prepare(x)

            def prepare_masks(design, segments, image, fill):
                self.trace_count += 1
                return self._prepare(perturb_tensor(design, segments, image, fill))

            def predict(x):
                self.trace_count += 1
                return self._predict(x)

            self._prepare_fn = tf.function(prepare_images, jit_compile=self.jit, input_signature=[
                tf.TensorSpec([batch, height, width, 3], tf.float32)])
            self._masks_fn = tf.function(prepare_masks, jit_compile=self.jit, input_signature=[
                tf.TensorSpec([batch, None], tf.float32),
                tf.TensorSpec([height, width], tf.int32),
                tf.TensorSpec([height, width, 3], tf.float32),
                tf.TensorSpec([height, width, 3], tf.float32)])
            self._model_fn = tf.function(predict, input_signature=[
                tf.TensorSpec([batch, height, width, self.input_channels], tf.float32)])
        return self._prepare_fn, self._masks_fn, self._model_fn

    def _run(self, step: Callable[[], Any]) -> Any:
        """Run ``step``; if XLA cannot compile here, fall back to plain graphs once."""
        try:
            return step()
        except Exception as exc:  # noqa: BLE001 - XLA errors vary by platform
            if not self.jit or "XLA" not in str(exc) and "jit" not in str(exc).lower():
                raise
            logger.warning("XLA unavailable (%s); using plain tf.function", type(exc).__name__)
            self.jit = False
            self._model_fn = None
            return step()

    def _check_image_size(self, shape: tuple[int, ...], what: str) -> None:
        if tuple(shape[-3:-1]) != self.input_size or shape[-1] != 3:
            raise InvalidImageError(
                f"Expected {what} of size {self.input_size[0]}x{self.input_size[1]}x3 "
                f"(height x width x channels, the model's input). Received: shape={tuple(shape)}"
            )

    def __call__(self, images: NDArray) -> NDArray[np.float32]:
        """Probabilities for a batch of images.

        Parameters
        ----------
        images : ndarray of shape (N, H, W, 3), uint8 or float in 0..255
            H, W must be the model's input size.

        Returns
        -------
        ndarray of shape (N, n_classes), float32
        """
        images = np.asarray(images)
        if images.ndim != 4:
            raise InvalidImageError(
                f"Expected a batch of images of shape (N, H, W, 3). Received: shape={images.shape}"
            )
        self._check_image_size(images.shape, "images")
        n, out = images.shape[0], []
        for start in range(0, n, self.batch_size):
            block = images[start:start + self.batch_size].astype(np.float32)
            rows = block.shape[0]
            if rows < self.batch_size:
                block = np.concatenate(
                    [block, np.zeros((self.batch_size - rows, *block.shape[1:]), np.float32)])

            def step(block=block):
                prepare, _, model = self._compiled()
                return np.asarray(model(prepare(block)))

            out.append(self._run(step)[:rows])
        if not out:
            return np.zeros((0, self.n_classes), np.float32)
        return check_probabilities(np.concatenate(out), n, self.n_classes).astype(np.float32)

    def predict_masks(self, image: NDArray, fill_image: NDArray, segments: NDArray,
                      design: NDArray) -> NDArray[np.float32]:
        """Probabilities of the perturbed images, built on the device from the design.

        Parameters
        ----------
        image, fill_image : ndarray of shape (H, W, 3), in 0..255
        segments : ndarray of shape (H, W), int, ids 0..K-1
        design : ndarray of shape (n_samples, K), 0/1

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float32
        """
        import tensorflow as tf

        self._check_image_size(np.shape(image), "image")
        n, k = design.shape
        # rows padded to whole batches, columns to a multiple of 64 (one XLA shape)
        z = np.ones((-(-n // self.batch_size) * self.batch_size, -(-k // 64) * 64), np.float32)
        z[:n, :k] = design
        img = tf.convert_to_tensor(np.asarray(image, np.float32))
        fill = tf.convert_to_tensor(np.asarray(fill_image, np.float32))
        seg = tf.convert_to_tensor(np.asarray(segments, np.int32))

        def step():
            _, masks, model = self._compiled()
            out = [model(masks(tf.convert_to_tensor(z[s:s + self.batch_size]), seg, img, fill))
                   for s in range(0, z.shape[0], self.batch_size)]
            return np.concatenate([np.asarray(o) for o in out])

        probs = self._run(step)[:n]
        return check_probabilities(probs, n, self.n_classes).astype(np.float32)


# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------

_MOBILENET_FILE = re.compile(r"mobilenet_(\d)_(\d)_(\d+)_tf(?:_no_top)?\.h5$")
_MOBILENET_V2_FILE = re.compile(
    r"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_([\d.]+)_(\d+)(?:_no_top)?\.h5$")


def _infer_application_kwargs(norm_name: str, weights: str | None) -> dict[str, Any]:
    """alpha and input size from Keras' own weight file names (MobileNet v1/v2)."""
    if not isinstance(weights, str):
        return {}
    base = os.path.basename(weights)
    if norm_name == "mobilenet" and (m := _MOBILENET_FILE.search(base)):
        alpha = float(f"{m.group(1)}.{m.group(2)}")
        alpha = {2.5: 0.25, 5.0: 0.5, 7.5: 0.75}.get(alpha, alpha)
        size = int(m.group(3))
        return {"alpha": alpha, "input_shape": (size, size, 3)}
    if norm_name == "mobilenetv2" and (m := _MOBILENET_V2_FILE.search(base)):
        size = int(m.group(2))
        return {"alpha": float(m.group(1)), "input_shape": (size, size, 3)}
    return {}


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
        raise ModelLoadError(f"Could not read model file {uri!r}: {type(exc).__name__}: {exc}") from exc
    return target


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_classifier(model: str, *, weights: str | None = "imagenet",
                    preprocess: str | Callable | None = "auto",
                    labels: str | Sequence[str] | None = "auto", batch_size: int = 128,
                    output_activation: str = "none",
                    input_size: tuple[int, int] | None = None,
                    **application_kwargs: Any) -> Classifier:
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
    labels : "auto", "imagenet", list, path or None
        ``auto`` uses ImageNet names for application models with 1000 classes.
    batch_size : int, default 128
    output_activation : {"none", "softmax", "sigmoid"}
    input_size : (int, int), optional
    **application_kwargs
        Passed to the application constructor (``alpha=0.25``,
        ``input_shape=(128, 128, 3)``, ...).

    Raises
    ------
    ModelLoadError, ConfigurationError
    """
    import keras

    apps = _applications()
    norm = _norm(model)
    looks_like_file = model_is_file(model)
    with tempfile.TemporaryDirectory(prefix="lime-spark-model-") as tmp:
        if not looks_like_file and norm in apps:
            constructor, module = apps[norm]
            kwargs = {k: tuple(v) if isinstance(v, list) else v
                      for k, v in application_kwargs.items()}
            weights_path = weights
            digest = None
            if weights not in (None, "imagenet"):
                weights_path = _local_copy(weights, tmp)
                digest = _file_digest(weights_path)
                for key, value in _infer_application_kwargs(norm, weights).items():
                    kwargs.setdefault(key, value)
            try:
                net = constructor(weights=weights_path, **kwargs)
            except Exception as exc:
                raise ModelLoadError(
                    f"Could not build keras.applications.{constructor.__name__} with "
                    f"weights={weights!r} and {kwargs}: {type(exc).__name__}: {exc}"
                ) from exc
            if preprocess == "auto":
                preprocess = module
            if labels == "auto":
                labels = "imagenet" if net.output_shape[-1] == 1000 else None
            name = model
        else:
            if application_kwargs:
                raise ConfigurationError(
                    "Application arguments only apply to keras.applications names. "
                    f"Received: {sorted(application_kwargs)} for model={model!r}"
                )
            if not looks_like_file:
                raise ModelLoadError(
                    f"Expected a .keras file or one of the keras.applications names "
                    f"({', '.join(application_names())}). Received: model={model!r}"
                )
            path = _local_copy(model, tmp)
            digest = _file_digest(path)
            try:
                net = keras.saving.load_model(path, compile=False)
            except Exception as exc:
                raise ModelLoadError(
                    f"Could not load a Keras model from {model!r}: {type(exc).__name__}: {exc}"
                ) from exc
            if preprocess == "auto":
                preprocess = None
            if labels == "auto":
                labels = None
            name = os.path.basename(model)
    logger.info("loaded model %s (%d parameters)", name, net.count_params())
    return Classifier(net, preprocess=preprocess, label_names=load_label_names(labels),
                      batch_size=batch_size, output_activation=output_activation,
                      input_size=input_size, name=name, digest=digest)
