"""Benchmark: the explanation job on one NVIDIA GPU against the model-only floor.

Usage: .venv/bin/python scripts/bench_gpu.py [--images 64] [--n-samples auto]
       [--device-batch-size auto] [--model resnet50] [--input-size 224]
       [--json PATH] [--cpu-dry-run]
(or scripts/bench_gpu.sh with the same options: it sets up .venv first)

What it does, in one process:

1. checks for a GPU: ``nvidia-smi -L`` must list one and TensorFlow must see
   it; without one it prints "no NVIDIA GPU here (...): nothing to measure"
   and exits 0;
2. writes N (default 64) photo-like 640x480 JPEGs (crops of scikit-image's
   bundled photos, resized, with a little colour jitter; nothing downloaded)
   and an input Parquet (``path``, ``image_id``) into a temporary folder;
3. runs ``lime-spark explain`` (its own parser and ``run_explain``) on a
   ``local[1]`` Spark session: a warm-up job of 4 images (Python worker,
   TensorFlow, model load, XLA compilation), then the timed job on the same
   session and Python worker.  ResNet50 at 224 with random weights (seeded,
   so both jobs load the same weights), ``--runtime tensorflow``, the
   product's default ``n_samples`` (auto), overlays and metrics on.  The
   figure is explanations/s = ok images / ``timings.explain_seconds`` of the
   run's ``summary.json``.  Should the timed job load the model again all the
   same (``workers.model_loads`` > 0: the worker's model cache missed), the
   figure holds that load and compilation; it is also given without the
   load (``..._excl_model_load``, from ``timings.model_load_seconds``);
4. the model-only floor: the same model in this process, the job's number of
   forward passes (the ``n_samples`` of its ``images`` rows plus 2 (K + 1)
   deletion/insertion rows per ok image) in fixed batches of the job's device
   batch size through the classifier's compiled path (``predict_rows``, else
   ``predict_design``), after a warm-up call, converted to explanations/s;
5. samples the GPU's utilisation with ``nvidia-smi -lms 500`` during the timed
   job and during the floor.

It prints a final block of ``key: value`` lines (``--json PATH`` writes them
as JSON too): explanations/s of the job and at the floor, their ratio, the
forward passes, the model's share of worker time where the job reports it,
and mean/median/p10 GPU utilisation per phase.

Device batch size: Spark schedules no GPUs in local mode, so a worker would
resolve ``device_batch_size=auto`` to its CPU value; the benchmark resolves
``auto`` itself (1024 on a GPU, ``lime_spark.pipeline.DEVICE_BATCH``) and passes
the number to the job, and the floor uses the same.

Sizing: 64 images of ResNet50 at 224 with n_samples auto (at most 1000
samples plus about 100 metric rows each, about 70k forward passes), run twice
(job and floor), plus TensorFlow's start, Spark's start and the warm-up: about
two to three minutes on one current data-centre GPU, well inside five.

``--cpu-dry-run`` runs the same flow on the CPU (``CUDA_VISIBLE_DEVICES=-1``)
with a tiny setup, so the logic can be checked without a GPU: 4 images,
MobileNet alpha 0.25 at 128 with its ImageNet weights from ``--models-dir``
(linked into a private Keras cache), n_samples 64, overlays off, no
utilisation sampling (reported as n/a).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

GPU_DEVICE_BATCH = 1024
"""``device_batch_size=auto`` on a GPU (``lime_spark.pipeline.DEVICE_BATCH["gpu"]``)."""

SMI_QUERY = ["--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]


# -- pure helpers (tests/unit/test_bench_gpu.py) ----------------------------------------------

def no_gpu_reason(smi: str | None = None, timeout: float = 30.0) -> tuple[str | None, list[str]]:
    """Why there is no NVIDIA GPU to measure (None when ``nvidia-smi -L`` lists one), and
    the GPU lines it printed."""
    exe = smi or shutil.which("nvidia-smi")
    if exe is None:
        return "nvidia-smi not found on PATH", []
    try:
        done = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nvidia-smi -L failed: {type(exc).__name__}: {exc}", []
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return f"nvidia-smi -L exited {done.returncode}" + (f": {said[0]}" if said else ""), []
    gpus = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("GPU ")]
    if not gpus:
        return "nvidia-smi -L lists no GPU", []
    return None, gpus


def parse_smi_line(line: str) -> tuple[float, float] | None:
    """``"87, 12345"`` (utilisation %, memory used MiB) to numbers; None for anything else
    (``[N/A]``, a blank or partial line)."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 2:
        return None
    try:
        util, memory = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    return util, memory


def utilisation_summary(samples: Iterable[tuple[float, float]]) -> dict[str, float | int | None]:
    """Mean, median and 10th percentile of the utilisation samples, and the most memory used.

    The percentile is ``statistics.quantiles``' inclusive one (the value itself for a
    single sample); every figure is None without samples.
    """
    samples = list(samples)
    utils = [u for u, _ in samples]
    if not utils:
        return {"samples": 0, "mean": None, "median": None, "p10": None, "memory_max_mib": None}
    p10 = utils[0] if len(utils) == 1 else statistics.quantiles(utils, n=10,
                                                                 method="inclusive")[0]
    return {"samples": len(utils), "mean": round(statistics.fmean(utils), 1),
            "median": round(statistics.median(utils), 1), "p10": round(p10, 1),
            "memory_max_mib": max(m for _, m in samples)}


def forward_passes(rows: Iterable[Mapping[str, Any]], *, metrics: bool) -> dict[str, int]:
    """The forward passes the job made, from its ``images`` rows.

    Per ok image its ``n_samples`` (the original included) and, with metrics,
    the deletion and insertion curves of the top label: 2 (K + 1) rows for K =
    ``n_superpixels``.  Error rows count as nothing.
    """
    ok = samples = metric = superpixels = 0
    for row in rows:
        if row.get("status") != "ok":
            continue
        ok += 1
        samples += int(row["n_samples"])
        k = int(row["n_superpixels"])
        superpixels += k
        if metrics:
            metric += 2 * (k + 1)
    return {"images_ok": ok, "sample_passes": samples, "metric_passes": metric,
            "forward_passes": samples + metric, "superpixels": superpixels}


def floor_figures(passes: int, explanations: int, batch: int, seconds: float) -> dict[str, Any]:
    """The model-only floor: ``passes`` forward passes in ``ceil(passes / batch)`` fixed
    batches took ``seconds``; as passes/s and as explanations/s (at ``passes /
    explanations`` passes per explanation)."""
    if passes <= 0 or explanations <= 0 or seconds <= 0:
        raise ValueError(f"Expected positive passes, explanations and seconds. Received: "
                         f"passes={passes}, explanations={explanations}, seconds={seconds}")
    per_second = passes / seconds
    return {"floor_batches": math.ceil(passes / batch),
            "floor_seconds": round(seconds, 3),
            "floor_forward_passes_per_second": round(per_second, 1),
            "floor_explanations_per_second": round(per_second * explanations / passes, 3)}


def steady_rate(explanations: int, explain_seconds: float, model_loads: int,
                load_seconds: float | None, workers: int) -> float | None:
    """Explanations/s without the model loads of the timed job (None when it had none).

    ``load_seconds`` is summed over the workers that loaded, which load at
    the same time: each worker's share (the sum over ``workers``) is taken
    off, exact on ``local[1]``.
    """
    if not model_loads or not load_seconds:
        return None
    seconds = explain_seconds - load_seconds / max(1, workers)
    return round(explanations / seconds, 3) if seconds > 0 else None


def ratio(job: float | None, floor: float | None) -> float | None:
    """job / floor, None when either is missing or the floor is 0."""
    return round(job / floor, 3) if job is not None and floor else None


def format_value(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"
    return str(value)


def format_block(results: Mapping[str, Any]) -> str:
    """``key: value`` lines, n/a for missing values."""
    return "\n".join(f"{key}: {format_value(value)}" for key, value in results.items())


# -- GPU utilisation -----------------------------------------------------------------------

class GpuSampler:
    """``nvidia-smi --query-gpu=utilization.gpu,memory.used -lms 500`` in the background.

    Use as a context manager around a phase; :meth:`summary` then gives its
    figures.  Disabled (the CPU dry run), it samples nothing and every figure
    is None.
    """

    def __init__(self, gpu: str = "0", *, interval_ms: int = 500, enabled: bool = True):
        self.gpu, self.interval_ms, self.enabled = gpu, interval_ms, enabled
        self.samples: list[tuple[float, float]] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if not self.enabled:
            return self
        self._proc = subprocess.Popen(
            ["nvidia-smi", *SMI_QUERY, "-i", self.gpu, "-lms", str(self.interval_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            sample = parse_smi_line(line)
            if sample is not None:
                self.samples.append(sample)

    def __exit__(self, *exc: Any) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def summary(self) -> dict[str, float | int | None]:
        return utilisation_summary(self.samples)


# -- the benchmark -------------------------------------------------------------------------

def _log(message: str) -> None:
    print(f"bench-gpu: {message}", file=sys.stderr, flush=True)


def make_images(folder: Path, n: int, *, size: tuple[int, int] = (640, 480),
                seed: int = 0) -> list[dict[str, str]]:
    """``n`` photo-like JPEGs of ``size`` (width, height): random crops of scikit-image's
    colour photos, resized, flipped at random, with a small colour jitter."""
    import numpy as np
    import skimage.data
    from PIL import Image

    photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(),
              skimage.data.rocket(), skimage.data.hubble_deep_field(),
              skimage.data.immunohistochemistry()]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        scale = rng.uniform(0.6, 1.0)
        ch, cw = max(16, int(h * scale)), max(16, int(w * scale))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = photo[y:y + ch, x:x + cw].astype(np.float32)
        crop = crop * rng.uniform(0.9, 1.1, size=3) + rng.uniform(-8, 8, size=3)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        picture = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8))
        picture = picture.resize(size, Image.Resampling.BICUBIC)
        path = folder / f"photo_{i:03d}.jpg"
        picture.save(path, quality=90)
        rows.append({"path": str(path), "image_id": f"photo_{i:03d}"})
    return rows


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_gpu.py", description=__doc__.split("\n\n")[0],
        epilog="Without an NVIDIA GPU (and without --cpu-dry-run) it says so and exits 0.")
    parser.add_argument("--images", type=int, default=None,
                        help="images of the timed job (default 64; dry run 4)")
    parser.add_argument("--warmup-images", type=int, default=None,
                        help="images of the warm-up job (default 4; dry run 2)")
    parser.add_argument("--n-samples", default=None,
                        help="the job's --n-samples: an int or auto (default auto; dry run 64)")
    parser.add_argument("--device-batch-size", default="auto",
                        help="rows per model call, for the job and the floor (default auto: "
                             f"{GPU_DEVICE_BATCH} on a GPU, TensorFlow's CPU value in the dry run)")
    parser.add_argument("--images-in-flight", default="auto", help="the job's --images-in-flight")
    parser.add_argument("--model", default=None,
                        help="a keras.applications name (default resnet50; dry run mobilenet, "
                             "built with alpha 0.25)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="square input side in pixels (default 224; dry run 128)")
    parser.add_argument("--weights", default=None,
                        help="the job's --weights (default none: random, seeded; dry run with "
                             "mobilenet: imagenet from --models-dir)")
    parser.add_argument("--master", default="local[1]", help="Spark master (default local[1])")
    parser.add_argument("--models-dir", type=Path, default=REPO.parent / "shared" / "models",
                        help="files linked into a private Keras cache when the folder exists "
                             "(default <repo>/../shared/models)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the results as JSON to PATH")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (images, job output) and print it")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="the whole flow on the CPU with a tiny setup (no GPU needed)")
    args = parser.parse_args(argv)
    dry = args.cpu_dry_run
    args.images = args.images if args.images is not None else (4 if dry else 64)
    args.warmup_images = args.warmup_images if args.warmup_images is not None else (2 if dry else 4)
    args.n_samples = args.n_samples if args.n_samples is not None else ("64" if dry else "auto")
    args.model = args.model or ("mobilenet" if dry else "resnet50")
    args.input_size = args.input_size or (128 if dry else 224)
    if args.weights is None:
        args.weights = "imagenet" if dry and args.model == "mobilenet" else "none"
    for name in ("images", "warmup_images", "input_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.n_samples != "auto" and not args.n_samples.isdigit():
        parser.error(f"--n-samples must be an int or auto, not {args.n_samples!r}")
    return args


def _model_args(model: str, size: int) -> dict[str, Any]:
    args: dict[str, Any] = {"input_shape": [size, size, 3]}
    if model.lower().replace("_", "") == "mobilenet":
        args["alpha"] = 0.25
    return args


def _tensorflow_gpus() -> list[str]:
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")]


def _job_argv(args: argparse.Namespace, *, input_uri: Path, output: Path, run_id: str,
              device_batch: int) -> list[str]:
    """The ``lime-spark explain`` command line of one job."""
    dry = args.cpu_dry_run
    return ["explain", "--input", str(input_uri), "--output", str(output), "--run-id", run_id,
            "--model", args.model, "--weights", args.weights,
            "--model-args", json.dumps(_model_args(args.model, args.input_size)),
            "--label-names", "none", "--runtime", "tensorflow",
            "--n-samples", str(args.n_samples), "--device-batch-size", str(device_batch),
            "--images-in-flight", str(args.images_in_flight),
            "--overlays", "false" if dry else "true", "--metrics", "true",
            "--report", "false", "--reuse", "none", "--log-level", "WARNING",
            "--master", args.master,
            "--conf", "spark.ui.showConsoleProgress=false"]


def _run_job(spark: Any, argv: list[str]) -> dict[str, Any]:
    """Parse ``argv`` with lime-spark's own parser and run the job on ``spark``; the
    run's summary.json."""
    import keras

    from lime_spark.cli import build_parser, config_from_args, run_explain

    parsed = build_parser().parse_args(argv)
    config = config_from_args(parsed)
    keras.utils.set_random_seed(0)      # random weights: the same weights (digest) each job
    run_explain(config, spark=spark)
    summary_path = Path(config.output) / "runs" / f"run_id={config.run_id}" / "summary.json"
    return json.loads(summary_path.read_text())


def _images_rows(output: Path, run_id: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(output / "images" / f"run_id={run_id}",
                          columns=["status", "n_samples", "n_superpixels"])
    return table.to_pylist()


def _grid_segments(height: int, width: int, k: int) -> Any:
    """Segment ids 0..k-1 on a grid of about ``k`` cells."""
    import numpy as np

    rows = max(1, int(math.sqrt(k)))
    cols = -(-k // rows)
    yy, xx = np.mgrid[0:height, 0:width]
    return (((yy * rows // height) * cols + xx * cols // width) % k).astype(np.int32)


def model_floor(config: Mapping[str, Any], *, passes: int, device_batch: int, superpixels: int,
                images_per_batch: int, sampler: GpuSampler) -> dict[str, Any]:
    """Time ``ceil(passes / device_batch)`` batches of ``device_batch`` rows through the
    job's model (the same options, loaded here), after two warm-up calls."""
    import keras
    import numpy as np

    from lime_spark.models import load_classifier

    keras.utils.set_random_seed(0)
    classifier = load_classifier(
        config["model"], weights=config["weights"], preprocess=config["preprocess"],
        label_names=None, batch_size=config["batch_size"],
        output_activation=config["output_activation"], runtime="tensorflow",
        gpu=None, **config["model_args"])
    height, width = classifier.input_size
    rng = np.random.default_rng(0)
    m = max(1, images_per_batch)
    k = max(2, superpixels)
    images = rng.uniform(0, 255, (m, height, width, 3)).astype(np.float32)
    fills = np.repeat(images.mean(axis=(1, 2), keepdims=True), height, 1).repeat(width, 2)
    fills = np.ascontiguousarray(fills, np.float32)
    segments = np.stack([_grid_segments(height, width, k)] * m)
    design = (rng.random((device_batch, k)) < 0.5).astype(np.float32)
    row_image = (np.arange(device_batch) * m // device_batch).astype(np.int32)

    if hasattr(classifier, "predict_rows"):
        path = "predict_rows"
        if hasattr(type(classifier), "row_batch_size"):
            classifier.row_batch_size = device_batch     # one device run per batch, as the job

        def call() -> Any:
            return np.asarray(classifier.predict_rows(images, fills, segments, row_image, design))
    else:
        path = "predict_design"

        def call() -> Any:
            return np.asarray(classifier.predict_design(images[0], fills[0], segments[0], design))

    for _ in range(2):                     # compile, then one steady call
        call()
    batches = math.ceil(passes / device_batch)
    with sampler:
        started = time.perf_counter()
        for _ in range(batches):
            call()
        seconds = time.perf_counter() - started
    return {"path": path, "seconds": seconds, "batches": batches,
            "rows_per_device_run": getattr(classifier, "row_batch_size", classifier.batch_size)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark (a GPU present, or the dry run): the results block."""
    bench_started = time.perf_counter()
    dry = args.cpu_dry_run
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    try:
        if args.models_dir.is_dir():
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from _bench import keras_home

            keras_home(args.models_dir, work / "keras-home")
        elif args.weights == "imagenet":
            _log(f"{args.models_dir} not found: Keras needs its ImageNet weights in its cache "
                 "or the network")
        gpu_line = "n/a (cpu dry run)"
        if not dry:
            tf_gpus = _tensorflow_gpus()
            if not tf_gpus:
                raise SystemExit(
                    "bench-gpu: error: nvidia-smi lists a GPU but TensorFlow sees none (no "
                    "CUDA libraries for it?); install TensorFlow with CUDA, e.g. "
                    ".venv/bin/python -m pip install 'tensorflow[and-cuda]==<its version>'")
            gpu_line = args.gpu_lines[0] + (f" (+{len(args.gpu_lines) - 1} more)"
                                            if len(args.gpu_lines) > 1 else "")
        from lime_spark.pipeline import resolve_device_batch
        from lime_spark.spark.session import build_session

        device_batch = resolve_device_batch(
            args.device_batch_size if args.device_batch_size == "auto"
            else int(args.device_batch_size), "tensorflow", not dry)

        _log(f"writing {args.images} 640x480 JPEGs into {work}")
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = make_images(work / "images", max(args.images, args.warmup_images))
        pq.write_table(pa.Table.from_pylist(rows[:args.images]), work / "input.parquet")
        pq.write_table(pa.Table.from_pylist(rows[:args.warmup_images]), work / "warmup.parquet")
        output = work / "out"
        spark_started = time.perf_counter()
        spark = build_session(app_name="lime-spark bench-gpu", master=args.master,
                              conf={"spark.ui.showConsoleProgress": "false"})
        spark.sparkContext.setLogLevel("ERROR")
        gpu_index = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0].strip() or "0"
        job_sampler = GpuSampler(gpu_index, enabled=not dry)
        try:
            _log(f"warm-up job: {args.warmup_images} images on {args.master}")
            warm = _run_job(spark, _job_argv(args, input_uri=work / "warmup.parquet",
                                             output=output, run_id="warmup",
                                             device_batch=device_batch))
            warmup_seconds = time.perf_counter() - spark_started
            if not warm["images"]["ok"]:
                raise SystemExit(f"bench-gpu: error: the warm-up job explained no image "
                                 f"(errors: {warm['images']['errors_by_class']}; Spark's log "
                                 "above says why)")
            _log(f"timed job: {args.images} images")
            with job_sampler:
                summary = _run_job(spark, _job_argv(args, input_uri=work / "input.parquet",
                                                    output=output, run_id="bench",
                                                    device_batch=device_batch))
        finally:
            spark.stop()
        config = summary["config"]
        counts = forward_passes(_images_rows(output, "bench"), metrics=bool(config["metrics"]))
        ok = counts["images_ok"]
        if ok == 0 or counts["forward_passes"] == 0:
            raise SystemExit(f"bench-gpu: error: the timed job explained no image "
                             f"(errors: {summary['images']['errors_by_class']})")
        timings = summary["timings"]
        explain_seconds = float(timings["explain_seconds"])
        superpixels = round(counts["superpixels"] / ok)
        per_batch = min(ok, 4)
        _log(f"model-only floor: {counts['forward_passes']} forward passes in batches of "
             f"{device_batch}")
        floor_sampler = GpuSampler(gpu_index, enabled=not dry)
        floor = model_floor(config, passes=counts["forward_passes"], device_batch=device_batch,
                            superpixels=superpixels, images_per_batch=per_batch,
                            sampler=floor_sampler)
        figures = floor_figures(counts["forward_passes"], ok, device_batch, floor["seconds"])
        job_eps = round(ok / explain_seconds, 3) if explain_seconds else None
        stages = timings.get("stages") or {}
        steady_eps = steady_rate(ok, explain_seconds, summary["workers"]["model_loads"],
                                 timings.get("model_load_seconds"),
                                 summary["workers"]["python_workers"])
        if summary["workers"]["model_loads"]:
            _log(f"the timed job loaded the model again ({summary['workers']['model_loads']}x, "
                 f"{timings.get('model_load_seconds')}s) although the warm-up job had: its "
                 "explain_seconds include that load and compilation; "
                 "job_explanations_per_second_excl_model_load leaves them out")
        results: dict[str, Any] = {
            "mode": "cpu-dry-run" if dry else "gpu",
            "gpu": gpu_line,
            "model": f"{config['model']} {args.input_size}x{args.input_size}, weights "
                     f"{config['weights'] or 'none (random, seeded)'}",
            "runtime": summary["model"]["runtime"]["used"],
            "master": args.master,
            "images": summary["images"]["rows"],
            "images_ok": ok,
            "images_error": summary["images"]["error"],
            "n_samples": config["n_samples"],
            "device_batch_size": device_batch,
            "images_in_flight": config.get("images_in_flight"),
            "classifier_batch_size": config["batch_size"],
            "overlays": config["overlays"],
            "metrics": config["metrics"],
            "forward_passes": counts["forward_passes"],
            "forward_passes_samples": counts["sample_passes"],
            "forward_passes_metrics": counts["metric_passes"],
            "forward_passes_per_image": round(counts["forward_passes"] / ok, 1),
            "mean_superpixels": superpixels,
            "warmup_seconds": round(warmup_seconds, 1),
            "warmup_model_loads": warm["workers"]["model_loads"],
            "warmup_model_load_seconds": (warm.get("timings") or {}).get("model_load_seconds"),
            "job_total_seconds": timings.get("total_seconds"),
            "job_explain_seconds": explain_seconds,
            "job_model_loads": summary["workers"]["model_loads"],
            "job_explanations_per_second": job_eps,
            "job_explanations_per_second_excl_model_load": steady_eps,
            "job_forward_passes_per_second": round(counts["forward_passes"] / explain_seconds, 1),
            "job_stage_model_seconds": stages.get("model"),
            "job_model_busy_fraction": timings.get("model_busy_fraction"),
            "floor_path": floor["path"],
            "floor_rows_per_device_run": floor["rows_per_device_run"],
            **figures,
            "ratio_job_to_floor": ratio(job_eps, figures["floor_explanations_per_second"]),
            "ratio_job_to_floor_excl_model_load": ratio(
                steady_eps, figures["floor_explanations_per_second"]),
        }
        for phase, sampler in (("job", job_sampler), ("floor", floor_sampler)):
            util = sampler.summary()
            results[f"gpu_util_{phase}_mean"] = util["mean"]
            results[f"gpu_util_{phase}_median"] = util["median"]
            results[f"gpu_util_{phase}_p10"] = util["p10"]
            results[f"gpu_util_{phase}_samples"] = util["samples"] if not dry else None
            results[f"gpu_memory_{phase}_max_mib"] = util["memory_max_mib"]
        results["bench_seconds"] = round(time.perf_counter() - bench_started, 1)
        if args.keep:
            results["work_dir"] = str(work)
        return results
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.cpu_dry_run:
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"     # TensorFlow on the CPU, here and in workers
        args.gpu_lines = []
    else:
        reason, args.gpu_lines = no_gpu_reason()
        if reason is not None:
            print(f"bench-gpu: no NVIDIA GPU here ({reason}): nothing to measure", flush=True)
            return 0
    # before TensorFlow starts anywhere: the driver (this process) and the Python worker
    # share the GPU, so neither may take all of its memory up front
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TQDM_DISABLE", "1")
    results = run(args)
    print("\nbench-gpu results" + (" (CPU dry run: the flow only, not a GPU figure)"
                                   if args.cpu_dry_run else ""))
    print(format_block(results), flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        _log(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
