"""An image read from a path or URI and decoded: :func:`load_image`."""

from __future__ import annotations

import os

import numpy as np
from numpy.typing import NDArray

from ..exceptions import ConfigurationError, InvalidImageError
from ..storage import DEFAULT_MAX_BYTES, read_bytes
from .decode import decode_image
from .limits import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_PIXELS

def load_image(
    path: str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> NDArray[np.uint8]:
    """Read an image from any fsspec URI and decode it with :func:`decode_image`.

    Parameters
    ----------
    path : str or os.PathLike
        Local path or fsspec URI (``file://``, ``s3://``, ``gs://``,
        ``memory://``, ...).
    max_pixels : int, default=DEFAULT_MAX_PIXELS
        Decompression-bomb limit, see :func:`decode_image`.
    max_decode_bytes : int, default=DEFAULT_MAX_DECODE_BYTES
        Memory budget of the decode, see :func:`decode_image`.
    max_bytes : int, default=lime_spark.storage.DEFAULT_MAX_BYTES
        Largest file read (256 MiB), see :func:`lime_spark.storage.read_bytes`,
        which reads the file (retrying transient errors).

    Returns
    -------
    image : ndarray of shape (height, width, 3), dtype uint8
        As returned by :func:`decode_image`.

    Raises
    ------
    StorageError
        The path does not exist, is a directory or another non-regular file
        (a FIFO, a device), or cannot be read. The message names the path.
    ImageTooLargeError
        The file has more than ``max_bytes`` bytes, or as :func:`decode_image`.
    InvalidImageError, UnsupportedImageError
        As :func:`decode_image`, with the path prefixed to the message.
    ConfigurationError
        ``path`` is not a string or path-like object, or a limit is not a
        positive integer.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigurationError(
            f"Expected path to be a str or os.PathLike. Received: "
            f"path={path!r} of type {type(path).__name__}"
        )
    path = os.fspath(path)
    data = read_bytes(path, max_bytes=max_bytes)
    try:
        return decode_image(data, max_pixels=max_pixels, max_decode_bytes=max_decode_bytes)
    except InvalidImageError as exc:
        raise type(exc)(f"{path}: {exc}") from exc
