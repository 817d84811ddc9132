"""RGB arrays to PNG bytes, and thumbnails: :func:`encode_png`, :func:`thumbnail`."""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray

from .._validation import check_int
from .arguments import _check_image

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
