"""One record in, its table rows out: errors become rows, stats match the overlays."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lime_spark import ImageExplainer
from lime_spark.batch import (
    EXPLANATION_COLUMNS,
    FEATURE_COLUMNS,
    IMAGE_COLUMNS,
    BatchSettings,
    ImageRecord,
    explain_record,
    image_id_for_path,
)
from lime_spark.rows import pixel_stats
from lime_spark.render import upsample_segments


@pytest.fixture(scope="module")
def classifier(tiny_classifier):
    return tiny_classifier


def _png(tmp_path, name, shape=(40, 60, 3), seed=0):
    image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    path = tmp_path / name
    path.write_bytes(buf.getvalue())
    return str(path)


def _settings(tmp_path, **kw):
    return BatchSettings(run_id="t", run_seed=1, output_root=str(tmp_path / "out"), top_labels=2,
                         **kw)


def test_pixel_stats_match_the_upsampled_segments():
    rng = np.random.default_rng(0)
    segments = rng.integers(0, 7, (13, 17)).astype(np.int32)
    segments[0, 0] = 6
    for shape in [(13, 17), (40, 61), (5, 9), (100, 31)]:
        big = upsample_segments(segments, shape)
        stats = pixel_stats(segments, shape)
        for k in range(7):
            ys, xs = np.nonzero(big == k)
            if len(ys) == 0:
                assert stats[k][0] == 0
                continue
            assert stats[k] == (len(ys), xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), (shape, k)


def test_ok_record_rows(tmp_path, classifier):
    explainer = ImageExplainer(segmentation="grid", n_superpixels=9, n_samples=64)
    path = _png(tmp_path, "a b.png")
    result = explain_record(ImageRecord("x/../y", path, "b"), classifier=classifier,
                            explainer=explainer, settings=_settings(tmp_path))
    row = result.image
    assert set(row) == set(IMAGE_COLUMNS)
    assert row["status"] == "ok" and row["error_class"] is None
    assert (row["width"], row["height"], row["n_superpixels"]) == (60, 40, 9)
    assert row["top_label_name"] in {"a", "b", "c"} and row["expected_label"] == "b"
    assert len(result.explanations) == 2 and len(result.features) == 2 * 9
    assert all(set(e) == set(EXPLANATION_COLUMNS) for e in result.explanations)
    assert all(set(f) == set(FEATURE_COLUMNS) for f in result.features)
    assert sum(f["pixel_count"] for f in result.features) == 2 * 60 * 40
    for e in result.explanations:
        assert e["overlay_uri"].startswith(str(tmp_path / "out" / "overlays" / "run_id=t" / "x%2F"))
        with Image.open(e["overlay_uri"]) as im:
            # the picture at the original size, a caption strip below it
            assert im.size[0] == 60 and im.size[1] > 40
    # a second run of the same record gives the same weights (seed from run seed + id)
    again = explain_record(ImageRecord("x/../y", path, "b"), classifier=classifier,
                           explainer=explainer, settings=_settings(tmp_path))
    assert [f["feature_weight"] for f in again.features] == \
        [f["feature_weight"] for f in result.features]


@pytest.mark.parametrize("make,error_class,fragment", [
    (lambda p: str(p / "missing.png"), "StorageError", "not found"),
    (lambda p: str(p), "StorageError", "directory"),
    (lambda p: None, "InvalidImageError", "path"),
    (lambda p: (p / "t.jpg").write_bytes(b"hello") and str(p / "t.jpg"), "InvalidImageError",
     "5 bytes"),
])
def test_bad_records_become_error_rows(tmp_path, classifier, make, error_class, fragment):
    path = make(tmp_path)
    result = explain_record(ImageRecord(None, path), classifier=classifier,
                            explainer=ImageExplainer(segmentation="grid", n_superpixels=4,
                                                     n_samples=16),
                            settings=_settings(tmp_path))
    row = result.image
    assert row["status"] == "error" and row["error_class"] == error_class
    assert fragment in row["error_message"]
    assert result.explanations == [] and result.features == []
    assert row["image_id"] == (image_id_for_path(path) if path else "")
    assert row["top_label"] is None and row["seconds"] >= 0
    assert not (tmp_path / "out").exists()      # an error row leaves no overlays


def test_tiny_image_is_upsampled_and_explained(tmp_path, classifier):
    """A 3x3 image is upsampled to the model input and explained: rows and overlays at 3x3."""
    path = _png(tmp_path, "tiny.png", shape=(3, 3, 3))
    result = explain_record(ImageRecord(None, path), classifier=classifier,
                            explainer=ImageExplainer(segmentation="grid", n_superpixels=4,
                                                     n_samples=16),
                            settings=_settings(tmp_path))
    row = result.image
    assert row["status"] == "ok" and row["error_class"] is None and row["error_message"] is None
    assert row["image_id"] == image_id_for_path(path)
    assert (row["width"], row["height"], row["n_superpixels"]) == (3, 3, 4)
    assert row["top_label_name"] in {"a", "b", "c"} and 0 <= row["top_prob"] <= 1
    assert [e["label_rank"] for e in result.explanations] == [1, 2]
    assert result.explanations[0]["label"] == row["top_label"]
    assert len(result.features) == 2 * 4
    # every pixel of the 3x3 original belongs to exactly one superpixel per label
    for label in (e["label"] for e in result.explanations):
        assert sum(f["pixel_count"] for f in result.features if f["label"] == label) == 9
    for e in result.explanations:
        with Image.open(e["overlay_uri"]) as im:
            assert im.size[0] == 3 and im.size[1] > 3


def test_image_id_for_path_is_stable():
    assert image_id_for_path("s3://b/k.jpg") == image_id_for_path("s3://b/k.jpg")
    assert len(image_id_for_path("a")) == 16 and image_id_for_path("a") != image_id_for_path("b")
