"""The compiled classifier: a Keras model with its preprocessing, input size and labels.

A :class:`Classifier` predicts probabilities for batches of RGB images in
0..255 through compiled functions of one fixed batch shape (the last batch is
padded), so shapes never retrace.  Its :meth:`Classifier.predict_design` also
builds the perturbed images inside the compiled function from the design
rows, so on a GPU only the 0/1 masks travel per batch;
:meth:`Classifier.predict_rows` does the same for batches whose rows belong
to several images (fixed-shape device batches assembled across images, each
row's result the same whatever else shares its batch).

Any plain callable ``fn(images) -> probabilities`` (:data:`ClassifierFn`,
lime's ``classifier_fn``) can be used in place of a Classifier by the
explainer; :func:`check_probabilities` validates what either returns.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validation import check_int, check_one_of
from ..exceptions import (ClassifierOutputError, ConfigurationError, InvalidImageError,
                          ModelLoadError)
from ..perturb import check_rows, perturb_rows_tensor, perturb_tensor
from .applications import preprocess_function

__all__ = ["ClassifierFn", "Classifier", "check_probabilities", "OUTPUT_ACTIVATIONS"]

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


def _input_geometry(shape: tuple, input_size: tuple[int, int] | None) -> tuple[int, int, int]:
    """(height, width, channels) of a model's images from its ``input_shape`` (N, H, W, C).

    ``input_size`` (height, width) fills in, or overrides, the height and width.
    """
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
    return int(height), int(width), int(channels)


def _output_units(shape: tuple) -> int:
    """The number of output units from a model's ``output_shape`` (N, n_outputs)."""
    if len(shape) != 2 or shape[1] is None:
        raise ModelLoadError(
            f"Expected a model with output shape (N, n_classes). Received: output_shape={shape}"
        )
    return int(shape[1])


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
    row_batch_size : int, optional
        Rows per device run of :meth:`predict_rows` (see
        :attr:`row_batch_size`); by default ``batch_size`` on TensorFlow and
        the ONNX Runtime engine's batch (32 at most) on ONNX Runtime.
    output_activation : {"none", "softmax", "sigmoid"}
        Applied to the model's output: use ``softmax`` for a model that
        returns logits.  A model with one output unit is read as a binary
        classifier with classes ``[1 - p, p]``.
    input_size : (int, int), optional
        (height, width) when the model's input shape leaves them open.
    name : str, optional
    digest : str, optional
        Identifies the weights (``model_digest`` in the job's tables).

    Attributes
    ----------
    runtime : {"tensorflow", "onnx"}
        What predicts: the compiled TensorFlow functions, or ONNX Runtime on
        the exported fused graph (:func:`lime_spark.models.select_runtime`).
    runtime_reason : str or None
        Why that runtime (``auto``'s probe result or its reason to refuse).
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
                 name: str | None = None, digest: str | None = None, jit: bool = True,
                 row_batch_size: int | None = None):
        self.model = model
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self._init_rows(row_batch_size)
        self.output_activation = check_one_of(
            "output_activation", output_activation or "none", OUTPUT_ACTIVATIONS)
        self._preprocess = preprocess_function(preprocess)
        self.preprocess_name = preprocess if isinstance(preprocess, str) or preprocess is None \
            else getattr(preprocess, "__name__", "callable")
        height, width, channels = _input_geometry(tuple(model.input_shape), input_size)
        self.input_size = (height, width)
        self.input_channels = channels
        n_outputs = _output_units(tuple(model.output_shape))
        self._binary = n_outputs == 1
        self.n_classes = 2 if self._binary else n_outputs
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
        self.runtime = "tensorflow"
        self.runtime_reason: str | None = None
        self.onnx_bytes: bytes | None = None
        self._onnx: Any = None

    @classmethod
    def from_onnx(cls, onnx_bytes: bytes, *, input_size: tuple[int, int], n_classes: int,
                  input_channels: int = 3, preprocess: str | None = None,
                  label_names: Sequence[str] | None = None, batch_size: int = 128,
                  output_activation: str = "none", name: str = "model", digest: str,
                  reason: str | None = None, threads: int | None = None,
                  row_batch_size: int | None = None) -> Classifier:
        """A classifier that runs only its exported ONNX graph (an executor's copy).

        It has no Keras model (``model`` is None): it predicts through ONNX
        Runtime and cannot go back to TensorFlow.  :meth:`predict_rows` runs
        the multi-image twin of ``onnx_bytes`` (:func:`~lime_spark.models.onnx.rows_graph`),
        derived and loaded on its first call.
        """
        self = cls.__new__(cls)
        self.model = None
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self._init_rows(row_batch_size)
        self.output_activation = check_one_of(
            "output_activation", output_activation or "none", OUTPUT_ACTIVATIONS)
        self._preprocess, self.preprocess_name = None, preprocess
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.input_channels = int(input_channels)
        self._binary, self.n_classes = False, int(n_classes)
        self.label_names = list(label_names) if label_names is not None else None
        self.name, self._digest, self.jit, self.trace_count = name, digest, False, 0
        self._prepare_fn = self._masks_fn = self._model_fn = None
        self.runtime = "tensorflow"
        self.use_onnx(onnx_bytes, reason, threads=threads)
        return self

    def _init_rows(self, row_batch_size: int | None) -> None:
        self._row_batch_size = None if row_batch_size is None else check_int(
            "row_batch_size", row_batch_size, minimum=1)
        self._rows_fn: Callable | None = None
        self._rows_model_fn: Callable | None = None
        self._onnx_rows: Any = None

    @property
    def row_batch_size(self) -> int:
        """Rows per device run of :meth:`predict_rows`: every run sees exactly this many.

        By default ``batch_size`` on TensorFlow and the ONNX Runtime engine's
        batch (``min(batch_size, 32)``) on ONNX Runtime.  Set it once (e.g.
        1024 on a GPU) before predicting: setting another value recompiles.
        """
        if self._row_batch_size is not None:
            return self._row_batch_size
        if self._onnx is not None:
            return int(self._onnx.batch_size)
        return self.batch_size

    @row_batch_size.setter
    def row_batch_size(self, rows: int) -> None:
        rows = check_int("row_batch_size", rows, minimum=1)
        if rows != self._row_batch_size:
            self._row_batch_size = rows
            self._rows_fn = self._rows_model_fn = None

    # -- runtime --------------------------------------------------------------
    def use_onnx(self, onnx_bytes: bytes, reason: str | None, *, engine: Any = None,
                 threads: int | None = None, rows_engine: Any = None) -> None:
        """Predict through ONNX Runtime on ``onnx_bytes`` (from :func:`export_onnx`).

        ``rows_engine``: an :class:`~lime_spark.models.onnx.OnnxEngine` on
        ``rows_graph(onnx_bytes)`` already loaded (``auto``'s probe); else it is
        derived and loaded on the first :meth:`predict_rows`.
        """
        from .onnx import BATCH_SIZE, OnnxEngine

        self._onnx = engine or OnnxEngine(onnx_bytes, threads=threads,
                                          batch_size=min(self.batch_size, BATCH_SIZE))
        self._onnx_rows = rows_engine
        self.onnx_bytes = onnx_bytes
        self.runtime, self.runtime_reason = "onnx", reason

    def _rows_engine(self) -> Any:
        """The ONNX Runtime engine of the multi-image graph, loaded on first use."""
        if self._onnx_rows is None:
            from .onnx import OnnxEngine, rows_graph

            self._onnx_rows = OnnxEngine(rows_graph(self.onnx_bytes), threads=self._onnx.threads,
                                         batch_size=self._onnx.batch_size,
                                         providers=self._onnx.providers)
        return self._onnx_rows

    def use_tensorflow(self, reason: str | None) -> None:
        """Predict through the compiled TensorFlow functions (the Keras model)."""
        if self.model is None:
            raise ConfigurationError(
                f"Classifier {self.name!r} holds only its ONNX graph; it cannot run on "
                "TensorFlow")
        self._onnx, self._onnx_rows, self.onnx_bytes = None, None, None
        self.runtime, self.runtime_reason = "tensorflow", reason

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

    def _rows_compiled(self) -> tuple[Callable, Callable]:
        """(perturbed rows of several images, model) compiled for ``row_batch_size`` rows.

        The first is :func:`~lime_spark.perturb.perturb_rows_tensor` on the
        prepared images and fills (preparation is per pixel, so it runs on the
        M images, not the B rows), compiled with XLA when ``self.jit`` holds.
        Its row count is fixed; the design width (a multiple of 64) and the
        number of images (a power of two) vary, so XLA compiles a few shapes
        and nothing retraces.  The model function is the one of
        :meth:`_compiled` when ``row_batch_size == batch_size``.
        """
        if self._rows_fn is None:
            import tensorflow as tf

            height, width = self.input_size
            rows = self.row_batch_size

            def prepare_rows(design, segments, images, fills, row_image):
                self.trace_count += 1
                return perturb_rows_tensor(design, segments, self._prepare(images),
                                           self._prepare(fills), row_image)

            def predict(x):
                self.trace_count += 1
                return self._predict(x)

            self._rows_fn = tf.function(prepare_rows, jit_compile=self.jit, input_signature=[
                tf.TensorSpec([rows, None], tf.float32),
                tf.TensorSpec([None, height, width], tf.int32),
                tf.TensorSpec([None, height, width, 3], tf.float32),
                tf.TensorSpec([None, height, width, 3], tf.float32),
                tf.TensorSpec([rows], tf.int32)])
            if rows == self.batch_size:
                self._rows_model_fn = self._compiled()[2]
            else:
                self._rows_model_fn = tf.function(predict, input_signature=[
                    tf.TensorSpec([rows, height, width, self.input_channels], tf.float32)])
        return self._rows_fn, self._rows_model_fn

    def _run(self, step: Callable[[], Any]) -> Any:
        """Run ``step``; if XLA cannot compile here, fall back to plain graphs once."""
        try:
            return step()
        except Exception as exc:  # noqa: BLE001 - XLA errors vary by platform
            if not self.jit or "XLA" not in str(exc) and "jit" not in str(exc).lower():
                raise
            logger.warning("XLA unavailable (%s); using plain tf.function", type(exc).__name__)
            self.jit = False
            self._model_fn = self._rows_fn = self._rows_model_fn = None
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
        if self._onnx is not None:
            return check_probabilities(self._onnx.predict_images(images), images.shape[0],
                                       self.n_classes).astype(np.float32)
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

    def predict_design(self, image: NDArray, fill_image: NDArray, segments: NDArray,
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
        self._check_image_size(np.shape(image), "image")
        n, k = design.shape
        if self._onnx is not None:
            probs = self._onnx.predict_design(image, fill_image, segments, design)
            return check_probabilities(probs, n, self.n_classes).astype(np.float32)
        import tensorflow as tf

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

    def predict_rows(self, images: NDArray, fills: NDArray, segments: NDArray,
                     row_image: NDArray, design: NDArray) -> NDArray[np.float32]:
        """Probabilities of design rows that belong to several images.

        Row b is image ``row_image[b]`` with the superpixels s where
        ``design[b, s]`` is 0 replaced by its fill's pixels, built on the
        device as in :meth:`predict_design`.  Rows run ``row_batch_size`` at a
        time, every run padded to exactly that many rows, and a row's
        probabilities depend only on its own inputs and its position in the
        run: the rows of an image get the same values (bitwise, on one
        runtime, device and ``row_batch_size``) whichever images share their
        runs.  They equal :meth:`predict_design`'s to float32 rounding (on
        ONNX Runtime the graphs differ only in how pixels reach the rows).

        Parameters
        ----------
        images, fills : ndarray of shape (M, H, W, 3), in 0..255
            The images with rows in this call and their fills; H, W the
            model's input size.
        segments : ndarray of shape (M, H, W), int
            Each image's superpixel ids 0..K_m-1.
        row_image : ndarray of shape (B,), int in 0..M-1
            The image of each design row.
        design : ndarray of shape (B, Kmax), 0/1
            Each row padded with zeros beyond its image's K_m.

        Returns
        -------
        ndarray of shape (B, n_classes), float32

        Raises
        ------
        InvalidImageError, SegmentationError, ConfigurationError
            Inputs of the wrong shape or out of range
            (:func:`~lime_spark.perturb.check_rows`).
        ModelLoadError
            On ONNX Runtime, a graph exported by an older version (no
            multi-image twin): export the model again.
        """
        images, fills, segments, row_image, design = check_rows(
            images, fills, segments, row_image, design)
        self._check_image_size(images.shape, "images")
        n = design.shape[0]
        if n == 0:
            return np.zeros((0, self.n_classes), np.float32)
        if self._onnx is not None:
            probs = self._rows_engine().predict_rows(images, fills, segments, row_image, design,
                                                     rows=self.row_batch_size)
            return check_probabilities(probs, n, self.n_classes).astype(np.float32)
        import tensorflow as tf

        rows = self.row_batch_size
        columns = -(-design.shape[1] // 64) * 64
        out = []
        for start in range(0, n, rows):
            block = design[start:start + rows]
            used, index = np.unique(row_image[start:start + rows], return_inverse=True)
            # images padded to a power of two (the last repeated): few XLA shapes
            take = np.concatenate([used, np.full((1 << (len(used) - 1).bit_length()) - len(used),
                                                 used[-1])])
            z = np.zeros((rows, columns), np.float32)
            z[:block.shape[0], :block.shape[1]] = block
            r = np.zeros(rows, np.int32)
            r[:block.shape[0]] = index
            args = (tf.convert_to_tensor(z),
                    tf.convert_to_tensor(np.ascontiguousarray(segments[take], np.int32)),
                    tf.convert_to_tensor(np.ascontiguousarray(images[take], np.float32)),
                    tf.convert_to_tensor(np.ascontiguousarray(fills[take], np.float32)),
                    tf.convert_to_tensor(r))

            def step(args=args):
                prepare, model = self._rows_compiled()
                return np.asarray(model(prepare(*args)))

            out.append(self._run(step)[:block.shape[0]])
        return check_probabilities(np.concatenate(out), n, self.n_classes).astype(np.float32)
