"""Classifiers: a Keras model with its preprocessing, input size and labels.

A :class:`Classifier` predicts probabilities for batches of RGB images in
0..255 through compiled functions of one fixed batch shape (the last batch is
padded), so shapes never retrace.  Its :meth:`Classifier.predict_design` also
builds the perturbed images inside the compiled function from the design
rows, so on a GPU only the 0/1 masks travel per batch, and
:meth:`Classifier.predict_rows` does the same for fixed-shape batches whose
rows belong to several images.

Any plain callable ``fn(images) -> probabilities`` (lime's ``classifier_fn``)
can be used in place of a Classifier by the explainer.

Modules, bottom up:

* :mod:`~lime_spark.models.applications`: ``keras.applications`` names,
  their ``preprocess_input``, alpha and size from weight file names;
* :mod:`~lime_spark.models.labels`: class names (ImageNet, a file, a list);
* :mod:`~lime_spark.models.classifier`: the compiled :class:`Classifier`,
  :data:`ClassifierFn` and :func:`check_probabilities`;
* :mod:`~lime_spark.models.onnx`: the fused function exported to ONNX (and
  its multi-image twin, :func:`~lime_spark.models.onnx.rows_graph`), the
  ONNX Runtime engine, and :func:`select_runtime` (``auto``'s probe);
* :mod:`~lime_spark.models.loading`: :func:`load_classifier` from a file or
  an application name.
"""

from .applications import application_names, preprocess_function
from .classifier import OUTPUT_ACTIVATIONS, Classifier, ClassifierFn, check_probabilities
from .labels import imagenet_label_names, load_label_names
from .loading import load_classifier, model_is_file
from .onnx import RUNTIMES, export_onnx, rows_graph, select_runtime

__all__ = [
    "ClassifierFn",
    "Classifier",
    "load_classifier",
    "load_label_names",
    "imagenet_label_names",
    "application_names",
    "preprocess_function",
    "check_probabilities",
    "model_is_file",
    "OUTPUT_ACTIVATIONS",
    "RUNTIMES",
    "export_onnx",
    "rows_graph",
    "select_runtime",
]
