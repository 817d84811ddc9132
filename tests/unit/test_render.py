"""Tests of lime_spark.render: overlays drawn on the original image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lime_spark.exceptions import (
    ConfigurationError,
    InvalidImageError,
    LimeSparkError,
    SegmentationError,
)
from lime_spark.render import (
    BLOCK_COLOURS,
    HIDE_COLOUR,
    OUTLINE_COLOURS,
    encode_png,
    render_explanation,
    render_mask,
    render_superpixels,
    thumbnail,
    upsample_segments,
)

BLUE = (0, 0, 255)
RED = (255, 0, 0)
STEELBLUE = (70, 130, 180)
FIREBRICK = (178, 34, 34)
LIGHTGREEN = (144, 238, 144)


def _decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG"
        assert im.mode == "RGB"
        return np.asarray(im).copy()


def _grid_segments(rows: int, cols: int, cell: int) -> np.ndarray:
    """Label image of rows x cols square cells of ``cell`` px, ids row-major."""
    ids = np.arange(rows * cols, dtype=np.int64).reshape(rows, cols)
    return np.kron(ids, np.ones((cell, cell), dtype=np.int64))


@pytest.fixture
def noise() -> np.ndarray:
    """64 x 64 RGB noise in 40..215: never equal to a pure line colour."""
    rng = np.random.default_rng(0)
    return rng.integers(40, 216, size=(64, 64, 3), dtype=np.uint8)


@pytest.fixture
def grid4() -> np.ndarray:
    """4 x 4 grid of superpixels on a 16 x 16 label image (upsampled 4x on 64 x 64).

    Superpixel 5 covers rows/cols 16..31 of the 64 x 64 image, 10 covers 32..47.
    """
    return _grid_segments(4, 4, 4)


# --------------------------------------------------------------------------
# upsample_segments
# --------------------------------------------------------------------------

def test_upsample_known_case():
    segments = np.array([[0, 1], [2, 3]])
    expected = np.array([[0, 0, 0, 1, 1, 1],
                         [0, 0, 0, 1, 1, 1],
                         [2, 2, 2, 3, 3, 3],
                         [2, 2, 2, 3, 3, 3]], dtype=np.int32)
    out = upsample_segments(segments, (4, 6))
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, expected)


def test_upsample_centre_on_an_edge_takes_the_later_pixel():
    # 2 -> 3 rows: the middle centre, 1.5 * 2 / 3 = 1.0, lies on the edge
    out = upsample_segments(np.array([[0, 1], [2, 3]]), (3, 2))
    np.testing.assert_array_equal(out, [[0, 1], [2, 3], [2, 3]])


def test_upsample_uses_pixel_centres():
    # 6 -> 4: centres (i + 0.5) * 6 / 4 = 0.75, 2.25, 3.75, 5.25 -> 0, 2, 3, 5
    segments = np.arange(6)[None, :]
    np.testing.assert_array_equal(upsample_segments(segments, (1, 4)), [[0, 2, 3, 5]])
    # 2 -> 5: centres 0.2, 0.6, 1.0, 1.4, 1.8 -> 0, 0, 1, 1, 1
    np.testing.assert_array_equal(
        upsample_segments(np.array([[7], [9]]), (5, 1)).ravel(), [7, 7, 9, 9, 9])


def test_upsample_matches_pillow_nearest_and_keeps_labels():
    rng = np.random.default_rng(1)
    segments = rng.integers(0, 50, size=(7, 5)).astype(np.int32)
    out = upsample_segments(segments, (23, 11))
    pillow = np.asarray(Image.fromarray(segments).resize((11, 23), Image.Resampling.NEAREST))
    np.testing.assert_array_equal(out, pillow)
    assert set(np.unique(out)) == set(np.unique(segments))


def test_upsample_same_shape_is_identity():
    segments = _grid_segments(3, 5, 2)
    np.testing.assert_array_equal(upsample_segments(segments, segments.shape), segments)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), dtype=float), np.zeros((2, 2, 2), dtype=int)])
def test_upsample_rejects_non_label_images(bad):
    with pytest.raises(SegmentationError):
        upsample_segments(bad, (8, 8))


@pytest.mark.parametrize("shape", [(0, 5), (5,), (2.5, 3), "ab"])
def test_upsample_rejects_bad_shape(shape):
    with pytest.raises(ConfigurationError):
        upsample_segments(np.zeros((2, 2), dtype=int), shape)


# --------------------------------------------------------------------------
# sizes: drawn on the original at its own resolution
# --------------------------------------------------------------------------

def test_outputs_have_original_size_when_segments_are_smaller():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(200, 300, 3), dtype=np.uint8)  # 300 wide, 200 high
    segments = _grid_segments(8, 8, 16)  # 128 x 128
    weights = [(9, 0.4), (20, -0.3), (33, 0.1)]
    pngs = [
        render_explanation(image, segments, weights),
        render_explanation(image, segments, weights, display="block", show_negative=True),
        render_superpixels(image, segments),
        render_mask(image, segments, [9, 33], hide_rest=True),
    ]
    for png in pngs:
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(png)) as im:
            assert im.size == (300, 200)


def test_superpixel_is_drawn_where_it_lands_after_upsampling():
    image = np.full((200, 300, 3), 100, dtype=np.uint8)
    segments = _grid_segments(2, 2, 64)  # 128 x 128: superpixel 3 is the bottom-right quarter
    out = _decode(render_explanation(image, segments, {3: 1.0}, display="block",
                                     fill_alpha=1.0, positive_colour=BLUE))
    assert (out[100:, 150:] == BLUE).all()
    assert not (out[:100] == BLUE).all(axis=-1).any()
    assert not (out[:, :150] == BLUE).all(axis=-1).any()


# --------------------------------------------------------------------------
# render_explanation, outline
# --------------------------------------------------------------------------

def test_outline_colours_edge_and_keeps_inside(noise, grid4):
    out = _decode(render_explanation(noise, grid4, [(5, 0.5)], positive_colour=BLUE,
                                     outline_width=2))
    for y, x in [(16, 24), (31, 24), (24, 16), (24, 31), (17, 20)]:  # 2-px band inside 16..31
        assert tuple(out[y, x]) == BLUE, (y, x)
    np.testing.assert_array_equal(out[18:30, 18:30], noise[18:30, 18:30])  # deep inside
    outside = np.ones((64, 64), dtype=bool)
    outside[16:32, 16:32] = False
    np.testing.assert_array_equal(out[outside], noise[outside])


def test_outline_default_colour_is_r_lime_lightgreen(noise, grid4):
    out = _decode(render_explanation(noise, grid4, {5: 0.5}))
    assert OUTLINE_COLOURS == ("lightgreen", "red")
    assert tuple(out[16, 24]) == LIGHTGREEN


def test_outline_is_around_the_union_of_adjacent_superpixels(noise, grid4):
    out = _decode(render_explanation(noise, grid4, {5: 0.5, 6: 0.5}, positive_colour=BLUE,
                                     outline_width=1))
    assert tuple(out[16, 31]) == BLUE and tuple(out[16, 32]) == BLUE  # top edge of both
    np.testing.assert_array_equal(out[24, 31], noise[24, 31])  # shared edge is not drawn
    np.testing.assert_array_equal(out[24, 32], noise[24, 32])


def test_outline_closes_regions_at_the_image_border(noise, grid4):
    out = _decode(render_explanation(noise, grid4, {0: 0.5}, positive_colour=BLUE,
                                     outline_width=1))
    assert tuple(out[0, 8]) == BLUE and tuple(out[8, 0]) == BLUE
    np.testing.assert_array_equal(out[8, 8], noise[8, 8])


def test_negative_superpixel_coloured_only_with_show_negative(noise, grid4):
    weights = [(10, -0.5)]
    hidden = _decode(render_explanation(noise, grid4, weights, negative_colour=RED))
    np.testing.assert_array_equal(hidden, noise)
    shown = _decode(render_explanation(noise, grid4, weights, negative_colour=RED,
                                       show_negative=True, outline_width=2))
    assert tuple(shown[32, 40]) == RED and tuple(shown[47, 40]) == RED
    np.testing.assert_array_equal(shown[36:44, 36:44], noise[36:44, 36:44])


def test_positive_and_negative_get_their_own_colours(noise, grid4):
    out = _decode(render_explanation(noise, grid4, {5: 0.5, 10: -0.5}, show_negative=True,
                                     positive_colour=BLUE, negative_colour=RED))
    assert tuple(out[16, 24]) == BLUE
    assert tuple(out[32, 40]) == RED


def test_features_within_threshold_are_untouched(noise, grid4):
    weights = {5: 0.02, 6: 0.019, 9: -0.02, 10: -0.01}  # none strictly beyond 0.02
    for display in ("outline", "block"):
        png = render_explanation(noise, grid4, weights, threshold=0.02, show_negative=True,
                                 display=display)
        out = _decode(png)
        if display == "outline":
            np.testing.assert_array_equal(out, noise)
        else:  # nothing selected: everything is faded, nothing tinted
            assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    out = _decode(render_explanation(noise, grid4, weights, threshold=0.015,
                                     positive_colour=BLUE))
    assert tuple(out[16, 24]) == BLUE  # 0.02 > 0.015
    assert tuple(out[16, 40]) == BLUE  # superpixel 6: 0.019 > 0.015


def test_pairs_and_mapping_give_the_same_picture(noise, grid4):
    pairs = [(np.int64(5), np.float64(0.3)), (10, -0.2), (3, 0.001)]
    mapping = {5: 0.3, 10: -0.2, 3: 0.001}
    for display in ("outline", "block"):
        assert (render_explanation(noise, grid4, pairs, display=display, show_negative=True)
                == render_explanation(noise, grid4, mapping, display=display,
                                      show_negative=True))


def test_default_outline_width_scales_with_image_size():
    segments = _grid_segments(4, 4, 4)
    small = np.full((128, 128, 3), 100, dtype=np.uint8)
    big = np.full((1000, 1000, 3), 100, dtype=np.uint8)

    def band(image):
        out = _decode(render_explanation(image, segments, {5: 1.0}, positive_colour=BLUE))
        top = image.shape[0] // 4  # first row of superpixel 5
        column = out[top:, image.shape[1] * 3 // 8]
        return int(np.argmin((column == BLUE).all(axis=-1)))  # run length of the band

    assert band(small) == 1
    assert band(big) == 5


# --------------------------------------------------------------------------
# render_explanation, block
# --------------------------------------------------------------------------

def test_block_tints_selected_by_fill_alpha_and_fades_the_rest(grid4):
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[...] = (200, 100, 20)
    out = _decode(render_explanation(image, grid4, {5: 0.5, 10: -0.5}, display="block",
                                     show_negative=True, fill_alpha=0.3))
    orig = np.array([200, 100, 20], dtype=float)
    expected_pos = np.rint(0.7 * orig + 0.3 * np.array(STEELBLUE)).astype(np.uint8)
    expected_neg = np.rint(0.7 * orig + 0.3 * np.array(FIREBRICK)).astype(np.uint8)
    assert BLOCK_COLOURS == ("steelblue", "firebrick")
    assert (out[16:32, 16:32] == expected_pos).all()  # all of it, edges included
    assert (out[32:48, 32:48] == expected_neg).all()
    faded = out[0, 0].astype(int)
    assert faded[0] == faded[1] == faded[2]  # desaturated
    luma = 0.299 * 200 + 0.587 * 100 + 0.114 * 20
    assert luma + 10 < faded[0] < HIDE_COLOUR[0]  # pulled from its luminance towards grey
    assert (out[:16] == out[0, 0]).all()


def test_block_fill_alpha_sets_the_tint_strength(grid4):
    image = np.full((64, 64, 3), 200, dtype=np.uint8)
    half = _decode(render_explanation(image, grid4, {5: 1.0}, display="block",
                                      positive_colour=BLUE, fill_alpha=0.5))
    np.testing.assert_array_equal(half[24, 24], [100, 100, 228])
    none = _decode(render_explanation(image, grid4, {5: 1.0}, display="block",
                                      positive_colour=BLUE, fill_alpha=0.0))
    np.testing.assert_array_equal(none[24, 24], [200, 200, 200])


def test_block_fades_negative_superpixels_without_show_negative(grid4):
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[...] = (200, 100, 20)
    out = _decode(render_explanation(image, grid4, {10: -0.5}, display="block"))
    np.testing.assert_array_equal(out[40, 40], out[0, 0])


# --------------------------------------------------------------------------
# render_superpixels
# --------------------------------------------------------------------------

def test_superpixels_draws_every_boundary_and_nothing_else():
    rng = np.random.default_rng(3)
    segments = rng.integers(0, 9, size=(6, 6))
    image = rng.integers(40, 216, size=(60, 60, 3), dtype=np.uint8)
    out = _decode(render_superpixels(image, segments, outline_width=1))
    full = upsample_segments(segments, (60, 60))
    line = (out == 0).all(axis=-1)  # black, never in the image
    horizontal = full[:, :-1] != full[:, 1:]
    vertical = full[:-1, :] != full[1:, :]
    assert horizontal.any() and vertical.any()
    assert line[:, :-1][horizontal].all() and line[:, 1:][horizontal].all()
    assert line[:-1, :][vertical].all() and line[1:, :][vertical].all()
    near = np.zeros_like(line)
    near[:, :-1] |= horizontal
    near[:, 1:] |= horizontal
    near[:-1, :] |= vertical
    near[1:, :] |= vertical
    np.testing.assert_array_equal(line, near)
    np.testing.assert_array_equal(out[~near], image[~near])


def test_superpixels_colour_and_width():
    image = np.full((400, 400, 3), 128, dtype=np.uint8)
    segments = _grid_segments(1, 2, 4)  # left / right halves
    out = _decode(render_superpixels(image, segments, colour="white", outline_width=6))
    row = (out[200] == 255).all(axis=-1)
    assert row.sum() == 6 and row[197:203].all()


# --------------------------------------------------------------------------
# render_mask, encode_png, thumbnail
# --------------------------------------------------------------------------

def test_render_mask_hide_rest_greys_everything_else(noise, grid4):
    out = _decode(render_mask(noise, grid4, [5, 6], hide_rest=True))
    np.testing.assert_array_equal(out[16:32, 16:48], noise[16:32, 16:48])
    assert (out[:16] == HIDE_COLOUR).all()
    assert (out[32:] == HIDE_COLOUR).all()


def test_render_mask_outlines_kept_features(noise, grid4):
    out = _decode(render_mask(noise, grid4, [5], colour=RED, outline_width=1))
    assert tuple(out[16, 20]) == RED
    np.testing.assert_array_equal(out[20, 20], noise[20, 20])
    np.testing.assert_array_equal(out[:16], noise[:16])


def test_encode_png_round_trips(noise):
    np.testing.assert_array_equal(_decode(encode_png(noise)), noise)


def test_thumbnail_keeps_aspect_and_never_enlarges():
    image = np.zeros((300, 451, 3), dtype=np.uint8)
    small = thumbnail(image, 100)
    assert small.shape == (67, 100, 3) and small.dtype == np.uint8
    tall = thumbnail(np.zeros((451, 300, 3), dtype=np.uint8), 100)
    assert tall.shape == (100, 67, 3)
    same = thumbnail(image, 1000)
    assert same.shape == image.shape and same is not image


def test_thumbnail_preserves_a_uniform_colour():
    image = np.full((90, 60, 3), (10, 120, 230), dtype=np.uint8)
    assert (thumbnail(image, 30) == (10, 120, 230)).all()


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------

def test_display_must_be_outline_block_or_heatmap(noise, grid4):
    with pytest.raises(ConfigurationError) as err:
        render_explanation(noise, grid4, {5: 1.0}, display="x")
    assert str(err.value) == (
        "Expected display to be one of `outline`, `block`, `heatmap`. Received: display='x'")


@pytest.mark.parametrize("bad", [
    np.zeros((8, 8, 3), dtype=np.float32),
    np.zeros((8, 8), dtype=np.uint8),
    np.zeros((8, 8, 4), dtype=np.uint8),
    np.zeros((0, 8, 3), dtype=np.uint8),
])
def test_invalid_image_is_rejected(bad, grid4):
    for call in (
        lambda: render_explanation(bad, grid4, {5: 1.0}),
        lambda: render_superpixels(bad, grid4),
        lambda: render_mask(bad, grid4, [5]),
        lambda: encode_png(bad),
        lambda: thumbnail(bad, 4),
    ):
        with pytest.raises(InvalidImageError) as err:
            call()
        assert str(bad.shape) in str(err.value) and str(bad.dtype) in str(err.value)
        assert isinstance(err.value, ValueError) and isinstance(err.value, LimeSparkError)


@pytest.mark.parametrize("bad", [
    np.zeros((16, 16), dtype=np.float64),
    np.zeros((16, 16, 1), dtype=np.int64),
    np.zeros((16, 16), dtype=bool),
    np.array([[2**40]]),
])
def test_invalid_segments_are_rejected(noise, bad):
    with pytest.raises(SegmentationError):
        render_explanation(noise, bad, {})
    with pytest.raises(SegmentationError):
        render_superpixels(noise, bad)


def test_weights_for_absent_superpixels_are_rejected(noise, grid4):
    with pytest.raises(SegmentationError, match=r"absent superpixel\(s\) \[99\]"):
        render_explanation(noise, grid4, {5: 1.0, 99: 0.5})
    with pytest.raises(SegmentationError):
        render_mask(noise, grid4, [99])


@pytest.mark.parametrize("weights", [
    [(5, 0.1), (5, 0.2)],  # duplicate
    [(5.0, 0.1)],  # float id
    [(5, float("nan"))],
    [(5, "0.1")],
    [5, 6],
    "5",
    5,
])
def test_malformed_weights_are_rejected(noise, grid4, weights):
    with pytest.raises(ConfigurationError):
        render_explanation(noise, grid4, weights)


@pytest.mark.parametrize("kwargs, match", [
    ({"threshold": -0.1}, "threshold >= 0"),
    ({"threshold": float("nan")}, "threshold to be finite"),
    ({"threshold": float("inf")}, "threshold to be finite"),
    ({"threshold": "0.1"}, "threshold to be a number"),
    ({"fill_alpha": 1.5}, "fill_alpha <= 1"),
    ({"fill_alpha": -0.1}, "fill_alpha >= 0"),
    ({"outline_width": 0}, "outline_width >= 1"),
    ({"outline_width": 1.5}, "outline_width to be an integer"),
    ({"show_negative": "yes"}, "show_negative to be True or False"),
    ({"positive_colour": "notacolour"}, "positive_colour to be a colour"),
    ({"negative_colour": (256, 0, 0)}, "negative_colour to be a colour"),
    ({"negative_colour": (1, 2)}, "negative_colour to be a colour"),
])
def test_invalid_options_are_rejected(noise, grid4, kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        render_explanation(noise, grid4, {5: 1.0}, **kwargs)


def test_colour_names_and_tuples_are_equivalent(noise, grid4):
    by_name = render_explanation(noise, grid4, {5: 1.0}, positive_colour="steelblue",
                                 display="block")
    by_tuple = render_explanation(noise, grid4, {5: 1.0}, positive_colour=STEELBLUE,
                                  display="block")
    by_hex = render_explanation(noise, grid4, {5: 1.0}, positive_colour="#4682b4",
                                display="block")
    assert by_name == by_tuple == by_hex


def test_other_validation(noise, grid4):
    with pytest.raises(ConfigurationError):
        render_superpixels(noise, grid4, colour="nope")
    with pytest.raises(ConfigurationError):
        render_mask(noise, grid4, [5], hide_rest=1)
    with pytest.raises(ConfigurationError):
        render_mask(noise, grid4, [5.5])
    with pytest.raises(ConfigurationError):
        thumbnail(noise, 0)
