"""The worker's pipeline: model batches shared between images, stages around the model in
threads, and nothing about an image's results depends on either."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lime_spark import ImageExplainer
from lime_spark.batch import BatchSettings, ImageRecord, explain_records
from lime_spark.pipeline import resolve_device_batch, resolve_in_flight
from lime_spark.timings import STAGES

REPO = Path(__file__).resolve().parents[2]


def _photos(folder: Path, n: int, *, corrupt_at: int | None = None,
            white_at: int | None = None) -> list[ImageRecord]:
    """JPEG crops of scikit-image's photos (320 x 240), optionally a corrupt file and a
    white image among them."""
    import skimage.data

    photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(),
              skimage.data.rocket()]
    records = []
    for i in range(n):
        path = folder / f"p{i:02d}.jpg"
        if i == corrupt_at:
            path.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
        elif i == white_at:
            Image.new("RGB", (320, 240), "white").save(path, quality=90)
        else:
            photo = photos[i % len(photos)][i * 7:, i * 5:]
            Image.fromarray(photo).resize((320, 240)).save(path, quality=90)
        records.append(ImageRecord(f"img-{i:02d}", str(path)))
    return records


def _settings(root: Path, **kw) -> BatchSettings:
    # run seed 5: one of these photos stops sampling early (64 rows), the others at 256
    return BatchSettings(run_id="t", run_seed=5, output_root=str(root), top_labels=3, **kw)


def _comparable(result, root: Path) -> tuple:
    """An image's rows without timings, overlay URIs relative to the output root."""
    image = {k: v for k, v in result.image.items() if k != "seconds"}
    explanations = [{k: (v.replace(str(root), "ROOT") if k == "overlay_uri" and v else v)
                     for k, v in row.items()} for row in result.explanations]
    return image, explanations, result.features


def _overlays(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*.png"))}


class _Recorder:
    """Wraps a classifier's ``predict_rows`` and ``predict_design`` (ONNX Runtime's
    single-image batches): records how many images and rows each call held, and can
    poison the rows of white images (NaN) or fail the whole call for them."""

    def __init__(self, classifier, monkeypatch, *, poison: str | None = None):
        self.rows_fn, self.design_fn = classifier.predict_rows, classifier.predict_design
        self.poison = poison
        self.calls: list[tuple[int, int]] = []
        monkeypatch.setattr(classifier, "predict_rows", self.predict_rows)
        monkeypatch.setattr(classifier, "predict_design", self.predict_design)

    def predict_rows(self, images, fills, segments, row_image, design):
        return self._call(images, design, row_image,
                          lambda: self.rows_fn(images, fills, segments, row_image, design))

    def predict_design(self, image, fill, segments, design):
        return self._call(image[None], design, np.zeros(len(design), int),
                          lambda: self.design_fn(image, fill, segments, design))

    def _call(self, images, design, row_image, run):
        self.calls.append((images.shape[0], design.shape[0]))
        white = images.reshape(images.shape[0], -1).min(axis=1) >= 250
        if self.poison == "raise" and white.any():
            raise RuntimeError("the device failed on this batch")
        probs = np.array(run())
        if self.poison == "nan":
            probs[white[row_image]] = np.nan
        return probs


@pytest.fixture(scope="module")
def onnx_mobilenet(mobilenet_path):
    from lime_spark.models import load_classifier

    return load_classifier("mobilenet", weights=str(mobilenet_path), labels="imagenet",
                           runtime="onnx")


def test_results_identical_with_and_without_shared_batches_and_threads(
        tmp_path, onnx_mobilenet, monkeypatch):
    records = _photos(tmp_path, 6)
    explainer = ImageExplainer(n_samples="auto", min_samples=64, max_samples=256,
                               batch_size=64)
    recorder = _Recorder(onnx_mobilenet, monkeypatch)

    alone_root, shared_root = tmp_path / "alone", tmp_path / "shared"
    alone = list(explain_records(
        records, classifier=onnx_mobilenet, explainer=explainer, threads=0,
        settings=_settings(alone_root, images_in_flight=1, prefetch=1, device_batch_size=24)))
    alone_calls, recorder.calls = recorder.calls, []
    shared = list(explain_records(
        records, classifier=onnx_mobilenet, explainer=explainer, threads=2,
        settings=_settings(shared_root, images_in_flight=4, prefetch=3, device_batch_size=24)))

    assert max(m for m, _ in alone_calls) == 1                 # one image per batch
    assert max(m for m, _ in recorder.calls) >= 2             # rows of several images
    assert max(rows for _, rows in recorder.calls) == 24
    assert len(recorder.calls) < len(alone_calls)             # fewer, fuller batches
    assert all(r.image["status"] == "ok" for r in alone + shared)
    by_id = {r.image["image_id"]: r for r in shared}
    assert sorted(by_id) == sorted(r.image["image_id"] for r in alone)
    for result in alone:
        twin = by_id[result.image["image_id"]]
        assert _comparable(result, alone_root) == _comparable(twin, shared_root)
    assert len({r.image["n_samples"] for r in alone}) > 1      # images stopped at different points
    alone_png, shared_png = _overlays(alone_root), _overlays(shared_root)
    assert len(alone_png) == 6 * (1 + 3)
    assert alone_png == shared_png


@pytest.mark.parametrize("poison", ["nan", "raise"])
def test_a_failing_image_in_a_shared_batch_fails_alone(tmp_path, tiny_classifier, monkeypatch,
                                                       poison):
    records = _photos(tmp_path, 5, corrupt_at=1, white_at=2)
    explainer = ImageExplainer(segmentation="grid", n_superpixels=16, n_samples=96)
    settings = _settings(tmp_path / "out", images_in_flight=4, device_batch_size=40,
                         overlays=False)
    recorder = _Recorder(tiny_classifier, monkeypatch, poison=poison)
    results = {r.image["image_id"]: r for r in explain_records(
        records, classifier=tiny_classifier, explainer=explainer, settings=settings,
        threads=2)}
    shared_calls = recorder.calls

    assert results["img-01"].image["status"] == "error"
    assert results["img-02"].image["status"] == "error"
    assert results["img-02"].image["error_class"] == (
        "ClassifierOutputError" if poison == "nan" else "RuntimeError")
    assert results["img-02"].explanations == []
    assert any(m >= 2 for m, _ in shared_calls)              # the white image had company
    # its neighbours are exactly what they are when explained without it
    recorder.calls, recorder.poison = [], None
    clean = {r.image["image_id"]: r for r in explain_records(
        [records[0], records[3], records[4]], classifier=tiny_classifier,
        explainer=explainer, settings=settings, threads=0)}
    for image_id in ("img-00", "img-03", "img-04"):
        assert results[image_id].image["status"] == "ok"
        root = tmp_path / "out"
        assert _comparable(results[image_id], root) == _comparable(clean[image_id], root)


def test_every_stage_is_timed(tmp_path, tiny_classifier):
    records = _photos(tmp_path, 2)
    explainer = ImageExplainer(segmentation="slic", n_superpixels=20, n_samples=64)
    results = list(explain_records(records, classifier=tiny_classifier, explainer=explainer,
                                   settings=_settings(tmp_path / "out"), threads=0))
    for result in results:
        stages = result.stages
        assert set(stages) == set(STAGES)
        for stage in ("read", "decode", "segment", "model", "fit", "metrics", "render",
                      "encode", "write"):
            assert stages[stage] > 0, stage
        assert stages["arrow"] == 0                  # the Spark worker's stage
        # one thread: the stages add up to at most the image's own seconds
        assert sum(stages.values()) <= result.image["seconds"] * 1.05 + 0.01


def test_auto_sizes():
    assert resolve_device_batch("auto", "onnx", False) == 32
    assert resolve_device_batch("auto", "tensorflow", False) == 128
    assert resolve_device_batch("auto", "tensorflow", True) == 1024
    assert resolve_device_batch(77, "onnx", True) == 77
    assert resolve_in_flight("auto", 1024, 128) == 16
    assert resolve_in_flight("auto", 32, 128) == 2
    assert resolve_in_flight(5, 32, 128) == 5


_RSS_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    from PIL import Image
    from lime_spark import ImageExplainer
    from lime_spark.batch import BatchSettings, ImageRecord, explain_records
    from lime_spark.models import Classifier
    sys.path.insert(0, {tests!r})
    from conftest import tiny_keras_model

    folder, n = sys.argv[1], int(sys.argv[2])
    # one 3000 x 2000 photo-like JPEG (18 MB decoded), listed n times
    y, x = np.mgrid[0:2000, 0:3000]
    big = np.stack([(x // 7) % 256, (y // 5) % 256, ((x + y) // 11) % 256], -1).astype(np.uint8)
    Image.fromarray(big).save(folder + "/big.jpg", quality=80)
    del big, x, y
    clf = Classifier(tiny_keras_model(), label_names=["a", "b", "c"], batch_size=32, name="t")
    slow = clf.predict_rows
    def predict_rows(*args):                     # a model slower than decoding
        time.sleep(0.03)
        return slow(*args)
    clf.predict_rows = predict_rows
    explainer = ImageExplainer(segmentation="grid", n_superpixels=9, n_samples=32)
    settings = BatchSettings(run_id="t", output_root=folder + "/out", top_labels=1,
                             prefetch=2, images_in_flight=2, metrics=False)
    records = [ImageRecord(f"i{{i}}", folder + "/big.jpg") for i in range(n)]
    # warm up: the model compiled, the pool's first image decoded
    list(explain_records(records[:2], classifier=clf, explainer=explainer,
                         settings=settings, threads=2))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queued = 0
    def lazily():
        global queued
        for r in records:
            queued += 1
            yield r
    ok = 0
    for result in explain_records(lazily(), classifier=clf, explainer=explainer,
                                  settings=settings, threads=2):
        ok += result.image["status"] == "ok"
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({{"ok": ok, "growth": after - before, "queued": queued}}))
""")


def test_queued_images_stay_bounded_in_memory(tmp_path):
    """200 large images behind a slow model: memory grows by a few images, not 200."""
    script = tmp_path / "rss.py"
    script.write_text(_RSS_SCRIPT.format(tests=str(REPO / "tests")))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), "200"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["ok"] == 200
    decoded = 3000 * 2000 * 3
    # the bound: (prefetch + in_flight + threads + 1) canvases (<= 1024 px a side) plus
    # `threads` images being decoded; 200 queued decoded images would be 3.6 GB
    assert figures["growth"] < 16 * decoded, figures


def test_metric_labels_share_one_request_and_match_the_single_label_curves(tmp_path,
                                                                           tiny_classifier):
    from lime_spark.metrics import deletion_insertion_auc

    records = _photos(tmp_path, 2)
    explainer = ImageExplainer(segmentation="grid", n_superpixels=12, n_samples=64)
    one = {r.image["image_id"]: r for r in explain_records(
        records, classifier=tiny_classifier, explainer=explainer,
        settings=_settings(tmp_path / "one", overlays=False))}
    three = {r.image["image_id"]: r for r in explain_records(
        records, classifier=tiny_classifier, explainer=explainer,
        settings=_settings(tmp_path / "three", overlays=False, metric_labels=3))}
    for image_id, result in three.items():
        rows = result.explanations
        assert all(r["deletion_auc"] is not None for r in rows)          # all 3 labels
        assert [r["deletion_auc"] is not None for r in one[image_id].explanations] == \
            [True, False, False]                                          # the top label
        assert rows[0]["deletion_auc"] == one[image_id].explanations[0]["deletion_auc"]
        # each label's areas are what its own curves give
        image = np.asarray(Image.open(records[int(image_id[-2:])].path).convert("RGB"))
        explanation = explainer.explain(image, tiny_classifier, top_labels=3,
                                        random_state=result.image["seed"])
        for row in rows:
            deletion, insertion = deletion_insertion_auc(explanation, tiny_classifier,
                                                         row["label"])
            assert row["deletion_auc"] == pytest.approx(deletion, abs=1e-6)
            assert row["insertion_auc"] == pytest.approx(insertion, abs=1e-6)
