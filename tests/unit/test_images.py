"""Tests of lime_spark.images: decoding, validation, resizing, loading.

Every test file is generated in memory or under ``tmp_path`` with Pillow.
"""

from __future__ import annotations

import io
import os
import struct
import time
import warnings
import zlib

import fsspec
import numpy as np
import pytest
from PIL import Image, ImageFile

from lime_spark.exceptions import (
    ConfigurationError,
    ImageTooLargeError,
    InvalidImageError,
    StorageError,
    UnsupportedImageError,
)
from lime_spark.images import (
    DEFAULT_MAX_PIXELS,
    _pil_to_rgb,
    decode_image,
    load_image,
    resize_image,
    to_rgb_array,
)

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


# --------------------------------------------------------------------------
# Helpers that build files
# --------------------------------------------------------------------------


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _raw_png(width: int, height: int, *, bit_depth: int, color_type: int,
             rows: list[bytes] | None = None) -> bytes:
    """A PNG written by hand: any size, bit depth and colour type.

    Without ``rows`` every pixel is 0; the rows are compressed one at a time
    so a 20000 x 20000 image never exists uncompressed in memory.
    """
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row_bytes = (width * channels * bit_depth + 7) // 8
    compressor = zlib.compressobj(9)
    if rows is None:
        zero_row = bytes(1 + row_bytes)
        parts = [compressor.compress(zero_row) for _ in range(height)]
    else:
        parts = [compressor.compress(b"\x00" + row) for row in rows]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def _assert_rgb(image: np.ndarray, shape: tuple[int, int]) -> None:
    """The output contract of decode_image."""
    assert image.shape == (*shape, 3)
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous
    assert image.flags.writeable


def _pixel(image: np.ndarray, row: int, col: int) -> tuple[int, ...]:
    return tuple(int(v) for v in image[row, col])


def _palette_image(size: tuple[int, int], colours: list[tuple[int, int, int]]) -> Image.Image:
    image = Image.new("P", size, 0)
    image.putpalette([channel for colour in colours for channel in colour])
    return image


# --------------------------------------------------------------------------
# decode_image: modes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_rgb_lossless_round_trip_is_exact(fmt):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(7, 11, 3), dtype=np.uint8)
    options = {"lossless": True} if fmt == "WEBP" else {}
    decoded = decode_image(_encode(Image.fromarray(pixels), fmt, **options))
    _assert_rgb(decoded, (7, 11))
    np.testing.assert_array_equal(decoded, pixels)


def test_bytearray_and_memoryview_are_accepted():
    data = _encode(Image.new("RGB", (3, 2), GREEN), "PNG")
    for wrapped in (bytearray(data), memoryview(data)):
        assert _pixel(decode_image(wrapped), 1, 2) == GREEN


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [(255, RED), (0, WHITE), (128, (255, 127, 127))],
)
def test_rgba_is_composited_over_white(alpha, expected):
    data = _encode(Image.new("RGBA", (4, 3), (*RED, alpha)), "PNG")
    decoded = decode_image(data)
    _assert_rgb(decoded, (3, 4))
    np.testing.assert_allclose(decoded[1, 2], expected, atol=1)


@pytest.mark.parametrize(("gray", "alpha", "expected"), [(0, 255, 0), (0, 0, 255), (60, 255, 60)])
def test_la_is_composited_over_white(gray, alpha, expected):
    decoded = decode_image(_encode(Image.new("LA", (2, 2), (gray, alpha)), "PNG"))
    assert _pixel(decoded, 0, 0) == (expected,) * 3


def test_pa_is_composited_over_white():
    image = Image.new("PA", (3, 1), (1, 255))
    image.putpalette([*RED, *BLUE])
    image.putpixel((2, 0), (0, 0))
    decoded = decode_image(_encode(image, "TIFF"))
    assert _pixel(decoded, 0, 0) == BLUE
    assert _pixel(decoded, 0, 2) == WHITE


def test_palette_image_gives_its_palette_colours():
    image = _palette_image((3, 2), [RED, GREEN, BLUE])
    image.putpixel((1, 0), 1)
    image.putpixel((2, 1), 2)
    decoded = decode_image(_encode(image, "PNG"))
    _assert_rgb(decoded, (2, 3))
    assert _pixel(decoded, 0, 0) == RED
    assert _pixel(decoded, 0, 1) == GREEN
    assert _pixel(decoded, 1, 2) == BLUE


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_becomes_white(fmt):
    image = _palette_image((2, 2), [RED, GREEN])
    image.putpixel((0, 0), 1)
    decoded = decode_image(_encode(image, fmt, transparency=1))
    assert _pixel(decoded, 0, 0) == WHITE
    assert _pixel(decoded, 1, 1) == RED


def test_rgb_png_with_trns_colour_becomes_white():
    image = Image.new("RGB", (2, 1), RED)
    image.putpixel((1, 0), GREEN)
    decoded = decode_image(_encode(image, "PNG", transparency=GREEN))
    assert _pixel(decoded, 0, 0) == RED
    assert _pixel(decoded, 0, 1) == WHITE


@pytest.mark.parametrize(("mode", "fmt"), [("I;16", "PNG"), ("I;16", "TIFF"), ("I;16B", "TIFF")])
def test_16_bit_grayscale_is_divided_by_257(mode, fmt):
    dtype = ">u2" if mode == "I;16B" else "<u2"
    image = Image.fromarray(np.array([[0, 257 * 100, 65535, 128]], dtype=dtype))
    assert image.mode == mode
    data = _encode(image, fmt)
    assert Image.open(io.BytesIO(data)).mode == mode  # the file really is 16-bit
    decoded = decode_image(data)
    _assert_rgb(decoded, (1, 4))
    np.testing.assert_array_equal(decoded[0, :, 0], [0, 100, 255, 0])
    np.testing.assert_array_equal(decoded[..., 0], decoded[..., 2])


def test_48_and_64_bit_png_keep_their_colours():
    rgb48 = struct.pack(">HHH", 65535, 0, 32896) * 2
    decoded = decode_image(_raw_png(2, 1, bit_depth=16, color_type=2, rows=[rgb48]))
    assert _pixel(decoded, 0, 1) == (255, 0, 128)
    rgba64 = struct.pack(">HHHH", 0, 65535, 0, 65535) + struct.pack(">HHHH", 0, 65535, 0, 0)
    decoded = decode_image(_raw_png(2, 1, bit_depth=16, color_type=6, rows=[rgba64]))
    assert _pixel(decoded, 0, 0) == GREEN
    assert _pixel(decoded, 0, 1) == WHITE


def test_32_bit_integer_within_0_255_is_kept():
    values = np.array([[0, 7, 255]], dtype=np.int32)
    decoded = decode_image(_encode(Image.fromarray(values), "TIFF"))
    np.testing.assert_array_equal(decoded[0, :, 1], [0, 7, 255])


def test_32_bit_integer_beyond_255_is_scaled_by_its_range():
    values = np.array([[0, 500, 1000]], dtype=np.int32)
    data = _encode(Image.fromarray(values), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I"
    decoded = decode_image(data)
    np.testing.assert_array_equal(decoded[0, :, 0], [0, 128, 255])


def test_float_within_0_255_is_rounded():
    values = np.array([[0.2, 99.6, 255.0]], dtype=np.float32)
    data = _encode(Image.fromarray(values), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    np.testing.assert_array_equal(decode_image(data)[0, :, 2], [0, 100, 255])


def test_float_outside_0_255_is_scaled_and_nan_is_black():
    values = np.array([[-1.0, 0.0, 1.0, np.nan, np.inf]], dtype=np.float32)
    decoded = decode_image(_encode(Image.fromarray(values), "TIFF"))
    np.testing.assert_array_equal(decoded[0, :, 0], [0, 128, 255, 0, 255])


def test_one_bit_and_l_modes():
    one_bit = Image.new("1", (3, 1), 0)
    one_bit.putpixel((1, 0), 1)
    decoded = decode_image(_encode(one_bit, "PNG"))
    assert [_pixel(decoded, 0, c) for c in range(3)] == [BLACK, WHITE, BLACK]
    decoded = decode_image(_encode(Image.new("L", (2, 2), 77), "PNG"))
    assert _pixel(decoded, 1, 1) == (77, 77, 77)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_pure_cyan_becomes_cyan(fmt):
    data = _encode(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), fmt)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    decoded = decode_image(data)
    _assert_rgb(decoded, (8, 8))
    np.testing.assert_allclose(decoded[4, 4], (0, 255, 255), atol=3)


def test_ycbcr_tiff_converts_to_rgb():
    data = _encode(Image.new("RGB", (4, 4), RED).convert("YCbCr"), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "YCbCr"
    np.testing.assert_allclose(decode_image(data)[2, 2], RED, atol=3)


def test_lab_tiff_converts_to_rgb():
    image = Image.new("LAB", (3, 1), (255, 128, 128))  # L*=100: white
    image.putpixel((2, 0), (0, 128, 128))  # L*=0: black
    data = _encode(image, "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "LAB"
    decoded = decode_image(data)
    np.testing.assert_allclose(decoded[0, 0], WHITE, atol=3)
    np.testing.assert_allclose(decoded[0, 2], BLACK, atol=3)


# Pillow reads no file format into HSV, La or RGBa; check the converter itself.
def test_hsv_converts_to_rgb():
    decoded = _pil_to_rgb(Image.new("HSV", (2, 1), (0, 255, 255)))
    _assert_rgb(decoded, (1, 2))
    assert _pixel(decoded, 0, 0) == RED


@pytest.mark.parametrize(
    ("mode", "premultiplied", "expected"),
    [("RGBa", (0, 0, 0, 0), WHITE), ("RGBa", (100, 0, 0, 128), (227, 127, 127)),
     ("La", (0, 255), BLACK), ("La", (0, 0), WHITE)],
)
def test_premultiplied_alpha_is_composited_over_white(mode, premultiplied, expected):
    decoded = _pil_to_rgb(Image.new(mode, (1, 1), premultiplied))
    np.testing.assert_allclose(decoded[0, 0], expected, atol=1)


# --------------------------------------------------------------------------
# decode_image: orientation and frames
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "shape", "corner"),
    [(1, (10, 20), (0, 0)), (3, (10, 20), (-1, -1)),
     (6, (20, 10), (0, -1)), (8, (20, 10), (-1, 0))],
)
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_is_applied(orientation, shape, corner, fmt):
    pixels = np.zeros((10, 20, 3), dtype=np.uint8)  # 20 wide, 10 high
    pixels[:4, :4] = RED  # mark the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_image(_encode(Image.fromarray(pixels), fmt, exif=exif))
    _assert_rgb(decoded, shape)
    np.testing.assert_allclose(decoded[corner], RED, atol=40)
    # The opposite corner is still black.
    np.testing.assert_allclose(decoded[-1 - corner[0], -1 - corner[1]], BLACK, atol=40)


def test_corrupt_exif_still_decodes_without_warnings():
    jpeg = _encode(Image.new("RGB", (8, 4), BLUE), "JPEG")
    broken_exif = b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff\x00\x00"
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + len(broken_exif)) + broken_exif
    data = jpeg[:2] + app1 + jpeg[2:]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decoded = decode_image(data)
    _assert_rgb(decoded, (4, 8))
    np.testing.assert_allclose(decoded[2, 4], BLUE, atol=3)


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {}), ("TIFF", {})],
    ids=["gif", "webp", "apng", "tiff"],
)
def test_animated_or_multipage_gives_first_frame(fmt, options):
    frames = [Image.new("RGB", (6, 4), colour) for colour in (RED, GREEN, BLUE)]
    data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:], **options)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    decoded = decode_image(data)
    _assert_rgb(decoded, (4, 6))
    assert _pixel(decoded, 3, 5) == RED


def test_real_photo_jpeg_round_trip():
    skimage_data = pytest.importorskip("skimage.data")
    photo = skimage_data.chelsea()
    decoded = decode_image(_encode(Image.fromarray(photo), "JPEG", quality=90))
    _assert_rgb(decoded, photo.shape[:2])
    np.testing.assert_allclose(
        decoded.reshape(-1, 3).mean(axis=0), photo.reshape(-1, 3).mean(axis=0), atol=2.0
    )


# --------------------------------------------------------------------------
# decode_image: decompression-bomb guard
# --------------------------------------------------------------------------


def test_default_limit_is_pillows():
    assert DEFAULT_MAX_PIXELS == 89_478_485


def test_huge_image_is_refused_from_its_header_quickly():
    data = _raw_png(20_000, 20_000, bit_depth=1, color_type=0)
    assert len(data) < 200_000  # 400 million pixels in a few KB
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="decompression bomb"):
        decode_image(data)
    assert time.perf_counter() - start < 2.0


def test_image_between_our_limit_and_pillows_is_refused_without_warnings():
    data = _raw_png(10_000, 10_000, bit_depth=1, color_type=0)  # 100 M pixels
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageTooLargeError, match=r"10000x10000 = 100000000 pixels"):
            decode_image(data)
    assert time.perf_counter() - start < 2.0


def test_size_is_checked_before_pixel_data_is_read():
    # Header of a 100 M pixel image, no pixel data at all: decoding first
    # would fail as truncated, checking the header first fails as too large.
    data = _raw_png(10_000, 10_000, bit_depth=8, color_type=0, rows=[])
    with pytest.raises(ImageTooLargeError):
        decode_image(data)
    small = _raw_png(10, 10, bit_depth=8, color_type=0, rows=[])
    with pytest.raises(InvalidImageError) as info:
        decode_image(small)
    assert type(info.value) is InvalidImageError


def test_small_max_pixels_refuses_a_small_image():
    data = _encode(Image.new("RGB", (100, 100), RED), "PNG")
    with pytest.raises(ImageTooLargeError, match="max_pixels=5000") as info:
        decode_image(data, max_pixels=5000)
    assert "100x100" in str(info.value)
    assert isinstance(info.value, InvalidImageError)
    # The limit is inclusive.
    _assert_rgb(decode_image(data, max_pixels=10_000), (100, 100))


def test_pillow_warning_threshold_is_silenced_and_its_error_mapped(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    between = _encode(Image.new("L", (40, 40), 9), "PNG")  # 1600 > 1000: Pillow warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _pixel(decode_image(between), 0, 0) == (9, 9, 9)
    beyond = _encode(Image.new("L", (50, 50), 9), "PNG")  # 2500 > 2 * 1000: Pillow raises
    with pytest.raises(ImageTooLargeError):
        decode_image(beyond)


def test_decode_leaves_pillow_globals_alone():
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    decode_image(_encode(Image.new("RGB", (4, 4)), "PNG"), max_pixels=16)
    with pytest.raises(ImageTooLargeError):
        decode_image(_encode(Image.new("RGB", (4, 4)), "PNG"), max_pixels=15)
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


def test_overlapping_decodes_restore_the_warning_filters_once():
    # two threads' decodes overlapping as A enters, B enters, A leaves, B leaves: with one
    # catch_warnings per call, B would restore the filters A had set, for good
    from lime_spark.images import _pillow_warnings_silenced

    before = list(warnings.filters)
    first, second = _pillow_warnings_silenced(), _pillow_warnings_silenced()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert warnings.filters != before            # still silenced for the other decode
    second.__exit__(None, None, None)
    assert warnings.filters == before


def test_conversion_in_strips_equals_pillow_on_the_whole_image():
    # 1500 x 1100 with alpha spans several conversion strips; EXIF rotation applied after
    rng = np.random.default_rng(3)
    rgba = Image.fromarray(rng.integers(0, 256, size=(1100, 1500, 4), dtype=np.uint8), "RGBA")
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(rgba, "PNG", exif=exif, compress_level=1)
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    expected = Image.alpha_composite(white, rgba).convert("RGB").transpose(
        Image.Transpose.ROTATE_270)
    decoded = decode_image(data)
    _assert_rgb(decoded, (1500, 1100))
    np.testing.assert_array_equal(decoded, np.asarray(expected))


def test_jpeg_thumbnail_decodes_at_reduced_scale_within_a_small_budget():
    data = _encode(_noise_image((4000, 3000)), "JPEG")
    with pytest.raises(ImageTooLargeError, match="4000x3000 pixels in mode RGB"):
        decode_image(data, max_decode_bytes=16 << 20)         # full size: ~130 MB
    small = decode_image(data, reduce_to=192, max_decode_bytes=16 << 20)
    _assert_rgb(small, (375, 500))                           # DCT scaling at 1/8
    with pytest.raises(ConfigurationError, match="reduce_to"):
        decode_image(data, reduce_to=0)


@pytest.mark.parametrize("max_pixels", [0, -5, 1.5, True, "100"])
def test_bad_max_pixels_is_a_configuration_error(max_pixels):
    data = _encode(Image.new("RGB", (2, 2)), "PNG")
    with pytest.raises(ConfigurationError, match="max_pixels"):
        decode_image(data, max_pixels=max_pixels)


# --------------------------------------------------------------------------
# decode_image: broken input
# --------------------------------------------------------------------------


def _noise_image(size=(64, 64)) -> Image.Image:
    return Image.effect_noise(size, 60).convert("RGB")


def test_truncated_jpeg_raises():
    data = _encode(_noise_image(), "JPEG")
    truncated = data[: len(data) // 2]
    with pytest.raises(InvalidImageError, match="truncated") as info:
        decode_image(truncated)
    assert type(info.value) is InvalidImageError
    assert f"{len(truncated)} bytes" in str(info.value)


def test_truncated_png_raises():
    data = _encode(_noise_image(), "PNG")
    with pytest.raises(InvalidImageError, match="truncated"):
        decode_image(data[: len(data) // 2])


def test_png_with_corrupt_pixel_data_raises():
    data = bytearray(_encode(_noise_image(), "PNG"))
    start = data.index(b"IDAT") + 20
    data[start:start + 64] = bytes(64)
    with pytest.raises(InvalidImageError):
        decode_image(bytes(data))


def test_empty_bytes():
    with pytest.raises(InvalidImageError, match="Received: 0 bytes"):
        decode_image(b"")


def test_html_page():
    page = b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>"
    with pytest.raises(InvalidImageError, match="HTML") as info:
        decode_image(page)
    assert f"{len(page)} bytes" in str(info.value)
    assert "DOCTYPE" not in str(info.value) and "404" not in str(info.value)   # never the bytes


def test_plain_text():
    with pytest.raises(InvalidImageError, match="looks like text"):
        decode_image(b"just some words, no pixels here")


def test_random_bytes():
    data = np.random.default_rng(42).integers(0, 256, size=1000, dtype=np.uint8).tobytes()
    with pytest.raises(InvalidImageError, match=r"1000 bytes \(binary data without a known "
                       r"image signature\)") as info:
        decode_image(data)
    assert type(info.value) is InvalidImageError


@pytest.mark.parametrize(
    ("value", "type_name"),
    [("picture.png", "str"), (None, "NoneType"), (np.zeros((2, 2, 3), np.uint8), "ndarray"), (12, "int")],
)
def test_non_bytes_input_names_the_type(value, type_name):
    with pytest.raises(InvalidImageError, match=rf"of type {type_name}\b"):
        decode_image(value)


def test_zero_width_png():
    data = _raw_png(0, 5, bit_depth=8, color_type=0, rows=[b""] * 5)
    with pytest.raises(InvalidImageError):
        decode_image(data)


def test_postscript_is_refused_as_unsupported():
    data = _encode(Image.new("RGB", (4, 4)), "EPS")
    with pytest.raises(UnsupportedImageError, match="EPS"):
        decode_image(data)


def test_identified_but_undecodable_is_unsupported():
    data = bytearray(_encode(Image.new("RGB", (4, 4), RED), "BMP"))
    data[30:34] = struct.pack("<I", 4)  # BI_JPEG compression, which Pillow does not read
    with pytest.raises(UnsupportedImageError, match="compression") as info:
        decode_image(bytes(data))
    assert "BM" in str(info.value)


# --------------------------------------------------------------------------
# to_rgb_array
# --------------------------------------------------------------------------


def test_uint8_rgb_is_returned_without_copy():
    image = np.zeros((3, 4, 3), dtype=np.uint8)
    assert to_rgb_array(image) is image


def test_float_values_are_rounded():
    image = np.array([[[0.4, 7.6, 255.0]]])
    result = to_rgb_array(image)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, [[[0, 8, 255]]])


def test_integer_dtype_in_range_is_accepted():
    result = to_rgb_array(np.full((2, 2, 3), 200, dtype=np.int64))
    assert result.dtype == np.uint8
    assert int(result[1, 1, 2]) == 200


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 1)])
def test_grayscale_is_repeated_into_three_channels(shape):
    gray = np.arange(20, dtype=np.uint8).reshape(shape)
    result = to_rgb_array(gray)
    assert result.shape == (4, 5, 3)
    assert result.flags.c_contiguous
    for channel in range(3):
        np.testing.assert_array_equal(result[..., channel], gray.reshape(4, 5))


def test_alpha_channel_is_dropped():
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 0] = 10
    rgba[..., 3] = 0
    result = to_rgb_array(rgba)
    assert result.shape == (2, 3, 3)
    assert result.flags.c_contiguous
    assert _pixel(result, 1, 2) == (10, 0, 0)


@pytest.mark.parametrize(
    ("values", "message"),
    [(np.full((2, 2, 3), 256.0), r"\[0, 255\]"), (np.full((2, 2, 3), -0.5), r"\[0, 255\]"),
     (np.full((2, 2, 3), np.nan), "finite"), (np.full((2, 2, 3), np.inf), "finite"),
     (np.full((2, 2, 3), 300, dtype=np.uint16), r"\[0, 255\]")],
)
def test_values_outside_0_255_are_refused(values, message):
    with pytest.raises(InvalidImageError, match=message) as info:
        to_rgb_array(values)
    assert f"dtype={values.dtype}" in str(info.value)
    assert "shape=(2, 2, 3)" in str(info.value)


@pytest.mark.parametrize(
    "shape", [(5,), (2, 3, 3, 1), (2, 3, 2), (2, 3, 5), (0, 3, 3), (3, 0)]
)
def test_wrong_shape_is_refused_with_the_shape(shape):
    with pytest.raises(InvalidImageError) as info:
        to_rgb_array(np.zeros(shape, dtype=np.uint8))
    assert f"shape={shape}" in str(info.value)


@pytest.mark.parametrize("dtype", [bool, object, np.complex128, "U1"])
def test_wrong_dtype_is_refused_with_the_dtype(dtype):
    image = np.zeros((2, 2, 3), dtype=dtype)
    with pytest.raises(InvalidImageError, match="dtype") as info:
        to_rgb_array(image)
    assert f"dtype={image.dtype}" in str(info.value)


@pytest.mark.parametrize(("value", "type_name"), [([[0, 1], [2, 3]], "list"), (None, "NoneType")])
def test_non_array_is_refused_with_its_type(value, type_name):
    with pytest.raises(InvalidImageError, match=rf"type {type_name}\b"):
        to_rgb_array(value)


# --------------------------------------------------------------------------
# resize_image
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["nearest", "bilinear", "bicubic", "lanczos", "area"])
@pytest.mark.parametrize("size", [(5, 7), (224, 224), (1, 1)])
def test_resize_gives_height_width_and_keeps_constant_colour(method, size):
    image = np.full((12, 30, 3), (10, 120, 250), dtype=np.uint8)
    resized = resize_image(image, size, method=method)
    assert resized.shape == (*size, 3)
    assert resized.dtype == np.uint8
    assert resized.flags.c_contiguous
    np.testing.assert_allclose(resized.reshape(-1, 3), [[10, 120, 250]] * (size[0] * size[1]), atol=1)


def test_resize_to_same_size_returns_the_same_array():
    image = np.zeros((6, 8, 3), dtype=np.uint8)
    assert resize_image(image, (6, 8)) is image


def test_nearest_upsampling_repeats_pixels():
    image = np.array([[RED, GREEN], [BLUE, WHITE]], dtype=np.uint8)
    resized = resize_image(image, (4, 6), method="nearest")
    expected = np.repeat(np.repeat(image, 2, axis=0), 3, axis=1)
    np.testing.assert_array_equal(resized, expected)


def test_area_downsampling_averages_pixels():
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    image[::2, ::2] = 200
    image[1::2, 1::2] = 200  # checkerboard, mean 100
    resized = resize_image(image, (2, 2), method="area")
    np.testing.assert_array_equal(resized, np.full((2, 2, 3), 100))


def test_resize_methods_differ():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[:, 4:] = 255
    nearest = resize_image(image, (3, 3), method="nearest")
    bilinear = resize_image(image, (3, 3), method="bilinear")
    assert not np.array_equal(nearest, bilinear)


def test_unknown_method_lists_the_options():
    with pytest.raises(ConfigurationError, match="Received: method='cubic'") as info:
        resize_image(np.zeros((4, 4, 3), np.uint8), (2, 2), method="cubic")
    for option in ("nearest", "bilinear", "bicubic", "lanczos", "area"):
        assert f"`{option}`" in str(info.value)


@pytest.mark.parametrize("size", [(0, 5), (5, -1), (5,), (2.5, 3), "ab", None, (1, 2, 3)])
def test_bad_size_is_a_configuration_error(size):
    with pytest.raises(ConfigurationError, match="size"):
        resize_image(np.zeros((4, 4, 3), np.uint8), size)


def test_resize_validates_the_image():
    with pytest.raises(InvalidImageError, match="shape=\\(4, 4, 2\\)"):
        resize_image(np.zeros((4, 4, 2), np.uint8), (2, 2))


# --------------------------------------------------------------------------
# load_image
# --------------------------------------------------------------------------


def test_load_local_file_as_path_pathlike_and_uri(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    path = tmp_path / "image.png"
    path.write_bytes(_encode(Image.fromarray(pixels), "PNG"))
    for reference in (str(path), path, f"file://{path}"):
        np.testing.assert_array_equal(load_image(reference), pixels)


def test_load_from_fsspec_memory_filesystem():
    uri = "memory://lime-spark-test-images/red.png"
    with fsspec.open(uri, "wb") as stream:
        stream.write(_encode(Image.new("RGB", (3, 3), RED), "PNG"))
    try:
        assert _pixel(load_image(uri), 2, 2) == RED
    finally:
        fsspec.filesystem("memory").rm("/lime-spark-test-images", recursive=True)


def test_load_passes_max_pixels(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(_encode(Image.new("RGB", (10, 10)), "PNG"))
    with pytest.raises(ImageTooLargeError, match="big.png"):
        load_image(str(path), max_pixels=99)


def test_load_missing_file_is_a_storage_error(tmp_path):
    missing = tmp_path / "nowhere" / "missing.jpg"
    with pytest.raises(StorageError, match="not found") as info:
        load_image(str(missing))
    assert str(missing) in str(info.value)
    assert isinstance(info.value, OSError)


def test_load_directory_is_a_storage_error(tmp_path):
    with pytest.raises(StorageError, match="directory") as info:
        load_image(str(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_load_corrupt_file_names_the_path(tmp_path):
    path = tmp_path / "page.jpg"
    path.write_bytes(b"<html>oops</html>")
    with pytest.raises(InvalidImageError) as info:
        load_image(str(path))
    assert str(path) in str(info.value)
    assert "HTML" in str(info.value)


def test_load_rejects_non_path():
    with pytest.raises(ConfigurationError, match="path"):
        load_image(b"/tmp/x.png")


def test_import_emits_no_warnings():
    import importlib
    import sys

    # the package and its submodules, so that importing runs every one of them again
    saved = {name: sys.modules.pop(name) for name in list(sys.modules)
             if name == "lime_spark.images" or name.startswith("lime_spark.images.")}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            importlib.import_module("lime_spark.images")
    finally:
        sys.modules.update(saved)
    assert saved["lime_spark.images"].__file__.endswith(os.path.join("images", "__init__.py"))
    assert "lime_spark.images.decode" in saved
