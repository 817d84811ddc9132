"""The vectorised overlays draw exactly what the previous skimage / float64 code drew.

The previous implementation (``lime_spark/render`` at 5f08a25) is kept here,
and only here, as the reference: outlines from ``find_boundaries`` and
``dilation`` at full resolution, tints blended in float64.  Every test
compares whole pictures pixel by pixel.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image, ImageColor

from lime_spark.exceptions import ConfigurationError
from lime_spark.explainer import ImageExplanation
from lime_spark.overlays import encode_overlays, overlay_pictures, write_overlays
from lime_spark.render import (
    PNG_COMPRESS_LEVEL,
    draw_explanation,
    draw_explanations,
    draw_mask,
    draw_superpixels,
    encode_png,
    render_explanation,
    render_mask,
    render_superpixels,
    thumbnail,
    upsample_segments,
    visible_segments,
)
from lime_spark.render.masks import _fade, _fade_table

# --------------------------------------------------------------------------
# The reference: the previous drawing code, returning arrays
# --------------------------------------------------------------------------

_HIDE_COLOUR = (190, 190, 190)
_LUMA = np.array([0.299, 0.587, 0.114])


def _ref_colour(colour):
    rgb = ImageColor.getrgb(colour)[:3] if isinstance(colour, str) else colour
    return np.asarray(rgb, dtype=np.float64)


def _ref_width(shape, outline_width):
    return max(1, int(round(min(shape) / 200))) if outline_width is None else outline_width


def _ref_upsample(segments, shape):
    h, w = segments.shape
    height, width = shape
    rows = ((2 * np.arange(height, dtype=np.int64) + 1) * h) // (2 * height)
    cols = ((2 * np.arange(width, dtype=np.int64) + 1) * w) // (2 * width)
    return segments[rows[:, None], cols[None, :]]


def _ref_thicken(lines, width):
    if width <= 1:
        return lines
    from skimage.morphology import dilation, footprint_rectangle

    size = 2 * (width - 1) + 1
    footprint = footprint_rectangle((size, size), decomposition="separable")
    return dilation(lines, footprint).astype(bool, copy=False)


def _ref_region_outline(mask, width):
    from skimage.segmentation import find_boundaries

    padded = np.pad(mask, 1, constant_values=False).astype(np.uint8)
    edge = find_boundaries(padded, mode="inner", background=0)[1:-1, 1:-1]
    return _ref_thicken(edge, width) & mask


def _ref_blend(pixels, colour, alpha):
    return (1.0 - alpha) * pixels + alpha * colour


def _ref_fade(pixels):
    luma = (pixels @ _LUMA)[:, None]
    return _ref_blend(luma, np.asarray(_HIDE_COLOUR, dtype=np.float64), 0.6)


def _ref_to_uint8(pixels):
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def ref_explanation(rgb, segments, coefficients, *, display="outline", threshold=0.02,
                    show_negative=False, positive_colour=None, negative_colour=None,
                    fill_alpha=0.3, outline_width=None):
    defaults = ("lightgreen", "red") if display == "outline" else ("steelblue", "firebrick")
    pos_rgb = _ref_colour(defaults[0] if positive_colour is None else positive_colour)
    neg_rgb = _ref_colour(defaults[1] if negative_colour is None else negative_colour)
    height, width = rgb.shape[:2]
    line = _ref_width((height, width), outline_width)
    resolved = dict(coefficients)
    positive = [f for f, w in resolved.items() if w > threshold]
    negative = [f for f, w in resolved.items() if w < -threshold] if show_negative else []
    pos_mask = _ref_upsample(np.isin(segments, positive), (height, width))
    neg_mask = _ref_upsample(np.isin(segments, negative), (height, width))
    out = rgb.copy()
    if display == "outline":
        for mask, colour in ((neg_mask, neg_rgb), (pos_mask, pos_rgb)):
            if mask.any():
                out[_ref_region_outline(mask, line)] = _ref_to_uint8(colour)
    else:
        rest = ~(pos_mask | neg_mask)
        pixels = rgb.astype(np.float64)
        out[rest] = _ref_to_uint8(_ref_fade(pixels[rest]))
        out[pos_mask] = _ref_to_uint8(_ref_blend(pixels[pos_mask], pos_rgb, fill_alpha))
        out[neg_mask] = _ref_to_uint8(_ref_blend(pixels[neg_mask], neg_rgb, fill_alpha))
    return out


def ref_superpixels(rgb, segments, *, colour="black", outline_width=None):
    from skimage.segmentation import find_boundaries

    line = _ref_width(rgb.shape[:2], outline_width)
    full = _ref_upsample(segments, rgb.shape[:2])
    edges = _ref_thicken(find_boundaries(full, mode="thick"), max(1, line // 2))
    out = rgb.copy()
    out[edges] = _ref_to_uint8(_ref_colour(colour))
    return out


def ref_mask(rgb, segments, keep, *, hide_rest=False, colour="yellow", outline_width=None):
    line = _ref_width(rgb.shape[:2], outline_width)
    mask = _ref_upsample(np.isin(segments, list(keep)), rgb.shape[:2])
    out = rgb.copy()
    if hide_rest:
        out[~mask] = np.asarray(_HIDE_COLOUR, dtype=np.uint8)
    elif mask.any():
        out[_ref_region_outline(mask, line)] = _ref_to_uint8(_ref_colour(colour))
    return out


def ref_overlays(original, explanation, *, max_side, n_features, display):
    """The previous ``write_overlays``, returning the pictures instead of writing PNGs."""
    canvas = original
    if max_side and max(original.shape[:2]) > max_side:
        canvas = thumbnail(original, max_side)
    segments = _ref_upsample(explanation.segments, canvas.shape[:2])
    pictures = {"segments": ref_superpixels(canvas, segments)}
    visible = set(np.unique(segments).tolist())
    for label in explanation.labels:
        positive = sorted((fw for fw in explanation.local_exp[label]
                           if fw[1] > 0 and fw[0] in visible), key=lambda fw: -fw[1])[:n_features]
        pictures[str(label)] = ref_explanation(canvas, segments, positive, display=display,
                                               threshold=0.0)
    return pictures


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

def _decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        return np.asarray(im).copy()


def _blobs(shape, n, seed):
    """A SLIC-like label image: n irregular regions (nearest of n random centres, jittered)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    centres = rng.uniform(0, 1, (n, 2)) * (h, w)
    ys, xs = np.mgrid[0:h, 0:w]
    jitter = rng.normal(0, 0.8, (h, w, 2))
    d = ((ys[..., None] + jitter[..., :1] - centres[:, 0]) ** 2
         + (xs[..., None] + jitter[..., 1:] - centres[:, 1]) ** 2)
    return np.argmin(d, axis=-1).astype(np.int32)


def _photo(shape):
    """A photo (scikit-image's bundled cat) resized to ``shape``: smooth areas and texture."""
    import skimage.data

    return np.asarray(Image.fromarray(skimage.data.chelsea()).resize(
        (shape[1], shape[0]), Image.Resampling.LANCZOS))


def _weights(segments, seed):
    rng = np.random.default_rng(seed)
    ids = np.unique(segments)
    return [(int(i), float(rng.normal(0, 0.2))) for i in ids]


# (image height, width), (segments height, width)
SIZES = [
    ((64, 64), (16, 16)),        # integer factor
    ((301, 457), (128, 128)),    # odd, non-integer factors
    ((128, 128), (128, 128)),    # same size
    ((97, 1), (32, 32)),         # a 1-pixel-wide strip
    ((1, 203), (32, 32)),        # a 1-pixel-high strip
    ((1, 1), (16, 16)),          # one pixel
    ((21, 13), (128, 128)),      # a canvas smaller than the segments
    ((50, 700), (40, 40)),       # thin and wide
]


@pytest.mark.parametrize("display", ["outline", "block"])
@pytest.mark.parametrize("show_negative", [False, True])
@pytest.mark.parametrize("shape, small", SIZES)
def test_explanation_equals_the_previous_drawing(display, show_negative, shape, small):
    seed = shape[0] * 1000 + shape[1]
    segments = _blobs(small, 24, seed)
    image = np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)
    weights = _weights(segments, seed)
    for threshold, width in ((0.02, None), (0.1, 1), (0.0, 3), (0.05, 6)):
        kwargs = dict(display=display, show_negative=show_negative, threshold=threshold,
                      outline_width=width)
        expected = ref_explanation(image, segments, weights, **kwargs)
        got = draw_explanation(image, segments, weights, **kwargs)
        assert got.dtype == np.uint8 and got.shape == image.shape
        np.testing.assert_array_equal(got, expected, err_msg=str(kwargs))
        if image.size > 3:
            assert not np.array_equal(got, image) or display == "outline"


@pytest.mark.parametrize("display", ["outline", "block"])
def test_explanation_of_a_photo_equals_the_previous_drawing(display):
    photo = _photo((768, 1024))
    from lime_spark.segmentation import segment_image

    small = np.asarray(Image.fromarray(photo).resize((128, 128), Image.Resampling.LANCZOS))
    segments = segment_image(small, method="slic", n_superpixels=50, random_state=0)
    weights = _weights(segments, 7)
    kwargs = dict(display=display, show_negative=True, threshold=0.05, fill_alpha=0.45,
                  positive_colour="gold", negative_colour=(20, 40, 250))
    got = draw_explanation(photo, segments, weights, **kwargs)
    np.testing.assert_array_equal(got, ref_explanation(photo, segments, weights, **kwargs))
    changed = (got != photo).any(axis=-1).mean()
    assert (0.01 < changed < 0.2) if display == "outline" else changed > 0.9
    np.testing.assert_array_equal(draw_superpixels(photo, segments),
                                  ref_superpixels(photo, segments))


def test_outline_of_regions_touching_each_other_and_the_border():
    # 3 x 3 grid of 8 px cells on 24 x 24; positive: left column, negative: the centre
    segments = np.kron(np.arange(9).reshape(3, 3), np.ones((8, 8), dtype=np.int64))
    image = np.full((24, 24, 3), 100, dtype=np.uint8)
    weights = {0: 1.0, 3: 1.0, 6: 1.0, 4: -1.0, 5: 0.0}
    for width in (1, 2, 3, 5, 30):
        got = draw_explanation(image, segments, weights, show_negative=True, outline_width=width,
                               positive_colour=(0, 0, 255), negative_colour=(255, 0, 0))
        expected = ref_explanation(image, segments, weights, show_negative=True,
                                   outline_width=width, positive_colour=(0, 0, 255),
                                   negative_colour=(255, 0, 0))
        np.testing.assert_array_equal(got, expected)
        blue = (got == (0, 0, 255)).all(axis=-1)
        assert blue[:, 0].all()  # the image border closes the left column
        assert blue[:, :8].sum() == min(24 * 8, blue.sum())


@pytest.mark.parametrize("shape, small", SIZES)
@pytest.mark.parametrize("width", [None, 1, 2, 3, 4, 7])
def test_superpixels_equal_the_previous_drawing(shape, small, width):
    seed = shape[0] * 7 + shape[1]
    segments = _blobs(small, 30, seed)
    image = np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)
    got = draw_superpixels(image, segments, outline_width=width, colour="white")
    np.testing.assert_array_equal(got, ref_superpixels(image, segments, outline_width=width,
                                                       colour="white"))


@pytest.mark.parametrize("shape, small", SIZES)
@pytest.mark.parametrize("hide_rest", [False, True])
def test_mask_equals_the_previous_drawing(shape, small, hide_rest):
    seed = shape[0] * 3 + shape[1]
    segments = _blobs(small, 20, seed)
    image = np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)
    keep = [int(i) for i in np.unique(segments)[::3]]
    for width in (None, 2):
        got = draw_mask(image, segments, keep, hide_rest=hide_rest, outline_width=width)
        np.testing.assert_array_equal(
            got, ref_mask(image, segments, keep, hide_rest=hide_rest, outline_width=width))


def test_random_label_noise_equals_the_previous_drawing():
    """Labels changing at almost every pixel: the worst case for edges and outlines."""
    rng = np.random.default_rng(11)
    for trial in range(40):
        small = tuple(int(v) for v in rng.integers(1, 30, 2))
        shape = tuple(int(v) for v in rng.integers(1, 90, 2))
        segments = rng.integers(-3, 6, small)  # negative ids are labels too
        image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
        weights = {int(i): float(rng.normal(0, 0.3)) for i in np.unique(segments)}
        width = int(rng.integers(1, 5))
        for display in ("outline", "block"):
            kwargs = dict(display=display, show_negative=True, outline_width=width,
                          fill_alpha=float(rng.uniform(0, 1)))
            np.testing.assert_array_equal(
                draw_explanation(image, segments, weights, **kwargs),
                ref_explanation(image, segments, weights, **kwargs), err_msg=str(trial))
        np.testing.assert_array_equal(draw_superpixels(image, segments, outline_width=width),
                                      ref_superpixels(image, segments, outline_width=width))


def test_fade_equals_the_float64_formula_for_every_colour():
    """The integer table equals the previous float64 luma blend for all 2**24 colours."""
    values = np.arange(256)
    g, b = np.meshgrid(values, values, indexing="ij")
    g, b = g.ravel(), b.ravel()
    table = _fade_table()
    ties = 0
    for r in range(256):
        pixels = np.stack([np.full(g.size, r), g, b], axis=1)
        expected = _ref_to_uint8(_ref_fade(pixels.astype(np.float64)))[:, 0]
        weighted = 299 * r + 587 * g + 114 * b
        ties += int(((weighted + 285000) % 2500 == 1250).sum())
        np.testing.assert_array_equal(table[weighted], expected, err_msg=f"r={r}")
    assert ties == 6720  # colours exactly between two grey levels: rounded half to even
    rgb = np.random.default_rng(3).integers(0, 256, (37, 41, 3), dtype=np.uint8)
    faded = _fade(rgb)
    assert faded.shape == rgb.shape
    np.testing.assert_array_equal(
        faded.reshape(-1, 3), _ref_to_uint8(_ref_fade(rgb.reshape(-1, 3).astype(float))))


def test_image_is_not_modified_and_views_are_accepted():
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    segments = _blobs((20, 20), 9, 5)
    weights = _weights(segments, 5)
    for image in (base[:, ::-1], base[..., ::-1], np.asfortranarray(base), base[::2, 1::3]):
        before = image.copy()
        for display in ("outline", "block"):
            got = draw_explanation(image, segments, weights, display=display, show_negative=True)
            np.testing.assert_array_equal(
                got, ref_explanation(np.ascontiguousarray(image), segments, weights,
                                     display=display, show_negative=True))
        np.testing.assert_array_equal(draw_superpixels(image, segments),
                                      ref_superpixels(np.ascontiguousarray(image), segments))
        np.testing.assert_array_equal(image, before)


# --------------------------------------------------------------------------
# draw_explanations and the PNG functions built on the drawings
# --------------------------------------------------------------------------

def test_draw_explanations_equals_one_label_at_a_time():
    image = _photo((90, 120))
    segments = _blobs((32, 32), 15, 2)
    per_label = {7: _weights(segments, 1), 3: _weights(segments, 2), "x": []}
    for display in ("outline", "block"):
        pictures = draw_explanations(image, segments, per_label, display=display,
                                     show_negative=True)
        assert list(pictures) == [7, 3, "x"]
        for label, weights in per_label.items():
            np.testing.assert_array_equal(
                pictures[label], draw_explanation(image, segments, weights, display=display,
                                                  show_negative=True))
        assert pictures[7] is not pictures["x"] and not np.array_equal(pictures[7], pictures[3])
    with pytest.raises(ConfigurationError, match="Expected coefficients to be a mapping"):
        draw_explanations(image, segments, [(0, 1.0)])


def test_render_functions_encode_the_drawings():
    image = _photo((75, 101))
    segments = _blobs((20, 20), 10, 4)
    weights = _weights(segments, 4)
    pairs = [
        (render_explanation(image, segments, weights, display="block", show_negative=True),
         draw_explanation(image, segments, weights, display="block", show_negative=True)),
        (render_explanation(image, segments, weights), draw_explanation(image, segments, weights)),
        (render_superpixels(image, segments), draw_superpixels(image, segments)),
        (render_mask(image, segments, [1, 2], hide_rest=True),
         draw_mask(image, segments, [1, 2], hide_rest=True)),
    ]
    for png, picture in pairs:
        np.testing.assert_array_equal(_decode(png), picture)


def test_visible_segments_are_the_labels_after_upsampling():
    rng = np.random.default_rng(8)
    for _ in range(30):
        segments = rng.integers(0, 40, tuple(int(v) for v in rng.integers(1, 20, 2)))
        shape = tuple(int(v) for v in rng.integers(1, 30, 2))
        expected = np.unique(upsample_segments(segments, shape))
        got = visible_segments(segments, shape)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, expected)
    assert visible_segments(np.arange(6).reshape(1, 6), (1, 3)).tolist() == [1, 3, 5]


# --------------------------------------------------------------------------
# encode_png
# --------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (13, 1), (7, 5), (64, 64), (301, 457)])
def test_encode_png_round_trips_exactly(shape):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    noise = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    smooth = np.clip(np.add.outer(np.arange(shape[0]), np.arange(shape[1])), 0, 255)
    smooth = np.stack([smooth, 255 - smooth, np.full(shape, 7)], axis=-1).astype(np.uint8)
    for image in (noise, smooth, noise[..., ::-1], np.zeros(shape + (3,), dtype=np.uint8)):
        png = encode_png(image)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(png)) as im:
            assert im.size == (shape[1], shape[0]) and im.mode == "RGB"
            im.verify()  # chunk CRCs
        np.testing.assert_array_equal(_decode(png), image)


def test_encode_png_compresses_at_its_level():
    photo = _photo((120, 160))
    png = encode_png(photo)
    assert PNG_COMPRESS_LEVEL == 1
    assert len(png) < 0.8 * photo.size  # compressed, not stored
    flat = np.full((200, 300, 3), 77, dtype=np.uint8)
    assert len(encode_png(flat)) < flat.size / 100
    # one IDAT chunk, a zlib stream of the filtered rows
    idat_at = png.index(b"IDAT")
    length = int.from_bytes(png[idat_at - 4:idat_at], "big")
    raw = zlib.decompress(png[idat_at + 4:idat_at + 4 + length])
    assert len(raw) == 120 * (160 * 3 + 1)
    assert set(raw[::160 * 3 + 1]) == {2}  # filter "Up" on every row
    assert encode_png(photo) == png  # deterministic


# --------------------------------------------------------------------------
# overlay_pictures, encode_overlays, write_overlays
# --------------------------------------------------------------------------

def _explanation(segments, labels=(4, 1, 9), seed=0):
    rng = np.random.default_rng(seed)
    k = int(segments.max()) + 1
    local_exp = {}
    for label in labels:
        weights = rng.normal(0, 0.1, k)
        local_exp[label] = sorted(((i, float(weights[i])) for i in range(k)),
                                  key=lambda fw: -abs(fw[1]))
    image = np.zeros(segments.shape + (3,), dtype=np.uint8)
    return ImageExplanation(
        image=image, segments=segments.astype(np.int32), top_labels=list(labels),
        local_exp=local_exp, intercept=dict.fromkeys(labels, 0.0),
        score=dict.fromkeys(labels, 0.5), local_pred={lb: np.zeros(1) for lb in labels},
        predictions=np.full(10, 0.1), fill_image=image)


@pytest.mark.parametrize("shape, max_side", [
    ((300, 451), 1024),   # drawn at its own size
    ((600, 902), 256),    # on a thumbnail
    ((2, 4000), 1024),    # a strip: its thumbnail misses superpixels
    ((37, 23), 0),        # 0: the original size
])
@pytest.mark.parametrize("display", ["outline", "block"])
def test_overlay_pictures_equal_the_previous_overlays(shape, max_side, display):
    original = _photo(shape)
    explanation = _explanation(_blobs((64, 64), 30, shape[0]))
    expected = ref_overlays(original, explanation, max_side=max_side, n_features=5,
                            display=display)
    pictures = overlay_pictures(original, explanation, max_side=max_side, n_features=5,
                                display=display, caption=False)
    assert list(pictures) == ["segments", "4", "1", "9"] == list(expected)
    for name in expected:
        np.testing.assert_array_equal(pictures[name], expected[name], err_msg=name)
    assert not np.array_equal(pictures["4"], pictures["1"]) or shape == (2, 4000)
    encoded = encode_overlays(pictures)
    assert list(encoded) == list(pictures)
    for name, png in encoded.items():
        np.testing.assert_array_equal(_decode(png), pictures[name])


def test_write_overlays_writes_the_same_pictures_as_before(tmp_path):
    original = _photo((480, 640))
    explanation = _explanation(_blobs((128, 128), 50, 3), labels=(281, 282))
    write_overlays(str(tmp_path), original, explanation, max_side=320, n_features=5,
                   display="outline", caption=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["281.png", "282.png", "segments.png"]
    expected = ref_overlays(original, explanation, max_side=320, n_features=5,
                            display="outline")
    for name, picture in expected.items():
        got = _decode((tmp_path / f"{name}.png").read_bytes())
        assert got.shape == (240, 320, 3)
        np.testing.assert_array_equal(got, picture, err_msg=name)
