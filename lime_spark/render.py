"""Overlay PNGs of image explanations, drawn on the original image.

The counterparts of R lime's ``plot_image_explanation`` and
``plot_superpixels``.  Superpixels are usually computed on a resized copy of
the image (the model input, e.g. 224 x 224); every function here takes the
*original* image and a label image of any size, upsamples the labels with
nearest neighbour to the original's height and width
(:func:`upsample_segments`) and draws at full resolution.  Line widths scale
with the image so that outlines stay visible on a 128 px thumbnail and on a
4000 px photo.

Selection follows R lime: a superpixel *supports* the label when its weight
is ``> threshold`` and *contradicts* it when its weight is ``< -threshold``
(shown only with ``show_negative=True``).

Differences from R lime, on purpose:

* both kinds of superpixel go into one picture (R draws a "Supports" and a
  "Contradicts" panel);
* ``display="outline"`` leaves the inside of the highlighted superpixels
  untouched (R also tints it with ``fill_alpha``);
* ``display="block"`` tints the highlighted superpixels with their colour at
  ``fill_alpha`` and fades the rest towards grey, where R replaces the rest
  by opaque grey.  :func:`render_mask` with ``hide_rest=True`` gives R's
  opaque-grey look.

All public functions validate their arguments once and raise the typed errors
of :mod:`lime_spark.exceptions`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any, Union

import numpy as np
from numpy.typing import NDArray

from ._validation import check_int, check_one_of, check_real
from .exceptions import ConfigurationError, InvalidImageError, SegmentationError

__all__ = [
    "DISPLAYS",
    "OUTLINE_COLOURS",
    "BLOCK_COLOURS",
    "HIDE_COLOUR",
    "Colour",
    "Weights",
    "upsample_segments",
    "render_explanation",
    "render_superpixels",
    "render_mask",
    "encode_png",
    "thumbnail",
]

Colour = Union[str, tuple[int, int, int]]
"""A colour name or hex string understood by Pillow, or an ``(r, g, b)`` tuple of 0..255."""

Weights = Union[Mapping[int, float], Iterable[tuple[int, float]]]
"""Superpixel weights: ``{superpixel: weight}`` or lime's ``local_exp[label]`` pairs."""

DISPLAYS = ("outline", "block")
"""Values accepted by ``render_explanation(display=...)``."""

OUTLINE_COLOURS: tuple[str, str] = ("lightgreen", "red")
"""Default (supporting, contradicting) outline colours: R lime's ``outline_col``."""

BLOCK_COLOURS: tuple[str, str] = ("steelblue", "firebrick")
"""Default (supporting, contradicting) fill colours of ``display="block"``."""

HIDE_COLOUR: tuple[int, int, int] = (190, 190, 190)
"""R's ``grey`` (``#BEBEBE``), R lime's ``block_col``; hides unselected areas."""

_FADE_STRENGTH = 0.6
"""Share of :data:`HIDE_COLOUR` in a faded pixel; the rest is the pixel's own luminance."""

_LUMA = np.array([0.299, 0.587, 0.114])
"""ITU-R BT.601 luma weights, as in Pillow's ``convert("L")``."""


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------

def _check_image(image: Any) -> NDArray[np.uint8]:
    arr = np.asarray(image)
    if (arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8
            or arr.shape[0] < 1 or arr.shape[1] < 1):
        raise InvalidImageError(
            "Expected image to be an array of shape (height, width, 3) with "
            f"dtype uint8. Received: shape={arr.shape}, dtype={arr.dtype}"
        )
    return arr


def _check_label_image(segments: Any) -> NDArray[np.integer]:
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


def _resolve_weights(weights: Any, labels: NDArray[np.integer]) -> dict[int, float]:
    """Turn pairs or a mapping into ``{superpixel: weight}``, checked against ``labels``."""
    if isinstance(weights, Mapping):
        pairs: Iterable[Any] = weights.items()
    elif isinstance(weights, (str, bytes)) or not isinstance(weights, Iterable):
        raise ConfigurationError(
            "Expected weights to be a mapping {superpixel: weight} or a sequence "
            f"of (superpixel, weight) pairs. Received: {type(weights).__name__}"
        )
    else:
        pairs = weights
    resolved: dict[int, float] = {}
    for pair in pairs:
        try:
            feature, weight = pair
        except (TypeError, ValueError):
            raise ConfigurationError(
                "Expected weights to hold (superpixel, weight) pairs. "
                f"Received: {pair!r}"
            ) from None
        if isinstance(feature, bool) or not isinstance(feature, Integral):
            raise ConfigurationError(
                f"Expected superpixel ids to be integers. Received: {feature!r}"
            )
        if isinstance(weight, bool) or not isinstance(weight, Real) or not np.isfinite(weight):
            raise ConfigurationError(
                "Expected superpixel weights to be finite numbers. Received: "
                f"weight={weight!r} for superpixel {int(feature)}"
            )
        if int(feature) in resolved:
            raise ConfigurationError(
                f"Expected each superpixel once in weights. Received: superpixel "
                f"{int(feature)} more than once"
            )
        resolved[int(feature)] = float(weight)
    if resolved:
        present = np.unique(labels)
        missing = sorted(set(resolved) - set(present.tolist()))
        if missing:
            raise SegmentationError(
                "Expected every weighted superpixel to be a label of segments "
                f"(ids {present.min()}..{present.max()}). Received: weights for "
                f"absent superpixel(s) {missing[:10]}"
            )
    return resolved


# --------------------------------------------------------------------------
# array helpers
# --------------------------------------------------------------------------

def _default_width(shape: tuple[int, int]) -> int:
    """Line width in pixels for an image of ``shape``: about 1 px per 200 px of the short side."""
    return max(1, int(round(min(shape) / 200)))


def _upsample(labels: NDArray[Any], shape: tuple[int, int]) -> NDArray[Any]:
    """Nearest-neighbour resize by pixel centres: out[i] = in[floor((i + 0.5) * h / H)].

    Keeps the dtype, so a small boolean mask can be upsampled instead of labels.
    """
    h, w = labels.shape
    height, width = shape
    rows = ((2 * np.arange(height, dtype=np.int64) + 1) * h) // (2 * height)
    cols = ((2 * np.arange(width, dtype=np.int64) + 1) * w) // (2 * width)
    return labels[rows[:, None], cols[None, :]]


def _thicken(lines: NDArray[np.bool_], width: int) -> NDArray[np.bool_]:
    """Dilate one-pixel ``lines`` into lines about ``width`` pixels wide."""
    if width <= 1:
        return lines
    from skimage.morphology import dilation, footprint_rectangle

    size = 2 * (width - 1) + 1
    footprint = footprint_rectangle((size, size), decomposition="separable")
    return dilation(lines, footprint).astype(bool, copy=False)


def _region_outline(mask: NDArray[np.bool_], width: int) -> NDArray[np.bool_]:
    """The band of ``mask`` within ``width`` pixels of its edge.

    The image border counts as an edge, so a region touching it is closed.
    """
    from skimage.segmentation import find_boundaries

    padded = np.pad(mask, 1, constant_values=False).astype(np.uint8)
    edge = find_boundaries(padded, mode="inner", background=0)[1:-1, 1:-1]
    return _thicken(edge, width) & mask


def _blend(pixels: NDArray[np.float64], colour: NDArray[np.float64],
           alpha: float) -> NDArray[np.float64]:
    return (1.0 - alpha) * pixels + alpha * colour


def _fade(pixels: NDArray[np.float64]) -> NDArray[np.float64]:
    """Desaturate ``pixels`` (n, 3) and pull them towards :data:`HIDE_COLOUR`."""
    luma = (pixels @ _LUMA)[:, None]
    return _blend(luma, np.asarray(HIDE_COLOUR, dtype=np.float64), _FADE_STRENGTH)


def _to_uint8(pixels: NDArray[np.float64]) -> NDArray[np.uint8]:
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------

def upsample_segments(segments: NDArray[np.integer],
                      shape: tuple[int, int]) -> NDArray[np.int32]:
    """Resize a label image to ``shape`` with nearest neighbour.

    Output pixel ``(i, j)`` takes the label of the input pixel whose area
    contains its centre: ``segments[floor((i + 0.5) * h / H),
    floor((j + 0.5) * w / W)]``, computed in exact integer arithmetic (a
    centre that falls exactly on the edge between two input pixels takes the
    later one).  Labels are never mixed or invented, and every label
    survives when the output is at least as large as the input.

    Parameters
    ----------
    segments : ndarray of shape (h, w), integer dtype
        Label image, e.g. computed on the model-sized copy of an image.
    shape : tuple of int (H, W)
        Target height and width, e.g. the original image's.

    Returns
    -------
    ndarray of shape (H, W), dtype int32

    Raises
    ------
    SegmentationError
        If ``segments`` is not a 2-D integer array.
    ConfigurationError
        If ``shape`` is not a pair of positive integers.

    Examples
    --------
    >>> upsample_segments(np.array([[0, 1], [2, 3]]), (4, 6))
    array([[0, 0, 0, 1, 1, 1],
           [0, 0, 0, 1, 1, 1],
           [2, 2, 2, 3, 3, 3],
           [2, 2, 2, 3, 3, 3]], dtype=int32)
    """
    labels = _check_label_image(segments)
    return _upsample(labels.astype(np.int32, copy=False), _check_shape(shape))


def render_explanation(
    image: NDArray[np.uint8],
    segments: NDArray[np.integer],
    weights: Weights,
    *,
    display: str = "outline",
    threshold: float = 0.02,
    show_negative: bool = False,
    positive_colour: Colour | None = None,
    negative_colour: Colour | None = None,
    fill_alpha: float = 0.3,
    outline_width: int | None = None,
) -> bytes:
    """Highlight the superpixels that support (and contradict) a label, as a PNG.

    The counterpart of R lime's ``plot_image_explanation`` for one label.
    Superpixels with ``weight > threshold`` support the label; with
    ``show_negative=True``, those with ``weight < -threshold`` contradict it.

    * ``display="outline"``: the edge of the supporting area (the union of
      its superpixels) is drawn in ``positive_colour``, the edge of the
      contradicting area in ``negative_colour``, over the untouched image.
    * ``display="block"``: supporting and contradicting superpixels are
      tinted with their colour at ``fill_alpha``; everything else is
      desaturated and faded towards grey so the highlighted area stands out.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), dtype uint8
        The original RGB image, at its own resolution.
    segments : ndarray of shape (h, w), integer dtype
        Superpixel label image, any size (upsampled to (H, W) with
        :func:`upsample_segments`).
    weights : mapping or iterable of (int, float) pairs
        ``{superpixel: weight}`` or lime's ``local_exp[label]`` list of
        ``(superpixel, weight)``.  Superpixels without a weight are not
        highlighted.  Every id must be a label of ``segments``.
    display : {"outline", "block"}, default "outline"
    threshold : float, default 0.02
        Smallest absolute weight shown; finite and >= 0.
    show_negative : bool, default False
        Also show superpixels that contradict the label.
    positive_colour, negative_colour : str or (r, g, b) tuple, optional
        Colours of supporting and contradicting superpixels: a name Pillow
        knows ("steelblue", "firebrick", "blue", "red", ...), a hex string or
        integers 0..255.  Defaults: :data:`OUTLINE_COLOURS` (lightgreen, red,
        as R lime) for outlines, :data:`BLOCK_COLOURS` (steelblue,
        firebrick) for blocks.
    fill_alpha : float, default 0.3
        Opacity of the tint in block mode, in [0, 1].
    outline_width : int, optional
        Line width in pixels, >= 1; default about 1 px per 200 px of the
        image's shorter side.

    Returns
    -------
    bytes
        A PNG of size W x H (RGB, 8 bit).

    Raises
    ------
    InvalidImageError
        If ``image`` is not an (H, W, 3) uint8 array.
    SegmentationError
        If ``segments`` is not a 2-D integer array or ``weights`` names a
        superpixel that is not in it.
    ConfigurationError
        For any other argument outside its constraints.

    Examples
    --------
    With an ``ImageExplanation`` this is ``render_explanation(image,
    explanation.segments, explanation.local_exp[label])``.

    >>> image = np.zeros((300, 451, 3), dtype=np.uint8)
    >>> segments = np.arange(4).reshape(2, 2)  # e.g. computed at 128 x 128
    >>> png = render_explanation(image, segments, [(0, 0.4), (3, -0.1)],
    ...                          display="block", show_negative=True)
    >>> png[1:4]
    b'PNG'
    """
    check_one_of("display", display, DISPLAYS)
    rgb = _check_image(image)
    labels = _check_label_image(segments)
    threshold = check_real("threshold", threshold, minimum=0.0)
    show_negative = _check_bool("show_negative", show_negative)
    fill_alpha = _check_fraction("fill_alpha", fill_alpha)
    defaults = OUTLINE_COLOURS if display == "outline" else BLOCK_COLOURS
    pos_rgb = _resolve_colour(
        "positive_colour", defaults[0] if positive_colour is None else positive_colour)
    neg_rgb = _resolve_colour(
        "negative_colour", defaults[1] if negative_colour is None else negative_colour)
    height, width = rgb.shape[:2]
    line = (_default_width((height, width)) if outline_width is None
            else check_int("outline_width", outline_width, minimum=1))
    resolved = _resolve_weights(weights, labels)

    positive = [f for f, w in resolved.items() if w > threshold]
    negative = ([f for f, w in resolved.items() if w < -threshold]
                if show_negative else [])
    # Select at the segments' resolution, then upsample the masks: cheaper
    # than comparing labels on a full-size photo.
    pos_mask = _upsample(np.isin(labels, positive), (height, width))
    neg_mask = _upsample(np.isin(labels, negative), (height, width))

    out = rgb.copy()
    if display == "outline":
        for mask, colour in ((neg_mask, neg_rgb), (pos_mask, pos_rgb)):
            if mask.any():
                out[_region_outline(mask, line)] = _to_uint8(colour)
    else:
        rest = ~(pos_mask | neg_mask)
        pixels = rgb.astype(np.float64)
        out[rest] = _to_uint8(_fade(pixels[rest]))
        out[pos_mask] = _to_uint8(_blend(pixels[pos_mask], pos_rgb, fill_alpha))
        out[neg_mask] = _to_uint8(_blend(pixels[neg_mask], neg_rgb, fill_alpha))
    return encode_png(out)


def render_superpixels(
    image: NDArray[np.uint8],
    segments: NDArray[np.integer],
    *,
    colour: Colour = "black",
    outline_width: int | None = None,
) -> bytes:
    """Draw every superpixel boundary on the image, as a PNG.

    The counterpart of R lime's ``plot_superpixels``, for checking a
    segmentation before explaining.  Boundaries are the pixels on both sides
    of each change of label (``find_boundaries(mode="thick")``, 2 px),
    thickened to about ``outline_width`` pixels.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), dtype uint8
        The original RGB image.
    segments : ndarray of shape (h, w), integer dtype
        Superpixel label image, any size (upsampled to (H, W)).
    colour : str or (r, g, b) tuple, default "black"
        Line colour (R lime's default).
    outline_width : int, optional
        Line width in pixels, >= 1 (lines are never thinner than 2 px);
        default about 1 px per 200 px of the image's shorter side.

    Returns
    -------
    bytes
        A PNG of size W x H (RGB, 8 bit).

    Raises
    ------
    InvalidImageError, SegmentationError, ConfigurationError
    """
    from skimage.segmentation import find_boundaries

    rgb = _check_image(image)
    labels = _check_label_image(segments)
    line_rgb = _resolve_colour("colour", colour)
    height, width = rgb.shape[:2]
    line = (_default_width((height, width)) if outline_width is None
            else check_int("outline_width", outline_width, minimum=1))

    full = _upsample(labels, (height, width))
    # "thick" marks both sides of an edge (2 px); grow it to about ``line``.
    edges = _thicken(find_boundaries(full, mode="thick"), max(1, line // 2))
    out = rgb.copy()
    out[edges] = _to_uint8(line_rgb)
    return encode_png(out)


def render_mask(
    image: NDArray[np.uint8],
    segments: NDArray[np.integer],
    mask_features: Sequence[int],
    *,
    hide_rest: bool = False,
    colour: Colour = "yellow",
    outline_width: int | None = None,
) -> bytes:
    """Show a chosen set of superpixels, as a PNG.

    The picture behind lime's ``get_image_and_mask``: the superpixels in
    ``mask_features`` are kept as they are.  With ``hide_rest=True`` every
    other pixel is replaced by R's grey (:data:`HIDE_COLOUR`, R lime's
    ``display="block"`` look); otherwise the edge of the kept area is drawn
    in ``colour`` (yellow, as ``skimage.segmentation.mark_boundaries``).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), dtype uint8
        The original RGB image.
    segments : ndarray of shape (h, w), integer dtype
        Superpixel label image, any size (upsampled to (H, W)).
    mask_features : sequence of int
        Superpixel ids to keep; each must be a label of ``segments``.
    hide_rest : bool, default False
    colour : str or (r, g, b) tuple, default "yellow"
        Outline colour when ``hide_rest`` is False.
    outline_width : int, optional
        Outline width in pixels, >= 1; default scales with the image.

    Returns
    -------
    bytes
        A PNG of size W x H (RGB, 8 bit).

    Raises
    ------
    InvalidImageError, SegmentationError, ConfigurationError
    """
    rgb = _check_image(image)
    labels = _check_label_image(segments)
    hide_rest = _check_bool("hide_rest", hide_rest)
    line_rgb = _resolve_colour("colour", colour)
    height, width = rgb.shape[:2]
    line = (_default_width((height, width)) if outline_width is None
            else check_int("outline_width", outline_width, minimum=1))
    if isinstance(mask_features, (str, bytes)) or not isinstance(mask_features, Iterable):
        raise ConfigurationError(
            "Expected mask_features to be a sequence of superpixel ids. "
            f"Received: {type(mask_features).__name__}"
        )
    keep = list(_resolve_weights({f: 1.0 for f in _check_ids(mask_features)}, labels))

    mask = _upsample(np.isin(labels, keep), (height, width))
    out = rgb.copy()
    if hide_rest:
        out[~mask] = np.asarray(HIDE_COLOUR, dtype=np.uint8)
    elif mask.any():
        out[_region_outline(mask, line)] = _to_uint8(line_rgb)
    return encode_png(out)


def _check_ids(features: Iterable[Any]) -> list[int]:
    ids = []
    for feature in features:
        if isinstance(feature, bool) or not isinstance(feature, Integral):
            raise ConfigurationError(
                f"Expected superpixel ids to be integers. Received: {feature!r}"
            )
        ids.append(int(feature))
    return ids


def encode_png(image: NDArray[np.uint8]) -> bytes:
    """Encode an RGB image as PNG bytes.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), dtype uint8

    Returns
    -------
    bytes
        The PNG file's content (RGB, 8 bit, W x H).

    Raises
    ------
    InvalidImageError
        If ``image`` is not an (H, W, 3) uint8 array.
    """
    from PIL import Image

    rgb = _check_image(image)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnail(image: NDArray[np.uint8], max_side: int) -> NDArray[np.uint8]:
    """Shrink an image so that its longer side is at most ``max_side``.

    The aspect ratio is kept (each side rounded, at least 1 px) and the image
    is never enlarged: an image that already fits is returned as a copy.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), dtype uint8
    max_side : int
        Largest allowed height or width in pixels, >= 1.

    Returns
    -------
    ndarray of shape (h, w, 3), dtype uint8, with ``max(h, w) <= max_side``.

    Raises
    ------
    InvalidImageError
        If ``image`` is not an (H, W, 3) uint8 array.
    ConfigurationError
        If ``max_side`` is not an integer >= 1.
    """
    from PIL import Image

    rgb = _check_image(image)
    max_side = check_int("max_side", max_side, minimum=1)
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return rgb.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(np.ascontiguousarray(rgb)).resize(
        size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(small, dtype=np.uint8)
