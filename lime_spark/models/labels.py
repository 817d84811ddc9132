"""Class names of a classifier: Keras' ImageNet index, a file, or a list.

Like R lime's ``as_classifier(labels=...)``: ``"imagenet"``, a list of
names, or a file (any fsspec URI) holding a JSON list, a JSON object mapping
index to name (or to ``[wnid, name]`` as Keras' class index does), or one name
per line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..exceptions import ConfigurationError, ModelLoadError

__all__ = ["imagenet_label_names", "load_label_names"]

_IMAGENET_INDEX = "imagenet_class_index.json"
_IMAGENET_INDEX_HASH = "c2c37ea517e94d9795004a39431a14cb"


def imagenet_label_names() -> list[str]:
    """The 1000 ImageNet class names from Keras' own class index.

    Keras reads ``imagenet_class_index.json`` from its cache
    (``$KERAS_HOME/models``) and downloads it there when absent.
    """
    from keras.src.applications import imagenet_utils
    from keras.utils import get_file

    try:
        path = get_file(_IMAGENET_INDEX, imagenet_utils.CLASS_INDEX_PATH,
                        cache_subdir="models", file_hash=_IMAGENET_INDEX_HASH)
    except Exception as exc:  # network or cache errors all mean the same here
        raise ModelLoadError(
            "Could not get Keras' ImageNet class index (imagenet_class_index.json); put "
            "it in $KERAS_HOME/models/ to work offline. Cause: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    with open(path, encoding="utf-8") as fh:
        index = json.load(fh)
    return [index[str(i)][1] for i in range(len(index))]


def _read_label_file(uri: str) -> str:
    import fsspec

    try:
        with fsspec.open(uri, "rt", encoding="utf-8") as fh:
            return fh.read()
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"Expected labels to be `imagenet`, a list of names or a readable file. "
            f"Received: labels={uri!r} ({type(exc).__name__}: {exc})"
        ) from exc


def _parse_label_text(text: str) -> list[str]:
    """Names from a JSON list, a JSON ``{index: name or [wnid, name]}``, or one per line."""
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        data = json.loads(stripped)
        if isinstance(data, dict):
            keys = sorted(data, key=lambda k: int(k))
            return [data[k][-1] if isinstance(data[k], list) else str(data[k]) for k in keys]
        return [str(x) for x in data]
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_label_names(labels: str | Sequence[str] | None) -> list[str] | None:
    """Label names from ``"imagenet"``, a list, or a file (like R lime's ``as_classifier``).

    Parameters
    ----------
    labels : "imagenet", sequence of str, str or None
        A string other than ``"imagenet"`` names a file (any fsspec URI)
        holding a JSON list, a JSON object mapping index to name (or to
        ``[wnid, name]`` as Keras' class index does), or one name per line.

    Returns
    -------
    list of str, or None when ``labels`` is None
    """
    if labels is None:
        return None
    if isinstance(labels, str):
        if labels == "imagenet":
            return imagenet_label_names()
        return _parse_label_text(_read_label_file(labels))
    return [str(x) for x in labels]
