"""Explanations as step generators: the model is asked, not called.

An explanation (:meth:`lime_spark.explainer.ImageExplainer.steps`) and its
metrics (:func:`lime_spark.metrics.deletion_insertion_steps`) are generators
that *yield* a :class:`ModelRequest` (design rows of one image) whenever they
need probabilities, are *sent* the probabilities back, and *return* their
result.  Who answers decides how the model runs:

* :func:`run_steps` answers each request at once with
  :func:`~lime_spark.adapters.predict_design` (one image at a time: the
  in-process API);
* the batch pipeline (:mod:`lime_spark.pipeline`) answers the requests of
  several images from shared fixed-shape batches.

The design rows, and so the results, do not depend on who answers.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from numpy.typing import NDArray

from .adapters import Checkpoint, predict_design

__all__ = ["ModelRequest", "Steps", "run_steps"]

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class ModelRequest:
    """Design rows of one image whose perturbed images need probabilities.

    Attributes
    ----------
    image, fill_image : ndarray of shape (H, W, 3)
        The image at the model's input size and what hides a superpixel.
    segments : ndarray of shape (H, W), ids 0..K-1
    design : ndarray of shape (n, K), 0/1
    """

    image: NDArray
    fill_image: NDArray
    segments: NDArray
    design: NDArray


Steps = Generator[ModelRequest, NDArray, T]
"""Yields requests, is sent (n, n_classes) probabilities for each, returns its result."""


def run_steps(steps: Steps[T], predictor: Any, *, batch_size: int,
              checkpoint: Checkpoint | None = None) -> T:
    """Drive ``steps`` to its result, answering each request with ``predictor`` directly.

    Parameters
    ----------
    steps : generator
    predictor : Classifier, DesignPredictor or callable
    batch_size : int
        Images per call of a plain callable.
    checkpoint : callable, optional
        Passed to :func:`~lime_spark.adapters.predict_design` (called before
        every model batch).
    """
    probs = None
    while True:
        try:
            request = steps.send(probs)
        except StopIteration as stop:
            return stop.value
        probs = predict_design(predictor, request.image, request.fill_image, request.segments,
                               request.design, batch_size=batch_size, checkpoint=checkpoint)
