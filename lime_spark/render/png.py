"""RGB arrays to PNG bytes, and thumbnails: :func:`encode_png`, :func:`thumbnail`."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from numpy.typing import NDArray

from .._validation import check_int
from .arguments import _check_image

PNG_COMPRESS_LEVEL = 1
"""stdlib zlib level of :func:`encode_png` where ISA-L (:data:`ISAL_LEVEL`) is missing.

Measured with ``scripts/bench_render.py`` on the 1024 x 768 outline picture
of a photo (the batch job's default ``overlay_max_side``) on a busy 2-core
machine, median of 9 interleaved runs: Pillow's default (level 6, its
per-row adaptive filter) took 330 ms for 837 kB and Pillow at level 1 75 ms
for 954 kB (its filter search alone costs about 35 ms).  With the numpy
"Up" filter of :func:`encode_png`, zlib level 0 (stored) takes 5 ms for
2.36 MB, level 1 about 35-43 ms for 975 kB, level 2 about 42 ms for
943 kB, level 3 72 ms for 910 kB: level 1 is the fastest that compresses.
"""

PNG_STRATEGY = zlib.Z_RLE
"""zlib strategy of :func:`encode_png`: runs only (matches at distance 1).

On the same pictures, 5-10% faster than the default strategy at level 1
(about 33 ms against 35 ms in a quieter run) for a 2% larger photo
overlay (994 kB), and a 1% smaller block overlay (452 kB: its faded areas
are runs after the "Up" filter).
Huffman-only coding is a little faster again (30 ms) but 11% larger on
photos and 60% larger on block overlays.  Flat graphics (few colours, no
photo) compress less well than with the default strategy (34 kB instead
of 19 kB for a 50-colour 1024 x 768 picture), which overlays of photos are
not.
"""

PNG_FILTER = 2
"""PNG filter type of every row of :func:`encode_png`: 2, "Up" (each byte minus the byte above).

One fixed filter applied with numpy, instead of Pillow's per-row choice
among four filters run in C.  On photos "Up" gives the smallest files of
the cheap filters (no filter: about 1.8x larger; "Sub": about 1.1x).
"""

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode_png(image: NDArray[np.uint8]) -> bytes:
    """Encode an RGB image as PNG bytes.

    A standard 8-bit RGB PNG (non-interlaced, one IDAT chunk), every row
    filtered with :data:`PNG_FILTER` and deflated by ISA-L at
    :data:`ISAL_LEVEL` (stdlib zlib at :data:`PNG_COMPRESS_LEVEL` with
    :data:`PNG_STRATEGY` without it): about 40 times faster than Pillow's
    default encoder, for a file about 8% larger.

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

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    >>> png = encode_png(image)
    >>> bool((np.asarray(Image.open(io.BytesIO(png))) == image).all())
    True
    """
    rgb = _check_image(image)
    height, width = rgb.shape[:2]
    rows = rgb.reshape(height, width * 3)
    # each row: its filter type, then its bytes minus the bytes of the row above
    # (uint8 arithmetic wraps modulo 256, as PNG's filters do); the first row has
    # no row above, which PNG treats as zeros
    filtered = np.empty((height, width * 3 + 1), dtype=np.uint8)
    filtered[:, 0] = PNG_FILTER
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join((
        _SIGNATURE,
        _chunk(b"IHDR", header),
        _chunk(b"IDAT", _deflate(filtered)),
        _chunk(b"IEND", b""),
    ))


ISAL_LEVEL = 1
"""Level of Intel's ISA-L deflate (``isal``), used when it is installed (a core dependency).

Measured on the 1024 x 768 outline picture after the "Up" filter (2.36 MB),
median of 15, in one process: stdlib zlib level 1 with :data:`PNG_STRATEGY`
30 ms for 947 kB, ISA-L level 1 5.5 ms for 900 kB (levels 0, 2 and 3: 7.5,
5.7 and 5.9 ms), zlib-ng level 1 9.7 ms for 1.30 MB, libdeflate level 1
10.6 ms for 859 kB.  The stream is a standard zlib stream either way.
"""

try:
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - isal is a dependency; stdlib zlib still works
    _isal = None


def _deflate(data: NDArray[np.uint8]) -> bytes:
    """``data`` as a zlib stream: ISA-L at :data:`ISAL_LEVEL`, else stdlib zlib at
    :data:`PNG_COMPRESS_LEVEL` with :data:`PNG_STRATEGY`."""
    if _isal is not None:
        return _isal.compress(data, ISAL_LEVEL)
    packer = zlib.compressobj(PNG_COMPRESS_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS,
                              zlib.DEF_MEM_LEVEL, PNG_STRATEGY)
    return packer.compress(data) + packer.flush()


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC-32 of type and data."""
    return b"".join((struct.pack(">I", len(data)), kind, data,
                     struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))))


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
