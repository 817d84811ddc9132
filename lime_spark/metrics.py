"""Faithfulness and stability of explanations.

Deletion and insertion curves (Petsiuk et al., RISE, 2018) in superpixel
order: hide (deletion) or reveal (insertion) the superpixels from the most
positive weight down, and follow the label's probability.  A faithful
explanation has a low deletion AUC and a high insertion AUC.  Both curves
are design rows, so they go through the same batched prediction as the
explanation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .explainer import ImageExplainer, ImageExplanation
from .models import Classifier, ClassifierFn
from .steps import ModelRequest, Steps, run_steps

__all__ = ["superpixel_order", "deletion_insertion_steps", "deletion_insertion_curves",
           "deletion_insertion_auc", "auc",
           "stability"]


def superpixel_order(explanation: ImageExplanation, label: int) -> NDArray[np.int64]:
    """Superpixels by decreasing weight for ``label``; unweighted ones last, by id."""
    weights = dict(explanation.local_exp[label])
    ranked = sorted(weights, key=lambda f: -weights[f])
    rest = [f for f in range(explanation.n_superpixels) if f not in weights]
    return np.array(ranked + rest, dtype=np.int64)


def deletion_insertion_steps(explanation: ImageExplanation,
                             labels: Sequence[int]) -> Steps[dict[int, tuple[NDArray, NDArray]]]:
    """The deletion and insertion curves of ``labels`` as a step generator.

    One :class:`~lime_spark.steps.ModelRequest` holds the rows of every
    label's two curves (2 (K + 1) rows per label), so they share the model's
    batches; it returns ``{label: (deletion, insertion)}``.
    """
    k = explanation.n_superpixels
    steps = np.tril(np.ones((k + 1, k), dtype=np.uint8), -1)   # row i: first i set
    blocks = []
    for label in labels:
        ranked = np.zeros((k + 1, k), dtype=np.uint8)
        ranked[:, superpixel_order(explanation, label)] = steps
        blocks += [1 - ranked, ranked]
    probs = yield ModelRequest(explanation.image, explanation.fill_image, explanation.segments,
                               np.vstack(blocks))
    curves = {}
    for i, label in enumerate(labels):
        rows = probs[2 * i * (k + 1):2 * (i + 1) * (k + 1), label]
        curves[int(label)] = (rows[:k + 1], rows[k + 1:])
    return curves


def deletion_insertion_curves(explanation: ImageExplanation,
                              classifier: Classifier | ClassifierFn, label: int, *,
                              batch_size: int = 128) -> tuple[NDArray, NDArray]:
    """The label's probability as superpixels are hidden / revealed in weight order.

    Returns
    -------
    deletion, insertion : ndarrays of shape (K + 1,)
        Step k hides (deletion) or shows only (insertion) the first k superpixels.
    """
    curves = run_steps(deletion_insertion_steps(explanation, [label]), classifier,
                       batch_size=batch_size)
    return curves[int(label)]


def auc(curve: NDArray) -> float:
    """Area under a curve sampled at equal steps, x normalised to [0, 1] (trapezoids)."""
    x = np.linspace(0.0, 1.0, len(curve))
    return float(np.sum((curve[1:] + curve[:-1]) * np.diff(x)) / 2.0)


def deletion_insertion_auc(explanation: ImageExplanation,
                           classifier: Classifier | ClassifierFn,
                           label: int | None = None, *,
                           batch_size: int = 128) -> tuple[float, float]:
    """Areas under the deletion and insertion curves, x normalised to [0, 1].

    Parameters
    ----------
    label : int, optional
        Defaults to the top label.

    Returns
    -------
    (deletion_auc, insertion_auc) : floats in [0, 1] for probabilities
    """
    if label is None:
        label = explanation.labels[0] if not explanation.top_labels else explanation.top_labels[0]
    deletion, insertion = deletion_insertion_curves(explanation, classifier, label,
                                                    batch_size=batch_size)
    return auc(deletion), auc(insertion)


def stability(explainer: ImageExplainer, image: NDArray, classifier: Classifier | ClassifierFn,
              label: int, *, seeds: Sequence[int] = (0, 1, 2), top_k: int = 5) -> float:
    """Mean pairwise Jaccard overlap of the top-k positive superpixels across seeds.

    The segmentation is shared, so only the sampling varies.  1.0 means every
    seed picked the same superpixels.
    """
    segments = explainer.segment(image, random_state=int(seeds[0]))
    tops = []
    for seed in seeds:
        exp = explainer.explain(image, classifier, labels=[label], segments=segments,
                                random_state=int(seed))
        tops.append({f for f, w in exp.local_exp[label] if w > 0}
                    if top_k is None else
                    {f for f, w in sorted(exp.local_exp[label], key=lambda x: -x[1])[:top_k]})
    scores = [len(a & b) / max(1, len(a | b))
              for i, a in enumerate(tops) for b in tops[i + 1:]]
    return float(np.mean(scores)) if scores else 1.0
