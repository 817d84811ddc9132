"""Anchors in the Spark job (issue 15): ``--methods lime,anchors`` on real local Spark."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from lime_spark.cli import run_explain
from lime_spark.config import load_config
from lime_spark.shapes import SHAPE_CLASSES
from lime_spark.tables import ANCHOR_COLUMNS

from .conftest import write_input, write_png

OPTIONS = {"n_samples": 200, "n_superpixels": 16, "top_labels": 2, "report": False,
           "methods": "lime,anchors", "anchor_labels": 2}


def _run(spark, shapes, input_uri, output, **overrides):
    cfg = load_config(overrides={"input": input_uri, "output": str(output),
                                 "model": shapes["model_path"], "preprocess": "none",
                                 "label_names": list(SHAPE_CLASSES), **OPTIONS, **overrides})
    return run_explain(cfg.resolved(), spark=spark)


def _table(root: Path, name: str, run_id: str):
    frame = pq.read_table(root / name / f"run_id={run_id}").to_pandas()
    return frame.sort_values(["image_id", "label"] if name == "anchors" else ["image_id"]) \
        .reset_index(drop=True)


def test_job_writes_one_anchor_per_ok_image_and_label(spark, shapes, tmp_path):
    rows = []
    for i in range(5):
        path = tmp_path / "images" / f"{i}.png"
        write_png(path, shapes["images"][i])
        rows.append({"path": str(path), "image_id": f"img-{i}"})
    broken = tmp_path / "images" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rows.append({"path": str(broken), "image_id": "broken"})
    listing = write_input(tmp_path / "list.parquet", rows)
    root = tmp_path / "out"

    summary = _run(spark, shapes, listing, root, run_id="a1", partitions=3)
    assert summary["images"]["ok"] == 5 and summary["table_rows"]["anchors"] == 10
    anchors = _table(root, "anchors", "a1")
    assert list(anchors.columns) == list(ANCHOR_COLUMNS)
    assert "broken" not in set(anchors.image_id)                 # none for error rows
    assert sorted(anchors.groupby("image_id").size().tolist()) == [2] * 5
    explanations = _table(root, "explanations", "a1")
    top2 = explanations[explanations.label_rank <= 2].set_index(["image_id", "label"]).index
    assert set(anchors.set_index(["image_id", "label"]).index) == set(top2)
    assert (anchors.anchor_size == anchors.anchor.map(len)).all()
    assert anchors.coverage.between(0, 1).all() and anchors.n_samples.gt(0).all()
    # the top label's anchors meet the threshold (a second label is rarely the model's
    # prediction under perturbation: its search ends with success false)
    images = _table(root, "images", "a1").set_index("image_id")
    top = anchors[anchors.label == anchors.image_id.map(images.top_label)]
    assert len(top) == 5 and top.success.sum() >= 4
    assert (anchors[anchors.success].precision >= 0.95).all()
    for _, row in anchors.iterrows():
        assert set(row.anchor) <= set(range(int(images.loc[row.image_id, "n_superpixels"])))
        assert row.overlay_uri.endswith(f"/anchor_{row.label}.png")
        with Image.open(row.overlay_uri) as im:
            assert im.size[0] == 64 and im.size[1] > 64          # + caption strip
    assert summary["timings"]["stages"]["anchors"] > 0

    # deterministic per image: another partitioning, explained again, the same anchors
    _run(spark, shapes, listing, root, run_id="a2", partitions=2, reuse="none")
    again = _table(root, "anchors", "a2")
    drop = ["seconds", "overlay_uri"]
    assert again.drop(columns=drop).equals(anchors.drop(columns=drop))
    # and a reused run copies them with their overlays
    reused = _run(spark, shapes, listing, root, run_id="a3", partitions=2)
    assert reused["images"]["reused"] == 5
    assert reused["reuse"]["from_runs"] == ["a2"]          # the latest of the equal runs
    copied = _table(root, "anchors", "a3")
    assert copied.drop(columns=["overlay_uri"]).equals(again.drop(columns=["overlay_uri"]))
    for a, b in zip(again.overlay_uri, copied.overlay_uri):
        assert "run_id=a3" in b and Path(a).read_bytes() == Path(b).read_bytes()

    # lime only: no anchors partition for the run
    plain = _run(spark, shapes, listing, root, run_id="a4", methods="lime", partitions=2)
    assert "anchors" not in plain["table_rows"]
    assert not (root / "anchors" / "run_id=a4").exists()
