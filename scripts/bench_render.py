"""Benchmark: drawing and encoding overlay PNGs, the previous implementation against this one.

A realistic case of the batch job's defaults: scikit-image's bundled cat
photo (``chelsea``, no download) resized with Pillow to 1024 x 768 (the
default ``overlay_max_side``), SLIC superpixels (``n_superpixels=50``)
computed on its 128 x 128 copy (the model input) and upsampled, random
coefficients, the 5 most positive superpixels shown.

Contenders, run interleaved (one round runs each once, in turn) after a
warm-up, ``--repeats`` rounds; median and p90 wall time in milliseconds:

* ``render_explanation`` outline and block, ``render_superpixels``: the
  previous code (a faithful copy below: skimage ``find_boundaries`` and
  ``dilation`` at full resolution, float64 blends, Pillow PNG at its
  default zlib level 6) against :mod:`lime_spark.render`; the drawing
  alone (``draw_*``) and the PNG (draw + encode);
* ``display="heatmap"`` (every superpixel tinted by its weight) and the
  caption strip (:func:`lime_spark.render.add_caption`), drawn and as PNG;
* one image's overlays as the batch job writes them (superpixels + 3
  labels): the previous ``write_overlays`` loop against
  :func:`lime_spark.overlays.overlay_pictures` + ``encode_overlays``, then
  the current one with captions and in each display;
* encoders of the outline picture (a photo with lines): Pillow PNG at
  ``compress_level`` 0..9 (``optimize=False``), the numpy "Up"-filter +
  zlib writer of :func:`lime_spark.render.encode_png` at levels 0..3 and
  with zlib's RLE and Huffman-only strategies, a palette PNG (only possible
  with at most 256 colours: the photo has more, so the cost of finding that
  out is timed, and a 50-colour picture is encoded both ways), and lossless
  WebP (``lossless=True, method=0``); time and bytes.

Prints one table per group, the ratios current/previous and whether a
1024 x 768 outline PNG takes at most 30 ms (median).

Usage: .venv/bin/python scripts/bench_render.py [--repeats 30] [--encode-repeats 9]
"""

from __future__ import annotations

import argparse
import io
import statistics
import struct
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_MS = 30.0
SIZE = (1024, 768)      # width, height
MODEL_SIDE = 128
N_SUPERPIXELS = 50
N_FEATURES = 5


# --------------------------------------------------------------------------
# The previous implementation (lime_spark/render at 5f08a25), drawing code
# copied as it was, returning arrays; encode with Pillow's defaults.
# --------------------------------------------------------------------------

_OLD_HIDE_COLOUR = (190, 190, 190)
_OLD_FADE_STRENGTH = 0.6
_OLD_LUMA = np.array([0.299, 0.587, 0.114])


def _old_colour(colour: Any) -> np.ndarray:
    from PIL import ImageColor

    rgb = ImageColor.getrgb(colour)[:3] if isinstance(colour, str) else colour
    return np.asarray(rgb, dtype=np.float64)


def _old_default_width(shape: tuple[int, int]) -> int:
    return max(1, int(round(min(shape) / 200)))


def _old_upsample(segments: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = segments.shape
    height, width = shape
    rows = ((2 * np.arange(height, dtype=np.int64) + 1) * h) // (2 * height)
    cols = ((2 * np.arange(width, dtype=np.int64) + 1) * w) // (2 * width)
    return segments[rows[:, None], cols[None, :]]


def _old_thicken(lines: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return lines
    from skimage.morphology import dilation, footprint_rectangle

    size = 2 * (width - 1) + 1
    footprint = footprint_rectangle((size, size), decomposition="separable")
    return dilation(lines, footprint).astype(bool, copy=False)


def _old_region_outline(mask: np.ndarray, width: int) -> np.ndarray:
    from skimage.segmentation import find_boundaries

    padded = np.pad(mask, 1, constant_values=False).astype(np.uint8)
    edge = find_boundaries(padded, mode="inner", background=0)[1:-1, 1:-1]
    return _old_thicken(edge, width) & mask


def _old_blend(pixels: np.ndarray, colour: np.ndarray, alpha: float) -> np.ndarray:
    return (1.0 - alpha) * pixels + alpha * colour


def _old_fade(pixels: np.ndarray) -> np.ndarray:
    luma = (pixels @ _OLD_LUMA)[:, None]
    return _old_blend(luma, np.asarray(_OLD_HIDE_COLOUR, dtype=np.float64), _OLD_FADE_STRENGTH)


def _old_to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def old_draw_explanation(rgb: np.ndarray, segments: np.ndarray, coefficients: Any, *,
                         display: str = "outline", threshold: float = 0.02,
                         show_negative: bool = False, fill_alpha: float = 0.3) -> np.ndarray:
    defaults = ("lightgreen", "red") if display == "outline" else ("steelblue", "firebrick")
    pos_rgb, neg_rgb = _old_colour(defaults[0]), _old_colour(defaults[1])
    height, width = rgb.shape[:2]
    line = _old_default_width((height, width))
    resolved = dict(coefficients)
    np.unique(segments)  # the previous argument check
    positive = [f for f, w in resolved.items() if w > threshold]
    negative = [f for f, w in resolved.items() if w < -threshold] if show_negative else []
    pos_mask = _old_upsample(np.isin(segments, positive), (height, width))
    neg_mask = _old_upsample(np.isin(segments, negative), (height, width))
    out = rgb.copy()
    if display == "outline":
        for mask, colour in ((neg_mask, neg_rgb), (pos_mask, pos_rgb)):
            if mask.any():
                out[_old_region_outline(mask, line)] = _old_to_uint8(colour)
    else:
        rest = ~(pos_mask | neg_mask)
        pixels = rgb.astype(np.float64)
        out[rest] = _old_to_uint8(_old_fade(pixels[rest]))
        out[pos_mask] = _old_to_uint8(_old_blend(pixels[pos_mask], pos_rgb, fill_alpha))
        out[neg_mask] = _old_to_uint8(_old_blend(pixels[neg_mask], neg_rgb, fill_alpha))
    return out


def old_draw_superpixels(rgb: np.ndarray, segments: np.ndarray) -> np.ndarray:
    from skimage.segmentation import find_boundaries

    line = _old_default_width(rgb.shape[:2])
    full = _old_upsample(segments, rgb.shape[:2])
    edges = _old_thicken(find_boundaries(full, mode="thick"), max(1, line // 2))
    out = rgb.copy()
    out[edges] = _old_to_uint8(_old_colour("black"))
    return out


def old_encode_png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def old_overlays(canvas: np.ndarray, explanation: Any) -> dict[str, bytes]:
    """The previous ``write_overlays`` loop, without the writing (canvas already a thumbnail)."""
    segments = _old_upsample(explanation.segments.astype(np.int32), canvas.shape[:2])
    out = {"segments": old_encode_png(old_draw_superpixels(canvas, segments))}
    visible = set(np.unique(segments).tolist())
    for label in explanation.labels:
        positive = sorted((fw for fw in explanation.local_exp[label]
                           if fw[1] > 0 and fw[0] in visible), key=lambda fw: -fw[1])[:N_FEATURES]
        out[str(label)] = old_encode_png(old_draw_explanation(canvas, segments, positive,
                                                              threshold=0.0))
    return out


# --------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------

def _pillow_png(level: int) -> Callable[[np.ndarray], bytes]:
    def encode(image: np.ndarray) -> bytes:
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", compress_level=level, optimize=False)
        return buffer.getvalue()
    return encode


def _numpy_png(level: int,
               strategy: int = zlib.Z_DEFAULT_STRATEGY) -> Callable[[np.ndarray], bytes]:
    """The writer of ``encode_png`` (Up filter) with another zlib level or strategy."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))

    def encode(image: np.ndarray) -> bytes:
        height, width = image.shape[:2]
        rows = image.reshape(height, width * 3)
        filtered = np.empty((height, width * 3 + 1), dtype=np.uint8)
        filtered[:, 0] = 2
        filtered[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
        packer = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL,
                                  strategy)
        idat = packer.compress(filtered) + packer.flush()
        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
                + chunk(b"IEND", b""))
    return encode


def _palette_png(image: np.ndarray) -> bytes | None:
    """A lossless palette PNG when ``image`` has at most 256 colours, else ``None``."""
    from PIL import Image

    im = Image.fromarray(image)
    colours = im.getcolors(256)
    if colours is None:
        return None
    palette = np.array([rgb for _, rgb in colours], dtype=np.uint8)
    packed = image.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32)
    keys = palette.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32)
    order = np.argsort(keys)
    index = order[np.searchsorted(keys[order], packed)].astype(np.uint8)
    p = Image.fromarray(index, mode="L").convert("P")
    p.putpalette(palette.ravel().tolist())
    buffer = io.BytesIO()
    p.save(buffer, format="PNG", compress_level=1, optimize=False)
    return buffer.getvalue()


def _webp_lossless(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="WEBP", lossless=True, method=0)
    return buffer.getvalue()


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


# --------------------------------------------------------------------------
# The scene and the timing
# --------------------------------------------------------------------------

def _scene(seed: int = 0) -> tuple[np.ndarray, Any]:
    """The 1024 x 768 photo and an ImageExplanation-like object for it (3 labels)."""
    import skimage.data
    from PIL import Image

    from lime_spark.segmentation import segment_image

    photo = np.asarray(Image.fromarray(skimage.data.chelsea()).resize(
        SIZE, Image.Resampling.LANCZOS))
    small = np.asarray(Image.fromarray(photo).resize(
        (MODEL_SIDE, MODEL_SIDE), Image.Resampling.LANCZOS))
    segments = segment_image(small, method="slic", n_superpixels=N_SUPERPIXELS, random_state=0)
    rng = np.random.default_rng(seed)
    k = int(segments.max()) + 1
    local_exp = {}
    for label in (281, 285, 282):  # tabby, Egyptian cat, tiger cat
        weights = rng.normal(0.0, 0.1, k)
        local_exp[label] = sorted(((i, float(weights[i])) for i in range(k)),
                                  key=lambda fw: -abs(fw[1]))

    class _Explanation:
        pass

    explanation = _Explanation()
    explanation.segments = segments
    explanation.local_exp = local_exp
    explanation.labels = list(local_exp)
    # what the captions show: name, probability, fit and stability
    names = [f"class {i}" for i in range(1000)]
    names[281:286] = ["tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"]
    explanation.label_names = names
    explanation.predictions = np.full(1000, 0.1 / 997)
    explanation.predictions[[281, 285, 282]] = [0.55, 0.25, 0.1]
    explanation.score = {281: 0.41, 285: 0.37, 282: 0.22}
    explanation.stability = {281: 0.97, 285: 0.9, 282: 0.62}
    return photo, explanation


def _run(contenders: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Warm each up once, then ``repeats`` rounds, each running every contender once in turn."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def _p90(values: list[float]) -> float:
    return float(np.percentile(values, 90))


def _table(title: str, times: dict[str, list[float]],
           sizes: dict[str, int] | None = None) -> None:
    print(f"\n{title}")
    header = f"  {'contender':<44} {'median ms':>10} {'p90 ms':>9}"
    print(header + (f" {'bytes':>10}" if sizes else ""))
    for name, values in times.items():
        row = f"  {name:<44} {statistics.median(values):>10.2f} {_p90(values):>9.2f}"
        if sizes:
            row += f" {sizes[name]:>10,}" if name in sizes else f" {'-':>10}"
        print(row)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30,
                        help="interleaved rounds of the drawing contenders (default 30)")
    parser.add_argument("--encode-repeats", type=int, default=9,
                        help="interleaved rounds of the encoders, some of them slow (default 9)")
    args = parser.parse_args(argv)

    from lime_spark.overlays import encode_overlays, overlay_pictures
    from lime_spark.render import (
        add_caption,
        draw_explanation,
        draw_superpixels,
        encode_png,
        render_explanation,
        render_superpixels,
        upsample_segments,
    )

    photo, explanation = _scene()
    segments = explanation.segments
    label = explanation.labels[0]
    top = sorted((fw for fw in explanation.local_exp[label] if fw[1] > 0),
                 key=lambda fw: -fw[1])[:N_FEATURES]
    every = explanation.local_exp[label]        # heatmap: all the weights
    caption = ("tabby", "p = 0.550", "fit R\u00b2 = 0.41", "stability 0.97")
    print(f"photo {photo.shape[1]}x{photo.shape[0]}, segments {segments.shape[1]}x"
          f"{segments.shape[0]} ({int(segments.max()) + 1} superpixels), {N_FEATURES} shown; "
          f"{args.repeats} rounds")

    # the pictures must be the same
    for display in ("outline", "block"):
        assert np.array_equal(old_draw_explanation(photo, segments, top, display=display,
                                                   threshold=0.0),
                              draw_explanation(photo, segments, top, display=display,
                                               threshold=0.0)), display
    assert np.array_equal(old_draw_superpixels(photo, segments),
                          draw_superpixels(photo, segments))

    draw = _run({
        "previous draw outline": lambda: old_draw_explanation(photo, segments, top,
                                                              threshold=0.0),
        "current  draw outline": lambda: draw_explanation(photo, segments, top, threshold=0.0),
        "previous draw block": lambda: old_draw_explanation(photo, segments, top,
                                                            display="block", threshold=0.0),
        "current  draw block": lambda: draw_explanation(photo, segments, top, display="block",
                                                        threshold=0.0),
        "previous draw superpixels": lambda: old_draw_superpixels(photo, segments),
        "current  draw superpixels": lambda: draw_superpixels(photo, segments),
        "current  draw heatmap (all weights)": lambda: draw_explanation(
            photo, segments, every, display="heatmap"),
        "current  draw outline + caption": lambda: draw_explanation(
            photo, segments, top, threshold=0.0, caption=caption),
        "current  draw heatmap + caption": lambda: draw_explanation(
            photo, segments, every, display="heatmap", caption=caption),
        "current  add_caption alone": lambda: add_caption(photo, caption),
    }, args.repeats)
    _table("drawing only (RGB array)", draw)

    png = _run({
        "previous render_explanation outline": lambda: old_encode_png(
            old_draw_explanation(photo, segments, top, threshold=0.0)),
        "current  render_explanation outline": lambda: render_explanation(
            photo, segments, top, threshold=0.0),
        "previous render_explanation block": lambda: old_encode_png(
            old_draw_explanation(photo, segments, top, display="block", threshold=0.0)),
        "current  render_explanation block": lambda: render_explanation(
            photo, segments, top, display="block", threshold=0.0),
        "previous render_superpixels": lambda: old_encode_png(
            old_draw_superpixels(photo, segments)),
        "current  render_superpixels": lambda: render_superpixels(photo, segments),
        "current  render heatmap (all weights)": lambda: render_explanation(
            photo, segments, every, display="heatmap"),
        "current  render outline + caption": lambda: render_explanation(
            photo, segments, top, threshold=0.0, caption=caption),
        "current  render heatmap + caption": lambda: render_explanation(
            photo, segments, every, display="heatmap", caption=caption),
    }, args.repeats)
    _table("PNG (draw + encode)", png)

    n_pictures = 1 + len(explanation.labels)
    overlays = {}
    image = _run({
        f"previous write_overlays ({n_pictures} PNGs)": lambda: old_overlays(photo, explanation),
        f"current  overlay_pictures ({n_pictures} arrays)": lambda: overlay_pictures(
            photo, explanation, max_side=1024, n_features=N_FEATURES, display="outline",
            caption=False),
        "current  overlay_pictures + encode_overlays": lambda: overlays.update(encode_overlays(
            overlay_pictures(photo, explanation, max_side=1024, n_features=N_FEATURES,
                             display="outline", caption=False))),
        **{f"current  {display} + encode, caption={with_caption}":
           (lambda d=display, c=with_caption: encode_overlays(overlay_pictures(
               photo, explanation, max_side=1024, n_features=N_FEATURES, display=d,
               caption=c)))
           for display in ("outline", "block", "heatmap") for with_caption in (False, True)},
    }, max(3, args.repeats // 3))
    _table("one image's overlays (outline, then each display)", image)
    previous = old_overlays(photo, explanation)
    assert list(previous) == list(overlays)
    assert all(np.array_equal(_decode(previous[k]), _decode(overlays[k])) for k in previous)

    picture = draw_explanation(photo, segments, top, threshold=0.0)
    # a picture of 50 flat colours: each superpixel filled with its own colour
    colours = np.random.default_rng(1).integers(0, 256, (N_SUPERPIXELS, 3), dtype=np.uint8)
    flat = colours[upsample_segments(segments % N_SUPERPIXELS, photo.shape[:2])]
    encoders: dict[str, Callable[[], Any]] = {}
    sizes: dict[str, int] = {}
    for level in range(10):
        encoders[f"Pillow PNG level {level}"] = (lambda lv=level: _pillow_png(lv)(picture))
    for level in range(4):
        encoders[f"numpy Up + zlib level {level}"] = (lambda lv=level: _numpy_png(lv)(picture))
    encoders["numpy Up + zlib level 1, RLE"] = lambda: _numpy_png(1, zlib.Z_RLE)(picture)
    encoders["numpy Up + zlib Huffman only"] = lambda: _numpy_png(1, zlib.Z_HUFFMAN_ONLY)(picture)
    encoders["encode_png (current default)"] = lambda: encode_png(picture)
    encoders["palette check (photo: > 256 colours)"] = lambda: _palette_png(picture)
    encoders["WebP lossless method 0"] = lambda: _webp_lossless(picture)
    encoders["50 colours: palette PNG level 1"] = lambda: _palette_png(flat)
    encoders["50 colours: encode_png (RGB)"] = lambda: encode_png(flat)
    for name, fn in encoders.items():
        data = fn()
        if data is None:
            continue
        sizes[name] = len(data)
        expected = flat if name.startswith("50 colours") else picture
        assert np.array_equal(_decode(data), expected), name
    _table("encoders of the 1024x768 outline picture", _run(encoders, args.encode_repeats), sizes)

    print("\ncurrent / previous (median)")
    for kind, times in (("draw", draw), ("png", png)):
        for what in ("outline", "block", "superpixels"):
            old = next(v for k, v in times.items() if k.startswith("previous") and what in k)
            new = next(v for k, v in times.items() if k.startswith("current") and what in k)
            ratio = statistics.median(new) / statistics.median(old)
            print(f"  {kind} {what:<12} {ratio:6.3f}  ({1 / ratio:.1f}x faster)")
    names = list(image)
    ratio = statistics.median(image[names[2]]) / statistics.median(image[names[0]])
    print(f"  one image's overlays  {ratio:6.3f}  ({1 / ratio:.1f}x faster)")

    outline = statistics.median(png["current  render_explanation outline"])
    verdict = "holds" if outline <= TARGET_MS else "does NOT hold"
    print(f"\ntarget: a 1024x768 outline PNG in <= {TARGET_MS:.0f} ms median: {outline:.1f} ms, "
          f"{verdict}")
    drawn = statistics.median(draw["current  draw outline"])
    encoded = statistics.median(_run({"e": lambda: encode_png(picture)}, args.repeats)["e"])
    print(f"  of which drawing {drawn:.1f} ms, encode_png {encoded:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
