"""The explanation job end to end on real local Spark (local[2])."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from PIL import Image

from lime_spark.batch import EXPLANATION_COLUMNS, FEATURE_COLUMNS, IMAGE_COLUMNS
from lime_spark.cli import run_explain
from lime_spark.config import load_config
from lime_spark.exceptions import ConfigurationError
from lime_spark.shapes import SHAPE_CLASSES
from lime_spark.timings import STAGES

from .conftest import write_input, write_png

SMALL = {"n_samples": 200, "n_superpixels": 20, "top_labels": 2}


def _dataset(tmp_path: Path, shapes: dict, n: int, *, corrupt: bool = False) -> str:
    rows = []
    for i in range(n):
        path = tmp_path / "images" / f"shape {i}.png"
        write_png(path, shapes["images"][i])
        rows.append({"path": str(path), "image_id": f"img/{i}",
                     "label": SHAPE_CLASSES[int(shapes["labels"][i])]})
    if corrupt:
        bad = tmp_path / "images" / "broken.jpg"
        bad.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
        rows.append({"path": str(bad), "image_id": "broken", "label": None})
    return write_input(tmp_path / "input.parquet", rows)


def _run(spark, shapes, input_uri, output, **overrides):
    cfg = load_config(overrides={"input": input_uri, "output": str(output),
                                 "model": shapes["model_path"], "preprocess": "none",
                                 "label_names": list(SHAPE_CLASSES), **SMALL, **overrides})
    return run_explain(cfg.resolved(), spark=spark)


def _count(sql: str) -> int:
    return duckdb.connect().execute(sql).fetchone()[0]


def _table(output: Path, name: str):
    return duckdb.sql(
        f"select * from read_parquet('{output}/{name}/*/*.parquet', hive_partitioning=true)")


def test_end_to_end_tables_overlays_summary(spark, shapes, tmp_path):
    input_uri = _dataset(tmp_path, shapes, 6, corrupt=True)
    out = tmp_path / "out"
    summary = _run(spark, shapes, input_uri, out, run_id="r1", partitions=3)

    images = _table(out, "images").df()
    assert list(images.columns) == [*IMAGE_COLUMNS, "run_id"]
    assert len(images) == 7 and set(images.run_id) == {"r1"}
    ok = images[images.status == "ok"]
    assert len(ok) == 6
    err = images[images.status == "error"]
    assert err.image_id.tolist() == ["broken"]
    assert err.error_class.tolist() == ["InvalidImageError"]
    assert "broken.jpg" not in err.error_message.iloc[0] or err.error_message.iloc[0]
    assert (ok.width == 64).all() and (ok.n_samples == 200).all()   # a fixed budget, all used
    assert err.n_samples.isna().all()
    assert set(ok.top_label_name) <= set(SHAPE_CLASSES)
    # the trained model gets the held-out shapes right
    assert (ok.top_label_name == ok.expected_label).mean() >= 5 / 6

    explanations = _table(out, "explanations").df()
    assert list(explanations.columns) == [*EXPLANATION_COLUMNS, "run_id"]
    assert len(explanations) == 6 * 2
    assert sorted(explanations.label_rank.unique()) == [1, 2]
    top = explanations[explanations.label_rank == 1]
    assert top.deletion_auc.notna().all() and top.insertion_auc.notna().all()
    assert explanations.stability.between(0, 1).all()
    assert explanations[explanations.label_rank == 2].deletion_auc.isna().all()
    for uri in explanations.overlay_uri:
        with Image.open(uri) as im:
            # 64x64 and a caption strip below
            assert im.size[0] == 64 and im.size[1] > 64 and im.mode == "RGB"

    features = _table(out, "features").df()
    assert list(features.columns) == [*FEATURE_COLUMNS, "run_id"]
    per_image = features.groupby(["image_id", "label"]).size()
    n_sp = ok.set_index("image_id").n_superpixels
    for (image_id, _), count in per_image.items():
        assert count == n_sp[image_id]
    # bboxes lie inside the image and pixel counts add up to the image area
    assert (features.bbox_x0 >= 0).all() and (features.bbox_x1 <= 64).all()
    areas = features.groupby(["image_id", "label"]).pixel_count.sum()
    assert (areas == 64 * 64).all()

    for i in range(6):
        assert (out / "overlays" / "run_id=r1" / f"img%2F{i}" / "segments.png").exists()
    assert summary["images"] == {"rows": 7, "ok": 6, "error": 1,
                                 "errors_by_class": {"InvalidImageError": 1},
                                 "explained": 7, "reused": 0, "resumed": 0}
    on_disk = json.loads((out / "runs" / "run_id=r1" / "summary.json").read_text())
    assert on_disk["table_rows"] == {"images": 7, "explanations": 12, "features": len(features)}
    assert on_disk["config"]["n_samples"] == 200
    # --runtime auto on CPU executors: the model ran on ONNX Runtime, and every row says so
    runtime = on_disk["model"]["runtime"]
    assert (runtime["used"], runtime["requested"]) == ("onnx", "auto")
    assert "agrees with TensorFlow" in runtime["reason"]
    assert set(images.runtime) == {"onnx"}
    assert on_disk["versions"]["pyspark"].startswith("4.")
    # where the workers' time went: every stage of an explained image, summed over images
    timings = on_disk["timings"]
    assert set(timings["stages"]) == set(STAGES)
    for stage in ("read", "decode", "segment", "model", "fit", "render", "encode", "arrow"):
        assert timings["stages"][stage] > 0, stage
    assert 0 < timings["model_busy_fraction"] <= 1
    assert timings["stages"]["model"] < timings["worker_seconds"] <= timings["explain_seconds"] * 2


def test_partitioning_does_not_change_results_and_reruns_replace(spark, shapes, tmp_path):
    input_uri = _dataset(tmp_path, shapes, 5)
    out = tmp_path / "out"
    # n_samples=auto: how many samples each image used depends only on its rows, which
    # depend only on (run seed, image bytes), not on the partitioning
    # reuse none: the second run explains its images again instead of copying p1's
    auto = {"n_samples": "auto", "min_samples": 64, "max_samples": 256, "batch_size": 32,
            "reuse": "none"}
    _run(spark, shapes, input_uri, out, run_id="p1", partitions=1, **auto)
    _run(spark, shapes, input_uri, out, run_id="p3", partitions=3, **auto)
    used = duckdb.sql("select run_id, image_id, n_samples from read_parquet("
                      f"'{out}/images/*/*.parquet', hive_partitioning=true)").df()
    assert used.n_samples.between(64, 256).all()
    assert (used[used.run_id == "p1"].sort_values("image_id").n_samples.tolist()
            == used[used.run_id == "p3"].sort_values("image_id").n_samples.tolist())
    q = ("select run_id, image_id, label, feature, feature_weight from "
         f"read_parquet('{out}/features/*/*.parquet', hive_partitioning=true)")
    rows = duckdb.sql(q).df()
    one = rows[rows.run_id == "p1"].drop(columns="run_id").sort_values(
        ["image_id", "label", "feature"]).reset_index(drop=True)
    three = rows[rows.run_id == "p3"].drop(columns="run_id").sort_values(
        ["image_id", "label", "feature"]).reset_index(drop=True)
    assert len(one) > 0
    np.testing.assert_array_equal(one.feature_weight.to_numpy(), three.feature_weight.to_numpy())
    assert one[["image_id", "label", "feature"]].equals(three[["image_id", "label", "feature"]])

    counts = {t: _count(f"select count(*) from read_parquet('{out}/{t}/*/*.parquet', "
                        "hive_partitioning=true) where run_id = 'p3'")
              for t in ("images", "explanations", "features")}
    overlays = sorted(p.name for p in (out / "overlays" / "run_id=p3").rglob("*.png"))
    _run(spark, shapes, input_uri, out, run_id="p3", partitions=2)
    again = {t: _count(f"select count(*) from read_parquet('{out}/{t}/*/*.parquet', "
                       "hive_partitioning=true) where run_id = 'p3'")
             for t in ("images", "explanations", "features")}
    assert again == counts and counts["images"] == 5
    assert sorted(p.name for p in (out / "overlays" / "run_id=p3").rglob("*.png")) == overlays
    # the other run is untouched
    assert _count(f"select count(*) from read_parquet('{out}/images/*/*.parquet', "
                  "hive_partitioning=true) where run_id = 'p1'") == 5


def test_model_is_loaded_once_per_python_worker(spark, shapes, tmp_path):
    import keras

    # a model no worker has seen yet (its own digest), so every worker must load it
    model = keras.saving.load_model(shapes["model_path"])
    model.layers[-1].set_weights([w * 1.001 for w in model.layers[-1].get_weights()])
    fresh = tmp_path / "fresh.keras"
    model.save(fresh)
    input_uri = _dataset(tmp_path, shapes, 8)
    summary = _run(spark, {**shapes, "model_path": str(fresh)}, input_uri, tmp_path / "out",
                   run_id="cache", partitions=8)
    workers = summary["workers"]
    assert summary["images"]["ok"] == 8
    assert 1 <= workers["python_workers"] <= 2          # local[2]
    assert workers["model_loads"] == workers["python_workers"] < summary["partitions"]


def test_bad_configuration_fails_before_any_work(spark, shapes, tmp_path):
    with pytest.raises(ConfigurationError, match="Unknown option"):
        load_config(overrides={"input": "x", "output": "y", "model": "z", "num_sampels": 5})
    with pytest.raises(ConfigurationError, match="input Parquet"):
        _run(spark, shapes, str(tmp_path / "missing.parquet"), tmp_path / "out")
    wrong = write_input(tmp_path / "wrong.parquet", [{"uri": "a.png"}])
    with pytest.raises(ConfigurationError, match="'path'.*Received columns: \\['uri'\\]"):
        _run(spark, shapes, wrong, tmp_path / "out")
