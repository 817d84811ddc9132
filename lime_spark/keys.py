"""The keys of an explanation: what it was computed from, as three digests.

Two explanations with the same three keys are the same explanation:

- ``content_sha256``: sha256 of the image file's bytes (:func:`content_sha256`);
- ``model_digest``: the classifier's digest (``Classifier.digest``: the
  ``.keras`` or weights file, or the weight arrays);
- ``explainer_digest``: sha256 of every option that changes an image's rows or
  overlays (:func:`explainer_options`, :func:`explainer_digest`), the rule
  that gives an image its seed, and the classifier's facts outside its
  weights (input size, preprocessing, output activation, label names).

Which options change results is declared here once: every job option is in
:data:`RESULT_OPTIONS` or in :data:`NEUTRAL_OPTIONS` (``tests/unit/test_keys.py``
fails for an option in neither, so a new option must be classified).  The
runtime (TensorFlow or ONNX Runtime) is neutral: both run the same function
and agree to about 1e-6, so an explanation computed with one is reused under
the other (``images.runtime`` says which computed it).  An image's seed
derives from the run seed and its ``content_sha256`` (:data:`SEED_RULE`), so
the same bytes get the same explanation under any id, in any run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["RESULT_OPTIONS", "NEUTRAL_OPTIONS", "SEED_RULE", "KEYS_VERSION", "content_sha256",
           "explainer_options", "explainer_digest"]

KEYS_VERSION = 1
"""Bumped whenever the code changes what the same options compute (a new fill, a fixed bug)."""

SEED_RULE = "blake2b(run seed, content_sha256)"
"""How an image's seed is derived (:func:`lime_spark.sampling.derive_seed` of the run seed and
the image's ``content_sha256``)."""

RESULT_OPTIONS = frozenset({
    # LIME (ExplainerConfig)
    "segmentation", "n_superpixels", "segmentation_params", "n_samples", "max_samples",
    "min_samples", "sampling", "delta", "tie_tolerance", "fill", "fill_params", "kernel_width",
    "feature_selection", "num_features", "alpha",
    # the rows and pictures of an image (BatchSettings)
    "top_labels", "overlays", "overlay_display", "overlay_caption", "overlay_features",
    "overlay_max_side", "metrics", "metric_labels",
    # anchors (--methods lime,anchors)
    "methods", "anchor_labels", "anchor_threshold", "anchor_delta", "anchor_tau",
    "anchor_epsilon_stop", "anchor_beam_size", "anchor_batch_size", "anchor_coverage_samples",
    "anchor_max_size",
    # the run: each image's seed derives from it
    "seed",
})
"""Job options whose value changes an explained image's rows or overlays."""

NEUTRAL_OPTIONS = frozenset({
    # where and how the input is read
    "input", "path_column", "id_column", "label_column", "partitions",
    # the run's bookkeeping
    "output", "run_id", "lock_stale_seconds", "break_stale_lock", "database", "report",
    "log_level", "reuse", "reuse_from", "resume", "baseline",
    # the model: its weights are model_digest; input size, preprocessing, output activation
    # and label names enter the digest as the classifier's facts; the runtime is neutral
    "model", "weights", "model_args", "preprocess", "label_names", "output_activation",
    "runtime",
    # limits decide whether an image fails, never what an explained image gets
    "max_pixels", "max_bytes", "max_decode_bytes", "read_retries", "image_timeout",
    # batching and threads: a row's probabilities do not depend on its batch mates
    "batch_size", "device_batch_size", "images_in_flight", "prefetch",
})
"""Job options that never change an explained image's rows or overlays."""


def content_sha256(data: bytes) -> str:
    """The image's content key: sha256 (hex) of its file's bytes."""
    return hashlib.sha256(data).hexdigest()


def _plain(value: Any) -> Any:
    """``value`` as JSON: callables by their qualified name, mappings with sorted keys."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if callable(value):
        return f"callable:{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
    return repr(value)


def explainer_options(explainer_config: Any, settings: Any, classifier: Any) -> dict[str, Any]:
    """Everything the ``explainer_digest`` covers, as plain JSON values.

    Parameters
    ----------
    explainer_config : ExplainerConfig
    settings : BatchSettings
        Its result options, and ``run_seed`` as ``seed``.
    classifier : Classifier or FunctionClassifier
        Its facts outside the weights: input size, preprocessing, output
        activation, number of classes and a digest of its label names.
    """
    options: dict[str, Any] = {}
    for section in (explainer_config, settings):
        for f in dataclasses.fields(section):
            if f.name in RESULT_OPTIONS:
                options[f.name] = _plain(getattr(section, f.name))
    options["seed"] = int(settings.run_seed)
    names = getattr(classifier, "label_names", None)
    model = {
        "input_size": _plain(getattr(classifier, "input_size", None)),
        "preprocess": _plain(getattr(classifier, "preprocess_name", None)),
        "output_activation": getattr(classifier, "output_activation", None),
        "n_classes": getattr(classifier, "n_classes", None),
        "label_names_sha256": hashlib.sha256(json.dumps(list(names)).encode("utf-8"))
        .hexdigest() if names is not None else None,
    }
    return {"keys_version": KEYS_VERSION, "seed_rule": SEED_RULE,
            "options": dict(sorted(options.items())), "model": model}


def explainer_digest(options: Mapping[str, Any]) -> str:
    """sha256 (hex) of :func:`explainer_options`' value in canonical JSON."""
    text = json.dumps(options, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
