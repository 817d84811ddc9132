"""The checks of the overlay functions' arguments, each run once at the public boundary.

Each returns the argument in the form the drawing code needs (an array, a
float colour, ``{superpixel: weight}``) or raises the typed error of
:mod:`lime_spark.exceptions` that names the argument and the value received.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from typing import Any, Union

import numpy as np
from numpy.typing import NDArray

from .._validation import check_int, check_real
from ..exceptions import ConfigurationError, InvalidImageError, SegmentationError

Colour = Union[str, tuple[int, int, int]]
"""A colour name or hex string understood by Pillow, or an ``(r, g, b)`` tuple of 0..255."""

Coefficients = Union[Mapping[int, float], Iterable[tuple[int, float]]]
"""Superpixel coefficients: ``{superpixel: weight}`` or lime's ``local_exp[label]`` pairs."""


def _check_image(image: Any) -> NDArray[np.uint8]:
    arr = np.asarray(image)
    if (arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8
            or arr.shape[0] < 1 or arr.shape[1] < 1):
        raise InvalidImageError(
            "Expected image to be an array of shape (height, width, 3) with "
            f"dtype uint8. Received: shape={arr.shape}, dtype={arr.dtype}"
        )
    return arr


def _check_segments(segments: Any) -> NDArray[np.integer]:
    arr = np.asarray(segments)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise SegmentationError(
            "Expected segments to be a non-empty 2-D label image of shape "
            f"(height, width). Received: shape={arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise SegmentationError(
            "Expected segments with an integer dtype. "
            f"Received: dtype={arr.dtype}"
        )
    info = np.iinfo(np.int32)
    if arr.min() < info.min or arr.max() > info.max:
        raise SegmentationError(
            "Expected segment ids that fit in int32. Received: "
            f"min={arr.min()}, max={arr.max()}"
        )
    return arr


def _check_shape(shape: Any) -> tuple[int, int]:
    try:
        height, width = shape
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"Expected shape to be a (height, width) pair. Received: shape={shape!r}"
        ) from None
    return (check_int("height", height, minimum=1),
            check_int("width", width, minimum=1))


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigurationError(
            f"Expected {name} to be True or False. Received: {name}={value!r}"
        )
    return bool(value)


def _check_fraction(name: str, value: Any) -> float:
    value = check_real(name, value, minimum=0.0)
    if value > 1.0:
        raise ConfigurationError(f"Expected {name} <= 1. Received: {name}={value!r}")
    return value


def _resolve_colour(name: str, colour: Any) -> NDArray[np.float64]:
    """Return ``colour`` as a float array of shape (3,) in 0..255."""
    if isinstance(colour, str):
        from PIL import ImageColor

        try:
            rgb = ImageColor.getrgb(colour)[:3]
        except ValueError:
            raise ConfigurationError(
                f"Expected {name} to be a colour name (e.g. 'steelblue'), a hex "
                f"string or an (r, g, b) tuple. Received: {name}={colour!r}"
            ) from None
        return np.asarray(rgb, dtype=np.float64)
    parts = tuple(colour) if isinstance(colour, (tuple, list, np.ndarray)) else ()
    if (len(parts) != 3
            or not all(isinstance(c, Integral) and not isinstance(c, bool)
                       and 0 <= c <= 255 for c in parts)):
        raise ConfigurationError(
            f"Expected {name} to be a colour name (e.g. 'steelblue'), a hex "
            f"string or an (r, g, b) tuple of integers 0..255. "
            f"Received: {name}={colour!r}"
        )
    return np.asarray(parts, dtype=np.float64)


def _resolve_coefficients(coefficients: Any, segments: NDArray[np.integer],
                          present: NDArray[np.integer] | None = None) -> dict[int, float]:
    """Turn pairs or a mapping into ``{superpixel: weight}``, checked against ``segments``.

    ``present`` is ``np.unique(segments)`` when the caller has it already.
    """
    if isinstance(coefficients, Mapping):
        pairs: Iterable[Any] = coefficients.items()
    elif isinstance(coefficients, (str, bytes)) or not isinstance(coefficients, Iterable):
        raise ConfigurationError(
            "Expected coefficients to be a mapping {superpixel: weight} or a sequence "
            f"of (superpixel, weight) pairs. Received: {type(coefficients).__name__}"
        )
    else:
        pairs = coefficients
    resolved: dict[int, float] = {}
    for pair in pairs:
        try:
            feature, weight = pair
        except (TypeError, ValueError):
            raise ConfigurationError(
                "Expected coefficients to hold (superpixel, weight) pairs. "
                f"Received: {pair!r}"
            ) from None
        if isinstance(feature, bool) or not isinstance(feature, Integral):
            raise ConfigurationError(
                f"Expected superpixel ids to be integers. Received: {feature!r}"
            )
        if isinstance(weight, bool) or not isinstance(weight, Real) or not np.isfinite(weight):
            raise ConfigurationError(
                "Expected superpixel coefficients to be finite numbers. Received: "
                f"weight={weight!r} for superpixel {int(feature)}"
            )
        if int(feature) in resolved:
            raise ConfigurationError(
                f"Expected each superpixel once in coefficients. Received: superpixel "
                f"{int(feature)} more than once"
            )
        resolved[int(feature)] = float(weight)
    if resolved:
        if present is None:
            present = np.unique(segments)
        missing = sorted(set(resolved) - set(present.tolist()))
        if missing:
            raise SegmentationError(
                "Expected every weighted superpixel to be a label of segments "
                f"(ids {present.min()}..{present.max()}). Received: coefficients for "
                f"absent superpixel(s) {missing[:10]}"
            )
    return resolved


def _check_ids(features: Iterable[Any]) -> list[int]:
    ids = []
    for feature in features:
        if isinstance(feature, bool) or not isinstance(feature, Integral):
            raise ConfigurationError(
                f"Expected superpixel ids to be integers. Received: {feature!r}"
            )
        ids.append(int(feature))
    return ids
