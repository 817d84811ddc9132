"""Drift between two runs (``lime_spark.spark.drift``, ``lime-spark compare``) on real jobs.

Real local Spark (local[2]) and the small trained shapes model of
``tests/spark/conftest.py``: one baseline run ``a`` (seed 0), the same job
again (``a2``, seed 0), another seed (``b``, seed 1) and a changed model
(``swapped``: the shapes model with the output units of two classes
swapped, seed 0).  What each comparison must show:

* ``a2`` against ``a``: nothing drifted, every rank correlation and Jaccard 1;
* ``b`` against ``a``: no top label changed, at most 5% of the images
  drifted (on 16 images: none).  The real-MobileNet figure of run-to-run
  noise is ``scripts/measure_drift_noise.py``'s (``docs/drift.md``);
* ``swapped`` against ``a``: exactly the images whose top label is one of the
  two classes drifted; the rows of the other labels are the same
  explanations (rank correlation 1), and images that explained neither
  class are not flagged.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import fields
from itertools import combinations
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from lime_spark.cli import run_explain
from lime_spark.config import JobConfig, load_config
from lime_spark.exceptions import ConfigurationError
from lime_spark.shapes import SHAPE_CLASSES, make_shapes_dataset
from lime_spark.spark.drift import (DEFAULT_THRESHOLDS, check_thresholds, compare_runs,
                                    drift_rows, drift_uri)
from lime_spark.tables import DRIFT_COLUMNS, arrow_schema

from .conftest import write_input, write_png

N_IMAGES = 16
SMALL = {"n_samples": 200, "n_superpixels": 20, "top_labels": 2, "overlays": False,
         "report": False, "metrics": False, "log_level": "WARNING"}
# explain every run afresh where the job can copy an earlier run's rows (--reuse)
FRESH = {"reuse": "none"} if "reuse" in {f.name for f in fields(JobConfig)} else {}
BIN = Path(sys.executable).parent


def _job(spark, model: str, input_uri: str, out: Path, run_id: str, seed: int) -> None:
    cfg = load_config(overrides={"input": input_uri, "output": str(out), "model": model,
                                 "preprocess": "none", "label_names": list(SHAPE_CLASSES),
                                 "run_id": run_id, "seed": seed, **SMALL, **FRESH})
    run_explain(cfg.resolved(), spark=spark)


def _read(out: Path, name: str, run_id: str):
    return duckdb.sql(
        f"select * from read_parquet('{out}/{name}/*/*.parquet', hive_partitioning=true) "
        f"where run_id = '{run_id}'").df()


def _swap_classes(model_path: str, i: int, j: int, path: Path) -> str:
    """The model with the output units of classes i and j swapped (last Dense: kernel, bias)."""
    import keras

    model = keras.saving.load_model(model_path)
    kernel, bias = model.layers[-1].get_weights()
    kernel[:, [i, j]] = kernel[:, [j, i]]
    bias[[i, j]] = bias[[j, i]]
    model.layers[-1].set_weights([kernel, bias])
    model.save(path)
    return str(path)


def _choose_classes(explanations):
    """Two classes i, j such that some images' top label is one of them and some images
    explain neither (the most of both)."""
    top = explanations[explanations.label_rank == 1].set_index("image_id").label
    explained = explanations.groupby("image_id").label.agg(set)
    best = None
    for i, j in combinations(range(len(SHAPE_CLASSES)), 2):
        hit = set(top[top.isin([i, j])].index)
        untouched = {k for k, labels in explained.items() if not labels & {i, j}}
        score = min(len(hit), len(untouched))
        if score and (best is None or score > best[0]):
            best = (score, i, j, hit, untouched)
    assert best is not None, "no pair of classes splits the images"
    return best[1:]


@pytest.fixture(scope="module")
def runs(spark, shapes, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("drift")
    images, labels, _ = make_shapes_dataset(N_IMAGES, random_state=13)
    rows = []
    for k in range(N_IMAGES):
        path = tmp / "images" / f"shape {k}.png"
        write_png(path, images[k])
        rows.append({"path": str(path), "image_id": f"img/{k}",
                     "label": SHAPE_CLASSES[int(labels[k])]})
    input_uri = write_input(tmp / "input.parquet", rows)
    out = tmp / "out"
    for run_id, seed in (("a", 0), ("a2", 0), ("b", 1)):
        _job(spark, shapes["model_path"], input_uri, out, run_id, seed)
    i, j, hit, untouched = _choose_classes(_read(out, "explanations", "a"))
    swapped = _swap_classes(shapes["model_path"], i, j, tmp / "swapped.keras")
    _job(spark, swapped, input_uri, out, "swapped", 0)
    return {"out": out, "swap": (i, j), "hit": hit, "untouched": untouched}


def test_the_same_job_twice_has_not_drifted(spark, runs):
    out = runs["out"]
    summary = compare_runs(spark, str(out), "a2", "a")
    assert summary["baseline"] == "a" and summary["run_id"] == "a2"
    assert summary["images"] == N_IMAGES and summary["rows"] == 2 * N_IMAGES
    assert summary["drifted_rows"] == summary["drifted_images"] == 0
    assert summary["top_label_changed"] == summary["only_in_a"] == summary["only_in_b"] == 0
    assert summary["thresholds"] == DEFAULT_THRESHOLDS
    drift = _read(out, "drift", "a2")
    assert len(drift) == 2 * N_IMAGES and set(drift.baseline_run_id) == {"a"}
    assert (drift.rank_correlation == 1.0).all() and (drift.top5_jaccard == 1.0).all()
    assert not drift.drifted.any() and not drift.top_label_changed.any()
    assert (drift.prob_a == drift.prob_b).all()
    assert set(drift.label_name) <= set(SHAPE_CLASSES)
    # the summary of run a2 keeps what the job wrote, and gains the comparison
    on_disk = json.loads((out / "runs" / "run_id=a2" / "summary.json").read_text())
    assert on_disk["drift"] == summary and on_disk["images"]["ok"] == N_IMAGES


def test_another_seed_flags_at_most_five_percent_of_the_images(spark, runs):
    out = runs["out"]
    summary = compare_runs(spark, str(out), "b", "a")
    assert summary["images"] == N_IMAGES and summary["top_label_changed"] == 0
    assert summary["drifted_images"] <= 0.05 * N_IMAGES
    drift = _read(out, "drift", "b")
    assert len(drift) == summary["rows"] == 2 * N_IMAGES
    # the seed matters: other samples, other weights, a rank correlation below 1
    assert (drift.rank_correlation < 1).any() and drift.rank_correlation.between(-1, 1).all()
    assert drift.top5_jaccard.between(0, 1).all()
    # top5_jaccard is k / (10 - k) with k superpixels of the top 5 in common
    assert set(drift.top5_jaccard.round(6)) <= {round(k / (10 - k), 6) for k in range(6)}
    # with thresholds that judge every row, however unstable, on any difference: noise
    strict = drift_rows(spark, str(out), "b", "a",
                        thresholds={"min_stability": 0, "rank_correlation": 1.0,
                                    "top5_jaccard": 1.0})
    assert strict.where("drifted").count() > 0


def test_a_swapped_pair_of_classes_drifts_exactly_the_images_of_those_classes(spark, runs):
    out = runs["out"]
    i, j = runs["swap"]
    summary = compare_runs(spark, str(out), "swapped", "a")
    hit, untouched = runs["hit"], runs["untouched"]
    assert summary["top_label_changed"] == len(hit) > 0
    assert summary["drifted_images"] == len(hit)
    drift = _read(out, "drift", "swapped")
    changed = set(drift[drift.top_label_changed].image_id)
    assert changed == set(drift[drift.drifted].image_id) == hit & set(drift.image_id)
    assert drift[drift.image_id.isin(hit)].drifted.all()
    # every other row is the same explanation: the other classes' outputs did not change
    others = drift[~drift.image_id.isin(hit)]
    assert len(others) and not (set(others.label) & {i, j})
    assert (others.rank_correlation > 0.999).all() and (others.top5_jaccard == 1).all()
    assert (others.prob_a - others.prob_b).abs().max() < 1e-5
    assert not others.drifted.any()
    # images that explained neither class keep both rows, unflagged
    kept = drift[drift.image_id.isin(untouched)]
    assert set(kept.image_id) == untouched and len(kept) == 2 * len(untouched)
    assert not kept.drifted.any()


def test_table_schema_replacement_catalog_and_errors(spark, runs, monkeypatch, caplog):
    import lime_spark.report

    out = runs["out"]
    summary = json.loads((out / "runs" / "run_id=a2" / "summary.json").read_text())
    first = summary.get("drift") or compare_runs(spark, str(out), "a2", "a")

    def broken_report(root, run_id):
        raise RuntimeError("no report today")

    # a second comparison replaces the partition; a report that fails is logged, not raised
    monkeypatch.setattr(lime_spark.report, "write_report", broken_report)
    with caplog.at_level(logging.WARNING, logger="lime_spark.spark.drift"):
        again = compare_runs(spark, str(out), "a2", "a", report=True)
    assert "could not write the report of run a2 again: RuntimeError: no report today" \
        in caplog.text
    assert again["rows"] == first["rows"] == len(_read(out, "drift", "a2"))
    folder = Path(drift_uri(str(out), "a2"))
    files = [p for p in folder.iterdir() if not p.name.startswith(".")]   # not Hadoop's .crc
    assert len(files) == 1 and files[0].suffix == ".parquet", files
    assert pq.read_schema(files[0]).remove_metadata().equals(arrow_schema("drift"))
    table = pq.read_table(out / "drift", partitioning="hive")
    assert table.column_names == [*DRIFT_COLUMNS, "run_id"]
    assert not (out / "_staging").exists() and not (out / "_locks").exists()

    with pytest.raises(ConfigurationError, match="Expected a finished run 'nope'"):
        compare_runs(spark, str(out), "nope", "a")
    with pytest.raises(ConfigurationError, match="Expected a finished baseline run 'gone'"):
        compare_runs(spark, str(out), "a", "gone")
    with pytest.raises(ConfigurationError, match="baseline run other than"):
        compare_runs(spark, str(out), "a", "a")
    with pytest.raises(ConfigurationError, match="run_id"):
        compare_runs(spark, str(out), "../a", "a")
    with pytest.raises(ConfigurationError, match="top5_jaccard threshold"):
        check_thresholds({"top5_jaccard": 1.5})
    with pytest.raises(ConfigurationError, match="threshold names"):
        check_thresholds({"jacard": 0.5})

    from lime_spark.spark.catalog import register_tables, release_catalog

    try:
        names = register_tables(spark, "drift_test", str(out))
        assert names == ["drift_test.images", "drift_test.explanations", "drift_test.features",
                         "drift_test.drift"]
        count = spark.sql("SELECT count(*) FROM drift_test.drift WHERE run_id = 'a2'").first()[0]
        assert count == first["rows"]
        spark.sql("DROP DATABASE drift_test CASCADE")
    finally:
        release_catalog(spark)


def test_lime_spark_compare_prints_the_summary_and_writes_the_table(runs):
    out = runs["out"]
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [str(BIN / "lime-spark"), "compare", "--output", str(out), "--run-id", "swapped",
         "--baseline", "a", "--jaccard-threshold", "0.5", "--master", "local[2]",
         "--conf", "spark.ui.enabled=false"],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2, proc.stdout
    assert lines[0].startswith(f"run swapped against a: {N_IMAGES} images compared")
    assert f"top label changed in {len(runs['hit'])}" in lines[0]
    assert "top5_jaccard < 0.5" in lines[0]
    assert lines[1] == f"drift table: {drift_uri(str(out), 'swapped')}/ (summary.json: drift)"
    summary = json.loads((out / "runs" / "run_id=swapped" / "summary.json").read_text())
    assert summary["drift"]["thresholds"]["top5_jaccard"] == 0.5
    assert len(_read(out, "drift", "swapped")) == summary["drift"]["rows"]

    bad = subprocess.run(
        [str(BIN / "lime-spark"), "compare", "--output", str(out), "--run-id", "a",
         "--baseline", "missing"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and not bad.stdout
    assert bad.stderr.strip().splitlines()[-1].startswith(
        "lime-spark: error: Expected a finished baseline run 'missing'")
