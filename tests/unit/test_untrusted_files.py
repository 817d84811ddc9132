"""Untrusted input files (issue 9, findings 1-4): what a hostile or broken input list can do.

- An EPS file must never start Ghostscript, neither in the job's decode nor in
  the report's thumbnails; no Pillow plugin outside ``DECODED_FORMATS`` parses
  the bytes (a fake ``gs`` on ``PATH`` records any call).
- A read is bounded: ``/dev/zero``, a FIFO and a 20 GB (sparse) file are refused
  from ``stat``, before any byte is read. These run in a child process with an
  address-space limit and an alarm, so that a regression fails the test instead
  of exhausting memory or blocking forever.
- A decode is bounded by its memory estimate (``max_decode_bytes``), and the
  report's threads by their share of ``memory_budget``.
- Error messages give the length and kind of bytes that are no image, never the
  bytes (a secret file listed as an image must not end up in the images table).
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lime_spark.exceptions import (
    ConfigurationError,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedImageError,
)
from lime_spark.images import (
    DECODED_FORMATS,
    DEFAULT_MAX_DECODE_BYTES,
    decode_image,
    load_image,
)
from lime_spark.report import write_report
from lime_spark.storage import DEFAULT_MAX_BYTES, read_bytes, remove_tree, write_bytes
from tests.unit.test_report import make_run, page_data

REPO = Path(__file__).resolve().parents[2]


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _eps() -> bytes:
    return _encode(Image.new("RGB", (8, 6), (200, 30, 30)), "EPS")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def big_png(width: int, height: int, colour_type: int = 2) -> bytes:
    """An 8-bit PNG (grey 0, RGB 2, RGBA 6) of a repeated gradient row, compressed in blocks."""
    channels = {0: 1, 2: 3, 6: 4}[colour_type]
    row = b"\x00" + bytes((x * 7) % 256 for x in range(width * channels))
    compressor = zlib.compressobj(9)
    block = row * 100
    body = b"".join(compressor.compress(block) for _ in range(height // 100))
    body += compressor.compress(row * (height % 100)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body)
            + _png_chunk(b"IEND", b""))


# --------------------------------------------------------------------------
# 1. Ghostscript and the format allow-list
# --------------------------------------------------------------------------

@pytest.fixture
def fake_gs(tmp_path, monkeypatch):
    """A ``gs`` first on PATH that records every call; Pillow's cached lookup is reset."""
    from PIL import EpsImagePlugin

    folder = tmp_path / "fake-bin"
    folder.mkdir()
    record = tmp_path / "gs-calls.txt"
    gs = folder / "gs"
    gs.write_text(f'#!/bin/sh\necho "gs $*" >> "{record}"\nexit 1\n')
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)    # look gs up again
    monkeypatch.setattr(EpsImagePlugin, "gs_windows_binary", None)
    return record


def test_fake_gs_is_what_pillow_would_run(fake_gs):
    # the fixture's own check: opening an EPS the ordinary way does reach our gs
    with Image.open(io.BytesIO(_eps())) as im, pytest.raises(Exception):
        im.load()
    assert fake_gs.exists()


def test_eps_is_refused_without_starting_ghostscript(fake_gs, tmp_path):
    with pytest.raises(UnsupportedImageError, match="Ghostscript") as info:
        decode_image(_eps())
    assert "EPS" in str(info.value) and "convert the file" in str(info.value)
    path = tmp_path / "photo.png"              # the name does not matter, the bytes do
    path.write_bytes(_eps())
    with pytest.raises(UnsupportedImageError, match="EPS"):
        load_image(path)
    assert not fake_gs.exists(), fake_gs.read_text()


def test_report_never_starts_ghostscript(fake_gs, tmp_path):
    root = tmp_path / "out"
    make_run(str(root), "r", 4, errors=2, hostile=False)
    inputs = root / "_inputs"
    # row 3 failed in the job (InvalidImageError); row 0 is "ok" but its original
    # was replaced by an EPS since: neither may reach Ghostscript
    (inputs / "3.png").write_bytes(_eps())
    (inputs / "0.png").write_bytes(_eps())
    data = page_data(Path(write_report(str(root), "r")).read_text("utf-8"))
    assert not fake_gs.exists(), fake_gs.read_text()
    by_id = {r["id"]: r for r in data["images"]}
    assert by_id["img-00003"]["thumbs"] == []                 # an error row is never read
    shown = by_id["img-00000"]["thumbs"]
    assert "original" not in shown and "segments" in shown    # placeholder, overlays shown
    assert "original" in by_id["img-00001"]["thumbs"]


def _psd(width: int = 4, height: int = 3) -> bytes:
    """A minimal uncompressed 8-bit RGB Photoshop file, which Pillow's PSD plugin reads."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + bytes(3 * width * height)


def test_formats_outside_the_allow_list_are_never_parsed():
    data = _psd()
    with Image.open(io.BytesIO(data)) as im:      # Pillow itself reads it
        assert im.format == "PSD" and im.size == (4, 3)
    assert "PSD" not in DECODED_FORMATS and "EPS" not in DECODED_FORMATS
    with pytest.raises(UnsupportedImageError, match="signature of PSD") as info:
        decode_image(data)
    assert "JPEG, TIFF" in str(info.value)        # the message lists what is decoded


# --------------------------------------------------------------------------
# 2. Bounded reads
# --------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import json, resource, signal, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))   # a regression: MemoryError
    from lime_spark.images import load_image
    from lime_spark.storage import read_bytes

    class Blocked(BaseException):           # not an Exception: no retry loop catches it
        pass

    def alarm(signum, frame):
        raise Blocked("blocked for 10 s")

    signal.signal(signal.SIGALRM, alarm)
    results = {}
    for name, path in json.loads(sys.argv[1]).items():
        for read in (read_bytes, load_image):
            signal.alarm(10)                                       # a regression: blocks
            try:
                read(path)
                results[f"{name} {read.__name__}"] = ["ok", ""]
            except BaseException as exc:
                results[f"{name} {read.__name__}"] = [type(exc).__name__, str(exc)]
            finally:
                signal.alarm(0)
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def hostile_reads(tmp_path_factory):
    """read_bytes and load_image on /dev/zero, a FIFO and a 20 GB sparse file, in a child."""
    folder = tmp_path_factory.mktemp("hostile-files")
    fifo = folder / "photo from a pipe.jpg"
    os.mkfifo(fifo)
    sparse = folder / "twenty gigabytes.png"
    with open(sparse, "wb") as fh:
        fh.truncate(20 << 30)                      # no disk blocks, 20 GiB of zeros to a reader
    paths = {"dev_zero": "/dev/zero", "fifo": str(fifo), "sparse": str(sparse)}
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(paths)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("reader", ["read_bytes", "load_image"])
def test_dev_zero_is_refused_before_reading(hostile_reads, reader):
    error, message = hostile_reads[f"dev_zero {reader}"]
    assert error == "StorageError"
    assert message == ("Expected a regular file. Received: '/dev/zero', which is a character "
                       "device; devices, FIFOs and sockets are never read: list only image "
                       "files in the input")


@pytest.mark.parametrize("reader", ["read_bytes", "load_image"])
def test_fifo_is_refused_without_blocking(hostile_reads, reader):
    error, message = hostile_reads[f"fifo {reader}"]
    assert error == "StorageError", message
    assert "which is a FIFO (named pipe)" in message and "photo from a pipe.jpg" in message


@pytest.mark.parametrize("reader", ["read_bytes", "load_image"])
def test_twenty_gigabyte_file_is_refused_from_its_size(hostile_reads, reader):
    error, message = hostile_reads[f"sparse {reader}"]
    assert error == "ImageTooLargeError", message
    assert message.startswith("Expected a file of at most max_bytes=268435456 bytes (256.0 MiB). "
                              "Received: '")
    assert message.endswith("twenty gigabytes.png' of 21474836480 bytes (20480.0 MiB); raise "
                            "max_bytes (--max-bytes) if it is a genuine image")


def test_max_bytes_is_inclusive_and_checked(tmp_path):
    assert DEFAULT_MAX_BYTES == 256 << 20
    path = tmp_path / "a.bin"
    path.write_bytes(bytes(100))
    assert len(read_bytes(str(path), max_bytes=100)) == 100
    with pytest.raises(ImageTooLargeError, match="max_bytes=99 bytes") as info:
        read_bytes(str(path), max_bytes=99)
    assert isinstance(info.value, InvalidImageError)          # an image row's error class
    with pytest.raises(ConfigurationError, match="max_bytes"):
        read_bytes(str(path), max_bytes=0)
    with pytest.raises(ImageTooLargeError, match="of 100 bytes"):
        load_image(path, max_bytes=50)


def test_object_store_size_is_checked_first_and_reads_are_capped(monkeypatch):
    from fsspec.implementations.memory import MemoryFileSystem

    uri = "memory://lime-untrusted-reads/big.jpg"
    write_bytes(uri, bytes(1000))
    try:
        with pytest.raises(ImageTooLargeError, match="of 1000 bytes"):
            read_bytes(uri, max_bytes=999)
        # a store that does not tell the size: reading stops after max_bytes + 1 bytes
        real_info = MemoryFileSystem.info
        monkeypatch.setattr(MemoryFileSystem, "info", lambda self, path, **kw: {
            k: v for k, v in real_info(self, path, **kw).items() if k != "size"})
        with pytest.raises(ImageTooLargeError, match="did not tell its size; reading stopped "
                                                     "after 11 bytes"):
            read_bytes(uri, max_bytes=10)
        assert len(read_bytes(uri, max_bytes=1000)) == 1000
    finally:
        monkeypatch.undo()
        remove_tree("memory://lime-untrusted-reads")


# --------------------------------------------------------------------------
# 3. Memory per image
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def png_36mp() -> bytes:
    data = big_png(6000, 6000)
    assert len(data) < 500_000                    # 36 megapixels in a few hundred KB
    return data


def test_decode_budget_refuses_from_the_header(png_36mp):
    import time

    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as info:
        decode_image(png_36mp, max_decode_bytes=200 << 20)
    assert time.perf_counter() - started < 1.0    # header only: nothing was decoded
    message = str(info.value)
    assert message.startswith(
        "Expected an image that decodes within max_decode_bytes=209715200 bytes (200.0 MiB). "
        "Received: a PNG image of 6000x6000 pixels in mode RGB, whose decode needs about ")
    assert message.endswith("raise max_decode_bytes (--max-decode-bytes) if the workers have "
                            "the memory, or lower max_pixels to refuse such images from their "
                            "size")
    with pytest.raises(ConfigurationError, match="max_decode_bytes"):
        decode_image(png_36mp, max_decode_bytes=0)


_PEAK_CHILD = textwrap.dedent("""
    import io, json, sys
    from PIL import Image
    from lime_spark import images
    from lime_spark.report import thumbnails

    def status(key):
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(key + ":"))

    images.decode_image(open(sys.argv[2], "rb").read())       # plugins imported, caches warm
    data = open(sys.argv[1], "rb").read()
    with Image.open(io.BytesIO(data)) as im:
        estimate = images._decode_bytes(im, im.size, 1)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")                                          # VmHWM := VmRSS
    before = status("VmRSS")
    if sys.argv[3] == "thumbnail":                              # the report's path
        image = Image.open(io.BytesIO(thumbnails.thumbnail_jpeg(data, 192)))
        shape = [image.height, image.width]
    else:
        shape = list(images.decode_image(data).shape)
    print(json.dumps({"peak": status("VmHWM") - before, "estimate": estimate, "shape": shape}))
""")


def measure_decode_peak(png: Path, tiny: Path, kind: str = "decode") -> dict:
    """Peak resident memory a fresh process adds while decoding ``png`` (Linux only).

    ``kind``: ``"decode"`` (``decode_image``) or ``"thumbnail"`` (the report's 192-px JPEG).
    """
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _PEAK_CHILD, str(png), str(tiny), kind], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK),
                    reason="needs Linux /proc/self/clear_refs to reset the peak")
def test_decode_peak_stays_within_its_estimate(png_36mp, tmp_path):
    png = tmp_path / "36mp.png"
    png.write_bytes(png_36mp)
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(_encode(Image.new("RGB", (4, 4)), "PNG"))
    measured = measure_decode_peak(png, tiny)
    assert measured["shape"] == [6000, 6000, 3]
    # the budget is only a guard if the estimate is an upper bound of what decoding takes
    assert measured["peak"] <= measured["estimate"] <= DEFAULT_MAX_DECODE_BYTES, measured
    # Pillow's frame (4 bytes per pixel), the RGB output (3) and a strip: it was 9.5 bytes
    # per pixel before the conversion ran in strips
    assert measured["peak"] < 9 * 36e6, measured


def test_thumbnail_decode_is_reduced(png_36mp):
    # the report's path: box-averaged while converting, never a 36-megapixel RGB array
    small = decode_image(png_36mp, reduce_to=192, max_decode_bytes=200 << 20)   # full: 294 MB
    assert small.shape == (194, 194, 3)          # 6000 // 192 = 31: ceil(6000 / 31) = 194
    full = decode_image(big_png(600, 600))
    np.testing.assert_allclose(decode_image(big_png(600, 600), reduce_to=100)[10, 10],
                               full[60:66, 60:66].reshape(-1, 3).mean(axis=0), atol=1)


def test_report_threads_follow_the_memory_budget():
    from lime_spark.report import THREAD_BUDGET
    from lime_spark.report.thumbnails import thread_plan

    threads = min(16, 2 * (os.cpu_count() or 1), 8)             # 2 GiB // 256 MiB = 8
    assert thread_plan(2 << 30, None) == (threads, (2 << 30) // threads)
    assert thread_plan(300 << 20, None) == (1, 300 << 20)      # one thread: its share is all
    assert thread_plan(1 << 30, 3) == (3, (1 << 30) // 3)
    assert THREAD_BUDGET == 256 << 20


def test_report_makes_large_thumbnails_alone_within_the_budget(tmp_path):
    root = tmp_path / "out"
    make_run(str(root), "r", 3, errors=0, hostile=False)
    big = np.zeros((2000, 2000, 3), np.uint8)
    big[:, :, 0] = np.arange(2000, dtype=np.uint32)[None, :] % 256
    (root / "_inputs" / "0.png").write_bytes(_encode(Image.fromarray(big), "PNG"))

    def originals(memory_budget: int) -> set[str]:
        index = write_report(str(root), "r", workers=2, memory_budget=memory_budget)
        data = page_data(Path(index).read_text("utf-8"))
        return {r["id"] for r in data["images"] if "original" in r["thumbs"]}

    # ~60 MB to decode: more than a thread's share of 64 MiB, so it is made after the
    # others, alone; with 40 MiB in all it is not made at all, and the rest still is
    assert originals(64 << 20) == {"img-00000", "img-00001", "img-00002"}
    assert originals(40 << 20) == {"img-00001", "img-00002"}


# --------------------------------------------------------------------------
# 4. Error messages never quote a file's bytes
# --------------------------------------------------------------------------

SECRET_FILES = {
    "credentials.jpg": (b"[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                        b"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
                        "looks like text"),
    "id_ed25519.png": (b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUA"
                       b"AAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQ\n",
                       "looks like a PEM key or certificate"),
    "error.jpg": (b'{"token": "ghp_16C7e42F292c6912E7710c838347Ae178B4a"}', "looks like JSON text"),
    "page.jpg": (b"<html><body>session=8f14e45fceea167a5a36dedd4bea2543</body></html>",
                 "looks like HTML/XML text"),
    "binary.png": (bytes(range(7, 200)) * 3, "binary data without a known image signature"),
}


@pytest.mark.parametrize("name", sorted(SECRET_FILES))
def test_error_messages_describe_bytes_without_quoting_them(tmp_path, name):
    content, kind = SECRET_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidImageError) as info:
        load_image(path)
    message = str(info.value)
    assert message == (f"{path}: Expected bytes of an image format Pillow can identify. "
                       f"Received: {len(content)} bytes ({kind}), which is not an image file; "
                       "replace the file")
    # no 6 consecutive bytes of the file, in any form
    text = content.decode("latin-1")
    assert not [text[i:i + 6] for i in range(len(text) - 5)
                if text[i:i + 6] in message or repr(text[i:i + 6])[1:-1] in message]


if __name__ == "__main__":
    # docs/benchmarks.md: .venv/bin/python -m tests.unit.test_untrusted_files
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        tiny = Path(folder) / "tiny.png"
        tiny.write_bytes(_encode(Image.new("RGB", (4, 4)), "PNG"))
        print("| 6000x6000 PNG | file | peak RSS added by decode_image | estimate "
              "(max_decode_bytes check) | report thumbnail |\n|---|---|---|---|---|")
        for name, colour_type in (("RGB", 2), ("RGBA", 6), ("grey (L)", 0)):
            png = Path(folder) / f"{colour_type}.png"
            png.write_bytes(big_png(6000, 6000, colour_type))
            runs = [measure_decode_peak(png, tiny) for _ in range(3)]
            peak = sorted(run["peak"] for run in runs)[1]                # the median of 3
            thumb = sorted(measure_decode_peak(png, tiny, "thumbnail")["peak"]
                           for _ in range(3))[1]
            print(f"| {name} | {png.stat().st_size / 1e3:.0f} kB | {peak / 1e6:.0f} MB "
                  f"({peak / 36e6:.1f} B/pixel) | {runs[0]['estimate'] / 1e6:.0f} MB "
                  f"| {thumb / 1e6:.0f} MB |")
