"""The overlay pictures: drawn as RGB arrays, and as PNGs.

:func:`draw_explanation`, :func:`draw_explanations`, :func:`draw_superpixels`
and :func:`draw_mask` return the picture as an (H, W, 3) uint8 array;
:func:`render_explanation`, :func:`render_superpixels` and
:func:`render_mask` return the same picture encoded by
:func:`~lime_spark.render.png.encode_png`.  Drawing and encoding are
separate so that a caller can time (or batch) them separately.

The explanation pictures take an optional caption, drawn in a strip below
the picture (:mod:`lime_spark.render.captions`); without one they are
exactly the picture.
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
from .captions import MAX_CAPTION_LINES, Caption, _add_caption, _check_caption, _Legend
from .captions import caption_lines as _caption_lines
from .png import encode_png

DISPLAYS = ("outline", "block", "heatmap")
"""Values accepted by ``render_explanation(display=...)``."""

OUTLINE_COLOURS: tuple[str, str] = ("lightgreen", "red")
"""Default (supporting, contradicting) outline colours: R lime's ``outline_col``."""

BLOCK_COLOURS: tuple[str, str] = ("steelblue", "firebrick")
"""Default (supporting, contradicting) fill colours of ``display="block"``."""

HEATMAP_COLOURS: tuple[str, str] = ("#ff4b00", "#0a6cff")
"""Default (positive, negative) colours of ``display="heatmap"``: warm orange-red, cool blue."""

HEATMAP_ALPHA = 0.6
"""Default opacity of the largest weight's tint in ``display="heatmap"`` (``fill_alpha``)."""

BLOCK_ALPHA = 0.3
"""Default ``fill_alpha`` of ``display="block"``: R lime's ``fill_alpha``."""

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
    fill_alpha: float | None = None,
    outline_width: int | None = None,
    caption: Caption | None = None,
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
    * ``display="heatmap"``: every superpixel with a weight is tinted by
      it on a diverging scale, ``positive_colour`` (warm) for positive
      weights and ``negative_colour`` (cool) for negative ones, with an
      opacity of ``fill_alpha * |weight| / max |weight|`` (the scale is
      symmetric: equal ``|weight|``, equal opacity); weight 0 leaves the
      pixels untouched.  ``threshold`` and ``show_negative`` do not apply.

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
    display : {"outline", "block", "heatmap"}, default "outline"
    threshold : float, default 0.02
        Smallest absolute weight shown; finite and >= 0.
    show_negative : bool, default False
        Also show superpixels that contradict the label.
    positive_colour, negative_colour : str or (r, g, b) tuple, optional
        Colours of supporting and contradicting superpixels: a name Pillow
        knows ("steelblue", "firebrick", "blue", "red", ...), a hex string or
        integers 0..255.  Defaults: :data:`OUTLINE_COLOURS` (lightgreen, red,
        as R lime) for outlines, :data:`BLOCK_COLOURS` (steelblue,
        firebrick) for blocks, :data:`HEATMAP_COLOURS` (orange-red, blue)
        for heatmaps.
    fill_alpha : float, optional
        Opacity of the tint, in [0, 1]: in block mode (default
        :data:`BLOCK_ALPHA`, 0.3), and of the largest weight in heatmap mode
        (default :data:`HEATMAP_ALPHA`, 0.6).
    outline_width : int, optional
        Line width in pixels, >= 1; default about 1 px per 200 px of the
        image's shorter side.
    caption : str or sequence of str, optional
        Text of a caption strip added below the picture
        (:func:`~lime_spark.render.add_caption`); for an explanation,
        :func:`~lime_spark.render.explanation_caption` gives the label's
        name, probability, fit and stability.  With ``display="heatmap"``
        the strip also shows the colour scale when it fits.  Default: no
        caption (the picture alone, as before captions existed).

    Returns
    -------
    bytes
        A PNG of size W x H (RGB, 8 bit); with a caption, W x (H + the
        strip's height).

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
    explanation.segments, explanation.local_exp[label])``; add
    ``caption=explanation_caption(explanation, label)`` for the caption.

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
        negative_colour=negative_colour, fill_alpha=fill_alpha, outline_width=outline_width,
        caption=caption))


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
    fill_alpha: float | None = None,
    outline_width: int | None = None,
    caption: Caption | None = None,
) -> NDArray[np.uint8]:
    """The picture of :func:`render_explanation`, as an RGB array.

    Parameters
    ----------
    image, segments, coefficients, display, threshold, show_negative, \
positive_colour, negative_colour, fill_alpha, outline_width, caption
        As for :func:`render_explanation`.

    Returns
    -------
    ndarray of shape (H, W, 3), dtype uint8
        A new array; ``image`` is not modified.  With a caption, of shape
        (H + h, W, 3): the picture above a strip of ``h`` rows.

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
        negative_colour=negative_colour, fill_alpha=fill_alpha, outline_width=outline_width,
        captions=None if caption is None else {0: caption})
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
    fill_alpha: float | None = None,
    outline_width: int | None = None,
    captions: Mapping[_Label, Caption] | None = None,
    caption_lines: int | None = None,
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
    captions : mapping of label -> str or sequence of str, optional
        A caption per label (``caption`` of :func:`render_explanation`);
        every label of ``coefficients`` needs one.  Default: no captions.
    caption_lines : int, optional
        Lines of text of every caption strip (1 to
        :data:`~lime_spark.render.MAX_CAPTION_LINES`); default: as many as
        the longest caption needs (:func:`~lime_spark.render.caption_lines`),
        so that all the pictures have the same height.

    Returns
    -------
    dict of label -> ndarray of shape (H, W, 3), dtype uint8
        In the order of ``coefficients``; each picture equals
        ``draw_explanation(image, segments, coefficients[label], ...)``
        (with ``captions``: taller by the strip, of the same height for
        all labels).

    Raises
    ------
    InvalidImageError, SegmentationError, ConfigurationError
        As :func:`render_explanation`; ``ConfigurationError`` also when
        ``coefficients`` or ``captions`` is not a mapping, or a label has no
        caption.
    """
    check_one_of("display", display, DISPLAYS)
    rgb = np.ascontiguousarray(_check_image(image))
    segments = _check_segments(segments)
    threshold = check_real("threshold", threshold, minimum=0.0)
    show_negative = _check_bool("show_negative", show_negative)
    heatmap = display == "heatmap"
    if fill_alpha is None:
        fill_alpha = HEATMAP_ALPHA if heatmap else BLOCK_ALPHA
    fill_alpha = _check_fraction("fill_alpha", fill_alpha)
    defaults = {"outline": OUTLINE_COLOURS, "block": BLOCK_COLOURS,
                "heatmap": HEATMAP_COLOURS}[display]
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
    texts = _check_captions(captions, resolved)
    if texts is not None:
        if caption_lines is None:
            caption_lines = _caption_lines(list(texts.values()), rgb.shape[1], legend=heatmap)
        caption_lines = check_int("caption_lines", caption_lines, minimum=1,
                                  maximum=MAX_CAPTION_LINES)

    pictures = {}
    if heatmap:
        pictures = _HeatmapDrawer(rgb, grid, pos_rgb, neg_rgb, fill_alpha).draw(resolved)
        if texts is not None:
            for label, weights in resolved.items():
                scale = _heat_scale(weights)
                legend = (_Legend(tuple(neg_rgb), tuple(pos_rgb), fill_alpha, scale)
                          if scale > 0 else None)
                pictures[label] = _add_caption(pictures[label], texts[label],
                                               lines=caption_lines, legend=legend)
        return pictures
    if display == "outline":
        draw: Any = _OutlineDrawer(rgb, grid, line, _to_uint8(pos_rgb), _to_uint8(neg_rgb))
    else:
        draw = _BlockDrawer(rgb, grid, _tint_table(pos_rgb, fill_alpha),
                            _tint_table(neg_rgb, fill_alpha))
    for n, (label, weights) in enumerate(resolved.items(), start=1):
        positive = [f for f, w in weights.items() if w > threshold]
        negative = ([f for f, w in weights.items() if w < -threshold]
                    if show_negative else [])
        pictures[label] = draw(grid.mask(positive), grid.mask(negative),
                               last=n == len(resolved))
        if texts is not None:
            pictures[label] = _add_caption(pictures[label], texts[label], lines=caption_lines)
    return pictures


def _check_captions(captions: Any, labels: Mapping[Any, Any]) -> dict[Any, Caption] | None:
    """``captions`` checked: None, or a mapping with a caption for every label."""
    if captions is None:
        return None
    if not isinstance(captions, Mapping):
        raise ConfigurationError(
            "Expected captions to be a mapping {label: caption}. "
            f"Received: {type(captions).__name__}")
    missing = [label for label in labels if label not in captions]
    if missing:
        raise ConfigurationError(
            "Expected a caption for every label of coefficients. Received: no caption for "
            f"label(s) {missing[:10]}")
    return {label: _check_caption(captions[label]) for label in labels}


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


def _heat_scale(weights: Mapping[int, float]) -> float:
    """The heatmap's scale: the largest ``|weight|`` (0 without weights)."""
    return max((abs(w) for w in weights.values()), default=0.0)


class _HeatmapDrawer:
    """``display="heatmap"``: every superpixel tinted by its weight, over the untouched image.

    A label's blends are a table of (superpixel, channel, value) -> blended
    value, ``768 * i + 256 * c + v`` for the ``i``-th superpixel of
    ``grid.present``; each pixel's key into it depends on the image only, so
    the keys are computed once, band by band, and every label's picture is
    one :func:`numpy.take` per band.  The blends are the float64 ``(1 -
    alpha) * value + alpha * colour``, rounded, as a per-pixel blend would
    give; ``alpha = fill_alpha * |weight| / max |weight|``.
    """

    _BAND = 32768
    """Pixels per band: the band's keys (24 bytes a pixel) stay in the cache."""

    def __init__(self, rgb: NDArray[np.uint8], grid: _Grid, positive: NDArray[np.float64],
                 negative: NDArray[np.float64], alpha: float) -> None:
        self.rgb, self.grid, self.alpha = rgb, grid, alpha
        self.positive, self.negative = positive, negative

    def table(self, weights: Mapping[int, float]) -> NDArray[np.uint8] | None:
        """The flattened (K, 3, 256) blend table of one label; ``None`` when nothing is tinted."""
        scale = _heat_scale(weights)
        if scale == 0.0:
            return None
        present = self.grid.present
        dense = np.zeros(len(present))
        dense[np.searchsorted(present, list(weights))] = list(weights.values())
        alpha = self.alpha * np.abs(dense) / scale                        # (K,)
        colour = np.where(dense[:, None] > 0, self.positive, self.negative)  # (K, 3)
        values = np.arange(256, dtype=np.float64)
        blend = ((1.0 - alpha)[:, None, None] * values
                 + (alpha[:, None] * colour)[:, :, None])                 # (K, 3, 256)
        return _to_uint8(blend).ravel()

    def draw(self, weights: Mapping[_Label, Mapping[int, float]]
             ) -> dict[_Label, NDArray[np.uint8]]:
        """Each label's picture, in the order of ``weights``."""
        tables = {label: self.table(w) for label, w in weights.items()}
        pictures = {label: self.rgb.copy() if table is None else np.empty_like(self.rgb)
                    for label, table in tables.items()}
        drawn = [(pictures[label], table) for label, table in tables.items()
                 if table is not None]
        if not drawn:
            return pictures
        height, width = self.rgb.shape[:2]
        grid = self.grid
        channels = _CHANNEL_OFFSETS.astype(np.intp)
        starts = np.concatenate(([0], np.cumsum(grid.row_counts)))
        rows = np.repeat(np.arange(len(grid.row_counts)), grid.row_counts)
        step = max(1, self._BAND // width)
        # intp keys: numpy.take would convert narrower ones on every call
        keys = np.empty((min(step, height), width, 3), dtype=np.intp)
        for y0 in range(0, height, step):
            y1 = min(y0 + step, height)
            band = keys[:y1 - y0]
            np.copyto(band, self.rgb[y0:y1])
            for row in range(rows[y0], rows[y1 - 1] + 1):   # the source rows of the band
                a, b = max(starts[row], y0) - y0, min(starts[row + 1], y1) - y0
                if b > a:
                    # the key offsets of the row's pixels: 768 i + 256 c
                    offsets = np.repeat(grid.index[row] * 768, grid.col_counts)
                    band[a:b] += offsets[:, None] + channels
            for picture, table in drawn:
                np.take(table, band, out=picture[y0:y1], mode="clip")
        return pictures


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
