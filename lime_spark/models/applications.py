"""The ``keras.applications`` registry: model names, their preprocessing, weight file names.

Names are matched without case or punctuation (``"MobileNetV2"``,
``"mobilenet_v2"`` and ``"mobilenetv2"`` are one name).  Keras is imported
on first use, never at import time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from ..exceptions import ConfigurationError

__all__ = ["application_names", "preprocess_function", "find_application",
           "infer_application_kwargs"]

_MOBILENET_FILE = re.compile(r"mobilenet_(\d)_(\d)_(\d+)_tf(?:_no_top)?\.h5$")
_MOBILENET_V2_FILE = re.compile(
    r"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_([\d.]+)_(\d+)(?:_no_top)?\.h5$")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _applications() -> dict[str, tuple[Callable, str]]:
    """Normalised application name -> (constructor, preprocessing module name)."""
    import keras

    table = {}
    for attr in dir(keras.applications):
        obj = getattr(keras.applications, attr)
        if attr[:1].isupper() and callable(obj):
            module = obj.__module__.rsplit(".", 1)[-1]
            table[_norm(attr)] = (obj, module)
    return table


def find_application(name: str) -> tuple[Callable, str] | None:
    """(constructor, preprocessing module name) of a ``keras.applications`` model, or None.

    Parameters
    ----------
    name : str
        ``"mobilenet"``, ``"MobileNetV2"``, ``"resnet_50"``, ...: case and
        punctuation are ignored.
    """
    return _applications().get(_norm(name))


def application_names() -> list[str]:
    """The ``keras.applications`` model names accepted by :func:`load_classifier`."""
    import keras

    return sorted(a for a in dir(keras.applications)
                  if a[:1].isupper() and callable(getattr(keras.applications, a)))


def preprocess_function(name: str | Callable | None) -> Callable | None:
    """The ``preprocess_input`` of a ``keras.applications`` module, by name.

    Parameters
    ----------
    name : str, callable or None
        A module name such as ``"mobilenet"``, ``"vgg16"``, ``"resnet50"``,
        ``"none"``/None for identity, or a callable taking a float tensor of
        shape (N, H, W, 3) in 0..255.
    """
    import keras

    if name is None or callable(name):
        return name
    if name == "none":
        return None
    module = getattr(keras.applications, name, None)
    if module is None or not hasattr(module, "preprocess_input"):
        modules = sorted(m for m in dir(keras.applications)
                         if hasattr(getattr(keras.applications, m), "preprocess_input"))
        listed = ", ".join(f"`{m}`" for m in ["none", *modules])
        raise ConfigurationError(
            f"Expected preprocess to be one of {listed}. Received: preprocess={name!r}"
        )
    return module.preprocess_input


def infer_application_kwargs(name: str, weights: str | None) -> dict[str, Any]:
    """alpha and input size from Keras' own weight file names (MobileNet v1/v2).

    Parameters
    ----------
    name : str
        The application's name (case and punctuation ignored).
    weights : str or None
        The weights file; only its base name is read.

    Examples
    --------
    >>> infer_application_kwargs("mobilenet", "mobilenet_2_5_128_tf.h5")
    {'alpha': 0.25, 'input_shape': (128, 128, 3)}
    """
    if not isinstance(weights, str):
        return {}
    norm_name = _norm(name)
    base = os.path.basename(weights)
    if norm_name == "mobilenet" and (m := _MOBILENET_FILE.search(base)):
        alpha = float(f"{m.group(1)}.{m.group(2)}")
        alpha = {2.5: 0.25, 5.0: 0.5, 7.5: 0.75}.get(alpha, alpha)
        size = int(m.group(3))
        return {"alpha": alpha, "input_shape": (size, size, 3)}
    if norm_name == "mobilenetv2" and (m := _MOBILENET_V2_FILE.search(base)):
        size = int(m.group(2))
        return {"alpha": float(m.group(1)), "input_shape": (size, size, 3)}
    return {}
