"""Caption strips below overlay pictures, and the ``heatmap`` display (issue 14, point 5)."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageColor

from lime_spark import ImageExplainer
from lime_spark.exceptions import ConfigurationError
from lime_spark.overlays import overlay_pictures
from lime_spark.render import (
    CAPTION_BACKGROUND,
    CAPTION_TEXT,
    DISPLAYS,
    HEATMAP_ALPHA,
    HEATMAP_COLOURS,
    MAX_CAPTION_LINES,
    add_caption,
    caption_font_size,
    caption_height,
    caption_lines,
    draw_explanation,
    draw_explanations,
    explanation_caption,
    render_explanation,
    upsample_segments,
)
from lime_spark.render.captions import _layout, _printable

BACKGROUND = np.array(CAPTION_BACKGROUND, dtype=np.uint8)


def _quadrant_classifier(images):
    """Class 0 follows the top-left quadrant's brightness, class 1 the rest."""
    x = np.asarray(images, dtype=np.float64) / 255.0
    tl = x[:, :32, :32].mean(axis=(1, 2, 3))
    rest = (x.mean(axis=(1, 2, 3)) * 4 - tl) / 3
    logits = np.stack([6 * tl, 6 * rest, np.zeros_like(tl)], axis=1)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.fixture(scope="module")
def explained():
    """A 64 x 64 image and a real explanation of it (16 grid superpixels, 2 labels)."""
    rng = np.random.default_rng(0)
    image = rng.integers(60, 200, (64, 64, 3), dtype=np.uint8)
    explanation = ImageExplainer(segmentation="grid", n_superpixels=16, fill=0, n_samples=200,
                                 random_state=0).explain(image, _quadrant_classifier,
                                                         top_labels=2)
    explanation = replace(explanation, label_names=["Norfolk terrier", "tabby", "tiger cat"],
                          stability={0: 0.97, 1: 0.5})
    return image, explanation


def _photo(shape):
    import skimage.data

    return np.asarray(Image.fromarray(skimage.data.chelsea()).resize(
        (shape[1], shape[0]), Image.Resampling.LANCZOS))


def _strip(picture: np.ndarray, height: int) -> np.ndarray:
    return picture[height:]


def _assert_inside(strip: np.ndarray, width: int):
    """Text drawn, and only inside the strip's margins: its border is the background."""
    margin = 2
    assert strip.shape[1] == width
    border = np.concatenate([strip[:margin].reshape(-1, 3), strip[-margin:].reshape(-1, 3),
                             strip[:, :margin].reshape(-1, 3), strip[:, -margin:].reshape(-1, 3)])
    assert (border == BACKGROUND).all()
    assert (strip != BACKGROUND).any(axis=-1).sum() > 20          # not a uniform strip
    # text pixels: near the text colour
    assert (np.abs(strip.astype(int) - CAPTION_TEXT).max(axis=-1) < 40).sum() > 10


# --------------------------------------------------------------------------
# The caption strip of overlay_pictures
# --------------------------------------------------------------------------

@pytest.mark.parametrize("display", DISPLAYS)
def test_caption_strip_is_added_below_the_unchanged_picture(explained, display):
    image, explanation = explained
    plain = overlay_pictures(image, explanation, max_side=0, n_features=3, display=display,
                             caption=False)
    captioned = overlay_pictures(image, explanation, max_side=0, n_features=3,
                                 display=display, caption=True)
    assert list(captioned) == list(plain) == ["segments", "0", "1"]
    heights = {picture.shape[0] for picture in captioned.values()}
    assert len(heights) == 1                    # one strip height for all of an image's PNGs
    for name, picture in plain.items():
        assert picture.shape == (64, 64, 3)
        np.testing.assert_array_equal(captioned[name][:64], picture, err_msg=name)
        strip = _strip(captioned[name], 64)
        assert strip.shape[0] >= caption_height(64)
        _assert_inside(strip, 64)


def test_overlay_pictures_default_has_captions(explained):
    image, explanation = explained
    pictures = overlay_pictures(image, explanation, max_side=0, n_features=3, display="outline")
    assert all(picture.shape[0] > 64 for picture in pictures.values())


def test_caption_shows_name_probability_fit_and_stability(explained):
    _, explanation = explained
    p0 = float(explanation.predictions[0])
    assert explanation_caption(explanation, 0) == (
        "Norfolk terrier", f"p = {p0:.3f}", f"fit R\u00b2 = {explanation.score[0]:.2f}",
        "stability 0.97")
    without = replace(explanation, stability={}, label_names=None)
    assert explanation_caption(without, 1) == (
        "label 1", f"p = {float(explanation.predictions[1]):.3f}",
        f"fit R\u00b2 = {explanation.score[1]:.2f}")
    tiny = replace(explanation, predictions=np.array([2.345e-5, 0.5, 0.5]))
    assert explanation_caption(tiny, 0)[1] == "p = 2.3e-05"


def test_stability_is_drawn_only_when_present(explained):
    image, explanation = explained
    canvas = _photo((300, 400))
    with_stability = overlay_pictures(canvas, explanation, max_side=0, n_features=3,
                                      display="outline")
    without = overlay_pictures(canvas, replace(explanation, stability={}), max_side=0,
                               n_features=3, display="outline")
    strip_with, strip_without = _strip(with_stability["0"], 300), _strip(without["0"], 300)
    # the same text up to the stability: the strips differ only to its right
    changed = np.flatnonzero((strip_with != strip_without).any(axis=(0, 2)))
    assert changed.size > 0
    lit = np.flatnonzero((strip_without != BACKGROUND).any(axis=(0, 2)))
    assert changed.min() > lit.max()
    np.testing.assert_array_equal(with_stability["segments"], without["segments"])


def test_different_probabilities_give_different_strips(explained):
    _, explanation = explained
    canvas = _photo((120, 160))
    base = overlay_pictures(canvas, explanation, max_side=0, n_features=3, display="block")
    again = overlay_pictures(canvas, explanation, max_side=0, n_features=3, display="block")
    other = overlay_pictures(canvas, replace(explanation, predictions=np.array([0.9, 0.05, 0.05])),
                             max_side=0, n_features=3, display="block")
    np.testing.assert_array_equal(base["0"], again["0"])            # deterministic
    assert not np.array_equal(base["0"][120:], other["0"][120:])
    np.testing.assert_array_equal(base["0"][:120], other["0"][:120])


def test_segments_caption_counts_the_superpixels(explained):
    image, explanation = explained
    pictures = overlay_pictures(image, explanation, max_side=0, n_features=3, display="outline")
    expected = add_caption(pictures["segments"][:64], "16 superpixels",
                           lines=caption_lines(
                               ["16 superpixels"] + [explanation_caption(explanation, label)
                                                     for label in explanation.labels], 64))
    np.testing.assert_array_equal(pictures["segments"], expected)


# --------------------------------------------------------------------------
# add_caption: sizes, fitting, glyphs
# --------------------------------------------------------------------------

def test_text_size_scales_with_the_width():
    assert caption_font_size(128) == 10
    assert caption_font_size(1024) == 23
    assert caption_font_size(5000) == 28
    assert caption_height(128) < caption_height(512) < caption_height(1024)
    small = add_caption(np.zeros((10, 128, 3), np.uint8), "tabby")
    large = add_caption(np.zeros((10, 1024, 3), np.uint8), "tabby")
    lit_small = (small[10:] != BACKGROUND).any(axis=(1, 2)).sum()
    lit_large = (large[10:] != BACKGROUND).any(axis=(1, 2)).sum()
    assert lit_large > 1.8 * lit_small            # taller letters


@pytest.mark.parametrize("width", [128, 200, 333, 640, 1024, 1600])
def test_a_caption_always_fits_its_strip(width):
    parts = ("Greater Swiss Mountain dog, a very long label name indeed", "p = 0.873",
             "fit R\u00b2 = 0.41", "stability 0.97")
    picture = _photo((40, width))
    captioned = add_caption(picture, parts)
    np.testing.assert_array_equal(captioned[:40], picture)
    strip = captioned[40:]
    assert strip.shape[0] == caption_height(width, caption_lines([parts], width))
    _assert_inside(strip, width)


def test_long_names_are_shortened_on_a_narrow_picture():
    name = "Greater Swiss Mountain dog, a very long label name indeed"
    parts = (name, "p = 0.873", "fit R\u00b2 = 0.41", "stability 0.97")
    lines = caption_lines([parts], 128)
    assert lines == MAX_CAPTION_LINES
    size, rows = _layout(parts, 128, caption_font_size(128), lines, None)
    assert size >= 10 and len(rows) <= lines
    assert rows[0][0].endswith("\u2026") and name.startswith(rows[0][0][:-1])
    assert "p = 0.873" in [p for row in rows for p in row]     # the numbers stay whole
    # one word longer than the picture, in one line
    word = "x" * 300
    captioned = add_caption(np.zeros((8, 128, 3), np.uint8), word, lines=1)
    _assert_inside(captioned[8:], 128)
    _, rows = _layout((word,), 128, 10, 1, None)
    assert rows[0][0].endswith("\u2026")


def test_one_pixel_wide_picture_gets_a_background_strip():
    captioned = add_caption(np.zeros((5, 1, 3), np.uint8), ("tabby", "p = 0.5"))
    assert captioned.shape[1] == 1 and captioned.shape[0] > 5
    assert (captioned[5:] == BACKGROUND).all()


def test_letters_the_font_lacks_are_replaced():
    assert _printable("cr\u00e8me br\u00fbl\u00e9e") == "creme brulee"
    assert _printable("a\tb\nc") == "a b c"
    assert _printable("\u4e2d") == "?"
    assert _printable("R\u00b2") == "R\u00b2"     # drawn as a small raised 2
    accented = add_caption(np.zeros((4, 300, 3), np.uint8), "cr\u00e8me br\u00fbl\u00e9e")
    plain = add_caption(np.zeros((4, 300, 3), np.uint8), "creme brulee")
    np.testing.assert_array_equal(accented, plain)
    sup = add_caption(np.zeros((4, 300, 3), np.uint8), "R\u00b2")
    two = add_caption(np.zeros((4, 300, 3), np.uint8), "R2")
    assert not np.array_equal(sup, two)


@pytest.mark.parametrize("bad", [3, b"text", ["a", 1], None])
def test_invalid_captions_are_rejected(bad):
    with pytest.raises(ConfigurationError, match="Expected caption to be a string"):
        add_caption(np.zeros((4, 64, 3), np.uint8), bad)


def test_caption_lines_is_checked():
    with pytest.raises(ConfigurationError, match="lines <= 3"):
        add_caption(np.zeros((4, 64, 3), np.uint8), "x", lines=4)
    image = np.zeros((8, 8, 3), np.uint8)
    segments = np.arange(4).reshape(2, 2)
    with pytest.raises(ConfigurationError, match="caption_lines >= 1"):
        draw_explanations(image, segments, {1: {0: 1.0}}, captions={1: "x"}, caption_lines=0)
    with pytest.raises(ConfigurationError, match=r"no caption for label\(s\) \[2\]"):
        draw_explanations(image, segments, {1: {0: 1.0}, 2: {}}, captions={1: "x"})
    with pytest.raises(ConfigurationError, match="captions to be a mapping"):
        draw_explanations(image, segments, {1: {0: 1.0}}, captions=["x"])


# --------------------------------------------------------------------------
# The notebook functions: no caption unless asked
# --------------------------------------------------------------------------

def test_render_functions_take_an_optional_caption():
    image = _photo((90, 120))
    segments = np.arange(16).reshape(4, 4)
    weights = {5: 0.4, 6: -0.2}
    for display in DISPLAYS:
        plain = draw_explanation(image, segments, weights, display=display)
        assert plain.shape == image.shape
        np.testing.assert_array_equal(
            draw_explanation(image, segments, weights, display=display, caption=None), plain)
        captioned = draw_explanation(image, segments, weights, display=display,
                                     caption=("tabby", "p = 0.5"))
        np.testing.assert_array_equal(captioned[:90], plain)
        _assert_inside(captioned[90:], 120)
        png = render_explanation(image, segments, weights, display=display,
                                 caption=("tabby", "p = 0.5"))
        with Image.open(io.BytesIO(png)) as im:
            np.testing.assert_array_equal(np.asarray(im), captioned)


def test_draw_explanations_strips_have_one_height():
    image = _photo((60, 300))
    segments = np.arange(16).reshape(4, 4)
    captions = {1: "a", 2: ("a much longer name " * 4, "p = 0.1")}
    pictures = draw_explanations(image, segments, {1: {0: 1.0}, 2: {3: 1.0}},
                                 captions=captions)
    lines = caption_lines(list(captions.values()), 300)
    assert lines > caption_lines([captions[1]], 300) == 1
    assert pictures[1].shape == pictures[2].shape == (60 + caption_height(300, lines), 300, 3)


# --------------------------------------------------------------------------
# display="heatmap"
# --------------------------------------------------------------------------

POSITIVE = np.array(ImageColor.getrgb(HEATMAP_COLOURS[0]), dtype=float)
NEGATIVE = np.array(ImageColor.getrgb(HEATMAP_COLOURS[1]), dtype=float)


def _grid(rows, cols, cell):
    ids = np.arange(rows * cols).reshape(rows, cols)
    return np.kron(ids, np.ones((cell, cell), dtype=np.int64))


def _alpha(before: np.ndarray, after: np.ndarray, colour: np.ndarray) -> float:
    """The opacity that blends ``before`` into ``after`` towards ``colour`` (largest channel)."""
    channel = int(np.argmax(np.abs(colour - before)))
    return float((after[channel] - before[channel]) / (colour[channel] - before[channel]))


def test_heatmap_tints_by_sign_and_size_of_the_weight():
    image = np.full((64, 64, 3), 128, dtype=np.uint8)
    segments = _grid(4, 4, 4)                     # superpixel k covers a 16 x 16 cell
    weights = {0: 0.4, 1: -0.4, 2: 0.2, 3: -0.1, 4: 0.0}
    out = draw_explanation(image, segments, weights, display="heatmap")
    cell = {k: out[16 * (k // 4) + 8, 16 * (k % 4) + 8].astype(float) for k in range(16)}
    grey = np.full(3, 128.0)
    assert cell[0][0] > 128 and cell[0][2] < 128          # warm
    assert cell[1][2] > 128 and cell[1][0] < 128          # cool
    # symmetric scale: equal |weight|, equal opacity; opacity proportional to |weight|
    assert _alpha(grey, cell[0], POSITIVE) == pytest.approx(HEATMAP_ALPHA, abs=0.01)
    assert _alpha(grey, cell[1], NEGATIVE) == pytest.approx(HEATMAP_ALPHA, abs=0.01)
    assert _alpha(grey, cell[2], POSITIVE) == pytest.approx(HEATMAP_ALPHA / 2, abs=0.01)
    assert _alpha(grey, cell[3], NEGATIVE) == pytest.approx(HEATMAP_ALPHA / 4, abs=0.01)
    # weight 0 and superpixels without a weight: the pixels as they were
    for k in [4] + list(range(5, 16)):
        np.testing.assert_array_equal(out[16 * (k // 4):16 * (k // 4 + 1),
                                          16 * (k % 4):16 * (k % 4 + 1)], 128)
    # threshold and show_negative do not apply to heatmaps
    np.testing.assert_array_equal(
        draw_explanation(image, segments, weights, display="heatmap", threshold=0.3,
                         show_negative=False), out)


def test_heatmap_options_and_all_zero_weights():
    image = _photo((64, 64))
    segments = _grid(4, 4, 4)
    np.testing.assert_array_equal(draw_explanation(image, segments, {0: 0.0}, display="heatmap"),
                                  image)
    np.testing.assert_array_equal(draw_explanation(image, segments, {}, display="heatmap"), image)
    red = draw_explanation(image, segments, {0: 1.0}, display="heatmap",
                           positive_colour=(255, 0, 0), fill_alpha=1.0)
    assert (red[:16, :16] == (255, 0, 0)).all()
    assert (draw_explanation(image, segments, {0: 1.0}, display="heatmap",
                             fill_alpha=0.0) == image).all()


def _reference_heatmap(image, segments, weights, alpha=HEATMAP_ALPHA):
    full = upsample_segments(segments, image.shape[:2])
    dense = np.zeros(int(segments.max()) + 1)
    for feature, weight in weights:
        dense[feature] = weight
    scale = np.abs(dense).max()
    a = (alpha * np.abs(dense) / scale)[full][..., None]
    colour = np.where((dense > 0)[:, None], POSITIVE, NEGATIVE)[full]
    return np.clip(np.rint((1 - a) * image + a * colour), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape, small", [
    ((301, 457), (128, 128)),     # several bands, non-integer factors
    ((1000, 40), (64, 64)),       # a thin picture: bands of 819 rows
    ((21, 13), (128, 128)),       # a canvas smaller than the segments
    ((1, 203), (32, 32)),
])
def test_heatmap_equals_a_per_pixel_blend(shape, small):
    rng = np.random.default_rng(shape[0])
    image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    segments = rng.integers(0, 40, (small[0] // 8, small[1] // 8)).repeat(8, 0).repeat(8, 1)
    present = np.unique(segments)
    weights = [(int(f), float(rng.normal(0, 0.1))) for f in present]
    got = draw_explanations(image, segments, {"a": weights, "b": weights[:3]},
                            display="heatmap")
    np.testing.assert_array_equal(got["a"], _reference_heatmap(image, segments, weights))
    np.testing.assert_array_equal(got["b"], _reference_heatmap(image, segments, weights[:3]))


def test_overlay_heatmap_shows_every_weight_with_its_legend(explained):
    image, explanation = explained
    plain = overlay_pictures(image, explanation, max_side=0, n_features=1, display="heatmap",
                             caption=False)
    expected = draw_explanation(image, explanation.segments, explanation.local_exp[0],
                                display="heatmap")
    np.testing.assert_array_equal(plain["0"], expected)   # all weights, not n_features
    # the colour scale in the strip of a wide picture: warm and cool pixels
    canvas = _photo((200, 640))
    heat = overlay_pictures(canvas, explanation, max_side=0, n_features=1, display="heatmap")
    outline = overlay_pictures(canvas, explanation, max_side=0, n_features=1, display="outline")
    for pictures, has_legend in ((heat, True), (outline, False)):
        strip = pictures["0"][200:].astype(int)
        warm = ((strip[..., 0] - strip[..., 2]) > 60).any()
        cool = ((strip[..., 2] - strip[..., 0]) > 60).any()
        assert warm == cool == has_legend
        _assert_inside(pictures["0"][200:], 640)


def test_invalid_display_names_the_choices(explained):
    image, explanation = explained
    message = ("Expected display to be one of `outline`, `block`, `heatmap`. "
               "Received: display='heat'")
    with pytest.raises(ConfigurationError) as err:
        render_explanation(image, explanation.segments, {0: 1.0}, display="heat")
    assert str(err.value) == message
    with pytest.raises(ConfigurationError) as err:
        overlay_pictures(image, explanation, max_side=0, n_features=3, display="heat")
    assert str(err.value) == message
    with pytest.raises(ConfigurationError, match="caption to be True or False"):
        overlay_pictures(image, explanation, max_side=0, n_features=3, display="outline",
                         caption="yes")
