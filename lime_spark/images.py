"""Image bytes to RGB arrays, and resizing to a model's input size.

This is the first stage of the data flow: every later stage works on an
``(height, width, 3)`` ``uint8`` array, whatever the file looked like.
:func:`decode_image` meets untrusted bytes in a nightly batch job, so every
failure is one of the typed errors of :mod:`lime_spark.exceptions`:

- :class:`~lime_spark.exceptions.InvalidImageError`: not bytes, empty, not an
  image, truncated or otherwise corrupt, zero-sized.
- :class:`~lime_spark.exceptions.UnsupportedImageError`: a file Pillow
  identifies but that lime-spark will not decode: a format outside
  :data:`DECODED_FORMATS` (PostScript above all, which would need Ghostscript
  to run on untrusted input), or one Pillow cannot decode.
- :class:`~lime_spark.exceptions.ImageTooLargeError`: more pixels than
  ``max_pixels`` (the decompression-bomb guard), or a decode that would need
  more than ``max_decode_bytes`` of memory. Both checks read the image header
  only, before any pixel data is decoded.

Only the Pillow plugins of :data:`DECODED_FORMATS` ever parse the bytes
(``Image.open(..., formats=DECODED_FORMATS)``); every other plugin is at most
asked whether the first 16 bytes carry its signature, to name the refused
format in the message. This module is the only place in lime-spark that
decodes an image file: the report's thumbnails go through
:func:`decode_image` too.

Conversions applied by :func:`decode_image`, in this order:

1. First frame only for animated GIF / WebP / APNG and multi-page TIFF.
2. Transparency (``RGBA``, ``LA``, ``PA``, premultiplied ``RGBa``/``La``,
   palette or ``tRNS`` transparency) is composited over a **white**
   background, so a fully transparent pixel becomes ``(255, 255, 255)``.
3. 16-bit grayscale (``I;16`` and its variants) is divided by 257, which maps
   0..65535 exactly onto 0..255. 32-bit integer (``I``) and float (``F``)
   grayscale is used as is when every value lies in 0..255; otherwise its
   actual range ``[min, max]`` is stretched linearly to 0..255. ``NaN``
   becomes 0 and infinities saturate.
4. Every other mode (``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``,
   ``HSV``, ...) goes through Pillow's ``convert("RGB")``. Embedded ICC
   profiles are not applied.
5. EXIF orientation applied (as :func:`PIL.ImageOps.exif_transpose` would);
   an unreadable EXIF block leaves the stored orientation.

Steps 2-4 run on strips of about a million pixels, written into the output
array, so decoding holds Pillow's decoded frame, the output and one strip's
temporaries: see :func:`decode_image` for the memory this takes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import threading
import warnings
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from ._validation import check_int, check_one_of
from .exceptions import (
    ConfigurationError,
    ImageTooLargeError,
    InvalidImageError,
    LimeSparkError,
    UnsupportedImageError,
)
from .storage import DEFAULT_MAX_BYTES, read_bytes

__all__ = [
    "DECODED_FORMATS",
    "DEFAULT_MAX_DECODE_BYTES",
    "DEFAULT_MAX_PIXELS",
    "decode_image",
    "to_rgb_array",
    "resize_image",
    "load_image",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS: int = 89_478_485
"""Default decompression-bomb limit in pixels: Pillow's own default."""

DEFAULT_MAX_DECODE_BYTES: int = 1 << 30
"""Default memory budget of one decode in bytes (1 GiB).

Every image up to :data:`DEFAULT_MAX_PIXELS` (89 megapixels) whose codec
decodes in place fits: at most 7 bytes per pixel plus one strip, 670 MB
(PNG, baseline JPEG, TIFF, GIF, BMP, ...; any mode). What the budget refuses
at its default are decodes whose codec holds the whole image once more:
progressive JPEGs with full-resolution colour above about 80 megapixels,
JPEG 2000 above about 55, WebP above about 60 and AVIF above about 80.
"""

DECODED_FORMATS: tuple[str, ...] = (
    "AVIF", "BLP", "BMP", "DIB", "PCX", "DDS", "GIF", "PNG", "JPEG2000", "ICNS", "ICO", "IM",
    "JPEG", "TIFF", "MSP", "PPM", "QOI", "SGI", "SPIDER", "TGA", "WEBP", "XBM",
)
"""The Pillow formats :func:`decode_image` decodes (the allow-list of ``Image.open``).

Every format Pillow both writes and reads, except EPS (JPEG covers MPO,
PPM covers PBM/PGM/PNM, ICO and ICNS their embedded PNG/JPEG 2000 images).
No other Pillow plugin parses the bytes: PostScript needs Ghostscript, and
read-only plugins (PSD, FITS, XPM, WMF, ...) are code lime-spark's tests
never run.
"""

#: Resampling filters accepted by :func:`resize_image`.
_RESAMPLING: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
}

#: Why some formats outside DECODED_FORMATS are refused (others: not in the allow-list).
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
_JSON_START = re.compile(r'[\[{]\s*(?:["{\[\]}0-9-]|true|false|null|$)')
_N_SIGNATURE_BYTES = 16      # what Pillow's plugins look at to identify a format
_N_SNIFF_BYTES = 512         # what _describe_bytes looks at (never quoted)

#: Pixels per conversion strip; one strip's temporaries are at most
#: _STRIP_BYTES_PER_PIXEL bytes per pixel (a few RGBA copies while compositing).
_STRIP_PIXELS = 1 << 20
_STRIP_BYTES_PER_PIXEL = 40
_RGB_BYTES_PER_PIXEL = 3

#: Extra bytes per pixel (of the full-size frame) that a codec holds while decoding.
#: (Measured on 16-megapixel files, rounded up; JPEG and JPEG 2000: see _codec_bytes.)
_CODEC_BYTES_PER_PIXEL: dict[str, int] = {
    "WEBP": 10,           # libwebp's RGBA canvas, and the RGBA frame handed to Pillow as bytes
    "AVIF": 6,            # libavif's YUV planes (16-bit for 10/12-bit files)
}

#: Signatures of common non-image files, for messages (the bytes are never quoted).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x7fELF", "an ELF executable"),
    (b"PAR1", "a Parquet file"),
    (b"-----BEGIN ", "a PEM key or certificate"),
    (b"SQLite format 3\x00", "an SQLite database"),
)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
    reduce_to: int | None = None,
) -> NDArray[np.uint8]:
    """Decode encoded image bytes into an RGB array.

    Parameters
    ----------
    data : bytes
        The encoded file, in one of :data:`DECODED_FORMATS` (JPEG, PNG, GIF,
        WebP, TIFF, BMP, ...). ``bytearray`` and ``memoryview`` are accepted
        too.
    max_pixels : int, default=DEFAULT_MAX_PIXELS
        Largest accepted ``width * height``, checked from the header before
        any pixel data is decoded. Pillow's own hard limit
        (``2 * PIL.Image.MAX_IMAGE_PIXELS``) still applies on top of it: a
        larger ``max_pixels`` only takes effect if the process raised that
        global itself. Pillow's ``DecompressionBombWarning`` is never emitted.
    max_decode_bytes : int, default=DEFAULT_MAX_DECODE_BYTES
        Memory budget of the decode (1 GiB), checked from the header before
        any pixel data is decoded against an estimate of the peak: Pillow's
        frame (1, 2 or 4 bytes per pixel by mode), the RGB output (3 bytes per
        pixel, twice while an EXIF rotation is applied), one conversion strip,
        and the codec's own buffers (a progressive JPEG's coefficients, 2
        bytes per sample; JPEG 2000 4 bytes per sample; WebP 10, AVIF 6 bytes
        per pixel).
    reduce_to : int, optional
        Decode at a reduced scale when the caller shrinks the image to about
        this many pixels anyway (thumbnails): JPEGs are decoded at 1/2, 1/4 or
        1/8 scale (DCT scaling: the full-size frame never exists) and every
        image is then box-averaged by an integer factor, in both cases only as
        far as both sides stay at least ``reduce_to`` pixels. ``max_pixels``
        still applies to the full size; memory is estimated for what is
        decoded.

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
        corrupt, or has a zero width or height. The message gives the length
        and the kind of bytes (text, HTML, JSON, PDF, ...), never the bytes.
    UnsupportedImageError
        The bytes are of a format outside :data:`DECODED_FORMATS` (EPS,
        PSD, ...), or Pillow identifies the format but cannot decode it.
    ImageTooLargeError
        The image has more than ``max_pixels`` pixels, or its decode would
        need more than ``max_decode_bytes``.
    ConfigurationError
        ``max_pixels``, ``max_decode_bytes`` or ``reduce_to`` is not a
        positive integer.

    Notes
    -----
    Pillow's warnings (the decompression-bomb warning, and remarks on
    damaged but decodable files such as "Corrupt EXIF data") are silenced
    with :func:`warnings.catch_warnings`, which swaps the process-wide
    warning filters while any thread is decoding: threads that decode at
    once (the report's) share one such context, entered by the first and
    left by the last, so the filters are restored exactly once.
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
    max_decode_bytes = check_int("max_decode_bytes", max_decode_bytes, minimum=1)
    if reduce_to is not None:
        reduce_to = check_int("reduce_to", reduce_to, minimum=1)
    try:
        with _pillow_warnings_silenced():
            return _decode(buffer, max_pixels, max_decode_bytes, reduce_to)
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
        raise _unidentified_error(buffer) from exc
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


def _describe_bytes(buffer: bytes | bytearray | memoryview, image_format: str | None = None) -> str:
    """Length and kind of bytes for an error message, never the bytes themselves.

    The bytes may be any file the input names (a key, a configuration with
    passwords), and error messages end up in tables and logs: only the length
    and a recognised kind are told ("1234 bytes of a PNG image", "63 bytes
    (looks like HTML/XML text)").
    """
    size = f"{len(buffer)} bytes"
    if image_format:
        return f"{size} of a {image_format} image"
    return f"{size} ({_sniff(bytes(buffer[:_N_SNIFF_BYTES]))})"


def _sniff(head: bytes) -> str:
    """What the first bytes of a file that is no decodable image look like."""
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return f"looks like {kind}"
    text = _as_text(head)
    if text is None:
        return "binary data without a known image signature"
    stripped = text.lstrip().lower()
    if stripped.startswith(("<!doctype html", "<html", "<?xml", "<")):
        return "looks like HTML/XML text"
    if _JSON_START.match(stripped):
        return "looks like JSON text"
    if stripped.startswith(("%!ps", "%!")):
        return "looks like PostScript text"
    return "looks like text"


def _as_text(head: bytes) -> str | None:
    """``head`` decoded as UTF-8 when it is printable text (a cut last character allowed)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3 or exc.reason != "unexpected end of data":
            return None
        text = head[:exc.start].decode("utf-8")
    if not text.strip() or not all(ch.isprintable() or ch in "\t\n\r\f" for ch in text):
        return None
    return text


_silence_lock = threading.Lock()
_silence_users = 0
_silence_context: Any = None


@contextlib.contextmanager
def _pillow_warnings_silenced() -> Iterator[None]:
    """Silence Pillow's warnings while any thread decodes (one shared catch_warnings)."""
    global _silence_users, _silence_context
    with _silence_lock:
        if _silence_users == 0:
            context = warnings.catch_warnings()
            context.__enter__()
            # Our own max_pixels check replaces Pillow's warning threshold.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Remarks on damaged but decodable files ("Corrupt EXIF data"):
            # the image either decodes or raises, so they are noise here.
            warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
            _silence_context = context
        _silence_users += 1
    try:
        yield
    finally:
        with _silence_lock:
            _silence_users -= 1
            if _silence_users == 0:
                _silence_context.__exit__(None, None, None)
                _silence_context = None


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


@lru_cache(maxsize=1)
def _refused_signatures() -> tuple[tuple[str, Any], ...]:
    """(format, accept) of the Pillow plugins outside DECODED_FORMATS that check a signature."""
    Image.init()
    return tuple((name, Image.OPEN[name][1]) for name in Image.ID
                 if name not in DECODED_FORMATS and Image.OPEN[name][1] is not None)


def _refused_format(buffer: bytes | bytearray | memoryview) -> str | None:
    """The refused Pillow format whose signature the bytes carry, if any.

    Only the plugins' signature checks see the bytes (their ``_accept`` on the
    first 16 bytes); none of them opens or decodes anything.
    """
    prefix = bytes(buffer[:_N_SIGNATURE_BYTES])
    for name, accept in _refused_signatures():
        try:
            if _accepted(accept(prefix)):
                return name
        except Exception:  # noqa: BLE001 - a signature check that fails is no match
            continue
    return None


def _accepted(result: Any) -> bool:
    """Whether a Pillow plugin's signature check matched (a str is a warning, no match)."""
    return bool(result) and not isinstance(result, str)


def _unidentified_error(buffer: bytes | bytearray | memoryview) -> InvalidImageError:
    """The error for bytes none of the DECODED_FORMATS plugins identified."""
    refused = _refused_format(buffer)
    if refused is not None:
        why = _REFUSED_FORMATS.get(
            refused, "lime-spark decodes only " + ", ".join(DECODED_FORMATS))
        return UnsupportedImageError(
            f"Expected an image format lime-spark decodes. Received: {len(buffer)} bytes "
            f"with the signature of {refused} ({why}); convert the file to PNG or JPEG"
        )
    return InvalidImageError(
        "Expected bytes of an image format Pillow can identify. "
        f"Received: {_describe_bytes(buffer)}, which is not an image file; replace the file"
    )


#: Tried first, as Pillow's ``Image.open`` does (the plugins of ``Image.preinit``).
_COMMON_FORMATS = ("BMP", "DIB", "GIF", "JPEG", "PPM", "PNG")


@lru_cache(maxsize=1)
def _open_formats() -> list[str]:
    """DECODED_FORMATS as the list ``Image.open(formats=...)`` tries in order."""
    Image.init()
    ordered = [*_COMMON_FORMATS, *(f for f in DECODED_FORMATS if f not in _COMMON_FORMATS)]
    return [name for name in ordered if name in DECODED_FORMATS and name in Image.OPEN]


def _decode(buffer: bytes | bytearray | memoryview, max_pixels: int, max_decode_bytes: int,
            reduce_to: int | None) -> NDArray[np.uint8]:
    """Open with the allowed plugins only, check the header, then decode frame 0 into RGB."""
    with Image.open(io.BytesIO(buffer), formats=_open_formats()) as im:
        image_format = im.format
        try:
            if image_format not in DECODED_FORMATS and image_format != "MPO":
                # a plugin of DECODED_FORMATS that handed over to another one
                raise UnsupportedImageError(
                    "Expected an image format lime-spark decodes. Received: "
                    f"{_describe_bytes(buffer, image_format)}; convert the file to PNG or JPEG"
                )
            # Image.open read the header only: size is known, pixels are not decoded.
            _check_pixels(im.size, max_pixels, image_format)
            full_size = im.size
            if reduce_to is not None and image_format in ("JPEG", "MPO"):
                im.draft(None, (reduce_to, reduce_to))     # DCT scaling: 1/2, 1/4 or 1/8
            _check_memory(im, full_size, _reduction(im.size, reduce_to), max_decode_bytes)
            im.load()
            # Some plugins (ICO, ICNS, JPEG 2000) settle the size while loading.
            _check_pixels(im.size, max_pixels, image_format)
            factor = _reduction(im.size, reduce_to)
            _check_memory(im, im.size, factor, max_decode_bytes)
            orientation = _exif_orientation(im)
            rgb = _pil_to_rgb(im, factor)
        except (LimeSparkError, MemoryError, Image.DecompressionBombError):
            raise
        except Exception as exc:  # untrusted bytes: any parser error is the data's
            raise _classify_decode_error(exc, buffer, image_format) from exc
    return _apply_orientation(rgb, orientation)


def _reduction(size: tuple[int, int], reduce_to: int | None) -> int:
    """Integer box-reduction factor keeping both sides at least ``reduce_to`` (1: none)."""
    if reduce_to is None:
        return 1
    return max(1, min(size) // reduce_to)


def _storage_bytes_per_pixel(mode: str) -> int:
    """Bytes per pixel of Pillow's in-memory image of ``mode``."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith(("I;16", "BGR;15", "BGR;16")):
        return 2
    return 4      # RGB is stored as 4 bytes too; so are LA, PA, I, F, CMYK, ...


def _decode_bytes(im: Image.Image, full_size: tuple[int, int], factor: int) -> int:
    """Estimated peak bytes of decoding ``im`` (opened, not loaded) at ``factor``.

    Pillow's frame, plus the larger of the output (with one conversion strip)
    and two outputs (an EXIF rotation's copy, after the frame is released),
    plus the codec's own buffers for the full-size frame.
    """
    width, height = im.size
    pixels = width * height
    out_pixels = -(-width // factor) * -(-height // factor)
    rows = _strip_rows(width, height, factor)
    output = max(out_pixels * _RGB_BYTES_PER_PIXEL + rows * width * _STRIP_BYTES_PER_PIXEL,
                 2 * out_pixels * _RGB_BYTES_PER_PIXEL - pixels * _storage_bytes_per_pixel(im.mode))
    return pixels * _storage_bytes_per_pixel(im.mode) + max(output, 0) + _codec_bytes(im, full_size)


def _codec_bytes(im: Image.Image, full_size: tuple[int, int]) -> int:
    """Bytes a codec holds besides Pillow's frame while decoding ``im``."""
    pixels = full_size[0] * full_size[1]
    if im.format in ("JPEG", "MPO") and im.info.get("progressive"):
        # libjpeg keeps every DCT coefficient (2 bytes) of every component
        layers = getattr(im, "layer", None) or []
        h_max = max((layer[1] for layer in layers), default=1) or 1
        v_max = max((layer[2] for layer in layers), default=1) or 1
        samples = sum(layer[1] * layer[2] for layer in layers) / (h_max * v_max) or 3
        return int(2 * samples * pixels)
    if im.format == "JPEG2000":
        return 4 * len(im.getbands()) * pixels
    return _CODEC_BYTES_PER_PIXEL.get(im.format or "", 0) * pixels


def _check_memory(im: Image.Image, full_size: tuple[int, int], factor: int, budget: int) -> None:
    """Raise ImageTooLargeError when decoding ``im`` would need more than ``budget`` bytes."""
    needed = _decode_bytes(im, full_size, factor)
    if needed > budget:
        width, height = full_size
        raise ImageTooLargeError(
            f"Expected an image that decodes within max_decode_bytes={budget} bytes "
            f"({_mib(budget)}). Received: a {im.format} image of {width}x{height} pixels in "
            f"mode {im.mode}, whose decode needs about {needed} bytes ({_mib(needed)}); "
            "raise max_decode_bytes (--max-decode-bytes) if the workers have the memory, "
            "or lower max_pixels to refuse such images from their size"
        )


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation (1-8) of a loaded image; 1 when absent or unreadable."""
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except MemoryError:
        raise
    except Exception as exc:  # a corrupt EXIF block must not lose the pixels
        logger.debug("Ignoring unreadable EXIF orientation: %r", exc)
        return 1
    return orientation if orientation in (2, 3, 4, 5, 6, 7, 8) else 1


#: EXIF orientation -> the view of the stored pixels that shows the image upright.
_ORIENT = {
    2: lambda a: a[:, ::-1],                        # mirrored
    3: lambda a: a[::-1, ::-1],                     # rotated 180
    4: lambda a: a[::-1],                           # flipped
    5: lambda a: a.transpose(1, 0, 2),              # transposed
    6: lambda a: np.rot90(a, -1),                   # rotated 90 clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # transversed
    8: lambda a: np.rot90(a, 1),                    # rotated 90 counter-clockwise
}


def _apply_orientation(rgb: NDArray[np.uint8], orientation: int) -> NDArray[np.uint8]:
    """``rgb`` as displayed for EXIF ``orientation`` (Pillow's exif_transpose), C-contiguous."""
    if orientation not in _ORIENT:
        return rgb
    return np.ascontiguousarray(_ORIENT[orientation](rgb))


def _strip_rows(width: int, height: int, factor: int) -> int:
    """Rows per conversion strip: about _STRIP_PIXELS pixels, a multiple of ``factor``."""
    rows = max(1, _STRIP_PIXELS // max(width, 1))
    rows = -(-rows // factor) * factor
    return min(rows, -(-height // factor) * factor)


def _pil_to_rgb(im: Image.Image, factor: int = 1) -> NDArray[np.uint8]:
    """Convert a loaded Pillow image of any mode to (height, width, 3) uint8.

    Converts strips of :func:`_strip_rows` rows into one preallocated output,
    so the conversion's temporaries (RGBA copies, float arrays) exist for one
    strip at a time; with ``factor`` > 1 each strip is box-averaged by that
    factor (``Image.reduce``) before it is stored.
    """
    width, height = im.size
    rows = _strip_rows(width, height, factor)
    out = np.empty((-(-height // factor), -(-width // factor), 3), dtype=np.uint8)
    value_range = _value_range(im, rows) if im.mode in ("I", "F") else None
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        strip = im if (top, bottom) == (0, height) else im.crop((0, top, width, bottom))
        rgb = _strip_to_rgb(strip, value_range)
        if factor > 1:
            rgb = np.asarray(Image.fromarray(rgb).reduce(factor))
        out[top // factor:top // factor + rgb.shape[0]] = rgb
    return out


def _strip_to_rgb(im: Image.Image, value_range: tuple[float, float] | None) -> NDArray[np.uint8]:
    """Convert one strip (or a whole small image) of any mode to RGB."""
    mode = im.mode
    if mode.startswith("I;16"):
        gray = np.asarray(im).astype(np.float32)
        # Division by 257 maps 0..65535 exactly onto 0..255.
        return _gray_to_rgb(np.rint(gray / 257.0).astype(np.uint8))
    if mode in ("I", "F"):
        return _gray_to_rgb(_scale_to_uint8(np.asarray(im), value_range))
    if mode in _PREMULTIPLIED_MODES:
        # Pillow converts La only to LA; both unpremultiply before compositing.
        im = im.convert("LA" if mode == "La" else "RGBA")
        mode = im.mode
    if mode in _ALPHA_MODES or _has_transparency(im):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, _WHITE)
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


def _has_transparency(im: Image.Image) -> bool:
    """``im.has_transparency_data``, also for palette images without a Python palette.

    Pillow's ICNS plugin decodes some icons to mode ``P`` with the palette in
    the core image only (``im.palette is None``), where the property asserts.
    """
    try:
        return bool(im.has_transparency_data)
    except AssertionError:
        return "transparency" in im.info


def _value_range(im: Image.Image, rows: int) -> tuple[float, float] | None:
    """Finite ``(min, max)`` of an ``I`` or ``F`` image, strip by strip (None: none finite)."""
    width, height = im.size
    low, high = np.inf, -np.inf
    for top in range(0, height, rows):
        values = np.asarray(im.crop((0, top, width, min(height, top + rows))))
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        if finite.size:
            low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    return None if low > high else (low, high)


def _scale_to_uint8(values: NDArray[Any],
                    value_range: tuple[float, float] | None) -> NDArray[np.uint8]:
    """Map 32-bit integer or float pixels onto 0..255, given the image's finite range.

    Values are rounded as they are when the whole image lies within [0, 255];
    otherwise its finite range ``[min, max]`` is stretched linearly to
    [0, 255]. ``NaN`` becomes 0, infinities saturate.
    """
    if value_range is None:
        scaled = np.zeros(values.shape, dtype=np.float32)
    else:
        low, high = value_range
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


def _classify_decode_error(exc: Exception, buffer: bytes | bytearray | memoryview,
                           image_format: str | None = None) -> InvalidImageError:
    """Map an exception raised by Pillow to InvalidImageError or UnsupportedImageError."""
    detail = f"{type(exc).__name__}: {exc}"
    image_format = image_format or _identified_format(buffer)
    if isinstance(exc, NotImplementedError) or _UNSUPPORTED_PATTERN.search(str(exc)):
        return UnsupportedImageError(
            "Expected an image Pillow can decode. Received: "
            f"{_describe_bytes(buffer, image_format)}, which Pillow identifies but cannot "
            f"decode ({detail}); convert the file to PNG or JPEG"
        )
    return InvalidImageError(
        "Expected a complete, well-formed image. Received: "
        f"{_describe_bytes(buffer, image_format)}, which failed to decode ({detail}); "
        "replace the file"
    )


def _identified_format(buffer: bytes | bytearray | memoryview) -> str | None:
    """The DECODED_FORMATS plugin whose signature the bytes carry (for messages), if any."""
    prefix = bytes(buffer[:_N_SIGNATURE_BYTES])
    Image.init()
    for name in _open_formats():
        accept = Image.OPEN[name][1]
        try:
            if accept is not None and _accepted(accept(prefix)):
                return name
        except Exception:  # noqa: BLE001 - a signature check that fails is no match
            continue
    return None
