"""Configuration errors through the real ``lime-spark explain``: fast, one line, no Spark job.

Each case runs the console script as a user does, with Spark's event log on,
and checks: exit status 2, the last line of stderr is the one-line error
(``lime-spark: error: ...``; argparse's for an unknown flag),
the event log of the session (when one was started) records no Spark job, and
nothing was written under the output root.  ``tests/e2e/test_spark_submit.py``
covers spark-submit; ``tests/spark/test_reliability.py`` the failures that
happen while images are processed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import make_model

BIN = Path(sys.executable).parent
_DROP_ENV = ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_REMOTE",
             "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE", "SPARK_API_MODE",
             "SPARK_CONF_DIR", "MASTER")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1", TF_CPP_MIN_LOG_LEVEL="3")
    return env


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    import io

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    root = tmp_path_factory.mktemp("config-errors")
    image = root / "image.png"
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 60, 3), 120, np.uint8)).save(buf, format="PNG")
    image.write_bytes(buf.getvalue())
    pq.write_table(pa.Table.from_pylist([{"path": str(image)}]), root / "list.parquet")
    (root / "notes.txt").write_text("not a parquet file\n")
    (root / "corrupt.keras").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "options.yaml").write_text("num_samples: 100\nnum_sampels: 10\n")
    (root / "a-file").write_text("a file, not a folder\n")
    (root / "folder.keras").mkdir()
    return {"list": str(root / "list.parquet"), "notes": str(root / "notes.txt"),
            "model": make_model(root / "model.keras"),
            "logits": make_model(root / "logits.keras", activation=None, scale=40.0),
            "corrupt": str(root / "corrupt.keras"), "yaml": str(root / "options.yaml"),
            "file": str(root / "a-file"), "root": str(root)}


# name: (arguments after the common ones, fragment of the error line, Spark session started)
CASES = {
    "unknown flag": (["--bogus", "1"], "unrecognized arguments: --bogus 1", False),
    "unknown --set key": (["--set", "num_sampels=10"], "Unknown option(s) ['num_sampels']",
                          False),
    "unknown key in --config": (["--config", "{yaml}"], "Unknown option(s) ['num_sampels']",
                                False),
    "value out of range": (["--num-samples", "1"], "n_samples", False),
    "missing --model": (["--model", "null"], "Missing required option 'model'", False),
    "missing input": (["--input", "{root}/nowhere.parquet"], "which does not exist", False),
    "missing model file": (["--model", "{root}/nowhere.keras"],
                           "Expected --model to be a readable file", False),
    "model is a folder": (["--model", "{root}/folder.keras"], "(a directory)", False),
    "unreadable model file": (["--model", "{corrupt}"], "Could not load a Keras model", True),
    "unknown model name": (["--model", "mobilenetz"], "keras.applications names", True),
    "output root not writable": (["--output", "{file}/out"], "Expected a writable output root",
                                 False),
    "logits without --output-activation": (["--model", "{logits}"],
                                           "--output-activation softmax", True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_configuration_errors_fail_fast_with_one_line_and_no_spark_job(inputs, tmp_path, name):
    extra, fragment, session = CASES[name]
    events = tmp_path / "events"
    events.mkdir()
    output = tmp_path / "out"
    common = {"--input": inputs["list"], "--output": str(output), "--model": inputs["model"],
              "--preprocess": "none", "--report": "false"}
    given = dict(zip(extra[::2], extra[1::2]))
    args = []
    for flag, value in {**common, **given}.items():
        args += [flag, value.format(**inputs)]
    started = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "lime-spark"), "explain", *args, "--master", "local[1]",
         "--conf", "spark.ui.enabled=false", "--conf", "spark.eventLog.enabled=true",
         "--conf", "spark.eventLog.compress=false",
         "--conf", f"spark.eventLog.dir={events.as_uri()}"],
        env=_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    seconds = time.perf_counter() - started
    assert proc.returncode == 2, (name, proc.stderr[-3000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    last = lines[-1]
    assert last.startswith("lime-spark: error:") and fragment in last, (name, lines[-5:])
    # Spark 4 writes rolling event logs: a folder of event files per application
    apps = list(events.iterdir())
    assert len(apps) == (1 if session else 0), apps
    for app in apps:
        text = "".join(f.read_text() for f in sorted(app.rglob("*")) if f.is_file())
        assert '"Event":"SparkListenerApplicationStart"' in text
        assert '"Event":"SparkListenerJobStart"' not in text, name
    assert not output.exists() or not [p for p in output.rglob("*") if p.is_file()]
    if not session:
        # every check that needs no Spark runs before the session starts (issue 9, 13)
        assert seconds < 3.0, (name, seconds)
    print(f"\n{name}: exit 2 in {seconds:.1f}s: {last[:160]}")
