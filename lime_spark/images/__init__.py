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
format in the message. This package is the only place in lime-spark that
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

The package follows those steps:

* :mod:`.formats`: the allow-list :data:`DECODED_FORMATS`, and what refused or
  undecodable bytes are, for messages (never quoting the bytes);
* :mod:`.limits`: :data:`DEFAULT_MAX_PIXELS`, :data:`DEFAULT_MAX_DECODE_BYTES`
  and the header-only checks against them (the memory estimate of a decode);
* :mod:`.convert`: any Pillow mode to RGB, strip by strip, and the EXIF
  orientation;
* :mod:`.decode`: :func:`decode_image`, which opens, checks and converts;
* :mod:`.arrays`: :func:`to_rgb_array` and :func:`resize_image` for arrays
  already in memory;
* :mod:`.load`: :func:`load_image`, reading a path or URI first.
"""

from .arrays import resize_image, to_rgb_array
from .decode import decode_image
from .formats import DECODED_FORMATS
from .limits import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_PIXELS
from .load import load_image

# Private helpers that tests read as ``lime_spark.images.<name>`` (from before the split).
from .convert import _pil_to_rgb  # noqa: F401
from .decode import _pillow_warnings_silenced  # noqa: F401
from .limits import _decode_bytes  # noqa: F401

__all__ = [
    "DECODED_FORMATS",
    "DEFAULT_MAX_DECODE_BYTES",
    "DEFAULT_MAX_PIXELS",
    "decode_image",
    "to_rgb_array",
    "resize_image",
    "load_image",
]
