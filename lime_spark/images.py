"""Image bytes to RGB arrays, and resizing to a model's input size.

This is the first stage of the data flow: every later stage works on an
``(height, width, 3)`` ``uint8`` array, whatever the file looked like.
:func:`decode_image` meets untrusted bytes in a nightly batch job, so every
failure is one of the typed errors of :mod:`lime_spark.exceptions`:

- :class:`~lime_spark.exceptions.InvalidImageError`: not bytes, empty, not an
  image, truncated or otherwise corrupt, zero-sized.
- :class:`~lime_spark.exceptions.UnsupportedImageError`: a file Pillow
  identifies but that lime-spark cannot (or will not) decode, such as
  PostScript, which would need Ghostscript to run on untrusted input.
- :class:`~lime_spark.exceptions.ImageTooLargeError`: more pixels than
  ``max_pixels`` (the decompression-bomb guard). The check reads the image
  header only, before any pixel data is decoded.

Conversions applied by :func:`decode_image`, in this order:

1. First frame only for animated GIF / WebP / APNG and multi-page TIFF.
2. EXIF orientation applied (:func:`PIL.ImageOps.exif_transpose`); an
   unreadable EXIF block leaves the stored orientation.
3. Transparency (``RGBA``, ``LA``, ``PA``, premultiplied ``RGBa``/``La``,
   palette or ``tRNS`` transparency) is composited over a **white**
   background, so a fully transparent pixel becomes ``(255, 255, 255)``.
4. 16-bit grayscale (``I;16`` and its variants) is divided by 257, which maps
   0..65535 exactly onto 0..255. 32-bit integer (``I``) and float (``F``)
   grayscale is used as is when every value lies in 0..255; otherwise its
   actual range ``[min, max]`` is stretched linearly to 0..255. ``NaN``
   becomes 0 and infinities saturate.
5. Every other mode (``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``,
   ``HSV``, ...) goes through Pillow's ``convert("RGB")``. Embedded ICC
   profiles are not applied.
"""

from __future__ import annotations

import io
import logging
import os
import re
import warnings
from typing import Any

import fsspec
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from ._validation import check_int, check_one_of
from .exceptions import (
    ConfigurationError,
    ImageTooLargeError,
    InvalidImageError,
    LimeSparkError,
    StorageError,
    UnsupportedImageError,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "decode_image",
    "to_rgb_array",
    "resize_image",
    "load_image",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS: int = 89_478_485
"""Default decompression-bomb limit in pixels: Pillow's own default."""

#: Resampling filters accepted by :func:`resize_image`.
_RESAMPLING: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
}

#: Formats Pillow can identify but that lime-spark refuses to decode, with why.
_REFUSED_FORMATS: dict[str, str] = {
    "EPS": "decoding PostScript runs Ghostscript on untrusted input",
}

#: Modes whose alpha channel is premultiplied into the colour channels.
_PREMULTIPLIED_MODES = frozenset({"RGBa", "La"})

#: Modes with a straight (not premultiplied) alpha channel.
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA"})

#: Pillow error messages that mean "valid, but not decodable here".
_UNSUPPORTED_PATTERN = re.compile(
    r"unsupported|not supported|not available|not implemented|cannot handle"
    r"|unknown raw mode|no decoder|ghostscript",
    re.IGNORECASE,
)

_EXIF_ORIENTATION_TAG = 0x0112
_WHITE = (255, 255, 255, 255)
_N_PREVIEW_BYTES = 16


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> NDArray[np.uint8]:
    """Decode encoded image bytes into an RGB array.

    Parameters
    ----------
    data : bytes
        The encoded file (any format Pillow reads: JPEG, PNG, GIF, WebP,
        TIFF, BMP, ...). ``bytearray`` and ``memoryview`` are accepted too.
    max_pixels : int, default=DEFAULT_MAX_PIXELS
        Largest accepted ``width * height``, checked from the header before
        any pixel data is decoded. Pillow's own hard limit
        (``2 * PIL.Image.MAX_IMAGE_PIXELS``) still applies on top of it: a
        larger ``max_pixels`` only takes effect if the process raised that
        global itself. Pillow's ``DecompressionBombWarning`` is never emitted.

    Returns
    -------
    image : ndarray of shape (height, width, 3), dtype uint8
        C-contiguous, writable RGB pixels of the first frame, EXIF
        orientation applied, transparency composited over white. See the
        module docstring for how each Pillow mode is converted.

    Raises
    ------
    InvalidImageError
        ``data`` is not bytes, is empty, is not an image, is truncated or
        corrupt, or has a zero width or height.
    UnsupportedImageError
        Pillow identifies the format but cannot, or lime-spark will not,
        decode it.
    ImageTooLargeError
        The image has more than ``max_pixels`` pixels.
    ConfigurationError
        ``max_pixels`` is not a positive integer.

    Notes
    -----
    Pillow's warnings (the decompression-bomb warning, and remarks on
    damaged but decodable files such as "Corrupt EXIF data") are silenced
    with :func:`warnings.catch_warnings`, which swaps the process-wide
    warning filters for the duration of the call (not thread-safe before Python
    3.14; Python workers in Spark are single-threaded processes).
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is never set, so truncated files
    raise rather than decode to grey.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGBA", (4, 2), (255, 0, 0, 0)).save(buffer, "PNG")
    >>> image = decode_image(buffer.getvalue())
    >>> image.shape, image.dtype, image[0, 0].tolist()
    ((2, 4, 3), dtype('uint8'), [255, 255, 255])
    """
    buffer = _check_bytes(data)
    max_pixels = check_int("max_pixels", max_pixels, minimum=1)
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check replaces Pillow's warning threshold.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Remarks on damaged but decodable files ("Corrupt EXIF data"):
            # the image either decodes or raises, so they are noise here.
            warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
            return _decode(buffer, max_pixels)
    except LimeSparkError:
        raise
    except MemoryError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(
            f"Expected an image of at most max_pixels={max_pixels} pixels "
            f"that Pillow accepts. Received: {_describe_bytes(buffer)}, which "
            f"Pillow refused as a decompression bomb ({exc})"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(
            "Expected bytes of an image format Pillow can identify. "
            f"Received: {_describe_bytes(buffer)}"
        ) from exc
    except Exception as exc:  # untrusted bytes: any parser error is the data's
        raise _classify_decode_error(exc, buffer) from exc


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


def load_image(path: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> NDArray[np.uint8]:
    """Read an image from any fsspec URI and decode it with :func:`decode_image`.

    Parameters
    ----------
    path : str or os.PathLike
        Local path or fsspec URI (``file://``, ``s3://``, ``gs://``,
        ``memory://``, ...).
    max_pixels : int, default=DEFAULT_MAX_PIXELS
        Decompression-bomb limit, see :func:`decode_image`.

    Returns
    -------
    image : ndarray of shape (height, width, 3), dtype uint8
        As returned by :func:`decode_image`.

    Raises
    ------
    StorageError
        The path does not exist, is a directory, or cannot be read. The
        message names the path.
    InvalidImageError, UnsupportedImageError, ImageTooLargeError
        As :func:`decode_image`, with the path prefixed to the message.
    ConfigurationError
        ``path`` is not a string or path-like object.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigurationError(
            f"Expected path to be a str or os.PathLike. Received: "
            f"path={path!r} of type {type(path).__name__}"
        )
    path = os.fspath(path)
    data = _read_bytes(path)
    try:
        return decode_image(data, max_pixels=max_pixels)
    except InvalidImageError as exc:
        raise type(exc)(f"{path}: {exc}") from exc


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _check_bytes(data: Any) -> bytes | bytearray | memoryview:
    """Return ``data`` if it is non-empty bytes-like, else raise InvalidImageError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidImageError(
            "Expected data to be bytes of an encoded image. Received: "
            f"an object of type {type(data).__name__}"
        )
    if len(data) == 0:
        raise InvalidImageError(
            "Expected data to be non-empty bytes of an encoded image. Received: 0 bytes"
        )
    return data


def _check_size(size: Any) -> tuple[int, int]:
    """Return ``size`` as ``(height, width)`` of positive ints, else raise."""
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise ConfigurationError(
            f"Expected size to be a (height, width) pair. Received: size={size!r}"
        )
    height = check_int("size[0] (height)", size[0], minimum=1)
    width = check_int("size[1] (width)", size[1], minimum=1)
    return height, width


def _describe_bytes(buffer: bytes | bytearray | memoryview) -> str:
    """Describe bytes for an error message: length, first bytes, a hint."""
    head = bytes(buffer[:_N_PREVIEW_BYTES])
    text = f"{len(buffer)} bytes starting with {head!r}"
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<?xml", b"<")):
        text += " (looks like HTML/XML text)"
    elif stripped.startswith((b"{", b"[")):
        text += " (looks like JSON text)"
    else:
        try:
            decoded = head.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if decoded.isprintable() or decoded.strip().isprintable():
                text += " (looks like text)"
    return text


def _check_pixels(size: tuple[int, int], max_pixels: int, image_format: str | None) -> None:
    """Raise if ``size`` (width, height) is empty or has more than ``max_pixels``."""
    width, height = size
    if width <= 0 or height <= 0:
        raise InvalidImageError(
            "Expected an image with a positive width and height. Received: "
            f"a {image_format} image of {width}x{height} pixels"
        )
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"Expected an image of at most max_pixels={max_pixels} pixels. "
            f"Received: a {image_format} image of {width}x{height} = "
            f"{width * height} pixels"
        )


def _decode(buffer: bytes | bytearray | memoryview, max_pixels: int) -> NDArray[np.uint8]:
    """Open lazily, check the header, then decode frame 0 into RGB."""
    with Image.open(io.BytesIO(buffer)) as im:
        image_format = im.format
        if image_format in _REFUSED_FORMATS:
            raise UnsupportedImageError(
                "Expected an image format lime-spark decodes. Received: "
                f"{image_format} ({_REFUSED_FORMATS[image_format]}), "
                f"{_describe_bytes(buffer)}"
            )
        # Image.open read the header only: size is known, pixels are not decoded.
        _check_pixels(im.size, max_pixels, image_format)
        im.load()
        # Some plugins (ICO, ICNS, JPEG 2000) settle the size while loading.
        _check_pixels(im.size, max_pixels, image_format)
        oriented = _apply_exif_orientation(im)
        return _pil_to_rgb(oriented)


def _apply_exif_orientation(im: Image.Image) -> Image.Image:
    """Return ``im`` rotated/flipped by its EXIF orientation (``im`` itself if none)."""
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        if orientation in (2, 3, 4, 5, 6, 7, 8):
            return ImageOps.exif_transpose(im)
    except MemoryError:
        raise
    except Exception as exc:  # a corrupt EXIF block must not lose the pixels
        logger.debug("Ignoring unreadable EXIF orientation: %r", exc)
    return im


def _pil_to_rgb(im: Image.Image) -> NDArray[np.uint8]:
    """Convert a loaded Pillow image of any mode to (height, width, 3) uint8."""
    mode = im.mode
    if mode.startswith("I;16"):
        gray = np.asarray(im).astype(np.float32)
        # Division by 257 maps 0..65535 exactly onto 0..255.
        return _gray_to_rgb(np.rint(gray / 257.0).astype(np.uint8))
    if mode in ("I", "F"):
        return _gray_to_rgb(_scale_to_uint8(np.asarray(im)))
    if mode in _PREMULTIPLIED_MODES:
        # Pillow converts La only to LA; both unpremultiply before compositing.
        im = im.convert("LA" if mode == "La" else "RGBA")
        mode = im.mode
    if mode in _ALPHA_MODES or _has_transparency(im):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, _WHITE)
        return _writable_array(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode != "RGB":
        im = im.convert("RGB")
    return _writable_array(im)


def _has_transparency(im: Image.Image) -> bool:
    """``im.has_transparency_data``, also for palette images without a Python palette.

    Pillow's ICNS plugin decodes some icons to mode ``P`` with the palette in
    the core image only (``im.palette is None``), where the property asserts.
    """
    try:
        return bool(im.has_transparency_data)
    except AssertionError:
        return "transparency" in im.info


def _scale_to_uint8(values: NDArray[Any]) -> NDArray[np.uint8]:
    """Map 32-bit integer or float pixels onto 0..255.

    Values already within [0, 255] are rounded as they are; otherwise the
    finite range ``[min, max]`` is stretched linearly to [0, 255]. ``NaN``
    becomes 0, infinities saturate.
    """
    finite = np.isfinite(values)
    if not finite.any():
        scaled = np.zeros(values.shape, dtype=np.float32)
    else:
        all_finite = bool(finite.all())
        low = float(values.min() if all_finite else values[finite].min())
        high = float(values.max() if all_finite else values[finite].max())
        scaled = values.astype(np.float32)
        if (low < 0.0 or high > 255.0) and high > low:
            scaled -= np.float32(low)
            scaled *= np.float32(255.0 / (high - low))
        np.nan_to_num(scaled, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    return np.rint(scaled).astype(np.uint8)


def _gray_to_rgb(gray: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Repeat a (height, width) uint8 image into (height, width, 3)."""
    return np.repeat(gray[:, :, np.newaxis], 3, axis=2)


def _writable_array(im: Image.Image) -> NDArray[np.uint8]:
    """Pixels of a Pillow image as a writable C-contiguous array."""
    array = np.asarray(im)
    if not (array.flags.writeable and array.flags.c_contiguous):
        array = np.array(array, order="C")
    return array


def _classify_decode_error(exc: Exception, buffer: bytes | bytearray | memoryview) -> InvalidImageError:
    """Map an exception raised by Pillow to InvalidImageError or UnsupportedImageError."""
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, NotImplementedError) or _UNSUPPORTED_PATTERN.search(str(exc)):
        return UnsupportedImageError(
            "Expected an image Pillow can decode. Received: "
            f"{_describe_bytes(buffer)}, which Pillow identifies but cannot "
            f"decode ({detail})"
        )
    return InvalidImageError(
        "Expected a complete, well-formed image. Received: "
        f"{_describe_bytes(buffer)}, which failed to decode ({detail})"
    )


def _read_bytes(path: str) -> bytes:
    """Read the whole object at ``path`` with fsspec, raising StorageError."""
    try:
        opened = fsspec.open(path, "rb")
    except Exception as exc:  # unknown protocol, missing filesystem package, ...
        raise StorageError(f"Cannot open {path!r}: {type(exc).__name__}: {exc}") from exc
    try:
        with opened as stream:
            return stream.read()
    except IsADirectoryError as exc:
        raise StorageError(
            f"Expected path to be a file. Received: {path!r}, which is a directory"
        ) from exc
    except FileNotFoundError as exc:
        if _is_directory(opened):
            raise StorageError(
                f"Expected path to be a file. Received: {path!r}, which is a directory"
            ) from exc
        raise StorageError(
            f"Expected path to exist. Received: {path!r}, which was not found"
        ) from exc
    except OSError as exc:
        raise StorageError(
            f"Cannot read {path!r}: {type(exc).__name__}: {exc}"
        ) from exc


def _is_directory(opened: Any) -> bool:
    """Whether an fsspec OpenFile points at a directory (False if unknown)."""
    try:
        return bool(opened.fs.isdir(opened.path))
    except Exception:  # only refines an error message; never raise from here
        return False
