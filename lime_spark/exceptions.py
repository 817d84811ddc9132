"""Exceptions raised by lime-spark.

Every error is a :class:`LimeSparkError` and also inherits the builtin that
best describes it, so ``except ValueError`` keeps working for callers that do
not know this package.  Messages say what was expected and what was received.
The ``error_class`` column of the job's ``images`` table is the class name,
so these names are a stable contract: do not rename them.
"""

from __future__ import annotations

__all__ = [
    "LimeSparkError",
    "ConfigurationError",
    "InvalidImageError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "UnsupportedImageError",
    "SegmentationError",
    "ClassifierOutputError",
    "ModelLoadError",
    "StorageError",
    "ImageTimeoutError",
    "RunLockedError",
]


class LimeSparkError(Exception):
    """Base class of every error raised by lime-spark."""


class ConfigurationError(LimeSparkError, ValueError):
    """An option or argument has a value outside its declared constraints."""


class InvalidImageError(LimeSparkError, ValueError):
    """Bytes or an array that cannot be used as an RGB image."""


class UnsupportedImageError(InvalidImageError):
    """A readable file whose format or mode lime-spark cannot decode."""


class ImageTooLargeError(InvalidImageError):
    """An image above the decompression-bomb limit (``max_pixels``)."""


class ImageTooSmallError(InvalidImageError):
    """An image too small to be split into superpixels."""


class SegmentationError(LimeSparkError, ValueError):
    """A segmentation that is not a valid label image for the input."""


class ClassifierOutputError(LimeSparkError, ValueError):
    """A classifier returned probabilities of the wrong shape or non-finite values."""


class ModelLoadError(LimeSparkError, OSError):
    """A model file or name that cannot be loaded."""


class StorageError(LimeSparkError, OSError):
    """An object that cannot be read from or written to the store."""


class ImageTimeoutError(LimeSparkError, TimeoutError):
    """An image whose explanation took longer than the per-image limit."""


class RunLockedError(LimeSparkError, RuntimeError):
    """Another job holds the lock of the run id (see :mod:`lime_spark.publish`)."""
