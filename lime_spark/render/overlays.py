"""The overlay PNGs: :func:`render_explanation`, :func:`render_superpixels`, :func:`render_mask`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validation import check_int, check_one_of, check_real
from ..exceptions import ConfigurationError
from .arguments import (
    Colour,
    Coefficients,
    _check_bool,
    _check_fraction,
    _check_ids,
    _check_image,
    _check_segments,
    _resolve_colour,
    _resolve_coefficients,
)
from .masks import (
    HIDE_COLOUR,
    _blend,
    _default_width,
    _fade,
    _region_outline,
    _thicken,
    _to_uint8,
    _upsample,
)
from .png import encode_png

DISPLAYS = ("outline", "block")
"""Values accepted by ``render_explanation(display=...)``."""

OUTLINE_COLOURS: tuple[str, str] = ("lightgreen", "red")
"""Default (supporting, contradicting) outline colours: R lime's ``outline_col``."""

BLOCK_COLOURS: tuple[str, str] = ("steelblue", "firebrick")
"""Default (supporting, contradicting) fill colours of ``display="block"``."""


def render_explanation(
    image: NDArray[np.uint8],
    segments: NDArray[np.integer],
    coefficients: Coefficients,
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
    coefficients : mapping or iterable of (int, float) pairs
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
        If ``segments`` is not a 2-D integer array or ``coefficients`` names a
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
    segments = _check_segments(segments)
    threshold = check_real("threshold", threshold, minimum=0.0)
    show_negative = _check_bool("show_negative", show_negative)
    fill_alpha = _check_fraction("fill_alpha", fill_alpha)
    defaults = OUTLINE_COLOURS if display == "outline" else BLOCK_COLOURS
    pos_rgb = _resolve_colour(
        "positive_colour", defaults[0] if positive_colour is None else positive_colour)
    neg_rgb = _resolve_colour(
        "negative_colour", defaults[1] if negative_colour is None else negative_colour)
    height, width = rgb.shape[:2]
    line = _line_width((height, width), outline_width)
    resolved = _resolve_coefficients(coefficients, segments)

    positive = [f for f, w in resolved.items() if w > threshold]
    negative = ([f for f, w in resolved.items() if w < -threshold]
                if show_negative else [])
    # Select at the segments' resolution, then upsample the masks: cheaper
    # than comparing segment ids on a full-size photo.
    pos_mask = _upsample(np.isin(segments, positive), (height, width))
    neg_mask = _upsample(np.isin(segments, negative), (height, width))

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

    rgb, segments, line_rgb, line = _canvas(image, segments, colour, outline_width)
    height, width = rgb.shape[:2]

    full = _upsample(segments, (height, width))
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
    rgb, segments, line_rgb, line = _canvas(image, segments, colour, outline_width)
    hide_rest = _check_bool("hide_rest", hide_rest)
    height, width = rgb.shape[:2]
    if isinstance(mask_features, (str, bytes)) or not isinstance(mask_features, Iterable):
        raise ConfigurationError(
            "Expected mask_features to be a sequence of superpixel ids. "
            f"Received: {type(mask_features).__name__}"
        )
    keep = list(_resolve_coefficients({f: 1.0 for f in _check_ids(mask_features)}, segments))

    mask = _upsample(np.isin(segments, keep), (height, width))
    out = rgb.copy()
    if hide_rest:
        out[~mask] = np.asarray(HIDE_COLOUR, dtype=np.uint8)
    elif mask.any():
        out[_region_outline(mask, line)] = _to_uint8(line_rgb)
    return encode_png(out)


def _line_width(shape: tuple[int, int], outline_width: int | None) -> int:
    """``outline_width`` checked, or the default for an image of ``shape``."""
    return (_default_width(shape) if outline_width is None
            else check_int("outline_width", outline_width, minimum=1))


def _canvas(image: Any, segments: Any, colour: Colour,
            outline_width: int | None) -> tuple[NDArray[np.uint8], NDArray, Any, int]:
    """The checked image, label image, line colour and line width of a one-colour picture."""
    rgb = _check_image(image)
    return (rgb, _check_segments(segments), _resolve_colour("colour", colour),
            _line_width(rgb.shape[:2], outline_width))
