"""Encoded image bytes to an RGB array: :func:`decode_image`."""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from .._validation import check_int
from ..exceptions import (
    ImageTooLargeError,
    InvalidImageError,
    LimeSparkError,
    UnsupportedImageError,
)
from .convert import _apply_orientation, _exif_orientation, _pil_to_rgb
from .formats import (
    DECODED_FORMATS,
    _classify_decode_error,
    _describe_bytes,
    _open_formats,
    _unidentified_error,
)
from .limits import (
    DEFAULT_MAX_DECODE_BYTES,
    DEFAULT_MAX_PIXELS,
    _check_memory,
    _check_pixels,
    _reduction,
)

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
        orientation applied, transparency composited over white. See the docstring of
        :mod:`lime_spark.images` for how each Pillow mode is converted.

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
