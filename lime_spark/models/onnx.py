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

:func:`rows_graph` turns that graph into its multi-image twin, for
:meth:`~lime_spark.models.Classifier.predict_rows` (the rows of one batch
may belong to several images): inputs ``design`` (B, Kmax), ``segments``
(M, H, W), ``image`` and ``fill`` (M, H, W, 3) and ``row_image`` (B,) int32,
the image of each row.  Both graphs share everything but the few nodes that
build the perturbed batch (the *front*, written here in plain ONNX: tf2onnx
converts the preprocessing and the model only), so the twin is derived from
the shipped bytes wherever it is needed, without TensorFlow.  Two graphs, not
one: on single-image batches the multi-image front (two row gathers of whole
images) costs about 10% more per batch of the real MobileNet than the
single-image one (see :func:`rows_graph`).

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

__all__ = ["RUNTIMES", "OPSET", "AGREEMENT_TOLERANCE", "export_onnx", "rows_graph",
           "OnnxEngine", "select_runtime", "onnx_available"]

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "tensorflow", "onnx")
OPSET = 17
AGREEMENT_TOLERANCE = 1e-4
"""Largest absolute difference of probabilities for which ``auto`` picks ONNX Runtime."""
BATCH_SIZE = 32
"""Rows per ONNX Runtime run: on CPU, batches of 32 beat 128 by about 10% (activations stay
in cache; ``docs/benchmarks.md``), and nothing retraces, so no shape is fixed."""

_INPUTS = ("design", "segments", "image", "fill")
_ROW_INPUTS = ("design", "segments", "image", "fill", "row_image")

_FRONT = "lime_spark/perturb/"
"""Name prefix of the front's nodes and constants (removed and rebuilt by :func:`rows_graph`)."""
_META = "lime_spark.front"
"""Metadata key: the graph's front ("design" or "rows"), then the names of the model's
perturbed input and of the prepared image and fill, and the input height and width."""


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

    tf2onnx converts the preprocessing (of the image and the fill) and the
    model with its output activation; the front that builds the perturbed
    batch from the design rows is added in plain ONNX (:func:`_attach_front`),
    so that :func:`rows_graph` can swap it for the multi-image one.

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
    signature = (tf.TensorSpec([None, classifier.input_channels, height, width], tf.float32,
                               name="perturbed"),
                 tf.TensorSpec([None, height, width, 3], tf.float32, name="image"),
                 tf.TensorSpec([None, height, width, 3], tf.float32, name="fill"))

    def core(perturbed, image, fill):
        # Channels-first: preprocessing is per pixel, so it runs on the images and fills
        # (few) before the front selects pixels for the rows (many); the front's select,
        # fill + keep * (image - fill) with keep 0/1, broadcasts over whole H x W planes
        # (fast in ONNX Runtime, unlike a broadcast over the channel axis); the transpose
        # of the perturbed batch cancels against the one tf2onnx puts in front of the
        # first convolution.  Where keep is 1 the pixel may differ from the image's by one
        # rounding of the preprocessed value (float32), far below the 1e-4 agreement.
        probs = classifier._predict(tf.transpose(perturbed, (0, 2, 3, 1)))
        image = tf.transpose(classifier._prepare(image), (0, 3, 1, 2))       # (M, C, H, W)
        fill = tf.transpose(classifier._prepare(fill), (0, 3, 1, 2))
        return probs, image, fill

    quiet = [logging.getLogger(n) for n in ("tensorflow", "tf2onnx")]
    levels = [log.level for log in quiet]
    for log in quiet:                      # conversion chatter and TF v1 deprecation notes
        log.setLevel(logging.ERROR)
    try:
        # freeze first: every capture (variables, and constants such as a Normalization
        # layer's mean, which tf2onnx.convert.from_function would leave as graph inputs)
        # becomes a constant of the graph
        concrete = tf.function(core, input_signature=signature).get_concrete_function()
        frozen = convert_variables_to_constants_v2(concrete)
        outputs = [t.name for t in frozen.outputs]
        proto, _ = tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(), input_names=[t.name for t in frozen.inputs],
            output_names=outputs, opset=opset)
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
    perturbed = frozen.inputs[0].name
    del proto.graph.output[1:]                     # the prepared image and fill feed the front
    meta = proto.metadata_props.add()
    meta.key, meta.value = _META, ",".join(["design", perturbed, outputs[1], outputs[2],
                                            str(height), str(width)])
    _attach_front(proto, "design")
    return proto.SerializeToString()


def rows_graph(onnx_bytes: bytes) -> bytes:
    """The multi-image twin of an exported graph: the same model behind the rows front.

    Inputs ``design`` (B, Kmax) float32 0/1, ``segments`` (M, H, W) int32,
    ``image`` and ``fill`` (M, H, W, 3) float32 and ``row_image`` (B,)
    int32; output (B, n_classes).  Row b is the image ``row_image[b]`` with
    the superpixels s where ``design[b, s]`` is 0 taken from its fill.  Each
    row's result depends only on its own inputs (and the batch's row count on
    runtimes that choose kernels by shape), not on the other rows or images.

    Why a second graph rather than this one for both calls: the rows front
    gathers each row's prepared image and fill (two (B, C, H, W) copies) where
    the single-image front broadcasts one image; on single-image batches of 32
    rows of the real MobileNet (0.25, 128 px, one intra-op thread) that costs
    about 10% more per batch (measured 9-13%, interleaved medians), too much
    to run :meth:`~lime_spark.models.Classifier.predict_design` through it.
    Both fronts pick the keep mask with GatherElements over the design row
    (a Gather of single elements, as tf2onnx writes ``tf.gather``, cost 3 ms
    of a 21 ms batch).  The twin is built from the bytes on its first use, so
    only ``onnx_bytes`` ships; its session holds the weights a second time.

    Raises
    ------
    ModelLoadError
        ``onnx_bytes`` was not made by :func:`export_onnx` of this version
        (no front to swap): export the model again.
    """
    import onnx

    try:
        model = onnx.load_from_string(onnx_bytes)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError
        raise ModelLoadError(f"Expected an ONNX model from export_onnx. Received bytes that "
                             f"do not parse: {type(exc).__name__}: {exc}") from exc
    _attach_front(model, "rows")
    return model.SerializeToString()


def _front_nodes(kind: str, perturbed: str, image: str, fill: str, height: int,
                 width: int) -> tuple[list, list, list]:
    """(nodes, constants, new graph inputs) of the front that computes ``perturbed``.

    ``design``: keep = design[b, segments] (GatherElements over the design row,
    far faster in ONNX Runtime than a Gather of single elements), then
    fill + keep * (image - fill), broadcast over the rows.  ``rows``: the
    same with each row's segments, prepared image and fill gathered by
    ``row_image`` first.  Only opset-11 forms (Shape without start/end,
    Reshape for new axes).
    """
    from onnx import TensorProto, helper, numpy_helper

    def name(n: str) -> str:
        return _FRONT + n

    pixels = height * width
    consts = [numpy_helper.from_array(np.asarray(v, np.int64), name(n)) for n, v in (
        ("pixels", [pixels]), ("first", [0]), ("second", [1]),
        ("flat", [-1, pixels]), ("planes", [-1, 1, height, width]))]
    design = helper.make_tensor_value_info("design", TensorProto.FLOAT, ["rows", "columns"])
    nodes = [helper.make_node("Sub", [image, fill], [name("diff")], name=name("diff"))]
    if kind == "design":
        segments = helper.make_tensor_value_info("segments", TensorProto.INT32, [height, width])
        inputs = [design, segments]
        nodes += [
            helper.make_node("Shape", ["design"], [name("design_shape")], name=name("shape")),
            helper.make_node("Slice", [name("design_shape"), name("first"), name("second")],
                             [name("n_rows")], name=name("n_rows")),
            helper.make_node("Concat", [name("n_rows"), name("pixels")], [name("index_shape")],
                             name=name("index_shape"), axis=0),
            helper.make_node("Reshape", ["segments", name("flat")], [name("segments_flat")],
                             name=name("segments_flat")),
            helper.make_node("Expand", [name("segments_flat"), name("index_shape")],
                             [name("index")], name=name("index")),
        ]
        fill_rows, diff_rows = fill, name("diff")
    else:
        segments = helper.make_tensor_value_info("segments", TensorProto.INT32,
                                                 ["images", height, width])
        row_image = helper.make_tensor_value_info("row_image", TensorProto.INT32, ["rows"])
        inputs = [design, segments, row_image]
        nodes += [
            helper.make_node("Reshape", ["segments", name("flat")], [name("segments_flat")],
                             name=name("segments_flat")),
            helper.make_node("Gather", [name("segments_flat"), "row_image"], [name("index")],
                             name=name("index"), axis=0),
            helper.make_node("Gather", [fill, "row_image"], [name("fill_rows")],
                             name=name("fill_rows"), axis=0),
            helper.make_node("Gather", [name("diff"), "row_image"], [name("diff_rows")],
                             name=name("diff_rows"), axis=0),
        ]
        fill_rows, diff_rows = name("fill_rows"), name("diff_rows")
    nodes += [
        helper.make_node("GatherElements", ["design", name("index")], [name("keep_flat")],
                         name=name("keep_flat"), axis=1),
        helper.make_node("Reshape", [name("keep_flat"), name("planes")], [name("keep")],
                         name=name("keep")),
        helper.make_node("Mul", [name("keep"), diff_rows], [name("kept")], name=name("kept")),
        helper.make_node("Add", [fill_rows, name("kept")], [perturbed], name=name("perturbed")),
    ]
    return nodes, consts, inputs


def _attach_front(model: Any, kind: str) -> None:
    """Replace ``model``'s front (or its ``perturbed`` input) by the ``kind`` front, in place."""
    meta = next((p for p in model.metadata_props if p.key == _META), None)
    if meta is None:
        raise ModelLoadError(
            "Expected a graph exported by this version of lime_spark (metadata "
            f"{_META!r}) to derive the multi-image graph from. Received a graph without it: "
            "export the model again (export_onnx)")
    _, perturbed, image, fill, height, width = meta.value.split(",")
    graph = model.graph
    kept = [n for n in graph.node if not n.name.startswith(_FRONT)]
    consts = [t for t in graph.initializer if not t.name.startswith(_FRONT)]
    inputs = [i for i in graph.input if i.name not in (perturbed, *_ROW_INPUTS)]
    nodes, front_consts, front_inputs = _front_nodes(kind, perturbed, image, fill,
                                                     int(height), int(width))
    # topological order: what does not depend on the perturbed batch, the front, the rest
    after, depends = set(), {perturbed}
    for i, node in enumerate(kept):
        if depends & _node_inputs(node):
            after.add(i)
            depends.update(node.output)
    order = ([n for i, n in enumerate(kept) if i not in after] + nodes
             + [n for i, n in enumerate(kept) if i in after])
    del graph.node[:]
    graph.node.extend(order)
    del graph.initializer[:]
    graph.initializer.extend(consts + front_consts)
    del graph.input[:]
    graph.input.extend(front_inputs[:2] + inputs + front_inputs[2:])
    meta.value = ",".join([kind, perturbed, image, fill, height, width])


def _node_inputs(node: Any) -> set[str]:
    """Every tensor ``node`` reads, its subgraphs' (If, Loop, Scan) outer-scope reads included."""
    names = set(node.input)
    for attr in node.attribute:
        for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            for inner in sub.node:
                names |= _node_inputs(inner)
    return names


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
        From :func:`export_onnx` (:meth:`predict_design`, :meth:`predict_images`)
        or :func:`rows_graph` (:meth:`predict_rows`).
    batch_size : int
        Most rows per session run (for ``predict_design`` the last run is
        smaller; ``predict_rows`` pads every run to its ``rows``).
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
        if sorted(names) not in (sorted(_INPUTS), sorted(_ROW_INPUTS)):
            raise ModelLoadError(
                f"Expected an exported graph with inputs {list(_INPUTS)} (export_onnx) or "
                f"{list(_ROW_INPUTS)} (rows_graph). Received inputs {sorted(names)}")
        self.rows = "row_image" in names
        """Whether this is the multi-image graph (:meth:`predict_rows`)."""
        self._names = [names[n] for n in (_ROW_INPUTS if self.rows else _INPUTS)]
        self._output = self.session.get_outputs()[0].name
        self.batch_size = int(batch_size)
        self.threads = threads
        self.providers = providers

    def _run(self, *arrays: NDArray) -> NDArray[np.float32]:
        feeds = dict(zip(self._names, arrays))
        return self.session.run([self._output], feeds)[0]

    def _check_kind(self, rows: bool, method: str) -> None:
        if self.rows != rows:
            raise ConfigurationError(
                f"Expected the {'rows_graph' if rows else 'export_onnx'} graph for {method}. "
                f"Received the {'rows_graph' if self.rows else 'export_onnx'} graph")

    def predict_rows(self, images: NDArray, fills: NDArray, segments: NDArray,
                     row_image: NDArray, design: NDArray, *,
                     rows: int | None = None) -> NDArray[np.float32]:
        """Probabilities of the rows of several images (validated inputs; see :func:`rows_graph`).

        Every session run sees exactly ``rows`` rows (``batch_size`` by
        default): the last block is padded with rows of the first image and
        cut off, so a row's result never depends on the number of rows passed.
        Each run gets only the images its rows use.
        """
        self._check_kind(True, "predict_rows")
        rows = int(rows or self.batch_size)
        design = np.asarray(design, np.float32)
        row_image = np.asarray(row_image, np.int32)
        out = []
        for start in range(0, design.shape[0], rows):
            block = design[start:start + rows]
            used, index = np.unique(row_image[start:start + rows], return_inverse=True)
            n = block.shape[0]
            z = np.zeros((rows, design.shape[1]), np.float32)
            z[:n] = block
            r = np.zeros(rows, np.int32)
            r[:n] = index
            out.append(self._run(z, np.ascontiguousarray(segments[used], np.int32),
                                 np.ascontiguousarray(images[used], np.float32),
                                 np.ascontiguousarray(fills[used], np.float32), r)[:n])
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def predict_design(self, image: NDArray, fill_image: NDArray, segments: NDArray,
                       design: NDArray) -> NDArray[np.float32]:
        """Probabilities of the perturbed images of ``design`` (n_samples, K)."""
        self._check_kind(False, "predict_design")
        img = np.ascontiguousarray(image, np.float32)[None]
        fill = np.ascontiguousarray(fill_image, np.float32)[None]
        seg = np.ascontiguousarray(segments, np.int32)
        z = np.ascontiguousarray(design, np.float32)
        out = [self._run(z[s:s + self.batch_size], seg, img, fill)
               for s in range(0, z.shape[0], self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def predict_images(self, images: NDArray) -> NDArray[np.float32]:
        """Probabilities of a batch of images (N, H, W, 3) in 0..255."""
        self._check_kind(False, "predict_images")
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


def _probe_rows(classifier: Classifier) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray]:
    """The rows probe: :func:`_probe`'s image and a second one (transposed grid, 9 segments,
    a white fill), their 32 rows interleaved, design 16 columns wide (the second padded)."""
    image, fill, segments, design = _probe(classifier)
    height, width = classifier.input_size
    rng = np.random.default_rng(1)
    image2 = rng.integers(0, 256, (height, width, 3)).astype(np.float32)
    rows = np.minimum(np.arange(height) * 3 // height, 2)
    cols = np.minimum(np.arange(width) * 3 // width, 2)
    segments2 = (cols[None, :] * 3 + rows[:, None]).astype(np.int32)
    row_image = np.arange(32, dtype=np.int32) % 2
    design = design.copy()
    design[row_image == 1, 9:] = 0
    return (np.stack([image, image2]), np.stack([fill, np.full_like(fill, 255)]),
            np.stack([segments, segments2]), row_image, design)


def select_runtime(classifier: Classifier, runtime: str = "auto", *, gpu: bool | None = None,
                   tolerance: float = AGREEMENT_TOLERANCE,
                   export: Callable[[Classifier], bytes] = export_onnx) -> Classifier:
    """Set the classifier's runtime: ``"tensorflow"``, ``"onnx"`` or ``"auto"``.

    ``auto``'s probe runs both ONNX graphs: the single-image one
    (:meth:`~lime_spark.models.Classifier.predict_design`) on one image and
    the multi-image one (:meth:`~lime_spark.models.Classifier.predict_rows`,
    :func:`rows_graph`) on two images' rows interleaved.

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
    # the multi-image graph (predict_rows): two images' rows interleaved
    try:
        rows_engine = OnnxEngine(rows_graph(data), batch_size=engine.batch_size)
    except ModelLoadError as exc:
        return f"no multi-image ONNX graph: {exc}"
    images, fills, segments, row_image, design = _probe_rows(classifier)
    perturbed = np.concatenate([perturb_tensor(design[row_image == m], segments[m], images[m],
                                               fills[m]) for m in (0, 1)])
    expected_rows = np.empty((len(row_image), expected.shape[1]))
    expected_rows[np.argsort(row_image, kind="stable")] = np.asarray(
        classifier._predict(classifier._prepare(perturbed)), np.float64)
    try:
        got = rows_engine.predict_rows(images, fills, segments, row_image, design)
    except Exception as exc:  # noqa: BLE001 - a failing run is a refusal, whatever it raises
        return f"ONNX Runtime failed on the multi-image probe: {type(exc).__name__}: {exc}"
    if got.shape != expected_rows.shape:
        return (f"ONNX Runtime returned shape {got.shape} on the multi-image probe, "
                f"TensorFlow {expected_rows.shape}")
    diff_rows = float(np.max(np.abs(got.astype(np.float64) - expected_rows)))
    if not np.isfinite(diff_rows) or diff_rows > tolerance:
        return (f"ONNX Runtime and TensorFlow disagree on the multi-image probe: max "
                f"|difference| of probabilities {diff_rows:.3g} > {tolerance:g}")
    diff = max(diff, diff_rows)
    classifier.use_onnx(data, f"auto: agrees with TensorFlow on the probe to {diff:.2g} "
                              f"(<= {tolerance:g})", engine=engine, rows_engine=rows_engine)
    return None


def _local_gpu() -> bool:
    try:
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # noqa: BLE001 - no TensorFlow devices, no GPU
        return False

