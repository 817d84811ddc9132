"""Pillow images of any mode to RGB arrays, strip by strip, upright.

Transparency is composited over white, 16-bit and 32-bit grayscale is scaled
to 0..255 and every other mode goes through ``convert("RGB")`` (see
:mod:`lime_spark.images`), on strips of about a million pixels written into
one output array; then the EXIF orientation is applied.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

logger = logging.getLogger(__name__)

#: Modes whose alpha channel is premultiplied into the colour channels.
_PREMULTIPLIED_MODES = frozenset({"RGBa", "La"})

#: Modes with a straight (not premultiplied) alpha channel.
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA"})

_EXIF_ORIENTATION_TAG = 0x0112
_WHITE = (255, 255, 255, 255)

#: Pixels per conversion strip; one strip's temporaries are at most
#: _STRIP_BYTES_PER_PIXEL bytes per pixel (a few RGBA copies while compositing).
_STRIP_PIXELS = 1 << 20
_STRIP_BYTES_PER_PIXEL = 40


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
