"""Adapters from what a user hands the explainer to the contracts of its stages.

- :func:`check_image`: any accepted image array to the ``(H, W, 3)`` array
  every stage works on (validation by :func:`lime_spark.images.to_rgb_array`,
  the one image validator).
- :func:`as_design_predictor`: a :class:`~lime_spark.models.Classifier` or a
  plain callable (lime's ``classifier_fn``) to one object with
  ``predict_design(image, fill_image, segments, design)`` and ``batch_size``,
  so prediction has a single code path.

The segmenter adapter lives beside the segmenters, in
:mod:`lime_spark.segmentation`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .exceptions import ConfigurationError
from .images import to_rgb_array
from .models import Classifier, ClassifierFn, check_probabilities
from .perturb import check_rows, iter_perturbed, perturb_rows

__all__ = ["DesignPredictor", "FunctionClassifier", "as_design_predictor", "check_image",
           "predict_design", "Checkpoint"]


def check_image(image: Any) -> NDArray:
    """Validate an image with :func:`~lime_spark.images.to_rgb_array`, keeping float values.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)
        Values in 0..255: ``uint8``, another integer dtype or a float dtype.

    Returns
    -------
    ndarray of shape (H, W, 3)
        ``uint8`` as :func:`~lime_spark.images.to_rgb_array` returns it, except
        that a float image keeps its dtype and unrounded values (lime's
        ``classifier_fn`` receives the image's dtype); a C-contiguous float
        ``(H, W, 3)`` input is returned as is.

    Raises
    ------
    InvalidImageError
        Whatever :func:`~lime_spark.images.to_rgb_array` refuses.
    """
    rgb = to_rgb_array(image)
    if image.dtype.kind != "f":
        return rgb
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    return np.ascontiguousarray(np.broadcast_to(image[:, :, :3], rgb.shape))


class DesignPredictor(Protocol):
    """What prediction needs: probabilities for the design rows of one image, or of several.

    ``predict_rows(images, fills, segments, row_image, design)`` takes rows
    that belong to several images (row b to image ``row_image[b]``), as
    :meth:`Classifier.predict_rows <lime_spark.models.Classifier.predict_rows>`.
    """

    batch_size: int

    def predict_design(self, image: NDArray, fill_image: NDArray, segments: NDArray,
                      design: NDArray) -> NDArray:
        ...  # pragma: no cover

    def predict_rows(self, images: NDArray, fills: NDArray, segments: NDArray,
                     row_image: NDArray, design: NDArray) -> NDArray:
        ...  # pragma: no cover


class FunctionClassifier:
    """A plain ``classifier_fn`` with :meth:`Classifier.predict_design`'s contract.

    The perturbed images are built on the host, ``batch_size`` at a time, in
    the image's dtype, and handed to ``fn``; what it returns is validated by
    :func:`~lime_spark.models.check_probabilities`, with the number of classes
    fixed by the first batch (across calls too, like ``Classifier.n_classes``).

    Parameters
    ----------
    fn : callable
        ``fn(images (N, H, W, 3)) -> probabilities (N, n_classes)``.
    batch_size : int
        Most images per call of ``fn``.
    """

    def __init__(self, fn: ClassifierFn, *, batch_size: int):
        self.fn = fn
        self.batch_size = batch_size
        self.n_classes: int | None = None

    def predict_design(self, image: NDArray, fill_image: NDArray, segments: NDArray,
                      design: NDArray) -> NDArray:
        """Probabilities of the perturbed images of ``design``, shape (n_samples, n_classes)."""
        out = []
        for batch in iter_perturbed(image, fill_image, segments, design, self.batch_size):
            probs = check_probabilities(self.fn(batch), batch.shape[0], self.n_classes)
            self.n_classes = probs.shape[1]
            out.append(probs)
        return np.concatenate(out)

    def predict_rows(self, images: NDArray, fills: NDArray, segments: NDArray,
                     row_image: NDArray, design: NDArray) -> NDArray:
        """Probabilities of design rows of several images, one call of ``fn`` for all rows.

        The perturbed images are built on the host
        (:func:`~lime_spark.perturb.perturb_rows`, each image's rows by
        :func:`~lime_spark.perturb.perturb_batch`), in the images' dtype;
        ``batch_size`` does not split them (the caller sizes the batch).

        Parameters
        ----------
        images, fills : ndarray of shape (M, H, W, 3)
        segments : ndarray of shape (M, H, W), int
        row_image : ndarray of shape (B,), int in 0..M-1
        design : ndarray of shape (B, Kmax), 0/1

        Returns
        -------
        ndarray of shape (B, n_classes)
        """
        images, fills, segments, row_image, design = check_rows(
            images, fills, segments, row_image, design)
        if design.shape[0] == 0:
            return np.zeros((0, self.n_classes or 0))
        batch = perturb_rows(images, fills, segments, row_image, design)
        probs = check_probabilities(self.fn(batch), batch.shape[0], self.n_classes)
        self.n_classes = probs.shape[1]
        return probs


def as_design_predictor(classifier: Classifier | ClassifierFn | DesignPredictor, *,
                      batch_size: int) -> DesignPredictor:
    """``classifier`` itself when it already predicts masks, else a :class:`FunctionClassifier`.

    ``batch_size`` applies to a plain callable only; a :class:`Classifier`
    keeps its own (compiled) batch size.

    Raises
    ------
    ConfigurationError
        ``classifier`` is neither a Classifier nor callable.
    """
    if isinstance(classifier, (Classifier, FunctionClassifier)):
        return classifier
    if not callable(classifier):
        raise ConfigurationError(
            "Expected classifier to be a Classifier or a callable mapping images to "
            f"probabilities. Received: {type(classifier).__name__}"
        )
    return FunctionClassifier(classifier, batch_size=batch_size)


Checkpoint = Callable[[str], None]
"""Called between the steps of one explanation with the step's name; raises to abort it."""


def predict_design(classifier: Classifier | ClassifierFn | DesignPredictor, image: NDArray,
                   fill_image: NDArray, segments: NDArray, design: NDArray, *,
                   batch_size: int, checkpoint: Checkpoint | None = None) -> NDArray:
    """Probabilities of the perturbed images of every design row.

    The classifier is adapted once by
    :func:`~lime_spark.adapters.as_design_predictor` and then called through
    ``predict_design`` only: a :class:`Classifier` builds the images inside its
    compiled function; a plain callable (lime's ``classifier_fn``) gets numpy
    batches of at most ``batch_size`` images, in the image's dtype.

    Parameters
    ----------
    classifier : Classifier, callable or DesignPredictor
    image, fill_image : ndarray of shape (H, W, 3)
    segments : ndarray of shape (H, W), int, ids 0..K-1
    design : ndarray of shape (n_samples, K), 0/1
    batch_size : int
        Images per call of a plain callable (a Classifier keeps its own).
    checkpoint : callable, optional
        Called with ``"predict batch i/n"`` before every model batch (the
        predictor is then called one batch at a time, with the same batches
        and so the same results); raise from it to stop early, e.g. at a
        deadline.  A running batch is never interrupted.

    Returns
    -------
    ndarray of shape (n_samples, n_classes)
    """
    predictor = as_design_predictor(classifier, batch_size=batch_size)
    if checkpoint is None:
        return predictor.predict_design(image, fill_image, segments, design)
    step = predictor.batch_size
    n_batches = -(-design.shape[0] // step)
    out = []
    for i, start in enumerate(range(0, design.shape[0], step), start=1):
        checkpoint(f"predict batch {i}/{n_batches}")
        out.append(predictor.predict_design(image, fill_image, segments,
                                           design[start:start + step]))
    return np.concatenate(out)
