"""Label images and masks at the image's resolution, outlines, and the pixel arithmetic of tints."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .arguments import _check_segments, _check_shape

HIDE_COLOUR: tuple[int, int, int] = (190, 190, 190)
"""R's ``grey`` (``#BEBEBE``), R lime's ``block_col``; hides unselected areas."""

_FADE_STRENGTH = 0.6
"""Share of :data:`HIDE_COLOUR` in a faded pixel; the rest is the pixel's own luminance."""

_LUMA = np.array([0.299, 0.587, 0.114])
"""ITU-R BT.601 luma weights, as in Pillow's ``convert("L")``."""


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


def _default_width(shape: tuple[int, int]) -> int:
    """Line width in pixels for an image of ``shape``: about 1 px per 200 px of the short side."""
    return max(1, int(round(min(shape) / 200)))


def _upsample(segments: NDArray[Any], shape: tuple[int, int]) -> NDArray[Any]:
    """Nearest-neighbour resize by pixel centres: out[i] = in[floor((i + 0.5) * h / H)].

    Keeps the dtype, so a small boolean mask can be upsampled instead of the segments.
    """
    h, w = segments.shape
    height, width = shape
    rows = ((2 * np.arange(height, dtype=np.int64) + 1) * h) // (2 * height)
    cols = ((2 * np.arange(width, dtype=np.int64) + 1) * w) // (2 * width)
    return segments[rows[:, None], cols[None, :]]


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
