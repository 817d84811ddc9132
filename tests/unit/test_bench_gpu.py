"""scripts/bench_gpu.{py,sh}: no GPU means a message and exit 0; the pure helpers' arithmetic.

No Spark and no TensorFlow here: the scripts are run where no ``nvidia-smi``
is on PATH, and the helpers are imported from the script's file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "bench_gpu.py"
WRAPPER = REPO / "scripts" / "bench_gpu.sh"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _without_nvidia_smi(tmp_path: Path) -> dict[str, str]:
    """The environment with a PATH that holds no nvidia-smi (an empty folder)."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    return {**os.environ, "PATH": str(empty)}


def test_script_without_gpu_says_so_and_exits_0(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT)], env=_without_nvidia_smi(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("bench-gpu: no NVIDIA GPU here (nvidia-smi not found on "
                                   "PATH): nothing to measure")


def test_wrapper_without_gpu_exits_0_before_any_setup(tmp_path):
    assert WRAPPER.stat().st_mode & stat.S_IXUSR
    done = subprocess.run(["/bin/bash", str(WRAPPER), "--images", "8"],
                          env=_without_nvidia_smi(tmp_path), capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert "no NVIDIA GPU here" in done.stdout and "nothing to measure" in done.stdout
    assert done.stderr == ""           # nothing was set up


def test_no_gpu_reason_reads_nvidia_smi_list(bench, tmp_path):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-1234)'\n")
    fake.chmod(0o755)
    assert bench.no_gpu_reason(str(fake)) == (None, ["GPU 0: NVIDIA H200 (UUID: GPU-1234)"])
    fake.write_text("#!/bin/sh\necho 'No devices were found'\n")
    assert bench.no_gpu_reason(str(fake)) == ("nvidia-smi -L lists no GPU", [])
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert bench.no_gpu_reason(str(fake)) == ("nvidia-smi -L exited 9: NVIDIA-SMI has failed", [])


def test_forward_passes_count_samples_and_metric_rows_of_ok_images(bench):
    rows = [{"status": "ok", "n_samples": 512, "n_superpixels": 40},
            {"status": "ok", "n_samples": 1000, "n_superpixels": 49},
            {"status": "error", "n_samples": None, "n_superpixels": None}]
    counts = bench.forward_passes(rows, metrics=True)
    assert counts == {"images_ok": 2, "sample_passes": 1512,
                      "metric_passes": 2 * 41 + 2 * 50, "forward_passes": 1512 + 182,
                      "superpixels": 89}
    assert bench.forward_passes(rows, metrics=False)["forward_passes"] == 1512


def test_utilisation_summary_of_nvidia_smi_lines(bench):
    lines = ["0, 1000", "50, 2000", "[N/A], [N/A]", "", "100, 3000", "100, 2500", "75, 2500"]
    samples = [s for s in map(bench.parse_smi_line, lines) if s is not None]
    assert samples == [(0.0, 1000.0), (50.0, 2000.0), (100.0, 3000.0), (100.0, 2500.0),
                       (75.0, 2500.0)]
    summary = bench.utilisation_summary(samples)
    assert summary == {"samples": 5, "mean": 65.0, "median": 75.0, "p10": 20.0,
                       "memory_max_mib": 3000.0}
    assert bench.utilisation_summary([(42.0, 1.0)])["p10"] == 42.0
    assert bench.utilisation_summary([]) == {"samples": 0, "mean": None, "median": None,
                                             "p10": None, "memory_max_mib": None}


def test_floor_arithmetic(bench):
    # 10 explanations of 1000 passes each, in batches of 1024, took 4 s
    figures = bench.floor_figures(10_000, 10, 1024, 4.0)
    assert figures == {"floor_batches": 10, "floor_seconds": 4.0,
                       "floor_forward_passes_per_second": 2500.0,
                       "floor_explanations_per_second": 2.5}
    assert bench.ratio(1.25, figures["floor_explanations_per_second"]) == 0.5
    assert bench.ratio(None, 2.5) is None and bench.ratio(1.0, 0) is None
    with pytest.raises(ValueError, match="positive"):
        bench.floor_figures(0, 10, 1024, 4.0)


def test_results_block_is_key_value_lines_and_json(bench):
    results = {"job_explanations_per_second": 2.5, "gpu_util_job_mean": None,
               "overlays": True, "images": 64}
    assert bench.format_block(results).splitlines() == [
        "job_explanations_per_second: 2.5", "gpu_util_job_mean: n/a", "overlays: true",
        "images: 64"]
    assert json.loads(json.dumps(results)) == results


def test_dry_run_defaults_are_tiny(bench):
    args = bench._parse_args(["--cpu-dry-run"])
    assert (args.images, args.n_samples, args.model, args.input_size, args.weights) == \
        (4, "64", "mobilenet", 128, "imagenet")
    args = bench._parse_args([])
    assert (args.images, args.n_samples, args.model, args.input_size, args.weights) == \
        (64, "auto", "resnet50", 224, "none")
    assert bench._model_args("mobilenet", 128) == {"input_shape": [128, 128, 3], "alpha": 0.25}


def test_steady_rate_takes_each_workers_model_load_off(bench):
    assert bench.steady_rate(64, 40.0, 1, 8.0, 1) == 2.0
    assert bench.steady_rate(64, 40.0, 2, 16.0, 2) == 2.0       # two workers loading at once
    assert bench.steady_rate(64, 40.0, 0, None, 1) is None      # the warm-up's model was reused
