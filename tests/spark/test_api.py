"""The Spark API (issue 10): explain_images on a DataFrame that never was a Parquet list."""

from __future__ import annotations

import duckdb
import pytest

from lime_spark.explainer import ExplainerConfig, ImageExplainer
from lime_spark.models import load_classifier
from lime_spark.shapes import SHAPE_CLASSES
from lime_spark.spark import explain_images
from lime_spark.tables import EXPLANATION_COLUMNS, FEATURE_COLUMNS, IMAGE_COLUMNS

from .conftest import write_png
from .test_job import _run

OPTIONS = {"n_samples": 150, "n_superpixels": 16, "fill": "mean", "alpha": 0.5}


def _rows(frame, key):
    return sorted((tuple(row) for row in frame), key=lambda r: tuple(str(v) for v in key(r)))


def test_explain_images_on_a_joined_dataframe_equals_the_job(spark, shapes, tmp_path):
    paths = []
    for i in range(5):
        path = tmp_path / "images" / f"{i}.png"
        write_png(path, shapes["images"][i])
        paths.append(str(path))
    # a DataFrame built here and joined with another one: no Parquet list anywhere
    files = spark.createDataFrame([(f"shape-{i}", p) for i, p in enumerate(paths)],
                                  "image_id string, uri string")
    truth = spark.createDataFrame(
        [(f"shape-{i}", SHAPE_CLASSES[int(shapes["labels"][i])]) for i in range(5)],
        "image_id string, truth string")
    joined = files.join(truth, "image_id")

    classifier = load_classifier(shapes["model_path"], preprocess="none",
                                 labels=list(SHAPE_CLASSES))
    sc = spark.sparkContext
    sc.setJobGroup("explain-images-lazy", "explain_images must not run a Spark job")
    explained = explain_images(joined, classifier,
                               explainer=ImageExplainer(ExplainerConfig(**OPTIONS)),
                               path_col="uri", label_col="truth", top_labels=2, seed=7)
    assert sc.statusTracker().getJobIdsForGroup("explain-images-lazy") == []   # lazy
    sc.setJobGroup("explain-images", "collect")
    rows = explained.collect()
    assert len(rows) == 5 and {r["status"] for r in rows} == {"ok"}
    assert {r["expected_label"] for r in rows} == set(truth.toPandas().truth)

    # the CLI job on the same images, ids, labels, options and seed gives the same rows
    listing = tmp_path / "list.parquet"
    joined.select("image_id", joined.uri.alias("path"), joined.truth.alias("label")) \
          .toPandas().to_parquet(listing)
    out = tmp_path / "out"
    _run(spark, shapes, str(listing), out, run_id="same", seed=7, overlays=False,
         metrics=True, report=False, **OPTIONS)

    def table(name):
        return duckdb.sql(f"select * exclude (run_id) from read_parquet('{out}/{name}/*/*.parquet',"
                          " hive_partitioning=true)").fetchall()

    no_seconds = [c for c in IMAGE_COLUMNS if c != "seconds"]
    api_images = [tuple(r[c] for c in no_seconds) for r in rows]
    job_images = [tuple(r[IMAGE_COLUMNS.index(c)] for c in no_seconds) for r in table("images")]
    assert sorted(api_images, key=str) == sorted(job_images, key=str)
    api_explanations = [tuple(e[c] for c in EXPLANATION_COLUMNS) for r in rows
                        for e in r["explanations"]]
    assert sorted(api_explanations, key=str) == sorted(table("explanations"), key=str)
    api_features = [tuple(f[c] for c in FEATURE_COLUMNS) for r in rows for f in r["features"]]
    assert len(api_features) == len(table("features")) > 0
    assert sorted(api_features, key=str) == sorted(table("features"), key=str)


def test_explain_images_names_a_missing_column(spark, shapes):
    frame = spark.createDataFrame([("a.png",)], "file string")
    with pytest.raises(Exception, match="Expected a column 'path'"):
        explain_images(frame, load_classifier(shapes["model_path"], preprocess="none"))


def test_runtime_travels_to_the_executors_and_both_runtimes_agree(spark, shapes, tmp_path):
    paths = []
    for i in range(2):
        path = tmp_path / f"{i}.png"
        write_png(path, shapes["images"][i])
        paths.append((f"s{i}", str(path)))
    frame = spark.createDataFrame(paths, "image_id string, path string")
    explainer = ImageExplainer(ExplainerConfig(**OPTIONS))
    by_runtime = {}
    for runtime in ("tensorflow", "onnx"):
        classifier = load_classifier(shapes["model_path"], preprocess="none", runtime=runtime)
        rows = explain_images(frame, classifier, explainer=explainer, top_labels=1).collect()
        assert {r["runtime"] for r in rows} == {runtime}
        by_runtime[runtime] = {r["image_id"]: r for r in rows}
    for image_id, tf_row in by_runtime["tensorflow"].items():
        onnx_row = by_runtime["onnx"][image_id]
        assert tf_row["top_label"] == onnx_row["top_label"]
        assert abs(tf_row["top_prob"] - onnx_row["top_prob"]) <= 1e-4
