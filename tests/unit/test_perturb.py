from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lime_spark.exceptions import ConfigurationError
from lime_spark.perturb import iter_perturbed, make_fill, perturb_batch, perturb_tensor


@st.composite
def _cases(draw):
    h = draw(st.integers(2, 12))
    w = draw(st.integers(2, 12))
    k = draw(st.integers(1, 6))
    b = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([np.uint8, np.float32]))
    if dtype == np.uint8:
        pix = arrays(np.uint8, (h, w, 3))
    else:
        pix = arrays(np.float32, (h, w, 3), elements=st.floats(0, 255, width=32))
    image = draw(pix)
    fill = draw(pix)
    segments = draw(arrays(np.int32, (h, w), elements=st.integers(0, k - 1)))
    design = draw(arrays(np.uint8, (b, k), elements=st.integers(0, 1)))
    return image, fill, segments, design


@settings(max_examples=200, deadline=None)
@given(_cases())
def test_perturbed_equals_image_where_kept_and_fill_where_hidden(case):
    image, fill, segments, design = case
    out = perturb_batch(image, fill, segments, design)
    assert out.shape == (design.shape[0], *image.shape) and out.dtype == image.dtype
    for i, row in enumerate(design):
        keep = row[segments].astype(bool)
        np.testing.assert_array_equal(out[i][keep], image[keep])
        np.testing.assert_array_equal(out[i][~keep], fill[~keep])


@settings(max_examples=30, deadline=None)
@given(_cases())
def test_backend_ops_agree_with_numpy(case):
    image, fill, segments, design = case
    expected = perturb_batch(image.astype(np.float32), fill.astype(np.float32), segments, design)
    got = np.asarray(perturb_tensor(design.astype(np.float32), segments,
                                    image.astype(np.float32), fill.astype(np.float32)))
    np.testing.assert_array_equal(got, expected)


def test_chunks_cover_every_row_in_order():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    fill = np.zeros_like(image)
    segments = (np.arange(16)[:, None] // 4 * 4 + np.arange(16)[None, :] // 4).astype(np.int32)
    design = rng.integers(0, 2, (23, 16), dtype=np.uint8)
    batches = list(iter_perturbed(image, fill, segments, design, 5))
    assert [b.shape[0] for b in batches] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.concatenate(batches), perturb_batch(image, fill, segments, design))


def _peak_bytes(n_samples, batch_size):
    image = np.full((64, 64, 3), 200, np.uint8)
    fill = np.zeros_like(image)
    segments = (np.arange(64)[:, None] // 8 * 8 + np.arange(64)[None, :] // 8).astype(np.int32)
    design = np.random.default_rng(0).integers(0, 2, (n_samples, 64), dtype=np.uint8)
    tracemalloc.start()
    tracemalloc.reset_peak()
    total = 0
    for batch in iter_perturbed(image, fill, segments, design, batch_size):
        total += int(batch[:, 0, 0, 0].sum())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_peak_memory_is_bounded_by_the_batch_not_n_samples():
    batch_size = 32
    batch_bytes = batch_size * 64 * 64 * 3
    small = _peak_bytes(256, batch_size)
    large = _peak_bytes(8192, batch_size)   # all images at once would be 100 MB
    assert large < 8 * batch_bytes, large
    assert large < 1.5 * small + 64 * 1024


def test_fills():
    image = np.zeros((4, 4, 3), np.uint8)
    image[:, :2] = [10, 20, 31]
    image[:, 2:] = [200, 100, 50]
    image[0, 0] = [12, 20, 30]
    segments = np.zeros((4, 4), np.int32)
    segments[:, 2:] = 1
    mean = make_fill(image, segments, "mean")
    # lime writes float means into a uint8 copy: truncation
    assert mean[1, 0].tolist() == [10, 20, 30] and mean[0, 3].tolist() == [200, 100, 50]
    assert make_fill(image, segments, "grey")[2, 2].tolist() == [128, 128, 128]
    assert make_fill(image, segments, 0).max() == 0
    assert make_fill(image, segments, (1, 2, 3))[3, 3].tolist() == [1, 2, 3]
    median = make_fill(image, segments, "median")
    assert median[0, 0].tolist() == [106, 60, 40]  # (12 + 200) / 2 in red
    blur = make_fill(image.astype(np.float32), segments, "blur", sigma=1.0)
    assert blur.dtype == np.float32 and 10 < blur[1, 1, 0] < 200


def test_bad_fill_names_the_value():
    image = np.zeros((4, 4, 3), np.uint8)
    segments = np.zeros((4, 4), np.int32)
    with pytest.raises(ConfigurationError, match="fill='nope'"):
        make_fill(image, segments, "nope")
    with pytest.raises(ConfigurationError, match="0..255"):
        make_fill(image, segments, (300, 0, 0))
