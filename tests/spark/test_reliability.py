"""Reliability of the job on real local Spark: bad inputs, killed workers, flaky storage, limits.

Issue 6.  Every test runs the real job (:func:`lime_spark.spark.job.run_job`):

- ``test_bad_inputs_*``: a corpus built here (every format Pillow writes in
  every mode it accepts, EXIF orientations 1-8, multi-frame containers,
  16-bit and palette files, bombs, broken bytes, directories, missing and null
  paths, hostile and duplicate image ids) through the shared ``local[2]``
  session: one ``images`` row per input row, the documented error class per
  broken file, nothing written outside the output root.
- ``test_killed_worker_*``: ``lime-spark explain --master local[2,4]`` in a
  subprocess with ``LIME_SPARK_FAIL_ONCE``: the first attempt of partition 1
  exits its Python worker mid-partition; the retried run equals a clean run.
- ``test_storage_faults_*``: ``flaky://`` (``tests/spark/flaky_fs.py``) and
  the loopback S3 server behind a fault-injecting proxy, in a subprocess:
  transient errors are retried with backoff and counted, permanent ones are
  error rows, a stuck read hits ``--image-timeout``.
- ``test_large_photo_*``: peak RSS of the Python worker for a 6000x4000
  photo with 1000 samples (``docs/benchmarks.md``).
- ``test_model_shapes_*``: binary sigmoid, grayscale, non-square and logits
  models end to end; models that cannot work fail before any image.

The subprocesses have their own JVMs because a driver has one SparkContext
and the shared session is ``local[2]`` (no task retries) with workers that
cannot see the test's environment.
"""

from __future__ import annotations

import collections
import io
import json
import os
import stat
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pytest
from PIL import Image

from lime_spark.batch import image_id_for_path, renamed_image_id
from lime_spark.cli import run_explain
from lime_spark.config import load_config
from lime_spark.exceptions import (
    ClassifierOutputError,
    ConfigurationError,
    ImageTimeoutError,
    ModelLoadError,
)
from lime_spark.storage import safe_key

from ..conftest import make_model
from . import flaky_fs
from .conftest import write_input
from .s3_server import s3_bucket, s3_server  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SMALL = {"n_samples": 32, "batch_size": 32, "n_superpixels": 8, "top_labels": 2,
         "report": False}
ORIENTATION = 0x0112
MODES = ("1", "L", "P", "RGB", "RGBA", "CMYK", "I;16", "I;16B", "I", "F", "LA", "PA", "La",
         "RGBa", "RGBX", "YCbCr", "LAB", "HSV")
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "TGA": ".tga", "SGI": ".sgi",
              "PPM": ".ppm", "JPEG2000": ".jp2", "WEBP": ".webp", "GIF": ".gif"}
# Error classes a broken input may get (lime_spark/exceptions.py; docs/reliability.md).
STABLE_CLASSES = {"InvalidImageError", "UnsupportedImageError", "ImageTooLargeError",
                  "StorageError", "ImageTimeoutError", "ClassifierOutputError"}
# Variables of the parent that must not leak into a subprocess's driver.
_DROP_ENV = ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_REMOTE",
             "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE", "SPARK_API_MODE",
             "SPARK_CONF_DIR", "MASTER", "CUDA_VISIBLE_DEVICES")


# --------------------------------------------------------------------------
# models, runs, tables
# --------------------------------------------------------------------------

def _config(input_uri: str, output: Path, model: str, **overrides):
    return load_config(overrides={"input": input_uri, "output": str(output), "model": model,
                                  "preprocess": "none", **SMALL, **overrides}).resolved()


def _run(spark, input_uri: str, output: Path, model: str, **overrides) -> dict:
    return run_explain(_config(input_uri, output, model, **overrides), spark=spark)


def _table(output: Path, name: str, run_id: str):
    return duckdb.sql(
        f"select * exclude (run_id) from read_parquet('{output}/{name}/*/*.parquet', "
        f"hive_partitioning=true) where run_id = '{run_id}'").df()


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A photo-like RGB image: scikit-image's astronaut resized, plus sensor noise."""
    from skimage import data

    base = Image.fromarray(data.astronaut()).resize((width, height), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(seed).normal(0, 6, (height, width, 1))
    return np.clip(np.asarray(base, np.float32) + noise, 0, 255).astype(np.uint8)


def _tree(top: Path, exclude: Path) -> dict[str, tuple[int, ...]]:
    """Every entry under ``top`` except the ``exclude`` subtree: folders, and files' size and mtime."""
    out = {}
    for folder, dirs, files in os.walk(top):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d != exclude]
        out.update({str((here / d).relative_to(top)): ("dir",) for d in dirs})
        for name in files:
            st = (here / name).lstat()
            out[str((here / name).relative_to(top))] = (stat.S_IFMT(st.st_mode), st.st_size,
                                                        st.st_mtime_ns)
    return out


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1", TF_CPP_MIN_LOG_LEVEL="3", **extra)
    return env


def _lime_spark(args: list[str], *, env: dict[str, str], cwd: Path,
                timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lime-spark"), "explain", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _overlay_files(output: Path, run_id: str) -> dict[str, bytes]:
    folder = output / "overlays" / f"run_id={run_id}"
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------
# the bad-input corpus (issue 6, point 1)
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One input row and what its ``images`` row must say."""

    tag: str                              # unique; the row's expected_label, to find it again
    path: str | None
    image_id: str | None
    expect: str = "ok"                    # "ok" or the error_class
    size: tuple[int, int] | None = None   # (width, height) of an ok row
    fragment: str = ""                    # in the error message


def _base(width: int = 30, height: int = 20) -> np.ndarray:
    """An asymmetric RGB picture: colour ramps with a dark block in the top-left corner."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                    (x + y) * 255 // max(width + height - 2, 1)], axis=-1).astype(np.uint8)
    rgb[: max(height // 3, 1), : max(width // 3, 1)] = (10, 20, 30)
    return rgb


def as_mode(mode: str, rgb: np.ndarray) -> Image.Image:
    """``rgb`` as a Pillow image of ``mode`` (16-bit, 32-bit and float from real ranges)."""
    im = Image.fromarray(rgb)
    gray = np.asarray(im.convert("L"))
    if mode == "I;16":
        return Image.fromarray(gray.astype(np.uint16) * 257)
    if mode == "I;16B":
        return Image.frombytes("I;16B", im.size, (gray.astype(">u2") * 257).tobytes())
    if mode == "I":
        return Image.fromarray(gray.astype(np.int32) * 1000 - 50_000)   # outside 0..255
    if mode == "F":
        return Image.fromarray(gray.astype(np.float32) / 255.0)
    alpha = np.tile(np.linspace(0, 255, im.size[0]).astype(np.uint8), (im.size[1], 1))
    if mode == "PA":
        palette = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        out = palette.convert("PA")
        out.putalpha(Image.fromarray(alpha))
        return out
    if mode in ("RGBA", "LA", "RGBa", "La"):
        return Image.fromarray(np.dstack([rgb, alpha])).convert(mode)
    if mode == "P":
        return im.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return im.convert(mode)


def _save(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def _pillow_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) if Pillow itself opens and loads ``data``, else None."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.size
    except Exception:  # noqa: BLE001 - any failure means "Pillow does not read it"
        return None


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bytes(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 0,
              row: bytes | None = None) -> bytes:
    """A PNG written by hand from one repeated row, streamed through zlib.

    Makes what Pillow cannot write (16-bit RGB, 2-bit grey) and decompression
    bombs: 20000 x 20000 zero pixels compress to ~0.4 MB.
    """
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = row if row is not None else bytes(-(-width * channels * bit_depth // 8))
    line = b"\x00" + row
    per_block = max(1, (1 << 20) // len(line))
    comp, parts, left = zlib.compressobj(9), [], height
    while left:
        n = min(per_block, left)
        parts.append(comp.compress(line * n))
        left -= n
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b""))


def format_cases(folder: Path) -> list[Case]:
    """Every format Pillow writes x every mode its writer accepts.

    A file Pillow reads back must be explained (``ok``, at its own size); one
    it writes but cannot read (PDF, Palm) is an ``InvalidImageError``; EPS is
    refused (``UnsupportedImageError``: decoding would run Ghostscript).
    """
    Image.init()
    rgb = _base()
    cases = []
    for fmt in sorted(Image.SAVE):
        ext = EXTENSIONS.get(fmt) or next(
            (e for e, f in sorted(Image.registered_extensions().items()) if f == fmt),
            "." + fmt.lower())
        for mode in MODES:
            try:
                data = _save(as_mode(mode, rgb), fmt)
            except Exception:  # noqa: BLE001 - this writer does not take this mode
                continue
            path = folder / f"fmt {fmt} {mode.replace(';', '_')}{ext}"
            path.write_bytes(data)
            tag = f"fmt:{fmt}:{mode}"
            size = _pillow_size(data)
            if fmt == "EPS":
                cases.append(Case(tag, str(path), tag, "UnsupportedImageError",
                                  fragment="PostScript"))
            elif size is None:
                cases.append(Case(tag, str(path), tag, "InvalidImageError",
                                  fragment="Pillow can identify"))
            else:
                cases.append(Case(tag, str(path), tag, size=size))
    return cases


def special_cases(folder: Path) -> list[Case]:
    """Orientations, containers, bit depths, odd sizes, broken files, storage errors."""
    cases = []

    def add(name: str, data: bytes | None, expect: str = "ok", size=None, fragment: str = "",
            path: str | None = None) -> None:
        if data is not None:
            (folder / name).write_bytes(data)
        cases.append(Case(name, path if path is not None else str(folder / name), name,
                          expect, size, fragment))

    rgb = _base()
    im = Image.fromarray(rgb)
    for k in range(1, 9):
        exif = Image.Exif()
        exif[ORIENTATION] = k
        add(f"orientation {k}.jpg", _save(im, "JPEG", exif=exif),
            size=(30, 20) if k < 5 else (20, 30))
    for fmt, ext, k in (("PNG", "png", 6), ("WEBP", "webp", 8), ("TIFF", "tif", 5)):
        exif = Image.Exif()
        exif[ORIENTATION] = k
        add(f"orientation {k}.{ext}", _save(im, fmt, exif=exif), size=(20, 30))
    frames = [Image.fromarray(np.roll(rgb, 5 * i, axis=1)) for i in range(3)]
    small = Image.fromarray(rgb[:10, :12])
    add("multipage.tif", _save(frames[0], "TIFF", save_all=True,
                               append_images=[small, frames[2]]), size=(30, 20))
    add("multipage 16-bit.tif", _save(as_mode("I;16", rgb), "TIFF", save_all=True,
                                      append_images=[as_mode("I;16", rgb[:10, :12])]),
        size=(30, 20))
    add("multipage cmyk.tif", _save(im.convert("CMYK"), "TIFF", save_all=True,
                                    append_images=[small.convert("CMYK")]), size=(30, 20))
    add("animated.gif", _save(frames[0], "GIF", save_all=True, append_images=frames[1:],
                              duration=50, loop=0), size=(30, 20))
    add("animated.webp", _save(frames[0], "WEBP", save_all=True, append_images=frames[1:],
                               duration=50), size=(30, 20))
    add("animated.png", _save(frames[0], "PNG", save_all=True, append_images=frames[1:],
                              duration=50), size=(30, 20))
    add("two frames.mpo", _save(frames[0], "MPO", save_all=True, append_images=frames[1:2]),
        size=(30, 20))
    add("three sizes.ico", _save(Image.fromarray(_base(64, 64)), "ICO",
                                 sizes=[(16, 16), (32, 32), (64, 64)]), size=(64, 64))
    palette = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    add("palette 4-bit.png", _save(palette, "PNG", bits=4), size=(30, 20))
    add("palette transparent.png", _save(palette, "PNG", transparency=0), size=(30, 20))
    add("palette transparent.gif", _save(palette, "GIF", transparency=0), size=(30, 20))
    add("progressive.jpg", _save(im, "JPEG", progressive=True, quality=90), size=(30, 20))
    add("rgb 16-bit.png", png_bytes(30, 20, bit_depth=16, colour_type=2,
                                    row=bytes(range(180))), size=(30, 20))
    add("rgba 16-bit.png", png_bytes(30, 20, bit_depth=16, colour_type=6,
                                     row=bytes(range(240))), size=(30, 20))
    # a fine texture: SLIC merges it into one region, the job falls back to a grid
    add("grey 2-bit.png", png_bytes(30, 20, bit_depth=2, colour_type=0, row=b"\x1b" * 8),
        size=(30, 20))
    jpeg = _save(im, "JPEG")
    add("corrupt exif.jpg", jpeg[:2] + b"\xff\xe1\x00\x10Exif\x00\x00II*\x00\xff\xff\xff\xff"
        + jpeg[2:], size=(30, 20))
    add("3x3.png", _png(_base(3, 3)), size=(3, 3))
    add("1x1.png", _png(np.full((1, 1, 3), 200, np.uint8)), size=(1, 1))
    add("uniform.png", _png(np.full((48, 64, 3), (90, 140, 200), np.uint8)), size=(64, 48))
    add("strip 20x4000.png", _png(_base(20, 4000)), size=(20, 4000))
    add("strip 4000x20.png", _png(_base(4000, 20)), size=(4000, 20))
    add("strip 2x4000.png", _png(_base(2, 4000)), size=(2, 4000))
    add("ünï cödé 画像 a b.png", _png(_base(31, 21)), size=(31, 21))
    add("file uri.png", _png(rgb), size=(30, 20), path=f"file://{folder / 'file uri.png'}")
    # broken bytes
    png = _png(rgb)
    add("empty.jpg", b"", "InvalidImageError", fragment="0 bytes")
    add("truncated.jpg", _save(Image.fromarray(_base(64, 48)), "JPEG")[:300],
        "InvalidImageError", fragment="failed to decode")
    add("truncated.png", png[: len(png) // 2], "InvalidImageError", fragment="failed to decode")
    add("bad crc.png", png[:29] + bytes([png[29] ^ 0xFF]) + png[30:], "InvalidImageError")
    add("text.jpg", b"hello, this is not a picture\n", "InvalidImageError",
        fragment="looks like text")
    add("page.jpg", b"<!DOCTYPE html><html><body>403 Forbidden</body></html>",
        "InvalidImageError", fragment="looks like HTML")
    add("error.jpg", b'{"error": "AccessDenied"}', "InvalidImageError",
        fragment="looks like JSON")
    add("random.jpg", np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes(),
        "InvalidImageError", fragment="Pillow can identify")
    add("bomb.png", png_bytes(20_000, 20_000), "ImageTooLargeError", fragment="max_pixels")
    sof = struct.pack(">BBHBHHB", 0xFF, 0xC0, 11, 8, 60_000, 60_000, 1) + b"\x01\x11\x00"
    add("bomb header.jpg", b"\xff\xd8" + sof + b"\xff\xd9", "ImageTooLargeError",
        fragment="max_pixels")
    # storage: a folder where a file should be, a missing file, no path
    (folder / "a folder.jpg").mkdir()
    add("a folder.jpg", None, "StorageError", fragment="is a directory")
    add("missing.jpg", None, "StorageError", fragment="not found")
    cases.append(Case("null path", None, "null path", "InvalidImageError", fragment="path"))
    cases.append(Case("empty path", "", "empty path", "InvalidImageError", fragment="path"))
    return cases


HOSTILE_IDS = ("../../x", "../" * 12 + "escape", "a/b/c", "/abs/id", "..", ".", "%2F",
               "ünï cödé/画像", "id with spaces", "x" * 300, "new\nline", "tab\tid",
               "nul\x00id", "C:\\windows\\id", "~", "-", "overlays")


def id_cases(folder: Path) -> list[Case]:
    """Hostile ids (one file), and ids several rows share (with the expected renames)."""
    target = folder / "id target.png"
    target.write_bytes(_png(_base()))
    a, b, c = (folder / f"dup {n}.png" for n in "abc")
    for p in (a, b, c):
        p.write_bytes(_png(_base(30 + len(p.name), 20)))
    size_of = {str(p): (30 + len(p.name), 20) for p in (a, b, c)}
    cases = [Case(f"hostile {i}", str(target), image_id, size=(30, 20))
             for i, image_id in enumerate(HOSTILE_IDS)]
    # shared ids: the same id for two files, and for the same file twice
    cases += [Case("dup 1", str(a), "dup", size=size_of[str(a)]),
              Case("dup 2", str(b), "dup", size=size_of[str(b)]),
              Case("dup 3", str(a), "dup", size=size_of[str(a)]),
              # an input id equal to what a rename produces: renamed again
              Case("dup 4", str(b), renamed_image_id("dup", str(a)), size=size_of[str(b)]),
              # no id: the path's hash, shared by two rows of the same file
              Case("no id 1", str(c), None, size=size_of[str(c)]),
              Case("no id 2", str(c), None, size=size_of[str(c)]),
              # "" twice: an explicit empty id, and a row with neither id nor path
              Case("empty id", str(c), "", size=size_of[str(c)]),
              Case("no id no path", None, None, "InvalidImageError", fragment="path")]
    return cases


def expected_ids(cases: list[Case]) -> dict[str, str]:
    """tag -> image_id after the job's rule (docs/reliability.md), computed independently."""
    ids = [c.image_id if c.image_id is not None
           else (image_id_for_path(c.path) if c.path is not None else "") for c in cases]
    for _ in range(4):
        counts = collections.Counter(ids)
        if max(counts.values()) == 1:
            break
        groups = collections.defaultdict(list)
        for i, c in enumerate(cases):
            if counts[ids[i]] > 1:
                groups[(ids[i], c.path)].append(i)
        new = list(ids)
        for (image_id, path), rows in groups.items():
            for k, i in enumerate(sorted(rows, key=lambda i: cases[i].tag), start=1):
                new[i] = renamed_image_id(image_id, path, k)
        ids = new
    assert len(set(ids)) == len(ids)
    return {c.tag: image_id for c, image_id in zip(cases, ids)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[Case]]:
    folder = tmp_path_factory.mktemp("corpus")
    cases = format_cases(folder) + special_cases(folder) + id_cases(folder)
    assert len({c.tag for c in cases}) == len(cases)
    return folder, cases


def test_bad_inputs_every_row_accounted_for_and_nothing_escapes(spark, tiny_model, corpus,
                                                               tmp_path, tmp_path_factory):
    folder, cases = corpus
    input_uri = write_input(tmp_path / "input.parquet", [
        {"path": c.path, "image_id": c.image_id, "label": c.tag} for c in cases])
    root = tmp_path / "out"
    top = tmp_path_factory.getbasetemp()
    before = _tree(top, exclude=root)

    started = time.perf_counter()
    summary = _run(spark, input_uri, root, tiny_model, run_id="corpus", partitions=4)
    seconds = time.perf_counter() - started

    # nothing outside the output root changed, however hostile the ids
    assert _tree(top, exclude=root) == before
    assert sorted(p.name for p in root.iterdir()) == ["explanations", "features", "images",
                                                      "overlays", "runs"]
    images = _table(root, "images", "corpus")
    # one row per input row, distinct ids, every row found again by its tag
    assert len(images) == len(cases) and images.image_id.is_unique
    assert sorted(images.expected_label) == sorted(c.tag for c in cases)
    rows = images.set_index("expected_label")
    ids = expected_ids(cases)
    problems = []
    for c in cases:
        row = rows.loc[c.tag]
        got = "ok" if row.status == "ok" else row.error_class
        if got != c.expect:
            problems.append(f"{c.tag}: expected {c.expect}, got {got}: {row.error_message}")
            continue
        if row.image_id != ids[c.tag]:
            problems.append(f"{c.tag}: image_id {row.image_id!r}, expected {ids[c.tag]!r}")
        if c.expect == "ok" and (row.width, row.height) != c.size:
            problems.append(f"{c.tag}: size {(row.width, row.height)}, expected {c.size}")
        if c.expect != "ok" and c.fragment not in row.error_message:
            problems.append(f"{c.tag}: {c.fragment!r} not in {row.error_message!r}")
    assert not problems, "\n".join(problems)

    ok = images[images.status == "ok"]
    errors = images[images.status == "error"]
    # SLIC found one region in the stripes: explained on a 3 x 3 grid instead
    assert rows.loc["grey 2-bit.png"].n_superpixels == 9
    assert summary["segmentation_fallbacks"] >= 1
    # every error: a documented class and a message saying what was expected
    assert set(errors.error_class) <= STABLE_CLASSES
    assert errors.error_message.str.match(r"^(Expected|Could not) ").all(), \
        errors.error_message[~errors.error_message.str.match(r"^(Expected|Could not) ")]
    assert ok.error_class.isna().all() and errors.top_label.isna().all()

    explanations = _table(root, "explanations", "corpus")
    features = _table(root, "features", "corpus")
    assert set(explanations.image_id) == set(ok.image_id)
    assert (explanations.groupby("image_id").size() == 2).all()
    assert not explanations.duplicated(["image_id", "label"]).any()
    assert not features.duplicated(["image_id", "label", "feature"]).any()
    per_image = features.groupby("image_id").size()
    assert (per_image == 2 * ok.set_index("image_id").n_superpixels[per_image.index]).all()

    # overlays: one folder per explained image, directly under the run, nothing else
    overlay_root = root / "overlays" / "run_id=corpus"
    folders = {p.name for p in overlay_root.iterdir()}
    assert folders == {safe_key(i) for i in ok.image_id}
    assert all(p.is_dir() and len(list(p.iterdir())) == 3 for p in overlay_root.iterdir())
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    for uri in explanations.overlay_uri:
        assert Path(uri).parent.parent == overlay_root and Path(uri).exists()

    expected_errors = collections.Counter(c.expect for c in cases if c.expect != "ok")
    assert summary["images"] == {"rows": len(cases), "ok": len(ok), "error": len(errors),
                                 "errors_by_class": dict(sorted(expected_errors.items())),
                                 "explained": len(cases), "reused": 0, "resumed": 0}
    # 3 ids shared in the input ("dup", "" and a path's hash); 8 rows renamed, one twice
    start = {c.tag: expected_ids([c])[c.tag] for c in cases}
    renamed = sorted(t for t in ids if ids[t] != start[t])
    assert renamed == ["dup 1", "dup 2", "dup 3", "dup 4", "empty id", "no id 1", "no id 2",
                       "no id no path"]
    assert summary["duplicate_ids"]["ids"] == 3
    assert summary["duplicate_ids"]["rows"] == len(renamed)
    assert sorted(e["renamed_to"] for e in summary["duplicate_ids"]["examples"]) == \
        sorted(ids[t] for t in renamed)
    formats = sorted({c.tag.split(":")[1] for c in cases if c.tag.startswith("fmt:")})
    print(f"\ncorpus: {len(cases)} rows in ({len([c for c in cases if c.tag.startswith('fmt:')])}"
          f" format x mode files over {len(formats)} formats: {', '.join(formats)}), "
          f"{len(images)} images rows out, {len(ok)} ok, errors by class "
          f"{dict(sorted(expected_errors.items()))}, {len(renamed)} rows renamed, "
          f"{summary['segmentation_fallbacks']} grid fallback(s); "
          f"{len(explanations)} explanation rows, {len(features)} feature rows; "
          f"job {seconds:.0f}s")


# --------------------------------------------------------------------------
# the per-image time limit inside one explanation, no Spark (point 4)
# --------------------------------------------------------------------------

def _slow_classifier(model_path: str, delay: float):
    """The tiny model, sleeping ``delay`` seconds in every model batch (a stuck image)."""
    import keras

    from lime_spark.models import Classifier

    class SlowClassifier(Classifier):
        def predict_design(self, *args, **kwargs):
            time.sleep(delay)
            return super().predict_design(*args, **kwargs)

        def predict_rows(self, *args, **kwargs):
            time.sleep(delay)
            return super().predict_rows(*args, **kwargs)

    return SlowClassifier(keras.saving.load_model(model_path), batch_size=32, name="slow")


def test_image_timeout_stops_between_model_batches(tiny_model, tmp_path):
    from lime_spark import ImageExplainer
    from lime_spark.batch import BatchSettings, ImageRecord, explain_record

    path = tmp_path / "photo.png"
    path.write_bytes(_png(_photo(96, 64)))
    explainer = ImageExplainer(n_superpixels=8, n_samples=256, batch_size=32)   # 8 batches

    def run(classifier, timeout, **settings):
        return explain_record(
            ImageRecord("photo", str(path)), classifier=classifier, explainer=explainer,
            settings=BatchSettings(run_id="t", run_seed=0, output_root=str(tmp_path / "out"),
                                   top_labels=2, image_timeout=timeout, device_batch_size=32,
                                   **settings))

    slow = _slow_classifier(tiny_model, 0.25)
    row = run(slow, 0.6).image
    assert row["status"] == "error" and row["error_class"] == "ImageTimeoutError"
    assert "image_timeout=0.6s" in row["error_message"]
    assert "before stage 'model batch'" in row["error_message"]
    assert row["seconds"] < 8 * 0.25        # stopped before the last of the 8 batches
    assert not (tmp_path / "out").exists()  # an error row leaves no overlays
    assert ImageTimeoutError.__name__ == row["error_class"]

    # a limit that is not reached changes nothing, down to the last bit
    fast = _slow_classifier(tiny_model, 0.0)
    limited, unlimited = run(fast, 600.0, overlays=False), run(fast, None, overlays=False)
    assert limited.image["status"] == unlimited.image["status"] == "ok"
    assert [f["feature_weight"] for f in limited.features] == \
        [f["feature_weight"] for f in unlimited.features]


# --------------------------------------------------------------------------
# model shapes, end to end (point 5)
# --------------------------------------------------------------------------

def _shape_inputs(tmp_path: Path) -> str:
    folder = tmp_path / "images"
    folder.mkdir()
    rows = []
    for i, (w, h) in enumerate([(96, 64), (40, 120), (33, 33)]):
        (folder / f"{i}.png").write_bytes(_png(_photo(w, h, seed=i)))
        rows.append({"path": str(folder / f"{i}.png"), "image_id": f"img {i}"})
    (folder / "gray.png").write_bytes(_save(Image.fromarray(_photo(50, 40)).convert("L"), "PNG"))
    rows.append({"path": str(folder / "gray.png"), "image_id": "gray"})
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    rows.append({"path": str(folder / "broken.jpg"), "image_id": "broken"})
    return write_input(tmp_path / "input.parquet", rows)


SHAPES = {
    # name: (model arguments, job options, number of classes)
    "binary sigmoid": (dict(outputs=1, activation="sigmoid"), dict(labels=["no", "yes"]), 2),
    "grayscale input": (dict(input_shape=(32, 32, 1)), {}, 3),
    "non-square input": (dict(input_shape=(24, 40, 3)), {}, 3),
    "open input size": (dict(input_shape=(None, None, 3)),
                        dict(model_args={"input_size": [40, 24]}), 3),
    "logits": (dict(outputs=4, activation=None, scale=40.0),
               dict(output_activation="softmax", top_labels=4), 4),
}


@pytest.mark.parametrize("kind", list(SHAPES))
def test_model_shapes_work_end_to_end(spark, kind, tmp_path):
    model_kwargs, options, n_classes = SHAPES[kind]
    model = make_model(tmp_path / "model.keras", **model_kwargs)
    root = tmp_path / "out"
    summary = _run(spark, _shape_inputs(tmp_path), root, model, run_id="shape", **options)
    images = _table(root, "images", "shape").set_index("image_id")
    assert summary["model"]["n_classes"] == n_classes
    assert images.status.to_dict() == {"img 0": "ok", "img 1": "ok", "img 2": "ok",
                                       "gray": "ok", "broken": "error"}
    assert images.loc["broken", "error_class"] == "InvalidImageError"
    explanations = _table(root, "explanations", "shape")
    top_labels = options.get("top_labels", 2)
    assert (explanations.groupby("image_id").size() == min(top_labels, n_classes)).all()
    assert explanations.label.between(0, n_classes - 1).all()
    assert explanations.label_prob.between(0, 1).all()
    if top_labels >= n_classes:      # every class explained: the probabilities add up to 1
        np.testing.assert_allclose(explanations.groupby("image_id").label_prob.sum(), 1,
                                   atol=1e-5)
    if kind == "binary sigmoid":
        assert set(explanations.label_name) == {"no", "yes"}
    features = _table(root, "features", "shape")
    sizes = images[images.status == "ok"][["width", "height"]]
    merged = features.join(sizes, on="image_id")
    assert (merged.bbox_x1 <= merged.width).all() and (merged.bbox_y1 <= merged.height).all()
    for uri in explanations.overlay_uri:
        with Image.open(uri) as im:
            image_id = explanations.set_index("overlay_uri").loc[uri, "image_id"]
            width, height = sizes.loc[image_id]
            assert im.size[0] == width and im.size[1] > height        # + caption strip


BAD_MODELS = {
    "logits without --output-activation": (
        dict(outputs=3, activation=None, scale=40.0), {}, ClassifierOutputError,
        "--output-activation softmax"),
    "open input size without input_size": (
        dict(input_shape=(None, None, 3)), {}, ConfigurationError, "input_size"),
    "two input channels": (dict(input_shape=(32, 32, 2)), {}, ModelLoadError, "channels"),
    "labels that do not match": (dict(outputs=1, activation="sigmoid"),
                                 dict(labels=["a", "b", "c"]), ConfigurationError, "label names"),
}


@pytest.mark.parametrize("kind", list(BAD_MODELS))
def test_model_shapes_that_cannot_work_fail_before_any_image(spark, kind, tmp_path):
    model_kwargs, options, error, fragment = BAD_MODELS[kind]
    model = make_model(tmp_path / "model.keras", **model_kwargs)
    root = tmp_path / "out"
    started = time.perf_counter()
    with pytest.raises(error, match=fragment.replace("-", "\\-")) as info:
        _run(spark, _shape_inputs(tmp_path), root, model, run_id="bad", **options)
    assert "\n" not in str(info.value)
    assert not [p for p in root.rglob("*") if p.is_file()]     # no image was processed
    assert time.perf_counter() - started < 60


# --------------------------------------------------------------------------
# a Python worker killed mid-partition (point 2)
# --------------------------------------------------------------------------

def _retry_inputs(tmp_path: Path) -> str:
    folder = tmp_path / "images"
    folder.mkdir()
    rows = []
    for i in range(10):
        data = _png(_photo(48 + 8 * i, 40, seed=i)) if i % 2 else \
            _save(Image.fromarray(_photo(64, 48 + 4 * i, seed=i)), "JPEG", quality=90)
        path = folder / f"photo {i}.{'png' if i % 2 else 'jpg'}"
        path.write_bytes(data)
        rows.append({"path": str(path), "image_id": f"photos/{i}"})
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    rows += [{"path": str(folder / "broken.jpg"), "image_id": "broken"},
             {"path": str(folder / "gone.jpg"), "image_id": "gone"}]
    return write_input(tmp_path / "input.parquet", rows)


def _cli_options(input_uri: str, root: Path, model: str, run_id: str) -> list[str]:
    return ["--input", input_uri, "--output", str(root), "--model", model,
            "--preprocess", "none", "--num-samples", "32", "--batch-size", "32",
            "--n-superpixels", "8", "--top-labels", "2", "--report", "false",
            "--run-id", run_id]


AUTO = {"n_samples": "auto", "min_samples": 32, "max_samples": 96}
"""n_samples=auto (issue 12): how many samples an image takes must survive a retry too."""


def test_killed_worker_is_retried_and_output_equals_a_clean_run(spark, tiny_model, tmp_path):
    input_uri = _retry_inputs(tmp_path)
    root = tmp_path / "out"
    clean = _run(spark, input_uri, root, tiny_model, run_id="clean", partitions=2, **AUTO)

    # local[2,4]: 2 cores, a task may fail 4 times; 2 rows per Arrow batch, so the
    # worker exits after partition 1 yielded its first batch and wrote its overlays
    fail_dir = tmp_path / "fail-once"
    fail_dir.mkdir()
    started = time.perf_counter()
    proc = _lime_spark(
        ["--master", "local[2,4]", "--conf", "spark.ui.enabled=false",
         "--conf", "spark.ui.showConsoleProgress=false",
         "--conf", "spark.sql.execution.arrow.maxRecordsPerBatch=2", "--partitions", "2",
         *_cli_options(input_uri, root, tiny_model, "retry"), "--reuse", "none",
         *(f"--{k.replace('_', '-')}={v}" for k, v in AUTO.items())],
        env=_subprocess_env(LIME_SPARK_FAIL_ONCE=str(fail_dir)), cwd=tmp_path)
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    marker = json.loads((fail_dir / "partition-1.failed").read_text())
    assert marker["partition"] == 1 and marker["attempt"] == 0
    assert "fault injection" in proc.stderr
    assert "Lost task 1.0 in stage" in proc.stderr               # Spark saw the crash ...
    assert "partition 1 (attempt 1" in proc.stderr               # ... and the retry finished
    retry = json.loads((root / "runs" / "run_id=retry" / "summary.json").read_text())
    assert retry["images"] == clean["images"] == {
        "rows": 12, "ok": 10, "error": 2,
        "errors_by_class": {"InvalidImageError": 1, "StorageError": 1},
        "explained": 12, "reused": 0, "resumed": 0}
    assert retry["table_rows"] == clean["table_rows"]

    # the same rows, feature weights and overlays as the clean run, nothing twice
    keys = {"images": ["image_id"], "explanations": ["image_id", "label"],
            "features": ["image_id", "label", "feature"]}
    for name, key in keys.items():
        runs = {}
        for run_id in ("clean", "retry"):
            frame = _table(root, name, run_id).sort_values(key).reset_index(drop=True)
            assert not frame.duplicated(key).any(), (name, run_id)
            if name == "images":
                frame = frame.drop(columns="seconds")
            if name == "explanations":
                frame["overlay_uri"] = frame.overlay_uri.str.replace(f"run_id={run_id}", "R")
            runs[run_id] = frame
        assert runs["clean"].equals(runs["retry"]), name
    overlays = _overlay_files(root, "retry")
    assert overlays == _overlay_files(root, "clean")              # names and bytes
    ok_ids = _table(root, "images", "retry").query("status == 'ok'").image_id
    assert {name.split("/")[0] for name in overlays} == {safe_key(i) for i in ok_ids}
    assert len(overlays) == 10 * 3 and not [n for n in overlays if n.endswith(".tmp")]
    print(f"\nkilled worker: 12 rows in, 12 images rows out (10 ok, 2 errors) in both runs; "
          f"retried run {seconds:.0f}s; identical tables and {len(overlays)} overlay files")


# --------------------------------------------------------------------------
# storage faults, and a stuck read against --image-timeout (points 3 and 4)
# --------------------------------------------------------------------------

class FaultProxy:
    """An HTTP proxy in front of the loopback S3 server that injects S3 errors by key.

    - ``GET`` of an object whose key contains ``fail<N>``: ``503
      ServiceUnavailable`` for the first N requests, then the object;
    - ``HEAD``/``GET`` of a key containing ``forbidden``: ``403 AccessDenied``.

    Listings and everything else pass through unchanged.
    """

    def __init__(self, upstream: str):
        import http.client
        import re
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        upstream_port = urlsplit(upstream).port
        counts: collections.Counter = collections.Counter()
        lock = threading.Lock()
        self.requests = counts

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):     # quiet
                pass

            def _fault(self) -> tuple[int, str] | None:
                url = urlsplit(self.path)
                if url.query and self.command == "GET":          # a listing
                    return None
                key = url.path
                if "forbidden" in key and self.command in ("GET", "HEAD"):
                    return 403, "AccessDenied"
                match = re.search(r"fail(\d+)", key)
                if match and self.command == "GET":
                    with lock:
                        counts[key] += 1
                        if counts[key] <= int(match.group(1)):
                            return 503, "ServiceUnavailable"
                return None

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = self._fault()
                if fault is not None:
                    status, code = fault
                    data = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>'
                            + code.encode() + b"</Code><Message>injected by the test proxy"
                            b"</Message></Error>")
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", "0" if self.command == "HEAD"
                                     else str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "keep-alive")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() in ("transfer-encoding", "connection") or (
                            k.lower() == "content-length" and self.command != "HEAD"):
                        continue
                    self.send_header(k, v)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_storage_faults_are_retried_counted_or_reported(s3_server, s3_bucket, tiny_model,
                                                        tmp_path):
    # flaky:// files (tests/spark/flaky_fs.py) and S3 objects behind the fault proxy
    folder = tmp_path / "flaky"
    folder.mkdir()
    state = tmp_path / "flaky-state"
    state.mkdir()
    picture = _png(_photo(64, 48))
    flaky = {"plain.png": "ok", "once-fail1.png": "ok", "twice-fail2.png": "ok",
             "always-broken.png": "StorageError", "denied.png": "StorageError",
             "stuck-slow12.png": "ImageTimeoutError"}
    for name in flaky:
        (folder / name).write_bytes(picture)
    fs = s3_server.filesystem()
    for key in ("ok.png", "throttled-fail2.png", "forbidden.png", "folder/inside.png"):
        fs.pipe(f"{s3_bucket}/{key}", picture)
    fs.pipe(f"{s3_bucket}/page.jpg", b"<html><body>Service Unavailable</body></html>")
    s3 = {"ok.png": "ok", "throttled-fail2.png": "ok", "forbidden.png": "StorageError",
          "missing.png": "StorageError", "folder": "StorageError",
          "page.jpg": "InvalidImageError"}
    rows = [{"path": f"flaky://{folder / n}", "image_id": f"flaky/{n}"} for n in flaky]
    rows += [{"path": f"s3://{s3_bucket}/{k}", "image_id": f"s3/{k}"} for k in s3]
    input_uri = write_input(tmp_path / "input.parquet", rows)
    expect = {**{f"flaky/{n}": v for n, v in flaky.items()},
              **{f"s3/{k}": v for k, v in s3.items()}}

    proxy = FaultProxy(s3_server.endpoint_url)
    try:
        env = _subprocess_env(
            PYTHONPATH=os.pathsep.join([str(flaky_fs.write_entry_point(tmp_path / "plugins")),
                                        str(REPO)]),
            FLAKY_FS_STATE=str(state),
            # the SDK's own retries off, so every injected fault reaches lime-spark's
            AWS_MAX_ATTEMPTS="1", AWS_RETRY_MODE="standard")
        env.update({k: v for k, v in s3_server.env().items()})
        env["AWS_ENDPOINT_URL"] = proxy.url
        started = time.perf_counter()
        proc = _lime_spark(["--master", "local[2]", "--conf", "spark.ui.enabled=false",
                            "--conf", "spark.ui.showConsoleProgress=false",
                            "--partitions", "2", "--image-timeout", "6",
                            *_cli_options(input_uri, tmp_path / "out", tiny_model, "faults")],
                           env=env, cwd=tmp_path)
        seconds = time.perf_counter() - started
    finally:
        proxy.close()
    assert proc.returncode == 0, proc.stderr[-4000:]
    images = _table(tmp_path / "out", "images", "faults").set_index("image_id")
    got = {i: ("ok" if r.status == "ok" else r.error_class) for i, r in images.iterrows()}
    assert got == expect, images.error_message.to_dict()
    message = images.error_message
    assert "after 4 attempt(s)" in message["flaky/always-broken.png"]
    assert "permission denied" in message["flaky/denied.png"]
    assert "permission denied" in message["s3/forbidden.png"]
    assert "not found" in message["s3/missing.png"]
    assert "directory" in message["s3/folder"]
    assert "before stage 'decode'" in message["flaky/stuck-slow12.png"]
    assert images.loc["flaky/stuck-slow12.png", "seconds"] < 12 + 6

    # retries: counted per run, with exponential backoff between the attempts
    summary = json.loads((tmp_path / "out" / "runs" / "run_id=faults" / "summary.json")
                         .read_text())
    assert summary["storage"]["read_retries"] == 1 + 2 + 3 + 2
    assert proxy.requests[f"/{s3_bucket}/throttled-fail2.png"] == 3
    opens = {n: flaky_fs.open_times(state, n) for n in flaky}
    assert {n: len(t) for n, t in opens.items()} == {
        "plain.png": 1, "once-fail1.png": 2, "twice-fail2.png": 3, "always-broken.png": 4,
        "denied.png": 1, "stuck-slow12.png": 1}
    gaps = np.diff(opens["always-broken.png"])
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8, gaps   # 0.2 s x 2^k x [1, 2)
    for secret in s3_server.secrets:
        assert secret not in proc.stderr and secret not in message.str.cat()
    print(f"\nstorage faults: {len(rows)} rows in, {len(images)} images rows out, errors "
          f"{summary['images']['errors_by_class']}, read_retries "
          f"{summary['storage']['read_retries']}, backoff gaps {np.round(gaps, 2).tolist()} s; "
          f"run {seconds:.0f}s")


# --------------------------------------------------------------------------
# memory: a 6000 x 4000 photo, 1000 samples, the real MobileNet (point 4)
# --------------------------------------------------------------------------

_RSS_SCRIPT = """
import json, sys
from lime_spark.cli import run_explain
from lime_spark.config import load_config
from lime_spark.spark.session import build_session

small, large, output, weights = sys.argv[1:5]
spark = build_session(app_name="lime-spark-rss", master="local[1]",
                      conf={"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"})
out = {}
for run_id, input_uri in (("small", small), ("large", large)):
    config = load_config(overrides={"input": input_uri, "output": output, "model": "mobilenet",
                                    "weights": weights, "label_names": "imagenet", "run_id": run_id,
                                    "n_samples": 1000, "report": False}).resolved()
    out[run_id] = run_explain(config, spark=spark)
spark.stop()
print("RESULT " + json.dumps(out))
"""

PEAK_RSS_LIMIT_MB = 2500          # the Python worker, model and TensorFlow included
LARGE_PHOTO_EXTRA_MB = 600        # above the same worker's peak for a 640 x 427 photo


def test_large_photo_peak_rss_is_bounded(mobilenet_path, tmp_path):
    """One Python worker (local[1]) explains a 640 x 427 photo, then a 6000 x 4000 one.

    ``summary.json`` reports the worker's peak RSS (``ru_maxrss``, read by the
    worker after every image): the first run gives the baseline (TensorFlow,
    the model, compiled batches of 128 images at 128 x 128), the second what
    the large photo adds (its encoded bytes, the decoded 72 MB RGB array, the
    resize, the overlays drawn on a 1024 px copy).
    """
    inputs = {}
    for name, (w, h) in {"small": (640, 427), "large": (6000, 4000)}.items():
        path = tmp_path / f"{name}.jpg"
        Image.fromarray(_photo(w, h)).save(path, format="JPEG", quality=90)
        inputs[name] = write_input(tmp_path / f"{name}.parquet", [{"path": str(path)}])
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, inputs["small"], inputs["large"],
         str(tmp_path / "out"), str(mobilenet_path)],
        env=_subprocess_env(), cwd=tmp_path, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    small, large = result["small"], result["large"]
    assert small["images"]["ok"] == large["images"]["ok"] == 1
    assert small["workers"]["python_workers"] == large["workers"]["python_workers"] == 1
    images = _table(tmp_path / "out", "images", "large")
    assert (images.width[0], images.height[0], images.n_samples[0]) == (6000, 4000, 1000)
    base, peak = small["workers"]["peak_rss_mb"], large["workers"]["peak_rss_mb"]
    print(f"\npeak RSS of the Python worker: {base:.0f} MB after a 640x427 photo, {peak:.0f} MB "
          f"after a 6000x4000 photo (+{peak - base:.0f} MB), 1000 samples, MobileNet 128 px; "
          f"large photo {images.seconds[0]:.1f}s, whole test {seconds:.0f}s")
    assert peak <= PEAK_RSS_LIMIT_MB
    assert peak - base <= LARGE_PHOTO_EXTRA_MB


def test_partial_overlay_writes_of_killed_attempts_are_removed(tmp_path):
    from lime_spark.publish import remove_partial_writes

    folder = tmp_path / "overlays" / "run_id=r" / "img"
    folder.mkdir(parents=True)
    (folder / "0.png").write_bytes(b"png")
    (folder / ".1.png.5f2b.tmp").write_bytes(b"half a png")   # write_bytes' temporary name
    assert remove_partial_writes(str(tmp_path / "overlays")) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["0.png"]
    assert remove_partial_writes(str(tmp_path / "missing")) == 0
