"""The overlay pictures: drawn as RGB arrays, and as PNGs.

:func:`draw_explanation`, :func:`draw_explanations`, :func:`draw_superpixels`
and :func:`draw_mask` return the picture as an (H, W, 3) uint8 array;
:func:`render_explanation`, :func:`render_superpixels` and
:func:`render_mask` return the same picture encoded by
:func:`~lime_spark.render.png.encode_png`.  Drawing and encoding are
separate so that a caller can time (or batch) them separately.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

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
    _crop,
    _default_width,
    _fade,
    _label_edges,
    _paint,
    _pixels,
    _region_outline,
    _repeat,
    _RGB,
    _sample_counts,
    _thicken,
    _tint_table,
    _to_uint8,
)
from .png import encode_png

DISPLAYS = ("outline", "block")
"""Values accepted by ``render_explanation(display=...)``."""

OUTLINE_COLOURS: tuple[str, str] = ("lightgreen", "red")
"""Default (supporting, contradicting) outline colours: R lime's ``outline_col``."""

BLOCK_COLOURS: tuple[str, str] = ("steelblue", "firebrick")
"""Default (supporting, contradicting) fill colours of ``display="block"``."""

_Label = TypeVar("_Label", bound=Hashable)

_CHANNEL_OFFSETS = np.array([0, 256, 512], dtype=np.uint16)
"""Where each channel's 256 entries start in a flattened (256, 3) tint table."""


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

    The counterpart of R lime's ``plot_image_explanation`` for one label:
    :func:`draw_explanation` encoded with :func:`encode_png`.
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
    return encode_png(draw_explanation(
        image, segments, coefficients, display=display, threshold=threshold,
        show_negative=show_negative, positive_colour=positive_colour,
        negative_colour=negative_colour, fill_alpha=fill_alpha, outline_width=outline_width))


def draw_explanation(
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
) -> NDArray[np.uint8]:
    """The picture of :func:`render_explanation`, as an RGB array.

    Parameters
    ----------
    image, segments, coefficients, display, threshold, show_negative, \
positive_colour, negative_colour, fill_alpha, outline_width
        As for :func:`render_explanation`.

    Returns
    -------
    ndarray of shape (H, W, 3), dtype uint8
        A new array; ``image`` is not modified.

    Raises
    ------
    InvalidImageError, SegmentationError, ConfigurationError
        As :func:`render_explanation`.

    Examples
    --------
    >>> image = np.full((4, 4, 3), 100, dtype=np.uint8)
    >>> picture = draw_explanation(image, np.arange(4).reshape(2, 2), {0: 1.0},
    ...                            positive_colour=(255, 0, 0))
    >>> picture[:2, :2, 0]
    array([[255, 255],
           [255, 255]], dtype=uint8)
    """
    pictures = draw_explanations(
        image, segments, {0: coefficients}, display=display, threshold=threshold,
        show_negative=show_negative, positive_colour=positive_colour,
        negative_colour=negative_colour, fill_alpha=fill_alpha, outline_width=outline_width)
    return pictures[0]


def draw_explanations(
    image: NDArray[np.uint8],
    segments: NDArray[np.integer],
    coefficients: Mapping[_Label, Coefficients],
    *,
    display: str = "outline",
    threshold: float = 0.02,
    show_negative: bool = False,
    positive_colour: Colour | None = None,
    negative_colour: Colour | None = None,
    fill_alpha: float = 0.3,
    outline_width: int | None = None,
) -> dict[_Label, NDArray[np.uint8]]:
    """One :func:`draw_explanation` picture per label, sharing the work between them.

    The image, segments and options are checked once; the sampling of the
    segments, the faded grey image of ``display="block"`` and the tint
    tables are computed once for all labels.

    Parameters
    ----------
    image, segments
        As for :func:`render_explanation`.
    coefficients : mapping of label -> coefficients
        Each label's coefficients, as ``coefficients`` of
        :func:`render_explanation` (e.g. ``explanation.local_exp``).
    display, threshold, show_negative, positive_colour, negative_colour, \
fill_alpha, outline_width
        As for :func:`render_explanation`, the same for every label.

    Returns
    -------
    dict of label -> ndarray of shape (H, W, 3), dtype uint8
        In the order of ``coefficients``; each picture equals
        ``draw_explanation(image, segments, coefficients[label], ...)``.

    Raises
    ------
    InvalidImageError, SegmentationError, ConfigurationError
        As :func:`render_explanation`; ``ConfigurationError`` also when
        ``coefficients`` is not a mapping.
    """
    check_one_of("display", display, DISPLAYS)
    rgb = np.ascontiguousarray(_check_image(image))
    segments = _check_segments(segments)
    threshold = check_real("threshold", threshold, minimum=0.0)
    show_negative = _check_bool("show_negative", show_negative)
    fill_alpha = _check_fraction("fill_alpha", fill_alpha)
    defaults = OUTLINE_COLOURS if display == "outline" else BLOCK_COLOURS
    pos_rgb = _resolve_colour(
        "positive_colour", defaults[0] if positive_colour is None else positive_colour)
    neg_rgb = _resolve_colour(
        "negative_colour", defaults[1] if negative_colour is None else negative_colour)
    line = _line_width(rgb.shape[:2], outline_width)
    if not isinstance(coefficients, Mapping):
        raise ConfigurationError(
            "Expected coefficients to be a mapping {label: coefficients}. "
            f"Received: {type(coefficients).__name__}")
    grid = _Grid.of(segments, rgb.shape[:2])
    resolved = {label: _resolve_coefficients(weights, segments, grid.present)
                for label, weights in coefficients.items()}

    if display == "outline":
        draw = _OutlineDrawer(rgb, grid, line, _to_uint8(pos_rgb), _to_uint8(neg_rgb))
    else:
        draw = _BlockDrawer(rgb, grid, _tint_table(pos_rgb, fill_alpha),
                            _tint_table(neg_rgb, fill_alpha))
    pictures = {}
    for n, (label, weights) in enumerate(resolved.items(), start=1):
        positive = [f for f, w in weights.items() if w > threshold]
        negative = ([f for f, w in weights.items() if w < -threshold]
                    if show_negative else [])
        pictures[label] = draw(grid.mask(positive), grid.mask(negative),
                               last=n == len(resolved))
    return pictures


def render_superpixels(
    image: NDArray[np.uint8],
    segments: NDArray[np.integer],
    *,
    colour: Colour = "black",
    outline_width: int | None = None,
) -> bytes:
    """Draw every superpixel boundary on the image, as a PNG.

    The counterpart of R lime's ``plot_superpixels``, for checking a
    segmentation before explaining: :func:`draw_superpixels` encoded with
    :func:`encode_png`.  Boundaries are the pixels on both sides of each
    change of label (``find_boundaries(mode="thick")``, 2 px), thickened to
    about ``outline_width`` pixels.

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
    return encode_png(draw_superpixels(image, segments, colour=colour,
                                       outline_width=outline_width))


def draw_superpixels(
    image: NDArray[np.uint8],
    segments: NDArray[np.integer],
    *,
    colour: Colour = "black",
    outline_width: int | None = None,
) -> NDArray[np.uint8]:
    """The picture of :func:`render_superpixels`, as an RGB array.

    Parameters
    ----------
    image, segments, colour, outline_width
        As for :func:`render_superpixels`.

    Returns
    -------
    ndarray of shape (H, W, 3), dtype uint8
        A new array; ``image`` is not modified.

    Raises
    ------
    InvalidImageError, SegmentationError, ConfigurationError
    """
    rgb, segments, line_rgb, line = _canvas(image, segments, colour, outline_width)
    row_counts, col_counts = _sample_counts(segments.shape, rgb.shape[:2])
    # "thick" marks both sides of an edge (2 px); grow it to about ``line``.
    edges = _thicken(_label_edges(segments, row_counts, col_counts), max(1, line // 2))
    out = rgb.copy()
    _paint(out, edges, _to_uint8(line_rgb))
    return out


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

    The picture behind lime's ``get_image_and_mask`` (:func:`draw_mask`,
    encoded with :func:`encode_png`): the superpixels in ``mask_features``
    are kept as they are.  With ``hide_rest=True`` every other pixel is
    replaced by R's grey (:data:`HIDE_COLOUR`, R lime's ``display="block"``
    look); otherwise the edge of the kept area is drawn in ``colour``
    (yellow, as ``skimage.segmentation.mark_boundaries``).

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
    return encode_png(draw_mask(image, segments, mask_features, hide_rest=hide_rest,
                                colour=colour, outline_width=outline_width))


def draw_mask(
    image: NDArray[np.uint8],
    segments: NDArray[np.integer],
    mask_features: Sequence[int],
    *,
    hide_rest: bool = False,
    colour: Colour = "yellow",
    outline_width: int | None = None,
) -> NDArray[np.uint8]:
    """The picture of :func:`render_mask`, as an RGB array.

    Parameters
    ----------
    image, segments, mask_features, hide_rest, colour, outline_width
        As for :func:`render_mask`.

    Returns
    -------
    ndarray of shape (H, W, 3), dtype uint8
        A new array; ``image`` is not modified.

    Raises
    ------
    InvalidImageError, SegmentationError, ConfigurationError
    """
    rgb, segments, line_rgb, line = _canvas(image, segments, colour, outline_width)
    hide_rest = _check_bool("hide_rest", hide_rest)
    if isinstance(mask_features, (str, bytes)) or not isinstance(mask_features, Iterable):
        raise ConfigurationError(
            "Expected mask_features to be a sequence of superpixel ids. "
            f"Received: {type(mask_features).__name__}"
        )
    grid = _Grid.of(segments, rgb.shape[:2])
    keep = list(_resolve_coefficients({f: 1.0 for f in _check_ids(mask_features)}, segments,
                                      grid.present))
    mask = grid.mask(keep)
    out = rgb.copy()
    if hide_rest:
        _paint(out, ~_repeat(mask, grid.row_counts, grid.col_counts),
               np.asarray(HIDE_COLOUR, dtype=np.uint8))
    else:
        _outline(out, mask, grid, line, _to_uint8(line_rgb))
    return out


@dataclass(frozen=True)
class _Grid:
    """How a label image maps onto a canvas: its labels and the sampling of its rows and columns."""

    present: NDArray[np.integer]
    """``np.unique(segments)``."""
    index: NDArray[np.intp]
    """Position of each pixel's label in :attr:`present`, shape of the segments."""
    row_counts: NDArray[np.intp]
    col_counts: NDArray[np.intp]

    @classmethod
    def of(cls, segments: NDArray[np.integer], shape: tuple[int, int]) -> _Grid:
        present, index = np.unique(segments, return_inverse=True)
        return cls(present, index.reshape(segments.shape), *_sample_counts(segments.shape, shape))

    def mask(self, features: Sequence[int]) -> NDArray[np.bool_]:
        """The superpixels ``features`` as a mask at the segments' resolution."""
        return np.isin(self.present, features)[self.index]


def _outline(out: NDArray[np.uint8], mask: NDArray[np.bool_], grid: _Grid, line: int,
             colour: NDArray[np.uint8]) -> None:
    """Draw the outline of ``mask`` (segments' resolution) on ``out``, inside its bounding box."""
    cropped = _crop(mask, grid.row_counts, grid.col_counts)
    if cropped is not None:
        full, box = cropped
        _paint(out[box], _region_outline(full, line), colour)


class _OutlineDrawer:
    """``display="outline"``: the untouched image with the edges of the selected areas."""

    def __init__(self, rgb: NDArray[np.uint8], grid: _Grid, line: int,
                 positive: NDArray[np.uint8], negative: NDArray[np.uint8]) -> None:
        self.rgb, self.grid, self.line = rgb, grid, line
        self.positive, self.negative = positive, negative

    def __call__(self, positive: NDArray[np.bool_], negative: NDArray[np.bool_], *,
                 last: bool = False) -> NDArray[np.uint8]:
        out = self.rgb.copy()
        _outline(out, negative, self.grid, self.line, self.negative)
        _outline(out, positive, self.grid, self.line, self.positive)
        return out


class _BlockDrawer:
    """``display="block"``: selected areas tinted, the rest faded towards grey.

    The faded image is computed once, for all labels; each label's picture
    is a copy of it, but the last one's, which is drawn on it.
    """

    def __init__(self, rgb: NDArray[np.uint8], grid: _Grid,
                 positive: NDArray[np.uint8], negative: NDArray[np.uint8]) -> None:
        self.rgb, self.grid = rgb, grid
        # (256, 3) tables flattened channel by channel: entry 256 * c + v
        self.positive, self.negative = positive.T.ravel(), negative.T.ravel()
        self._faded: NDArray[np.uint8] | None = None

    def faded(self) -> NDArray[np.uint8]:
        if self._faded is None:
            self._faded = _fade(self.rgb)
        return self._faded

    def __call__(self, positive: NDArray[np.bool_], negative: NDArray[np.bool_], *,
                 last: bool = False) -> NDArray[np.uint8]:
        """One label's picture; ``last``: no label follows, so draw on the faded image itself."""
        out = self.faded() if last else self.faded().copy()
        for mask, table in ((positive, self.positive), (negative, self.negative)):
            cropped = _crop(mask, self.grid.row_counts, self.grid.col_counts)
            if cropped is not None:
                full, box = cropped
                pixels = _pixels(self.rgb[box])[full].view(np.uint8).reshape(-1, 3)
                tinted = np.take(table, pixels + _CHANNEL_OFFSETS)
                _pixels(out[box])[full] = tinted.view(_RGB)[:, 0]
        return out


def _line_width(shape: tuple[int, int], outline_width: int | None) -> int:
    """``outline_width`` checked, or the default for an image of ``shape``."""
    return (_default_width(shape) if outline_width is None
            else check_int("outline_width", outline_width, minimum=1))


def _canvas(image: Any, segments: Any, colour: Colour,
            outline_width: int | None) -> tuple[NDArray[np.uint8], NDArray, Any, int]:
    """The checked image (channels contiguous), label image, line colour and line width."""
    rgb = np.ascontiguousarray(_check_image(image))
    return (rgb, _check_segments(segments), _resolve_colour("colour", colour),
            _line_width(rgb.shape[:2], outline_width))
