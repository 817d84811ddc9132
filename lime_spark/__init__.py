"""lime-spark: LIME explanations of Keras image classifiers, in one process or on Spark.

The core (everything outside ``lime_spark.spark``) is plain numpy/Keras code;
importing this package does not import TensorFlow or pyspark.
"""

from .exceptions import (
    ClassifierOutputError,
    ConfigurationError,
    ImageTimeoutError,
    RunLockedError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageError,
    LimeSparkError,
    ModelLoadError,
    SegmentationError,
    StorageError,
    UnsupportedImageError,
)
from .anchors import AnchorExplainer, AnchorExplanation
from .explainer import DEFAULT_FILL, ExplainerConfig, ImageExplainer, ImageExplanation
from .images import decode_image, load_image, resize_image, to_rgb_array
from .metrics import deletion_insertion_auc, stability
from .models import Classifier, ClassifierFn, load_classifier
from .perturb import make_fill, perturb_batch
from .render import render_explanation, render_superpixels
from .sampling import derive_seed, sample_design
from .segmentation import segment_image
from .surrogate import cosine_distances, fit_surrogate, kernel_weights

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "AnchorExplainer",
    "AnchorExplanation",
    "Classifier",
    "ClassifierFn",
    "ClassifierOutputError",
    "ConfigurationError",
    "DEFAULT_FILL",
    "ExplainerConfig",
    "ImageExplainer",
    "ImageExplanation",
    "ImageTimeoutError",
    "RunLockedError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "InvalidImageError",
    "LimeSparkError",
    "ModelLoadError",
    "SegmentationError",
    "StorageError",
    "UnsupportedImageError",
    "cosine_distances",
    "decode_image",
    "deletion_insertion_auc",
    "derive_seed",
    "fit_surrogate",
    "kernel_weights",
    "load_classifier",
    "load_image",
    "make_fill",
    "perturb_batch",
    "render_explanation",
    "render_superpixels",
    "resize_image",
    "sample_design",
    "segment_image",
    "stability",
    "to_rgb_array",
]
