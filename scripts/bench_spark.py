"""Benchmark: the Spark job's throughput on local[1] and local[2], and its per-image
time against the in-process explainer doing the same work (read, decode, explain,
metrics, overlays: ``lime_spark.batch.explain_record``), on the same images and model.

"Once Spark is up": each session first runs a warm-up job on a few images (Python
workers start, TensorFlow loads, the model is cached per worker), then the timed job;
the figure is the job's explain stage (``timings.explain_seconds`` of its summary).

``--compare-runtimes`` instead times the job on local[2] with ``--runtime
tensorflow`` against ``--runtime onnx``, with overlays and metrics off (the
model's share) and on (the whole job), all four jobs interleaved in one session
per repeat after a warm-up of each runtime.

``--busy`` measures how much of the workers' time goes to the model: the job on
local[2] over 640x480 photos with the product's defaults (overlays and metrics
on, ``n_samples=auto``, ``--runtime auto``) reports ``timings.model_busy_fraction``
and its images/s; the floor is what two single-threaded workers reach on model
time alone: the same images explained in this process, one thread, and the
model stage's seconds summed (the same forward passes, nothing else), so
floor images/s = 2 x images / model seconds.  Job and in-process runs alternate.

Usage: .venv/bin/python scripts/bench_spark.py [--images 32] [--num-samples 1000]
       [--repeats 2] [--runtime auto] [--compare-runtimes | --busy]
       [--models-dir ../shared/models]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _bench import keras_home

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _make_images(folder: Path, n: int, size: tuple[int, int] | None = None) -> list[dict]:
    import numpy as np
    import skimage.data
    from PIL import Image

    photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(),
              skimage.data.rocket(), skimage.data.hubble_deep_field()]
    rng = np.random.default_rng(0)
    rows = []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        y, x = rng.integers(0, h // 4), rng.integers(0, w // 4)
        crop = Image.fromarray(photo[y:y + 3 * h // 4, x:x + 3 * w // 4])
        if size is not None:
            crop = crop.resize(size, Image.Resampling.BICUBIC)
        path = folder / f"photo_{i:03d}.jpg"
        crop.save(path, quality=90)
        rows.append({"path": str(path), "image_id": f"photo_{i:03d}"})
    return rows


def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--num-samples", default=None,
                        help="an int or auto (default: 1000; --busy: the default, auto)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--runtime", default="auto", help="the jobs' --runtime")
    parser.add_argument("--compare-runtimes", action="store_true",
                        help="tensorflow against onnx on local[2] (see above)")
    parser.add_argument("--partitions", type=int, default=None,
                        help="--busy: the job's partitions (default: the job's own default)")
    parser.add_argument("--busy", action="store_true",
                        help="the model's share of worker time on local[2] (see above)")
    parser.add_argument("--models-dir", type=Path, default=repo.parent / "shared" / "models")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    keras_home(args.models_dir, work / "keras-home")

    import pyarrow as pa
    import pyarrow.parquet as pq

    if args.num_samples is None:
        args.num_samples = "auto" if args.busy else 1000
    elif args.num_samples != "auto":
        args.num_samples = int(args.num_samples)
    rows = _make_images(work / "images", args.images, (640, 480) if args.busy else None)
    pq.write_table(pa.Table.from_pylist(rows), work / "input.parquet")
    pq.write_table(pa.Table.from_pylist(rows[:4]), work / "warmup.parquet")

    from lime_spark.batch import BatchSettings, ImageRecord, explain_record
    from lime_spark.cli import run_explain
    from lime_spark.config import load_config
    from lime_spark.explainer import ImageExplainer
    from lime_spark.models import load_classifier
    from lime_spark.spark.session import build_session

    common = {"model": "mobilenet", "model_args": {"alpha": 0.25, "input_shape": [128, 128, 3]},
              "label_names": "imagenet", "n_samples": args.num_samples, "log_level": "WARNING",
              "runtime": args.runtime,
              "reuse": "none"}       # every job explains its images (runs share the output root)

    def job(spark, input_name, run_id, partitions, **options):
        cfg = load_config(overrides={**common, "input": str(work / input_name),
                                     "output": str(work / "out"), "run_id": run_id,
                                     "partitions": partitions, **options})
        summary = run_explain(cfg, spark=spark)
        if options.get("runtime") not in (None, "auto"):
            assert summary["model"]["runtime"]["used"] == options["runtime"], summary["model"]
        return summary["timings"]["explain_seconds"]

    if args.compare_runtimes or args.busy:
        try:
            if args.busy:
                return _busy(args, work, rows, load_config, run_explain, common, build_session)
            return _compare_runtimes(args, job, build_session)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def in_process():
        clf = load_classifier("mobilenet", alpha=0.25, input_shape=(128, 128, 3),
                              runtime=args.runtime)
        explainer = ImageExplainer(n_samples=args.num_samples)
        settings = BatchSettings(run_id="inproc", run_seed=0, output_root=str(work / "out-inproc"))
        for row in rows[:2]:
            explain_record(ImageRecord(row["image_id"], row["path"]), classifier=clf,
                           explainer=explainer, settings=settings)
        start = time.perf_counter()
        for row in rows:
            explain_record(ImageRecord(row["image_id"], row["path"]), classifier=clf,
                           explainer=explainer, settings=settings)
        return time.perf_counter() - start

    results: dict[str, list[float]] = {"local[1]": [], "local[2]": [], "in-process": []}
    for rep in range(args.repeats):
        for master in ("local[1]", "local[2]"):
            cores = int(master[6])
            spark = build_session(app_name="bench", master=master,
                                  conf={"spark.ui.showConsoleProgress": "false"})
            spark.sparkContext.setLogLevel("ERROR")
            job(spark, "warmup.parquet", f"warm{rep}{cores}", cores)
            seconds = job(spark, "input.parquet", f"bench{rep}{cores}", 2 * cores)
            spark.stop()
            results[master].append(seconds)
            print(f"repeat {rep + 1}: {master} {seconds:.1f}s for {args.images} images",
                  file=sys.stderr, flush=True)
        results["in-process"].append(in_process())
        print(f"repeat {rep + 1}: in-process {results['in-process'][-1]:.1f}s",
              file=sys.stderr, flush=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    n = args.images
    print(f"\nMobileNet v1 0.25 @128, {args.num_samples} samples, top 5 labels, {n} photos "
          f"(crops of scikit-image's), medians of {args.repeats} runs:")
    print("| run | seconds | images/s | s/image |\n|---|---|---|---|")
    for key, value in med.items():
        print(f"| {key} | {value:.1f} | {n / value:.2f} | {value / n:.3f} |")
    speedup = med["local[1]"] / med["local[2]"]
    ratio = med["local[2]"] / med["in-process"]
    print(f"\nlocal[2] / local[1] throughput               = {speedup:.2f}x  (target >= 1.7x)")
    print(f"job s/image (local[2]) / in-process s/image  = {ratio:.2f}x  (target <= 1.15x)")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _compare_runtimes(args, job, build_session) -> int:
    """local[2]: --runtime tensorflow against onnx, overlays and metrics off and on."""
    runs = {(runtime, extras): [] for extras in (False, True)
            for runtime in ("tensorflow", "onnx")}
    for rep in range(args.repeats):
        spark = build_session(app_name="bench-runtimes", master="local[2]",
                              conf={"spark.ui.showConsoleProgress": "false"})
        spark.sparkContext.setLogLevel("ERROR")
        for runtime in ("tensorflow", "onnx"):
            job(spark, "warmup.parquet", f"warm{rep}{runtime}", 2, runtime=runtime)
        order = list(runs) if rep % 2 == 0 else list(runs)[::-1]
        for runtime, extras in order:
            seconds = job(spark, "input.parquet", f"b{rep}{runtime}{int(extras)}", 4,
                          runtime=runtime, overlays=extras, metrics=extras)
            runs[(runtime, extras)].append(seconds)
            print(f"repeat {rep + 1}: {runtime} overlays+metrics={'on' if extras else 'off'} "
                  f"{seconds:.1f}s", file=sys.stderr, flush=True)
        spark.stop()
    med = {k: statistics.median(v) for k, v in runs.items()}
    n = args.images
    print(f"\nlocal[2], MobileNet v1 0.25 @128, {args.num_samples} samples, top 5 labels, "
          f"{n} photos, medians of {args.repeats} runs (explain stage):")
    print("| overlays + metrics | runtime | seconds | images/s |\n|---|---|---|---|")
    for (runtime, extras), value in med.items():
        print(f"| {'on' if extras else 'off'} | {runtime} | {value:.1f} | {n / value:.2f} |")
    for extras in (False, True):
        ratio = med[("tensorflow", extras)] / med[("onnx", extras)]
        target = "  (target >= 2.5x)" if not extras else ""
        print(f"images/s onnx / tensorflow, overlays+metrics {'on ' if extras else 'off'} = "
              f"{ratio:.2f}x{target}")
    return 0


def _busy(args, work, rows, load_config, run_explain, common, build_session) -> int:
    """local[2] job with the defaults against two single-threaded model-only workers."""
    from lime_spark.batch import BatchSettings, ImageRecord, explain_records
    from lime_spark.explainer import ImageExplainer
    from lime_spark.models import load_classifier
    from lime_spark.timings import STAGES

    n = len(rows)
    records = [ImageRecord(r["image_id"], r["path"]) for r in rows]
    clf = load_classifier("mobilenet", alpha=0.25, input_shape=(128, 128, 3),
                          runtime=args.runtime)
    if clf.runtime == "onnx":                 # one intra-op thread, as a local[2] task has
        clf.use_onnx(clf.onnx_bytes, clf.runtime_reason, threads=1)
    explainer = ImageExplainer(n_samples=args.num_samples)

    def in_process(tag: str) -> dict:
        settings = BatchSettings(run_id=tag, run_seed=0, output_root=str(work / "inproc"))
        totals = dict.fromkeys(STAGES, 0.0)
        started = time.perf_counter()
        for result in explain_records(records, classifier=clf, explainer=explainer,
                                      settings=settings, threads=0):
            for stage, value in result.stages.items():
                totals[stage] += value
        return {"seconds": time.perf_counter() - started, "stages": totals}

    options = {"input": str(work / "input.parquet"), "output": str(work / "out"),
               "partitions": args.partitions}
    spark = build_session(app_name="bench-busy", master="local[2]",
                          conf={"spark.ui.showConsoleProgress": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    warm = {**common, **options, "input": str(work / "warmup.parquet"), "run_id": "warm",
            "partitions": 2}
    run_explain(load_config(overrides=warm), spark=spark)
    in_process("warm")
    jobs, floors = [], []
    for rep in range(args.repeats):
        for which in (("job", "floor") if rep % 2 == 0 else ("floor", "job")):
            if which == "job":
                summary = run_explain(load_config(overrides={**common, **options,
                                                             "run_id": f"busy{rep}"}),
                                      spark=spark)
                jobs.append(summary["timings"])
                t = summary["timings"]
                print(f"repeat {rep + 1}: job {t['explain_seconds']:.1f}s, model busy "
                      f"{t['model_busy_fraction']}", file=sys.stderr, flush=True)
            else:
                floors.append(in_process(f"floor{rep}"))
                print(f"repeat {rep + 1}: in-process {floors[-1]['seconds']:.1f}s, model "
                      f"{floors[-1]['stages']['model']:.1f}s", file=sys.stderr, flush=True)
    spark.stop()
    # the machine's speed drifts between runs (TensorFlow once ran 3x slower on one day
    # than another): each job is compared with the floor measured next to it
    ratios = [(n / t["explain_seconds"]) / (2 * n / f["stages"]["model"])
              for t, f in zip(jobs, floors)]
    in_job = [(n / t["explain_seconds"]) / (2 * n / t["stages"]["model"]) for t in jobs]
    busy = statistics.median(t["model_busy_fraction"] for t in jobs)
    print(f"\nlocal[2], MobileNet v1 0.25 @128, n_samples={args.num_samples}, overlays and "
          f"metrics on, {n} photos of 640x480, runtime {clf.runtime}, partitions "
          f"{args.partitions or 'default'}, medians of {args.repeats} runs:")
    print("| stage | job seconds (sum over images) | in-process seconds |\n|---|---|---|")
    for stage in STAGES:
        print(f"| {stage} | {statistics.median(t['stages'][stage] for t in jobs):.2f} | "
              f"{statistics.median(f['stages'][stage] for f in floors):.2f} |")
    print(f"| worker seconds | {statistics.median(t['worker_seconds'] for t in jobs):.2f} | "
          f"{statistics.median(f['seconds'] for f in floors):.2f} (wall) |")
    print("\n| repeat | job images/s | floor images/s (2 x images / in-process model s) | "
          "job / floor | job / its own model-only rate |\n|---|---|---|---|---|")
    for i, (t, f) in enumerate(zip(jobs, floors), start=1):
        print(f"| {i} | {n / t['explain_seconds']:.3f} | {2 * n / f['stages']['model']:.3f} | "
              f"{ratios[i - 1]:.3f} | {in_job[i - 1]:.3f} |")
    print(f"\nmodel_busy_fraction (job)                 = {busy:.3f}  (target >= 0.85)")
    print(f"job / floor, median of the paired repeats = {statistics.median(ratios):.3f}  "
          "(target >= 0.85)")
    print(f"job / the job's own model seconds         = {statistics.median(in_job):.3f}  "
          "(2 x images / model stage seconds of the same job)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
