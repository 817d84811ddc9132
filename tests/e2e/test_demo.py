"""The README's first command, as a user runs it: ``scripts/demo.sh``.

The real job on local Spark with the real ImageNet MobileNet (from a Keras
cache the script seeds from ``../shared/models``) over scikit-image's photos,
with fewer LIME samples than the default to stay quick; same code path.
Its outputs are checked: the three tables, the overlays, the HTML report.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote

import pyarrow.parquet as pq
import pytest

from lime_spark.batch import EXPLANATION_COLUMNS, FEATURE_COLUMNS, IMAGE_COLUMNS
from lime_spark.storage import safe_key
from tests.conftest import CLASS_INDEX_FILE, MOBILENET_FILE, REPO
from tests.unit.test_report import page_data

pytestmark = pytest.mark.slow

PHOTOS = {"chelsea", "coffee", "astronaut", "rocket", "horse", "camera", "hubble_deep_field",
          "immunohistochemistry"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    for required in (MOBILENET_FILE, CLASS_INDEX_FILE):
        if not required.exists():
            pytest.fail(f"{required} is missing: the demo needs ../shared/models")
    out = tmp_path_factory.mktemp("demo") / "out"
    keras_home = tmp_path_factory.mktemp("keras-home")      # seeded by the script itself
    env = {**os.environ, "DEMO_OUT": str(out), "KERAS_HOME": str(keras_home),
           "LIME_SPARK_SHARED": str(MOBILENET_FILE.parent.parent)}
    started = time.perf_counter()
    proc = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), "--num-samples", "300"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"demo.sh --num-samples 300 took {seconds:.0f}s")
    return out, keras_home, proc.stdout, proc.stderr


def _table(out: Path, name: str):
    return pq.read_table(out / name / "run_id=demo").to_pandas()


def test_demo_prints_summary_query_and_report_path(demo):
    out, keras_home, stdout, _ = demo
    assert "run demo: 8 images, 8 ok, 0 error" in stdout
    assert "top_label_name" in stdout and "explanation_fit" in stdout    # the DuckDB query
    report = out / "report" / "run_id=demo" / "index.html"
    assert f"report: {report}" in stdout.splitlines()
    seeded = {p.name for p in (keras_home / "models").iterdir()}
    assert {MOBILENET_FILE.name, CLASS_INDEX_FILE.name} <= seeded


def test_demo_sets_up_nothing_more_in_the_test_venv(demo):
    # the test venv (extra dev) holds the demo's dependencies; the demo never fetches the S3A jars
    _, _, _, stderr = demo
    assert "setup:" not in stderr and "S3A" not in stderr
    assert "demo: explaining scikit-image's photos on local Spark" in stderr


def test_demo_tables_and_overlays(demo):
    out, _, _, _ = demo
    images = _table(out, "images")
    assert list(images.columns) == list(IMAGE_COLUMNS)
    assert set(images.image_id) == PHOTOS and (images.status == "ok").all()
    assert (images.n_samples == 300).all()
    coffee = images.set_index("image_id").loc["coffee"]
    assert coffee.top_label_name == "espresso"            # the one the model surely gets right
    explanations = _table(out, "explanations")
    assert list(explanations.columns) == list(EXPLANATION_COLUMNS)
    assert len(explanations) == 8 * 5 and explanations.model_r2.between(-1, 1).all()
    features = _table(out, "features")
    assert list(features.columns) == list(FEATURE_COLUMNS)
    assert set(features.image_id) == PHOTOS
    for image_id in PHOTOS:
        folder = out / "overlays" / "run_id=demo" / safe_key(image_id)
        labels = explanations[explanations.image_id == image_id].label
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [*(f"{label}.png" for label in labels), "segments.png"])
    summary = json.loads((out / "runs" / "run_id=demo" / "summary.json").read_text())
    assert summary["images"]["ok"] == 8 and summary["table_rows"]["explanations"] == 40


def test_demo_report(demo, tmp_path):
    out, _, _, _ = demo
    folder = out / "report" / "run_id=demo"
    data = page_data((folder / "index.html").read_text("utf-8"))
    explanations = _table(out, "explanations")
    assert {r["id"] for r in data["images"]} == PHOTOS
    for record in data["images"]:
        labels = sorted(explanations[explanations.image_id == record["id"]].label)
        assert sorted(lab["label"] for lab in record["labels"]) == labels
        assert sorted(record["thumbs"]) == sorted(
            ["original", "segments", *(str(label) for label in labels)])
        for name in record["thumbs"]:
            assert (folder / unquote(data["thumbs_base"] + record["folder"]) / f"{name}.jpg").is_file()
        assert (folder / unquote(data["overlays_base"] + record["folder"])
                / "segments.png").resolve().is_file()

    # and in the browser: every card, no console error, a screenshot
    from tests.e2e.test_report_browser import CARDS, LOAD_ALL_IMAGES, Browser, chromium_binary
    from tests.e2e.test_report_browser import save_artifact

    browser = Browser(chromium_binary())
    try:
        browser.open((folder / "index.html").as_uri())
        assert browser.js(CARDS) == 8
        assert browser.js(LOAD_ALL_IMAGES) == []
        browser.js("window.scrollTo(0, 0)")
        save_artifact(browser.screenshot(tmp_path / "demo-report.png"))
        assert browser.problems() == []
    finally:
        browser.close()
