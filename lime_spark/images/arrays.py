"""In-memory arrays as RGB images: :func:`to_rgb_array` and :func:`resize_image`."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from .._validation import check_int, check_one_of
from ..exceptions import ConfigurationError, InvalidImageError

#: Resampling filters accepted by :func:`resize_image`.
_RESAMPLING: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
}


def to_rgb_array(image: Any) -> NDArray[np.uint8]:
    """Validate an in-memory array as an RGB image.

    Parameters
    ----------
    image : ndarray of shape (height, width), (height, width, 1), \
(height, width, 3) or (height, width, 4)
        Pixel values on the 0..255 scale (not 0..1): ``uint8``, any other
        integer dtype with values in 0..255, or a floating dtype with finite
        values in [0, 255] (rounded to the nearest integer). Grayscale is
        repeated into three channels; a fourth (alpha) channel is dropped,
        not composited (unlike :func:`decode_image`).

    Returns
    -------
    rgb : ndarray of shape (height, width, 3), dtype uint8
        C-contiguous. A C-contiguous ``uint8`` input of shape
        ``(height, width, 3)`` is returned as is, without a copy.

    Raises
    ------
    InvalidImageError
        ``image`` is not a numpy array, has another number of dimensions or
        channels, a zero height or width, a boolean, complex, object or other
        non-numeric dtype, or values outside 0..255 (including ``NaN`` and
        infinities). The message gives the shape and dtype received.

    Examples
    --------
    >>> import numpy as np
    >>> to_rgb_array(np.full((2, 3), 7.6)).shape
    (2, 3, 3)
    """
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(
            "Expected image to be a numpy array of shape (height, width[, "
            f"channels]). Received: an object of type {type(image).__name__}"
        )
    received = f"shape={image.shape}, dtype={image.dtype}"
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise InvalidImageError(
            "Expected image of shape (height, width), (height, width, 1), "
            f"(height, width, 3) or (height, width, 4). Received: {received}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidImageError(
            f"Expected image with a non-zero height and width. Received: {received}"
        )
    kind = image.dtype.kind
    if kind not in "uif":
        raise InvalidImageError(
            "Expected image with an unsigned integer, integer or floating dtype. "
            f"Received: {received}"
        )
    if image.dtype != np.uint8:
        if kind == "f" and not np.all(np.isfinite(image)):
            raise InvalidImageError(
                f"Expected image with finite values. Received: {received} "
                "containing NaN or infinite values"
            )
        low, high = image.min(), image.max()
        if low < 0 or high > 255:
            raise InvalidImageError(
                "Expected image values in [0, 255]. Received: "
                f"{received} with values in [{low}, {high}]"
            )
        image = np.rint(image).astype(np.uint8) if kind == "f" else image.astype(np.uint8)
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def resize_image(
    image: NDArray[np.uint8],
    size: tuple[int, int],
    *,
    method: str = "bilinear",
) -> NDArray[np.uint8]:
    """Resize an RGB image with Pillow.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
        Anything :func:`to_rgb_array` accepts is converted first.
    size : tuple of (int, int)
        Target ``(height, width)``, numpy order (Pillow's is ``(width,
        height)``). Both must be positive.
    method : {"nearest", "bilinear", "bicubic", "lanczos", "area"}, \
default="bilinear"
        Resampling filter; ``"area"`` is Pillow's ``BOX`` filter (pixel-area
        averaging when shrinking).

    Returns
    -------
    resized : ndarray of shape (size[0], size[1], 3), dtype uint8
        C-contiguous. When the image already has that size it is returned
        itself, without a copy.

    Raises
    ------
    ConfigurationError
        ``size`` is not two positive integers, or ``method`` is unknown.
    InvalidImageError
        ``image`` is not a valid RGB image (see :func:`to_rgb_array`).

    Examples
    --------
    >>> import numpy as np
    >>> resize_image(np.zeros((10, 20, 3), np.uint8), (224, 224)).shape
    (224, 224, 3)
    """
    height, width = _check_size(size)
    resample = _RESAMPLING[check_one_of("method", method, _RESAMPLING)]
    rgb = to_rgb_array(image)
    if rgb.shape[:2] == (height, width):
        return rgb
    resized = Image.fromarray(rgb).resize((width, height), resample=resample)
    return _writable_array(resized)


def _check_size(size: Any) -> tuple[int, int]:
    """Return ``size`` as ``(height, width)`` of positive ints, else raise."""
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise ConfigurationError(
            f"Expected size to be a (height, width) pair. Received: size={size!r}"
        )
    height = check_int("size[0] (height)", size[0], minimum=1)
    width = check_int("size[1] (width)", size[1], minimum=1)
    return height, width


def _writable_array(im: Image.Image) -> NDArray[np.uint8]:
    """Pixels of a Pillow image as a writable C-contiguous array."""
    array = np.asarray(im)
    if not (array.flags.writeable and array.flags.c_contiguous):
        array = np.array(array, order="C")
    return array
