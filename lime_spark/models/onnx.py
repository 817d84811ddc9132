"""The explained model on ONNX Runtime: export, the CPU engine, and choosing the runtime.

What is exported is not the Keras model alone but the whole fused function a
:class:`~lime_spark.models.Classifier` compiles with TensorFlow: design rows
-> perturbed images (mask gather and select against the fill) -> grey
conversion and ``preprocess_input`` -> the model -> output activation.  So on
ONNX Runtime too only the 0/1 design rows travel to the model per batch.  The
graph's inputs are

* ``design``: (B, K) float32 0/1,
* ``segments``: (H, W) int32 superpixel ids,
* ``image``: (1 or B, H, W, 3) float32 RGB in 0..255,
* ``fill``: (1 or B, H, W, 3) float32,

and its one output is (B, n_classes) float32 probabilities.  Plain image
batches go through the same graph (one all-ones design column, one segment,
the batch as ``image``).

:func:`select_runtime` resolves ``runtime="auto"``: on CPU it exports, runs
one probe through both runtimes and keeps ONNX Runtime only when the
probabilities agree within ``tolerance`` (1e-4); on a GPU it keeps TensorFlow
(no GPU measurement has shown ONNX Runtime faster there yet).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..exceptions import ConfigurationError, ModelLoadError
from ..perturb import perturb_tensor

if TYPE_CHECKING:
    from .classifier import Classifier

__all__ = ["RUNTIMES", "OPSET", "AGREEMENT_TOLERANCE", "export_onnx", "OnnxEngine",
           "select_runtime", "onnx_available"]

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "tensorflow", "onnx")
OPSET = 17
AGREEMENT_TOLERANCE = 1e-4
"""Largest absolute difference of probabilities for which ``auto`` picks ONNX Runtime."""
BATCH_SIZE = 32
"""Rows per ONNX Runtime run: on CPU, batches of 32 beat 128 by about 10% (activations stay
in cache; ``docs/benchmarks.md``), and nothing retraces, so no shape is fixed."""

_INPUTS = ("design", "segments", "image", "fill")


def onnx_available() -> str | None:
    """None when ONNX Runtime and tf2onnx import, else why not."""
    try:
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "not here"
        return f"{type(exc).__name__}: {exc}"
    return None


def export_onnx(classifier: Classifier, *, opset: int = OPSET) -> bytes:
    """The classifier's fused function (perturb, preprocess, model, activation) as ONNX.

    Raises
    ------
    ModelLoadError
        tf2onnx cannot convert the model (an op without an ONNX equivalent,
        a custom layer calling Python, ...); the message names the cause.
    """
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    if classifier.model is None:
        raise ModelLoadError(
            f"Expected a Keras model to export. Received: classifier {classifier.name!r} "
            "holds only its ONNX graph")
    height, width = classifier.input_size
    signature = (tf.TensorSpec([None, None], tf.float32, name="design"),
                 tf.TensorSpec([height, width], tf.int32, name="segments"),
                 tf.TensorSpec([None, height, width, 3], tf.float32, name="image"),
                 tf.TensorSpec([None, height, width, 3], tf.float32, name="fill"))

    def fused(design, segments, image, fill):
        # perturb_tensor's gather and select, in channels-first layout: preprocessing is
        # per pixel, so it runs on the one image and fill before the select; the select,
        # fill + keep * (image - fill) with keep 0/1, is two passes that broadcast over
        # whole H x W planes (fast in ONNX Runtime, unlike a broadcast over the channel
        # axis); the transposes cancel against the one tf2onnx puts in front of the first
        # convolution.  Where keep is 1 the pixel may differ from the image's by one
        # rounding of the preprocessed value (float32), far below the 1e-4 agreement.
        keep = tf.gather(design, segments, axis=1)[:, None]                  # (B, 1, H, W)
        image = tf.transpose(classifier._prepare(image), (0, 3, 1, 2))       # (1|B, C, H, W)
        fill = tf.transpose(classifier._prepare(fill), (0, 3, 1, 2))
        perturbed = tf.transpose(fill + keep * (image - fill), (0, 2, 3, 1))  # (B, H, W, C)
        return classifier._predict(perturbed)

    quiet = [logging.getLogger(n) for n in ("tensorflow", "tf2onnx")]
    levels = [log.level for log in quiet]
    for log in quiet:                      # conversion chatter and TF v1 deprecation notes
        log.setLevel(logging.ERROR)
    try:
        # freeze first: every capture (variables, and constants such as a Normalization
        # layer's mean, which tf2onnx.convert.from_function would leave as graph inputs)
        # becomes a constant of the graph
        concrete = tf.function(fused, input_signature=signature).get_concrete_function()
        frozen = convert_variables_to_constants_v2(concrete)
        proto, _ = tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(), input_names=[t.name for t in frozen.inputs],
            output_names=[t.name for t in frozen.outputs], opset=opset)
    except Exception as exc:  # noqa: BLE001 - tf2onnx raises anything for unsupported ops
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelLoadError(
            f"Could not convert the model {classifier.name!r} to ONNX (tf2onnx, opset "
            f"{opset}): {type(exc).__name__}: {first}") from exc
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)
    unsupported = _unsupported_ops(proto)
    if unsupported:
        raise ModelLoadError(
            f"Could not convert the model {classifier.name!r} to ONNX (tf2onnx, opset {opset}): "
            f"TensorFlow op(s) without an ONNX equivalent: {', '.join(unsupported)}")
    return proto.SerializeToString()


def _unsupported_ops(proto: Any) -> list[str]:
    """Ops tf2onnx left as TensorFlow ops (it logs them instead of raising), with a node each."""
    import onnx.defs

    found: dict[str, str] = {}
    for node in proto.graph.node:
        if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type):
            found.setdefault(node.op_type, node.name)
    return [f"{op} (node {name})" for op, name in sorted(found.items())]


class OnnxEngine:
    """An ONNX Runtime session over an exported graph, on CPU.

    Parameters
    ----------
    onnx_bytes : bytes
        From :func:`export_onnx`.
    batch_size : int
        Most rows per session run (the last run is smaller; nothing is padded).
    threads : int, optional
        Intra-op threads (the executor passes ``spark.task.cpus``); ONNX
        Runtime's default (the machine's cores) when None.
    providers : list of str, optional
        ONNX Runtime execution providers; CPU only by default (the GPU
        benchmark passes ``["CUDAExecutionProvider"]``).
    """

    def __init__(self, onnx_bytes: bytes, *, batch_size: int, threads: int | None = None,
                 providers: list[str] | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        # no busy-waiting between runs: the explanation's own numpy work (segments,
        # surrogate, stability) runs between model batches on the same cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(onnx_bytes, sess_options=options,
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise ModelLoadError(
                f"ONNX Runtime could not load the exported model: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        names = {i.name.split(":")[0]: i.name for i in self.session.get_inputs()}
        if sorted(names) != sorted(_INPUTS):
            raise ModelLoadError(
                f"Expected an exported graph with inputs {list(_INPUTS)}. Received inputs "
                f"{sorted(names)}")
        self._names = [names[n] for n in _INPUTS]
        self._output = self.session.get_outputs()[0].name
        self.batch_size = int(batch_size)
        self.threads = threads

    def _run(self, design: NDArray, segments: NDArray, image: NDArray,
             fill: NDArray) -> NDArray[np.float32]:
        feeds = dict(zip(self._names, (design, segments, image, fill)))
        return self.session.run([self._output], feeds)[0]

    def predict_design(self, image: NDArray, fill_image: NDArray, segments: NDArray,
                       design: NDArray) -> NDArray[np.float32]:
        """Probabilities of the perturbed images of ``design`` (n_samples, K)."""
        img = np.ascontiguousarray(image, np.float32)[None]
        fill = np.ascontiguousarray(fill_image, np.float32)[None]
        seg = np.ascontiguousarray(segments, np.int32)
        z = np.ascontiguousarray(design, np.float32)
        out = [self._run(z[s:s + self.batch_size], seg, img, fill)
               for s in range(0, z.shape[0], self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def predict_images(self, images: NDArray) -> NDArray[np.float32]:
        """Probabilities of a batch of images (N, H, W, 3) in 0..255."""
        n, height, width = images.shape[:3]
        seg = np.zeros((height, width), np.int32)
        fill = np.zeros((1, height, width, 3), np.float32)
        out = []
        for s in range(0, n, self.batch_size):
            block = np.ascontiguousarray(images[s:s + self.batch_size], np.float32)
            out.append(self._run(np.ones((block.shape[0], 1), np.float32), seg, block, fill))
        return np.concatenate(out)


def _probe(classifier: Classifier) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """One probe: a noise image, a grey fill, a 4x4 grid of segments and 32 design rows."""
    height, width = classifier.input_size
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3)).astype(np.float32)
    fill = np.full((height, width, 3), 128, np.float32)
    rows = np.minimum(np.arange(height) * 4 // height, 3)
    cols = np.minimum(np.arange(width) * 4 // width, 3)
    segments = (rows[:, None] * 4 + cols[None, :]).astype(np.int32)
    design = rng.integers(0, 2, (32, 16)).astype(np.float32)
    design[0] = 1
    return image, fill, segments, design


def select_runtime(classifier: Classifier, runtime: str = "auto", *, gpu: bool | None = None,
                   tolerance: float = AGREEMENT_TOLERANCE,
                   export: Callable[[Classifier], bytes] = export_onnx) -> Classifier:
    """Set the classifier's runtime: ``"tensorflow"``, ``"onnx"`` or ``"auto"``.

    Parameters
    ----------
    classifier : Classifier
        With its Keras model (the driver's classifier).
    runtime : {"auto", "tensorflow", "onnx"}
    gpu : bool, optional
        Whether the model will run on a GPU (the job passes what the
        executors have); None looks at this process' TensorFlow devices.
    tolerance : float
        For ``auto``: the largest absolute difference of probabilities on
        the probe for which ONNX Runtime is used.
    export : callable
        Turns the classifier into ONNX bytes (:func:`export_onnx`).

    Returns
    -------
    Classifier
        ``classifier`` itself, with :attr:`~Classifier.runtime` and
        :attr:`~Classifier.runtime_reason` set.

    Raises
    ------
    ConfigurationError
        An unknown ``runtime``.
    ModelLoadError
        ``runtime="onnx"`` and the model cannot be exported or loaded.
    """
    if runtime not in RUNTIMES:
        raise ConfigurationError(f"Expected runtime in {list(RUNTIMES)}. Received: {runtime!r}")
    if runtime == "tensorflow":
        classifier.use_tensorflow("requested (--runtime tensorflow)")
        return classifier
    if runtime == "onnx":
        missing = onnx_available()
        if missing:
            raise ModelLoadError(f"runtime='onnx' needs onnxruntime and tf2onnx: {missing}")
        classifier.use_onnx(export(classifier), "requested (--runtime onnx)")
        return classifier
    reason = _auto_refusal(classifier, gpu, tolerance, export)
    if reason is not None:
        logger.warning("runtime auto: TensorFlow for model %s: %s", classifier.name, reason)
        classifier.use_tensorflow(reason)
    else:
        logger.info("runtime auto: ONNX Runtime for model %s (%s)", classifier.name,
                    classifier.runtime_reason)
    return classifier


def _auto_refusal(classifier: Classifier, gpu: bool | None, tolerance: float,
                  export: Callable[[Classifier], bytes]) -> str | None:
    """Why ``auto`` keeps TensorFlow, or None after switching the classifier to ONNX."""
    if gpu is None:
        gpu = _local_gpu()
    if gpu:
        return "GPU executors: TensorFlow until a GPU measurement shows ONNX Runtime faster"
    missing = onnx_available()
    if missing:
        return f"onnxruntime or tf2onnx not installed ({missing})"
    try:
        data = export(classifier)
        engine = OnnxEngine(data, batch_size=min(classifier.batch_size, BATCH_SIZE))
    except ModelLoadError as exc:
        return str(exc)
    image, fill, segments, design = _probe(classifier)
    # eager TensorFlow, as the output check does: no compiled function on the driver
    perturbed = perturb_tensor(design, segments, image, fill)
    expected = np.asarray(classifier._predict(classifier._prepare(perturbed)), np.float64)
    try:
        got = engine.predict_design(image, fill, segments, design)
    except Exception as exc:  # noqa: BLE001 - a failing run is a refusal, whatever it raises
        return f"ONNX Runtime failed on the probe: {type(exc).__name__}: {exc}"
    if got.shape != expected.shape:
        return (f"ONNX Runtime returned shape {got.shape} on the probe, TensorFlow "
                f"{expected.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - expected))) if got.size else 0.0
    if not np.isfinite(diff) or diff > tolerance:
        return (f"ONNX Runtime and TensorFlow disagree on the probe: max |difference| of "
                f"probabilities {diff:.3g} > {tolerance:g}")
    classifier.use_onnx(data, f"auto: agrees with TensorFlow on the probe to {diff:.2g} "
                              f"(<= {tolerance:g})", engine=engine)
    return None


def _local_gpu() -> bool:
    try:
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # noqa: BLE001 - no TensorFlow devices, no GPU
        return False

