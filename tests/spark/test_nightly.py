"""Nightly audits on real local Spark: content keys, reuse of earlier runs, resume after a
killed driver (issue 14)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lime_spark.cli import run_explain
from lime_spark.config import load_config
from lime_spark.exceptions import ConfigurationError
from lime_spark.keys import NEUTRAL_OPTIONS, RESULT_OPTIONS
from lime_spark.shapes import SHAPE_CLASSES

from .conftest import write_input, write_png

SMALL = {"n_samples": 200, "n_superpixels": 20, "top_labels": 2}
_TIME_COLUMNS = {"seconds"}


def _images(folder: Path, shapes: dict, ids: list[int], *, prefix: str = "img") -> list[dict]:
    rows = []
    for i in ids:
        path = folder / f"shape {i}.png"
        if not path.exists():
            write_png(path, shapes["images"][i])
        rows.append({"path": str(path), "image_id": f"{prefix}/{i}",
                     "label": SHAPE_CLASSES[int(shapes["labels"][i])]})
    return rows


def _config(shapes, input_uri, output, **overrides):
    return load_config(overrides={"input": input_uri, "output": str(output),
                                  "model": shapes["model_path"], "preprocess": "none",
                                  "label_names": list(SHAPE_CLASSES), "report": False,
                                  **SMALL, **overrides}).resolved()


def _run(spark, shapes, input_uri, output, **overrides):
    return run_explain(_config(shapes, input_uri, output, **overrides), spark=spark)


def _table(root: Path, name: str, run_id: str):
    frame = pq.read_table(root / name / f"run_id={run_id}").to_pandas()
    keys = {"images": ["image_id"], "explanations": ["image_id", "label"],
            "features": ["image_id", "label", "feature"]}[name]
    return frame.sort_values(keys).reset_index(drop=True)


def _comparable(frame, run_id: str):
    """A table without its wall times, overlay URIs naming the run generically."""
    frame = frame.drop(columns=[c for c in frame.columns if c in _TIME_COLUMNS])
    if "overlay_uri" in frame:
        frame["overlay_uri"] = frame.overlay_uri.str.replace(f"run_id={run_id}", "run_id=R")
    return frame


def _assert_same_rows(root_a: Path, run_a: str, root_b: Path, run_b: str, *,
                      ignore=("reused_from",)) -> None:
    for name in ("images", "explanations", "features"):
        a = _comparable(_table(root_a, name, run_a), run_a).drop(
            columns=[c for c in ignore if c in ("reused_from",) and name == "images"])
        b = _comparable(_table(root_b, name, run_b), run_b).drop(
            columns=[c for c in ignore if c in ("reused_from",) and name == "images"])
        if name == "explanations":
            a["overlay_uri"] = a.overlay_uri.str.replace(str(root_a), "ROOT")
            b["overlay_uri"] = b.overlay_uri.str.replace(str(root_b), "ROOT")
        assert a.equals(b), name


def test_every_option_is_classified_for_the_explainer_digest():
    from lime_spark.config import JobConfig
    import dataclasses

    names = {f.name for f in dataclasses.fields(JobConfig)}
    assert not RESULT_OPTIONS & NEUTRAL_OPTIONS
    assert names - RESULT_OPTIONS - NEUTRAL_OPTIONS == set(), "classify new options in keys.py"
    assert (RESULT_OPTIONS | NEUTRAL_OPTIONS) - names == set()


def test_second_night_explains_only_new_images_and_copies_the_rest(spark, shapes, tmp_path):
    folder = tmp_path / "images"
    root = tmp_path / "out"
    first = write_input(tmp_path / "night1.parquet", _images(folder, shapes, list(range(8))))
    s1 = _run(spark, shapes, first, root, run_id="n1", partitions=4)
    assert (s1["images"]["explained"], s1["images"]["reused"]) == (8, 0)
    assert s1["reuse"]["contents_hashed"] is False      # nothing to compare with yet
    keys = s1["keys"]
    images1 = _table(root, "images", "n1")
    assert images1.content_sha256.str.len().eq(64).all()
    assert set(images1.explainer_digest) == {keys["explainer_digest"]}
    assert set(images1.model_digest) == {keys["model_digest"]}
    assert images1.reused_from.isna().all()

    # night 2: the same 8 images (two of them listed under new ids) plus 3 new ones
    rows = _images(folder, shapes, list(range(8)) + [8, 9, 10])
    rows[0]["image_id"] = "renamed/0"
    second = write_input(tmp_path / "night2.parquet", rows)
    s2 = _run(spark, shapes, second, root, run_id="n2", partitions=4)
    assert (s2["images"]["explained"], s2["images"]["reused"], s2["images"]["rows"]) == (3, 8, 11)
    assert s2["reuse"]["from_runs"] == ["n1"] and s2["reuse"]["overlays"] == "copied"
    images2 = _table(root, "images", "n2")
    reused = images2[images2.reused_from.notna()]
    assert set(reused.reused_from) == {"n1"} and len(reused) == 8
    assert set(images2[images2.reused_from.isna()].image_id) == {"img/8", "img/9", "img/10"}
    # the reused rows are the first night's rows, under this night's ids
    old = images1.set_index("content_sha256")
    for _, row in reused.iterrows():
        before = old.loc[row.content_sha256]
        for column in images1.columns:
            if column not in ("image_id", "reused_from", "content_sha256"):
                assert row[column] == before[column] or (row[column] != row[column]
                                                         and before[column] != before[column])
    e1 = _table(root, "explanations", "n1").set_index(["image_id", "label"])
    e2 = _table(root, "explanations", "n2")
    for _, row in e2[e2.image_id == "renamed/0"].iterrows():
        before = e1.loc[("img/0", row.label)]
        assert row.model_r2 == before.model_r2 and row.label_prob == before.label_prob
        assert "run_id=n2" in row.overlay_uri and row.overlay_uri.endswith(f"/{row.label}.png")
        # overlays are copied into the new run: same bytes, own file
        assert Path(row.overlay_uri).read_bytes() == Path(before.overlay_uri).read_bytes()
    f1 = _table(root, "features", "n1")
    f2 = _table(root, "features", "n2")
    mine = f2[f2.image_id == "img/5"].drop(columns="image_id").reset_index(drop=True)
    theirs = f1[f1.image_id == "img/5"].drop(columns="image_id").reset_index(drop=True)
    assert mine.equals(theirs)
    for image_id in images2.image_id:
        key = image_id.replace("/", "%2F")
        assert (root / "overlays" / "run_id=n2" / key / "segments.png").is_file()

    # night 3, the same list again: every row reused, and reused_from names the run that
    # computed the explanation, not the run it was copied from
    s3 = _run(spark, shapes, second, root, run_id="n3", partitions=2)
    assert (s3["images"]["explained"], s3["images"]["reused"]) == (0, 11)
    images3 = _table(root, "images", "n3").set_index("image_id")
    assert images3.loc["renamed/0", "reused_from"] == "n1"
    assert images3.loc["img/9", "reused_from"] == "n2"
    _assert_same_rows(root, "n2", root, "n3")

    # another sample budget, or reuse off: nothing reused
    other = _run(spark, shapes, second, root, run_id="n4", partitions=2, n_samples=150)
    assert (other["images"]["explained"], other["images"]["reused"]) == (11, 0)
    assert other["keys"]["explainer_digest"] != keys["explainer_digest"]
    forced = _run(spark, shapes, second, root, run_id="n5", partitions=2, reuse="none")
    assert (forced["images"]["explained"], forced["images"]["reused"]) == (11, 0)
    # forced rows equal the reused ones: same keys, same explanation
    _assert_same_rows(root, "n3", root, "n5")
    only = _run(spark, shapes, second, root, run_id="n6", partitions=2, reuse_from="n2")
    assert only["reuse"]["from_runs"] == ["n2"] and only["images"]["reused"] == 11
    with pytest.raises(ConfigurationError, match="nowhere"):
        _run(spark, shapes, second, root, run_id="n7", reuse_from="nowhere")


def test_a_changed_file_or_model_is_explained_again(spark, shapes, tmp_path):
    folder = tmp_path / "images"
    root = tmp_path / "out"
    listing = write_input(tmp_path / "list.parquet", _images(folder, shapes, [0, 1, 2]))
    _run(spark, shapes, listing, root, run_id="a", partitions=1)
    write_png(folder / "shape 1.png", shapes["images"][5])      # same path, new bytes
    summary = _run(spark, shapes, listing, root, run_id="b", partitions=1)
    images = _table(root, "images", "b").set_index("image_id")
    assert summary["images"]["reused"] == 2
    assert images.reused_from.isna().tolist() == [False, True, False]      # img/0, 1, 2
    assert images.loc["img/1", "content_sha256"] != _table(root, "images", "a").set_index(
        "image_id").loc["img/1", "content_sha256"]

    # another model (the last layer's weights nudged): nothing reused
    import keras

    model = keras.models.load_model(shapes["model_path"])
    weights = model.layers[-1].get_weights()
    model.layers[-1].set_weights([w * 1.01 for w in weights])
    path = tmp_path / "nudged.keras"
    model.save(path)
    other = _run(spark, shapes, listing, root, run_id="c", partitions=1, model=str(path))
    assert (other["images"]["explained"], other["images"]["reused"]) == (3, 0)


# --- resume after a killed driver ----------------------------------------------------------

_DROP_ENV = ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_REMOTE",
             "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE", "SPARK_API_MODE",
             "SPARK_CONF_DIR", "MASTER")


def _cli(shapes, listing: str, root: Path, run_id: str) -> list[str]:
    return [str(Path(sys.executable).parent / "lime-spark"), "explain", "--input", listing,
            "--output", str(root), "--model", shapes["model_path"], "--preprocess", "none",
            "--set", f"label_names={json.dumps(list(SHAPE_CLASSES))}", "--run-id", run_id,
            "--num-samples", "1000", "--n-superpixels", "40", "--top-labels", "2",
            "--partitions", "24", "--report", "false", "--master", "local[2]",
            "--conf", "spark.ui.enabled=false"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1", TF_CPP_MIN_LOG_LEVEL="3")
    return env


def _committed_ids(root: Path, run_id: str) -> set[str]:
    folder = root / "_staging" / f"run_id={run_id}" / "work" / "committed"
    ids: set[str] = set()
    for path in folder.glob("part-*.parquet"):
        ids |= set(pq.read_table(path, columns=["image_id"]).column("image_id").to_pylist())
    return ids


def test_resume_after_the_driver_is_killed(spark, shapes, tmp_path):
    folder = tmp_path / "images"
    n = 24
    rows = []
    for i in range(n):                      # 12 held-out shapes, and their mirror images
        image = shapes["images"][i % 12]
        image = image if i < 12 else np.ascontiguousarray(image[:, ::-1])
        path = folder / f"{i}.png"
        write_png(path, image)
        rows.append({"path": str(path), "image_id": f"img-{i}",
                     "label": SHAPE_CLASSES[int(shapes["labels"][i % 12])]})
    listing = write_input(tmp_path / "list.parquet", rows)
    root = tmp_path / "out"

    driver = subprocess.Popen(_cli(shapes, listing, root, "night"), env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while len(_committed_ids(root, "night")) < n // 2:
            assert driver.poll() is None, driver.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no task committed in time"
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        # the JVM and its Python workers notice their driver is gone and exit
        for _ in range(600):
            try:
                os.killpg(driver.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(driver.pid, signal.SIGKILL)
            pytest.fail("the killed driver's JVM outlived it by a minute")
    finally:
        if driver.poll() is None:
            driver.kill()
    committed = _committed_ids(root, "night")
    assert n // 2 <= len(committed) < n, len(committed)
    assert not (root / "images").exists()          # nothing was published

    again = subprocess.run(_cli(shapes, listing, root, "night"), env=_env(),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((root / "runs" / "run_id=night" / "summary.json").read_text())
    assert summary["images"]["resumed"] == len(committed)
    assert summary["images"]["explained"] == n - len(committed)
    assert summary["images"]["rows"] == n and summary["images"]["ok"] == n
    images = _table(root, "images", "night")
    assert sorted(images.image_id) == sorted(r["image_id"] for r in rows)   # each row once
    assert not (root / "_staging").exists()

    # equal to an uninterrupted run
    whole = tmp_path / "whole"
    cfg = load_config(overrides={
        "input": listing, "output": str(whole), "model": shapes["model_path"],
        "preprocess": "none", "label_names": list(SHAPE_CLASSES), "run_id": "night",
        "n_samples": 1000, "n_superpixels": 40, "top_labels": 2, "partitions": 5,
        "report": False}).resolved()
    run_explain(cfg, spark=spark)
    _assert_same_rows(root, "night", whole, "night")
    for overlay in (whole / "overlays" / "run_id=night").rglob("*.png"):
        twin = root / overlay.relative_to(whole)
        assert twin.read_bytes() == overlay.read_bytes(), overlay
    assert len(list((root / "overlays" / "run_id=night").rglob("*.png"))) == \
        len(list((whole / "overlays" / "run_id=night").rglob("*.png")))
