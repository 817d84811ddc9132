"""The formats :func:`~lime_spark.images.decode_image` decodes, and what other bytes are.

:data:`DECODED_FORMATS` is the allow-list handed to ``Image.open``; every
other Pillow plugin is at most asked whether the first 16 bytes carry its
signature, to name a refused format.  The rest of this module turns bytes
that did not decode into the typed error and its message, which gives the
length and the kind of bytes (text, HTML, JSON, PDF, ...), never the bytes.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from PIL import Image

from ..exceptions import InvalidImageError, UnsupportedImageError

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

#: Why some formats outside DECODED_FORMATS are refused (others: not in the allow-list).
_REFUSED_FORMATS: dict[str, str] = {
    "EPS": "decoding PostScript runs Ghostscript on untrusted input",
}

#: Pillow error messages that mean "valid, but not decodable here".
_UNSUPPORTED_PATTERN = re.compile(
    r"unsupported|not supported|not available|not implemented|cannot handle"
    r"|unknown raw mode|no decoder|ghostscript",
    re.IGNORECASE,
)

_JSON_START = re.compile(r'[\[{]\s*(?:["{\[\]}0-9-]|true|false|null|$)')
_N_SIGNATURE_BYTES = 16      # what Pillow's plugins look at to identify a format
_N_SNIFF_BYTES = 512         # what _describe_bytes looks at (never quoted)

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

#: Tried first, as Pillow's ``Image.open`` does (the plugins of ``Image.preinit``).
_COMMON_FORMATS = ("BMP", "DIB", "GIF", "JPEG", "PPM", "PNG")


@lru_cache(maxsize=1)
def _open_formats() -> list[str]:
    """DECODED_FORMATS as the list ``Image.open(formats=...)`` tries in order."""
    Image.init()
    ordered = [*_COMMON_FORMATS, *(f for f in DECODED_FORMATS if f not in _COMMON_FORMATS)]
    return [name for name in ordered if name in DECODED_FORMATS and name in Image.OPEN]


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
