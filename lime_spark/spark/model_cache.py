"""Ship the model to executors once and load it once per Python worker.

The driver turns a :class:`~lime_spark.models.Classifier` into a
:class:`ModelPayload` (the model as ``.keras`` bytes, or as its exported ONNX
graph when it runs on ONNX Runtime, plus its preprocessing, label names and
batch size) and broadcasts it.  On an executor,
:func:`get_classifier` builds the Classifier from the payload at most once per
Python worker and keeps it in a small LRU cache keyed by an id minted on the
driver, in the manner of ``pyspark/ml/model_cache.py``.

Precondition: ``spark.python.worker.reuse`` is true (Spark's default), so a
worker and its cache outlive a task.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..models import Classifier

__all__ = ["ModelPayload", "get_classifier", "load_count"]

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()
_CACHE: OrderedDict[str, Classifier] = OrderedDict()
_MAX_ENTRIES = 2
_LOADS = 0


@dataclass(frozen=True)
class ModelPayload:
    """Everything an executor needs to rebuild the driver's Classifier."""

    keras_bytes: bytes
    name: str
    digest: str
    preprocess: str | None
    label_names: tuple[str, ...] | None
    output_activation: str
    batch_size: int
    input_size: tuple[int, int]
    runtime: str = "tensorflow"
    runtime_reason: str | None = None
    onnx_bytes: bytes | None = None
    n_classes: int = 0
    input_channels: int = 3
    architecture: str = ""
    """sha256 of the Keras model's JSON configuration (layers, shapes, activations); of the
    ONNX graph for a classifier that has no Keras model."""

    @property
    def key(self) -> str:
        """Cache key: the weights' digest and every setting that changes predictions."""
        # the architecture, not the model's bytes: a .keras file is a zip with the time of
        # saving in it, and tf2onnx names nodes differently on every export, so the same
        # model shipped again by the next job would miss the cache
        text = "|".join(map(str, (self.digest, self.preprocess, self.output_activation,
                                  self.batch_size, self.input_size, self.runtime,
                                  self.architecture)))
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    @property
    def size(self) -> int:
        """Bytes of the model that travel (the ONNX graph, or the .keras file)."""
        return len(self.onnx_bytes if self.runtime == "onnx" else self.keras_bytes)

    @classmethod
    def from_classifier(cls, classifier: Classifier) -> ModelPayload:
        """Serialise a driver-side Classifier: its ONNX graph on ``onnx``, else its ``.keras``.

        With the ONNX runtime only the exported graph travels (preprocessing
        inside it), and executors never import TensorFlow for the model.
        """
        preprocess = classifier.preprocess_name
        onnx = classifier.runtime == "onnx"
        if not onnx and preprocess is not None and not isinstance(preprocess, str):
            raise TypeError("Only preprocessing given by name can be shipped to executors.")
        data = b""
        architecture = hashlib.sha256(
            classifier.model.to_json().encode() if classifier.model is not None
            else classifier.onnx_bytes or b"").hexdigest()
        if not onnx:
            with tempfile.TemporaryDirectory(prefix="lime-spark-payload-") as tmp:
                path = os.path.join(tmp, "model.keras")
                classifier.model.save(path)
                with open(path, "rb") as fh:
                    data = fh.read()
        return cls(keras_bytes=data, name=classifier.name, digest=classifier.digest,
                   preprocess=preprocess if isinstance(preprocess, str) else None,
                   label_names=tuple(classifier.label_names) if classifier.label_names else None,
                   output_activation=classifier.output_activation,
                   batch_size=classifier.batch_size, input_size=classifier.input_size,
                   runtime=classifier.runtime, runtime_reason=classifier.runtime_reason,
                   onnx_bytes=classifier.onnx_bytes if onnx else None,
                   n_classes=classifier.n_classes, input_channels=classifier.input_channels,
                   architecture=architecture)

    def build(self, *, threads: int | None = None) -> Classifier:
        """The executor's Classifier: an ONNX Runtime session, or the Keras model loaded.

        ``threads``: ONNX Runtime's intra-op threads (``spark.task.cpus``).
        """
        if self.runtime == "onnx":
            return Classifier.from_onnx(
                self.onnx_bytes, input_size=self.input_size, n_classes=self.n_classes,
                input_channels=self.input_channels, preprocess=self.preprocess,
                label_names=self.label_names, batch_size=self.batch_size,
                output_activation=self.output_activation, name=self.name, digest=self.digest,
                reason=self.runtime_reason, threads=threads)
        import keras

        with tempfile.TemporaryDirectory(prefix="lime-spark-model-") as tmp:
            path = os.path.join(tmp, "model.keras")
            with open(path, "wb") as fh:
                fh.write(self.keras_bytes)
            model = keras.saving.load_model(path, compile=False)
        return Classifier(model, preprocess=self.preprocess, label_names=self.label_names,
                          batch_size=self.batch_size, output_activation=self.output_activation,
                          input_size=self.input_size, name=self.name, digest=self.digest)


def get_classifier(key: str, payload: Callable[[], ModelPayload], *,
                   threads: int | None = None) -> tuple[Classifier, bool]:
    """The cached Classifier for ``key``, built from ``payload()`` on first use.

    Parameters
    ----------
    key : str
        :attr:`ModelPayload.key`, passed separately so that a cache hit never
        touches (deserialises) the broadcast.
    payload : callable
        Returns the payload, e.g. ``lambda: broadcast.value``.
    threads : int, optional
        ONNX Runtime's intra-op threads for an ``onnx`` payload.

    Returns
    -------
    (classifier, loaded) : the Classifier and whether this call loaded it.
    """
    global _LOADS
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key], False
        value = payload()
        classifier = value.build(threads=threads)
        _LOADS += 1
        logger.info("lime-spark: Python worker %d loaded model %s (digest %s, load #%d)",
                    os.getpid(), value.name, value.digest[:12], _LOADS)
        _CACHE[key] = classifier
        while len(_CACHE) > _MAX_ENTRIES:
            _CACHE.popitem(last=False)
        return classifier, True


def load_count() -> int:
    """How many models this Python process has loaded."""
    return _LOADS
