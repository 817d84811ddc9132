from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from lime_spark.exceptions import (ConfigurationError, ImageTooSmallError, InvalidImageError,
                                   SegmentationError)
from lime_spark.images import resize_image
from lime_spark.segmentation import check_segments, relabel_segments, segment_image

IMAGE = resize_image(skimage.data.chelsea(), (128, 128))


def _is_consecutive(labels):
    ids = np.unique(labels)
    return labels.dtype == np.int32 and ids[0] == 0 and ids[-1] == ids.size - 1


@pytest.mark.parametrize("method", ["slic", "quickshift", "felzenszwalb", "grid"])
def test_every_segmenter_gives_consecutive_labels(method):
    labels = segment_image(IMAGE, method=method, random_state=0)
    assert labels.shape == IMAGE.shape[:2]
    assert _is_consecutive(labels)
    assert np.unique(labels).size >= 2


def test_slic_default_is_near_fifty_superpixels():
    n = np.unique(segment_image(IMAGE)).size
    assert 30 <= n <= 70


def test_slic_matches_r_lime_parameters():
    from skimage.segmentation import slic

    expected = slic(IMAGE, n_segments=50, compactness=20, max_num_iter=10,
                    start_label=0, channel_axis=-1)
    assert _is_consecutive(expected.astype(np.int32))
    np.testing.assert_array_equal(segment_image(IMAGE), expected)


def test_quickshift_matches_python_lime():
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    # lime's wrapper drops its random_seed silently; skimage then uses rng=42.
    lime_fn = SegmentationAlgorithm("quickshift", kernel_size=4, max_dist=200, ratio=0.2,
                                    random_seed=7)
    expected = lime_fn(IMAGE)
    assert _is_consecutive(expected.astype(np.int32))
    np.testing.assert_array_equal(segment_image(IMAGE, method="quickshift", random_state=42),
                                  expected)


def test_grid_has_requested_cells():
    labels = segment_image(IMAGE, method="grid", n_superpixels=16)
    assert np.unique(labels).size == 16
    assert labels[0, 0] == 0 and labels[-1, -1] == 15


def test_callable_segmenters_lime_style_and_shared_signature():
    lime_style = segment_image(IMAGE, method=lambda img: (np.arange(128)[:, None] // 64) * 7
                               + np.zeros((1, 128), int))
    assert np.unique(lime_style).tolist() == [0, 1]

    def shared(image, *, n_superpixels, random_state, offset=3):
        return np.arange(image.shape[1])[None, :].repeat(image.shape[0], 0) // 32 + offset

    labels = segment_image(IMAGE, method=shared, n_superpixels=4, offset=10)
    assert np.unique(labels).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("shared", [True, False])
def test_a_type_error_inside_a_callable_segmenter_is_reported_not_retried(shared):
    calls = []

    def lime_style(image):
        calls.append(image.shape)
        return len(7)   # the user's bug: a TypeError from inside the function

    def shared_signature(image, *, n_superpixels, random_state):
        return lime_style(image)

    with pytest.raises(TypeError, match="has no len") as info:
        segment_image(IMAGE, method=shared_signature if shared else lime_style)
    assert calls == [IMAGE.shape]
    note = " ".join(getattr(info.value, "__notes__", []))
    assert "does not retry" in note
    assert ("n_superpixels" in note) is shared


def test_callable_segmenter_conventions_are_checked_once():
    with pytest.raises(ConfigurationError, match=r"Unknown parameter\(s\) \['offset'\]"):
        segment_image(IMAGE, method=lambda image: image[..., 0] // 128, offset=3)
    with pytest.raises(ConfigurationError, match="accept fn\\(image\\)"):
        segment_image(IMAGE, method=lambda image, other: image[..., 0] // 128)


def test_relabel_orders_by_first_appearance():
    labels = np.array([[5, 5, 9], [2, 9, 2]])
    np.testing.assert_array_equal(relabel_segments(labels), [[0, 0, 1], [2, 1, 2]])


def test_unknown_method_and_parameter_are_errors():
    with pytest.raises(ConfigurationError, match="segmentation.*Received: segmentation='watershed'"):
        segment_image(IMAGE, method="watershed")
    with pytest.raises(ConfigurationError, match="kernel_size"):
        segment_image(IMAGE, method="slic", kernel_size=4)


def test_too_small_image():
    with pytest.raises(ImageTooSmallError, match="3x3"):
        segment_image(np.zeros((3, 3, 3), np.uint8))


def test_images_are_validated_by_to_rgb_array():
    with pytest.raises(InvalidImageError, match=r"shape=\(16, 16, 2\)"):
        segment_image(np.zeros((16, 16, 2), np.uint8))
    with pytest.raises(InvalidImageError, match="finite"):
        segment_image(np.full((16, 16, 3), np.nan))
    gray = IMAGE[..., 0]
    np.testing.assert_array_equal(
        segment_image(gray, method="grid", n_superpixels=4),
        segment_image(np.stack([gray] * 3, axis=-1), method="grid", n_superpixels=4))


def test_check_segments_rejects_bad_arrays():
    with pytest.raises(SegmentationError, match="shape"):
        check_segments(np.zeros((10, 10), int), (12, 10, 3))
    with pytest.raises(SegmentationError, match="integer"):
        check_segments(np.zeros((12, 10), float), (12, 10, 3))
    with pytest.raises(SegmentationError, match="at least 2"):
        check_segments(np.zeros((12, 10), int), (12, 10, 3))
