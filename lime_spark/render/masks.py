"""Label images and masks at the image's resolution, outlines, and the pixel arithmetic of tints.

Everything here works at full resolution with numpy only and without loops
over superpixels: a mask is upsampled from the segments' resolution with
:func:`numpy.repeat` (nearest neighbour by pixel centres), edges are
comparisons of an array with its one-pixel shift, lines are thickened by
OR-ing shifted copies, and tints are lookup tables applied to the uint8
pixels.  The results are exactly those of the earlier skimage / float64
implementation (``find_boundaries``, ``dilation`` with a square footprint,
float64 blends rounded with :func:`numpy.rint`); the unit tests compare the
two pixel by pixel.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .arguments import _check_segments, _check_shape

HIDE_COLOUR: tuple[int, int, int] = (190, 190, 190)
"""R's ``grey`` (``#BEBEBE``), R lime's ``block_col``; hides unselected areas."""

_FADE_STRENGTH = 0.6
"""Share of :data:`HIDE_COLOUR` in a faded pixel; the rest is the pixel's own luminance.

:func:`_fade_table` has this value and :data:`HIDE_COLOUR` built into its integers.
"""

_LUMA_PER_MILLE = np.array([299.0, 587.0, 114.0], dtype=np.float32)
"""ITU-R BT.601 luma weights (as in Pillow's ``convert("L")``) times 1000.

``pixel @ _LUMA_PER_MILLE`` is an exact integer in float32.
"""

_FADE_BAND = 16384
"""Pixels faded at a time: temporaries stay in the cache instead of costing page faults."""

_RGB = np.dtype((np.void, 3))
"""One RGB pixel as a single 3-byte item: masked assignment of whole pixels in one pass."""


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
    segments = _check_segments(segments)
    return _upsample(segments.astype(np.int32, copy=False), _check_shape(shape))


def visible_segments(segments: NDArray[np.integer],
                     shape: tuple[int, int]) -> NDArray[np.int32]:
    """The labels that survive :func:`upsample_segments` to ``shape``, sorted.

    Every label survives when ``shape`` is at least as large as the
    segments; a smaller canvas (a thumbnail, a 2 x 4000 strip) can miss
    some.  Computed on the sampled rows and columns, without building the
    full-size label image.

    Parameters
    ----------
    segments : ndarray of shape (h, w), integer dtype
    shape : tuple of int (H, W)

    Returns
    -------
    ndarray of shape (k,), dtype int32
        Equal to ``np.unique(upsample_segments(segments, shape))``.

    Raises
    ------
    SegmentationError
        If ``segments`` is not a 2-D integer array.
    ConfigurationError
        If ``shape`` is not a pair of positive integers.

    Examples
    --------
    >>> visible_segments(np.arange(6).reshape(1, 6), (1, 3))
    array([1, 3, 5], dtype=int32)
    """
    segments = _check_segments(segments)
    row_counts, col_counts = _sample_counts(segments.shape, _check_shape(shape))
    sampled = segments[np.ix_(row_counts > 0, col_counts > 0)]
    return np.unique(sampled).astype(np.int32)


def _default_width(shape: tuple[int, int]) -> int:
    """Line width in pixels for an image of ``shape``: about 1 px per 200 px of the short side."""
    return max(1, int(round(min(shape) / 200)))


def _sample_counts(small: tuple[int, int],
                   shape: tuple[int, int]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """How many output rows and columns of ``shape`` sample each input row and column of ``small``.

    Output row ``i`` samples input row ``floor((i + 0.5) * h / H)``, a
    non-decreasing function of ``i``; so sampling is :func:`numpy.repeat`
    with these counts (0 for an input row no output row samples).
    """
    (h, w), (height, width) = small, shape
    rows = ((2 * np.arange(height, dtype=np.int64) + 1) * h) // (2 * height)
    cols = ((2 * np.arange(width, dtype=np.int64) + 1) * w) // (2 * width)
    return np.bincount(rows, minlength=h), np.bincount(cols, minlength=w)


def _upsample(segments: NDArray[Any], shape: tuple[int, int]) -> NDArray[Any]:
    """Nearest-neighbour resize by pixel centres: out[i] = in[floor((i + 0.5) * h / H)].

    Keeps the dtype, so a small boolean mask can be upsampled instead of the segments.
    """
    row_counts, col_counts = _sample_counts(segments.shape, shape)
    return _repeat(segments, row_counts, col_counts)


def _repeat(small: NDArray[Any], row_counts: NDArray[np.intp],
            col_counts: NDArray[np.intp]) -> NDArray[Any]:
    """``small`` with row ``r`` repeated ``row_counts[r]`` times, column ``c`` ``col_counts[c]``."""
    return np.repeat(np.repeat(small, row_counts, axis=0), col_counts, axis=1)


def _bounds(present: NDArray[np.bool_], counts: NDArray[np.intp]) -> tuple[int, int, int, int]:
    """The first and last input index with ``present`` and a sample, and their output span.

    Returns ``(first, stop, start, end)``: input rows ``first:stop`` cover
    output rows ``start:end``; ``(0, 0, 0, 0)`` when nothing is present.
    """
    hit = np.flatnonzero(present & (counts > 0))
    if hit.size == 0:
        return 0, 0, 0, 0
    first, stop = int(hit[0]), int(hit[-1]) + 1
    starts = np.concatenate(([0], np.cumsum(counts)))
    return first, stop, int(starts[first]), int(starts[stop])


def _crop(mask: NDArray[np.bool_], row_counts: NDArray[np.intp],
          col_counts: NDArray[np.intp]) -> tuple[NDArray[np.bool_], tuple[slice, slice]] | None:
    """The full-resolution mask inside the bounding box of its pixels, and that box.

    ``mask`` is at the segments' resolution; only the box is upsampled.
    ``None`` when no pixel of the full-resolution mask is set.
    """
    r0, r1, y0, y1 = _bounds(mask.any(axis=1), row_counts)
    c0, c1, x0, x1 = _bounds(mask.any(axis=0), col_counts)
    if y1 == y0 or x1 == x0:
        return None
    crop = _repeat(mask[r0:r1, c0:c1], row_counts[r0:r1], col_counts[c0:c1])
    if not crop.any():  # set pixels only in rows and columns that are never sampled together
        return None
    return crop, (slice(y0, y1), slice(x0, x1))


def _dilate(lines: NDArray[np.bool_], radius: int) -> NDArray[np.bool_]:
    """Dilation by a ``(2 * radius + 1)``-pixel square, outside the image counting as unset.

    Separable: OR of the horizontal shifts by 1..radius, then of the vertical ones.
    """
    if radius <= 0:
        return lines
    wide = lines.copy()
    for k in range(1, radius + 1):
        wide[:, k:] |= lines[:, :-k]
        wide[:, :-k] |= lines[:, k:]
    out = wide.copy()
    for k in range(1, radius + 1):
        out[k:] |= wide[:-k]
        out[:-k] |= wide[k:]
    return out


def _thicken(lines: NDArray[np.bool_], width: int) -> NDArray[np.bool_]:
    """Dilate one-pixel ``lines`` into lines about ``width`` pixels wide.

    A square of ``2 * (width - 1) + 1`` pixels, as skimage's ``dilation``
    with ``footprint_rectangle`` did.
    """
    return _dilate(lines, width - 1)


def _inner_edge(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Pixels of ``mask`` with a 4-neighbour outside it; the image border counts as outside.

    ``find_boundaries(np.pad(mask, 1), mode="inner")`` without the padding.
    """
    interior = mask.copy()
    interior[1:] &= mask[:-1]
    interior[:-1] &= mask[1:]
    interior[:, 1:] &= mask[:, :-1]
    interior[:, :-1] &= mask[:, 1:]
    interior[0] = False
    interior[-1] = False
    interior[:, 0] = False
    interior[:, -1] = False
    return mask & ~interior


def _region_outline(mask: NDArray[np.bool_], width: int) -> NDArray[np.bool_]:
    """The band of ``mask`` within ``width`` pixels of its edge.

    The image border counts as an edge, so a region touching it is closed.
    """
    return _thicken(_inner_edge(mask), width) & mask


def _label_edges(segments: NDArray[Any], row_counts: NDArray[np.intp],
                 col_counts: NDArray[np.intp]) -> NDArray[np.bool_]:
    """``find_boundaries(upsampled, mode="thick")``: both pixels of each change of label.

    A pixel is on a boundary when one of its 4-neighbours has another label
    (the image border is not a boundary).  The horizontal changes are
    compared at (h, W), the vertical ones at (H, w), then repeated to
    (H, W): the full-size label image is never built.
    """
    height, width = int(row_counts.sum()), int(col_counts.sum())
    wide = np.repeat(segments, col_counts, axis=1)                     # (h, W)
    across = np.repeat(wide[:, :-1] != wide[:, 1:], row_counts, axis=0)  # (H, W - 1)
    tall = np.repeat(segments, row_counts, axis=0)                     # (H, w)
    down = np.repeat(tall[:-1] != tall[1:], col_counts, axis=1)          # (H - 1, W)
    edges = np.zeros((height, width), dtype=bool)
    edges[:, :-1] |= across
    edges[:, 1:] |= across
    edges[:-1] |= down
    edges[1:] |= down
    return edges


def _paint(out: NDArray[np.uint8], where: NDArray[np.bool_], colour: NDArray[np.uint8]) -> None:
    """Set the pixels of ``out`` (H, W, 3) where ``where`` (H, W) is True to ``colour`` (3,)."""
    _pixels(out)[where] = np.ascontiguousarray(colour, dtype=np.uint8).view(_RGB)[0]


def _pixels(rgb: NDArray[np.uint8]) -> NDArray[np.void]:
    """(H, W, 3) uint8 (or a crop of it) as a writable (H, W) view of 3-byte items (pixels)."""
    return rgb.view(_RGB)[..., 0]


@lru_cache(maxsize=1)
def _fade_table() -> NDArray[np.uint8]:
    """Faded grey value of a pixel by ``s = 299 r + 587 g + 114 b`` (0..255000).

    The value is ``(1 - 0.6) * luma + 0.6 * 190`` (:data:`_FADE_STRENGTH`,
    :data:`HIDE_COLOUR`) rounded half to even, with ``luma = s / 1000``:
    ``(s + 285000) / 2500`` in exact integers (the constants follow from
    0.6 and 190).  For every one of the 2**24 colours this equals the
    float64 ``np.rint((1 - 0.6) * (pixel @ [0.299, 0.587, 0.114]) + 0.6 *
    190)`` of the earlier code, the 6720 colours exactly between two grey
    levels included (``tests/unit/test_render_speed_equivalence.py``).
    """
    total = np.arange(255001, dtype=np.int64) + 285000
    quotient, remainder = np.divmod(total, 2500)
    up = (remainder > 1250) | ((remainder == 1250) & (quotient % 2 == 1))
    return (quotient + up).astype(np.uint8)


def _fade(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Desaturate ``rgb`` (H, W, 3) and pull it towards :data:`HIDE_COLOUR`: a new grey image."""
    table = _fade_table()
    flat = rgb.reshape(-1, 3)
    grey = np.empty(len(flat), dtype=np.uint8)
    band = min(_FADE_BAND, len(flat))
    pixels = np.empty((band, 3), dtype=np.float32)
    weighted = np.empty(band, dtype=np.float32)
    index = np.empty(band, dtype=np.intp)
    for start in range(0, len(flat), band):
        stop = min(start + band, len(flat))
        n = stop - start
        np.copyto(pixels[:n], flat[start:stop], casting="unsafe")
        # 299 r + 587 g + 114 b <= 255000 < 2**24: exact in float32, in any summation order
        np.matmul(pixels[:n], _LUMA_PER_MILLE, out=weighted[:n])
        np.copyto(index[:n], weighted[:n], casting="unsafe")
        np.take(table, index[:n], out=grey[start:stop])
    out = np.empty_like(flat)
    for channel in range(3):  # three strided copies beat one broadcast to (n, 3)
        out[:, channel] = grey
    return out.reshape(rgb.shape)


def _tint_table(colour: NDArray[np.float64], alpha: float) -> NDArray[np.uint8]:
    """``(1 - alpha) * value + alpha * colour`` rounded, per channel, for values 0..255: (256, 3).

    The same float64 operations as a per-pixel blend, so looking a pixel up
    gives exactly what blending it would.
    """
    values = np.arange(256, dtype=np.float64)[:, None]
    return _to_uint8((1.0 - alpha) * values + alpha * np.asarray(colour, dtype=np.float64))


def _to_uint8(pixels: NDArray[np.float64]) -> NDArray[np.uint8]:
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
