"""GPU pinning on a real ``local-cluster`` with fake GPUs (no GPU needed).

Spark's own ``pyspark/tests/test_taskcontext.py`` (``TaskContextTestsWithResources``)
checks task resources this way: a ``local-cluster`` master, a fake discovery
script, ``spark.test.home`` set.  Here two workers (one core each) run
``fake_gpu_discovery.sh``, which hands worker 1 address "0" and worker 2
address "1"; every task holds one GPU (``spark.task.resource.gpu.amount 1``).
The tasks call :func:`lime_spark.spark.gpu.pin_task_gpus` and report what
their ``TaskContext`` gave them and what ``CUDA_VISIBLE_DEVICES`` became, and
the real job (``lime-spark explain`` on two images with a tiny untrained
``.keras`` model) must report both addresses in ``summary["workers"]["gpus"]``.

Why a subprocess: a driver owns one SparkContext, and the other modules of
``tests/spark/`` share an in-process local session (``tests/spark/conftest.py``).
This module never touches that session: it runs this file as a script
(``python test_gpu_local_cluster.py OUT_DIR``) with its own JVM, which first
runs a ``local[1]`` check (no GPU resources), then the ``local-cluster`` checks,
and writes ``OUT_DIR/results.json``; the tests assert on that file.

The subprocess's ``SPARK_HOME`` is a temporary folder linking pyspark's
``jars`` and ``bin``, so the workers' ``work/`` folders (executor logs) go
there, not into the installed pyspark package.  Everything binds to
127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FAKE_DISCOVERY = HERE / "fake_gpu_discovery.sh"
GPU_DISCOVERY = REPO / "scripts" / "gpu-discovery.sh"
GPU_CONF = REPO / "conf" / "spark-gpu.conf"

MASTER = "local-cluster[2,1,1024]"     # 2 workers, 1 core and 1024 MB each
FAKE_GPUS = 2                          # one fake GPU per worker: "0" and "1"
SUBPROCESS_TIMEOUT = 420               # seconds; the run takes ~1 min on 2 idle cores
RUN_ID = "gpu-local-cluster"

# Variables of the parent that must not leak into the subprocess's driver:
# a gateway of another driver, Spark Connect mode, a real GPU selection.
_DROP_ENV = ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_REMOTE",
             "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE", "SPARK_API_MODE",
             "CUDA_VISIBLE_DEVICES", "SPARK_CONF_DIR", "MASTER")


# --------------------------------------------------------------------------
# the subprocess (this file run as a script)
# --------------------------------------------------------------------------

def _probe_batches(batches):
    """``mapInArrow`` function: pin, then report the task's GPUs and the worker's state.

    A ``mapInArrow`` task, like the job's, so the job reuses these Python workers.
    """
    import importlib.abc
    import json
    import os
    import sys

    import pyarrow as pa
    from pyspark import TaskContext

    from lime_spark.spark.gpu import pin_task_gpus

    seen = {}

    class _WatchTensorFlow(importlib.abc.MetaPathFinder):
        """Records CUDA_VISIBLE_DEVICES at the moment tensorflow is first imported."""

        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" and "env" not in seen:
                seen["env"] = os.environ.get("CUDA_VISIBLE_DEVICES")
            return None

    ctx = TaskContext.get()
    gpu = ctx.resources().get("gpu")
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    tf_before = "tensorflow" in sys.modules
    watch = _WatchTensorFlow()
    sys.meta_path.insert(0, watch)
    try:
        pinned = pin_task_gpus()
    finally:
        sys.meta_path.remove(watch)
    for _ in batches:
        pass
    report = {
        "partition": ctx.partitionId(),
        "pid": os.getpid(),
        "assigned": list(gpu.addresses) if gpu is not None else None,
        "returned": pinned,
        "cuda_before": before,
        "cuda_after": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "tf_loaded_before": tf_before,
        "tf_loaded_after": "tensorflow" in sys.modules,
        "tf_import_saw": seen.get("env"),
        "tf_import_seen": "env" in seen,
    }
    yield pa.RecordBatch.from_pylist([{"report": json.dumps(report)}])


def _probe_without_gpus(rows):
    """Task function for local mode: no GPU resources, nothing may change."""
    import os

    from pyspark import TaskContext

    from lime_spark.spark.gpu import pin_task_gpus

    list(rows)
    out = {"resources": sorted(TaskContext.get().resources())}
    out["unset_before"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    out["unset_returned"] = pin_task_gpus()
    out["unset_after"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = "7"
    try:
        out["preset_returned"] = pin_task_gpus()
        out["preset_after"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    finally:
        del os.environ["CUDA_VISIBLE_DEVICES"]
    yield out


def _cluster_conf(spark_home: str) -> dict[str, str]:
    return {
        "spark.test.home": spark_home,     # local-cluster launches executors from it
        "spark.worker.resource.gpu.discoveryScript": str(FAKE_DISCOVERY),
        "spark.worker.resource.gpu.amount": "1",
        "spark.executor.resource.gpu.amount": "1",
        "spark.task.resource.gpu.amount": "1",
        "spark.executor.memory": "1g",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.python.worker.reuse": "true",
        "spark.locality.wait": "0",        # spread tasks over both executors at once
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }


def _wait_for_executors(spark, n: int, timeout: float = 120.0) -> None:
    status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus()
    deadline = time.monotonic() + timeout
    while status.size() < n + 1:           # the driver is listed too
        if time.monotonic() > deadline:
            raise RuntimeError(f"Expected {n} executors within {timeout:.0f}s. "
                               f"Received: {status.size() - 1}")
        time.sleep(0.25)
        status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus()


def _write_inputs(folder: Path) -> tuple[Path, Path]:
    """Two small PNGs listed in a Parquet file, and a tiny untrained .keras model."""
    import keras
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
        pixels[:20] //= 2
        path = folder / f"image-{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    images = folder / "images.parquet"
    pq.write_table(pa.table({"image_id": ["a", "b"], "path": paths}), images)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model_path = folder / "tiny.keras"
    model.save(model_path)
    return images, model_path


def _main(out_dir: Path) -> None:
    """Run the checks and write ``results.json`` after each part."""
    import logging

    from lime_spark import cli
    from lime_spark.spark.session import build_session

    logging.basicConfig(level=logging.WARNING)
    results: dict = {"seconds": {}}
    result_file = out_dir / "results.json"
    started = time.monotonic()

    def save(part: str) -> None:
        results["seconds"][part] = round(time.monotonic() - started, 1)
        result_file.write_text(json.dumps(results, indent=2))

    # 1. local mode, no GPU resources
    spark = build_session(app_name="gpu-local", master="local[1]",
                          conf={"spark.ui.enabled": "false",
                                "spark.ui.showConsoleProgress": "false"})
    results["local"] = spark.sparkContext.parallelize([0], 1).mapPartitions(
        _probe_without_gpus).collect()
    spark.stop()
    save("local")

    # 2. local-cluster with a fake GPU per worker: pinning in the tasks
    conf = _cluster_conf(os.environ["SPARK_HOME"])
    spark = build_session(app_name="gpu-local-cluster", master=MASTER, conf=conf)
    _wait_for_executors(spark, 2)
    probes = spark.range(0, 4, numPartitions=4).mapInArrow(_probe_batches, "report STRING")
    results["tasks"] = [json.loads(row.report) for row in probes.collect()]
    results["claimed"] = sorted(p.name.removeprefix("gpu-") for p in
                                Path(os.environ["LIME_SPARK_FAKE_GPU_DIR"]).iterdir())
    save("tasks")

    # 3. the real job on the same cluster (cli reuses the session, then stops it).
    #    Its mapInArrow tasks reuse the Python workers pinned in 2; the job's own
    #    pin_task_gpus() call is what fills summary["workers"]["gpus"].
    images, model = _write_inputs(out_dir)
    output = out_dir / "output"
    argv = ["explain", "--input", str(images), "--output", str(output),
            "--model", str(model), "--num-samples", "50", "--n-superpixels", "10",
            "--top-labels", "2", "--run-id", RUN_ID, "--master", MASTER]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    results["job_exit_code"] = cli.main(argv)
    summary = output / "runs" / f"run_id={RUN_ID}" / "summary.json"
    results["summary"] = json.loads(summary.read_text()) if summary.exists() else None
    save("job")


# --------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------

def _spark_home(folder: Path) -> Path:
    """A SPARK_HOME linking pyspark's jars and bin; workers write work/ under it."""
    import pyspark

    installed = Path(pyspark.__file__).resolve().parent
    folder.mkdir()
    for name in ("jars", "bin"):
        (folder / name).symlink_to(installed / name)
    return folder


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    """Run this file as a script once; the parsed results.json and the logs."""
    root = tmp_path_factory.mktemp("gpu-local-cluster")
    out_dir = root / "out"
    out_dir.mkdir()
    spark_home = _spark_home(root / "spark-home")
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env.update({
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "LIME_SPARK_FAKE_GPU_DIR": str(root / "fake-gpus"),
        "LIME_SPARK_FAKE_GPU_COUNT": str(FAKE_GPUS),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    })
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(out_dir)],
                              cwd=root, env=env, capture_output=True, text=True,
                              timeout=SUBPROCESS_TIMEOUT)
        code, stderr = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = "timeout"
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) \
            else (exc.stderr or "")
    seconds = time.monotonic() - started
    executor_logs = "\n".join(
        f"--- {log.relative_to(spark_home)}\n{_tail(log)}"
        for log in sorted((spark_home / "work").glob("app-*/*/stderr")))
    result_file = out_dir / "results.json"
    results = json.loads(result_file.read_text()) if result_file.exists() else {}
    report = (f"subprocess exit code {code} after {seconds:.0f}s\n--- driver stderr (tail)\n"
              + "\n".join(stderr.splitlines()[-60:]) + "\n" + executor_logs)
    yield {"results": results, "code": code, "report": report}


def _part(cluster_run, key):
    results = cluster_run["results"]
    if key not in results:
        pytest.fail(f"the subprocess did not produce {key!r}\n{cluster_run['report']}")
    return results[key]


def test_pin_outside_a_task_changes_nothing(monkeypatch):
    from lime_spark.spark.gpu import pin_task_gpus

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert pin_task_gpus() is None
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert pin_task_gpus() is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


@pytest.mark.slow
def test_local_mode_task_without_gpus_stays_on_cpu(cluster_run):
    (task,) = _part(cluster_run, "local")
    assert task["resources"] == []
    assert task["unset_before"] is None
    assert task["unset_returned"] is None
    assert task["unset_after"] is None
    assert task["preset_returned"] is None
    assert task["preset_after"] == "7"


@pytest.mark.slow
def test_each_task_is_pinned_to_the_gpu_it_holds(cluster_run):
    tasks = _part(cluster_run, "tasks")
    claimed = _part(cluster_run, "claimed")
    report = cluster_run["report"]
    assert claimed == ["0", "1"], report                   # one fake GPU per worker
    assert sorted(t["partition"] for t in tasks) == [0, 1, 2, 3]
    for task in tasks:
        assert task["assigned"] is not None and len(task["assigned"]) == 1, task
        (address,) = task["assigned"]
        assert task["returned"] == address, task
        assert task["cuda_after"] == address, task
    # both workers ran tasks, each with its own GPU; a Python worker keeps one GPU
    assert sorted({t["assigned"][0] for t in tasks}) == claimed, tasks
    by_pid: dict[int, set[str]] = {}
    for task in tasks:
        by_pid.setdefault(task["pid"], set()).add(task["assigned"][0])
    assert all(len(addresses) == 1 for addresses in by_pid.values()), by_pid
    # TensorFlow started after the variable was set, in every Python worker
    assert all(t["tf_loaded_after"] for t in tasks), tasks
    first_imports = [t for t in tasks if t["tf_import_seen"]]
    assert {t["pid"] for t in first_imports} == set(by_pid), tasks
    for task in first_imports:
        assert not task["tf_loaded_before"]
        assert task["tf_import_saw"] == task["assigned"][0], task


@pytest.mark.slow
def test_job_reports_the_gpus_of_its_workers(cluster_run):
    assert _part(cluster_run, "job_exit_code") == 0, cluster_run["report"]
    summary = _part(cluster_run, "summary")
    assert summary is not None, cluster_run["report"]
    assert summary["spark"]["master"] == MASTER
    assert summary["images"] == {"rows": 2, "ok": 2, "error": 0, "errors_by_class": {},
                                 "explained": 2, "reused": 0, "resumed": 0}
    assert summary["workers"]["gpus"] == _part(cluster_run, "claimed") == ["0", "1"]


# --------------------------------------------------------------------------
# the shipped discovery script and configuration (no Spark)
# --------------------------------------------------------------------------

def _fake_nvidia_smi(folder: Path, output: str) -> Path:
    folder.mkdir()
    tool = folder / "nvidia-smi"
    tool.write_text("#!/bin/sh\n" + f"printf '{output}'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.mark.parametrize("listing, addresses", [
    ("0\\n", ["0"]),
    ("0\\n1\\n3\\n", ["0", "1", "3"]),
])
def test_gpu_discovery_script_lists_nvidia_smi_indices(tmp_path, listing, addresses):
    assert os.access(GPU_DISCOVERY, os.X_OK)
    bin_dir = _fake_nvidia_smi(tmp_path / "bin", listing)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(GPU_DISCOVERY)], env=env, capture_output=True, text=True,
                          check=True)
    assert json.loads(proc.stdout) == {"name": "gpu", "addresses": addresses}


def test_gpu_discovery_script_fails_without_gpus(tmp_path):
    bash = shutil.which("bash")
    no_gpu = _fake_nvidia_smi(tmp_path / "bin", "")
    for path, message in ((no_gpu, "lists no GPU"), (tmp_path / "empty", "not found")):
        proc = subprocess.run([bash, str(GPU_DISCOVERY)], env={"PATH": str(path)},
                              capture_output=True, text=True)
        assert proc.returncode != 0
        assert proc.stdout == ""
        assert message in proc.stderr


def test_fake_discovery_script_gives_each_worker_its_own_address(tmp_path):
    env = {**os.environ, "LIME_SPARK_FAKE_GPU_DIR": str(tmp_path / "claims"),
           "LIME_SPARK_FAKE_GPU_COUNT": "2"}
    outputs = [subprocess.run([str(FAKE_DISCOVERY)], env=env, capture_output=True, text=True)
               for _ in range(3)]
    assert [json.loads(p.stdout)["addresses"] for p in outputs[:2]] == [["0"], ["1"]]
    assert outputs[2].returncode != 0 and "taken" in outputs[2].stderr


def test_gpu_conf_documents_every_setting_and_balances_slots():
    from lime_spark.spark.session import read_spark_conf

    lines = GPU_CONF.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            assert i > 0 and lines[i - 1].startswith("#"), f"no comment above {line!r}"
    conf = read_spark_conf(GPU_CONF)
    assert conf["spark.executor.resource.gpu.discoveryScript"].endswith(
        "/scripts/gpu-discovery.sh")
    assert os.path.isabs(conf["spark.executor.resource.gpu.discoveryScript"])
    # as many task slots by GPU share as by cores: neither sits idle
    gpu_slots = (float(conf["spark.executor.resource.gpu.amount"])
                 / float(conf["spark.task.resource.gpu.amount"]))
    cpu_slots = int(conf["spark.executor.cores"]) // int(conf.get("spark.task.cpus", "1"))
    assert gpu_slots == cpu_slots
    assert conf["spark.python.worker.reuse"] == "true"


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
