"""The size limits of a decode, checked from the image header before any pixel is decoded.

:data:`DEFAULT_MAX_PIXELS` (the decompression-bomb guard), :data:`DEFAULT_MAX_DECODE_BYTES`
(the memory budget) and the estimate of a decode's peak memory that the budget
is checked against.
"""

from __future__ import annotations

from PIL import Image

from ..exceptions import ImageTooLargeError, InvalidImageError
from .convert import _STRIP_BYTES_PER_PIXEL, _strip_rows

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

_RGB_BYTES_PER_PIXEL = 3

#: Extra bytes per pixel (of the full-size frame) that a codec holds while decoding.
#: (Measured on 16-megapixel files, rounded up; JPEG and JPEG 2000: see _codec_bytes.)
_CODEC_BYTES_PER_PIXEL: dict[str, int] = {
    "WEBP": 10,           # libwebp's RGBA canvas, and the RGBA frame handed to Pillow as bytes
    "AVIF": 6,            # libavif's YUV planes (16-bit for 10/12-bit files)
}


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
