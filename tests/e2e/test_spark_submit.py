"""The real entry points as a user runs them: spark-submit and the lime-spark script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyspark
import pytest

from lime_spark.shapes import SHAPE_CLASSES, make_shapes_dataset, train_shapes_classifier

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _env():
    env = dict(os.environ)
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1", TF_CPP_MIN_LOG_LEVEL="3")
    return env


@pytest.fixture(scope="module")
def job_inputs(tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    root = tmp_path_factory.mktemp("submit")
    images, labels, _ = make_shapes_dataset(300, random_state=21)
    model = train_shapes_classifier(images, labels, epochs=3, random_state=0)
    model.save(root / "model.keras")
    (root / "classes.txt").write_text("\n".join(SHAPE_CLASSES) + "\n")
    rows = []
    for i in range(3):
        path = root / "in" / f"ünï {i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(images[i]).save(path)
        rows.append({"path": str(path)})
    pq.write_table(pa.Table.from_pylist(rows), root / "list.parquet")
    return root


def test_spark_submit_runs_the_job(job_inputs, tmp_path):
    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(spark_submit), "--master", "local[2]", "--conf", "spark.ui.enabled=false",
         str(REPO / "jobs" / "explain_images.py"),
         "--input", str(job_inputs / "list.parquet"), "--output", str(out),
         "--model", str(job_inputs / "model.keras"), "--preprocess", "none",
         "--labels", str(job_inputs / "classes.txt"), "--num-samples", "100",
         "--n-superpixels", "16", "--top-labels", "2", "--run-id", "submitted"],
        env=_env(), capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("# lime-spark resolved configuration")
    assert "n_samples: 100" in proc.stdout and "run submitted: 3 images, 3 ok" in proc.stdout
    assert "partition " in proc.stderr            # a log line per finished partition
    summary = json.loads((out / "runs" / "run_id=submitted" / "summary.json").read_text())
    assert summary["images"]["ok"] == 3 and summary["table_rows"]["explanations"] == 6
    assert summary["spark"]["master"] == "local[2]"
    assert len(list((out / "overlays" / "run_id=submitted").glob("*/*.png"))) == 3 * 3


def test_configuration_errors_exit_fast_with_one_line(job_inputs, tmp_path):
    lime_spark = BIN / "lime-spark"
    cases = [
        (["--input", "x", "--output", str(tmp_path), "--model", "m", "--bogus", "1"], 2, "bogus"),
        (["--input", str(job_inputs / "list.parquet"), "--output", str(tmp_path / "o"),
          "--model", str(tmp_path / "missing.keras")], 2, "(not found)"),
        (["--output", str(tmp_path / "o"), "--model", "m"], 2, "--input"),
    ]
    for args, code, fragment in cases:
        proc = subprocess.run([str(lime_spark), "explain", *args], env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == code, (args, proc.stderr[-2000:])
        last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
        assert fragment in last, (args, last)
