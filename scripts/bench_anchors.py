"""Benchmark: lime-spark's ``AnchorExplainer`` against alibi 0.9.6's ``AnchorImage``.

Both explain the same photos (scikit-image's bundled colour photos, their
mirror images and centre crops, resized to 128x128) for the real ImageNet
MobileNet v1 (alpha 0.25, 128 px), with the same threshold, delta, tau,
beam size, batch size and coverage samples, the same superpixels (ours,
handed to alibi as its ``segmentation_fn``) and the same fill (ours, handed
to alibi as its only ``images_background`` image, which is what alibi's
sampler pastes into hidden superpixels).

The model is one function on both sides: the exported ONNX graph of the
classifier, run by ONNX Runtime (same version, same intra-op threads,
sequential execution).  alibi runs in its own environment (``.venv-alibi``,
made by ``scripts/alibi_env.sh``: its pins conflict with ours) as a separate
process, which gets the images, segments, fills and graph as files and calls
the graph on whole perturbed images (``OnnxEngine.predict_images``' feeds);
ours calls it on design rows (``Classifier.predict_design``).  Each process
times ``explain`` alone.

Then, in this process, with the same code for both: each anchor's precision
re-measured on fresh perturbation samples (anchor kept, every other
superpixel present with probability 1/2; the same samples for both methods'
anchors where they coincide), and its coverage on one common pool of random
masks.  Reported per image and as medians: seconds, model rows and model
calls (alibi: calls of its predictor; ours: requests), anchor size,
re-measured precision, coverage; and the ratios.

Usage: .venv/bin/python scripts/bench_anchors.py [--images 10] [--threads 1]
       [--threshold 0.95] [--delta 0.1] [--tau 0.15] [--beam-size 2]
       [--batch-size 100] [--json out.json] [--models-dir ../shared/models]
(``bash scripts/alibi_env.sh`` first.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")   # numpy's own work on one core, in both processes

ONNX_BATCH = 32
"""Rows per ONNX Runtime run on both sides (the project's engine batch on CPU)."""


# --------------------------------------------------------------------------
# the alibi side (runs under .venv-alibi: numpy, onnxruntime and alibi only)
# --------------------------------------------------------------------------

def _ort_session(onnx_path: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_path, sess_options=options,
                                providers=["CPUExecutionProvider"])


class _ImagePredictor:
    """Probabilities of whole images (N, H, W, 3) in 0..255 through the plain graph, counted."""

    def __init__(self, onnx_path: str, threads: int):
        import numpy as np

        self.np = np
        self.session = _ort_session(onnx_path, threads)
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name
        self.rows = 0
        self.calls = 0

    def __call__(self, images):
        np = self.np
        self.rows += len(images)
        self.calls += 1
        out = [self.session.run([self.output], {self.input: np.ascontiguousarray(
            images[s:s + ONNX_BATCH], np.float32)})[0]
            for s in range(0, len(images), ONNX_BATCH)]
        return np.concatenate(out)


def _best_of(run, repeats: int = 3) -> float:
    """Fewest seconds of ``repeats`` runs of ``run()``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def alibi_worker(work: Path, index: int) -> int:
    """Explain image ``index`` of ``work`` with alibi's AnchorImage; write ``alibi-<index>.json``.

    With ``index`` 0 it also times the model alone on the probe rows.
    """
    import logging

    import numpy as np
    from alibi.explainers import AnchorImage

    logging.getLogger("alibi").setLevel(logging.ERROR)
    params = json.loads((work / "params.json").read_text())
    data = np.load(work / "images.npz")
    image, seg, fill = data["images"][index], data["segments"][index], data["fills"][index]
    predictor = _ImagePredictor(str(work / "model.onnx"), params["threads"])
    probe = np.load(work / "probe.npy")
    predictor(probe[:ONNX_BATCH])                                      # warm-up
    ms_per_row = (_best_of(lambda: predictor(probe)) / len(probe) * 1000
                  if index == 0 else None)
    explainer = AnchorImage(predictor, image_shape=image.shape, dtype=np.uint8,
                            segmentation_fn=lambda _x: seg, images_background=fill[None],
                            seed=int(params["seeds"][index]))
    predictor.rows = predictor.calls = 0
    start = time.perf_counter()
    exp = explainer.explain(image, threshold=params["threshold"], delta=params["delta"],
                            tau=params["tau"], batch_size=params["batch_size"],
                            beam_size=params["beam_size"],
                            coverage_samples=params["coverage_samples"])
    seconds = time.perf_counter() - start
    raw = exp.data["raw"]
    result = {"anchor": [int(f) for f in raw["feature"]],
              "label": int(np.asarray(raw["prediction"]).ravel()[0]),
              "precision": float(np.asarray(exp.data["precision"]).ravel()[-1]),
              "success": bool(raw.get("success", True)),
              "seconds": seconds, "rows": predictor.rows, "calls": predictor.calls,
              "ms_per_row": ms_per_row}
    (work / f"alibi-{index}.json").write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------
# our side
# --------------------------------------------------------------------------

def _photos(n: int):
    """n RGB photos: ``scripts/bench_adaptive.py``'s set (scikit-image's bundled colour
    photos, mirrored and centre-cropped; nothing is downloaded)."""
    from bench_adaptive import _photos as photos      # our env only: the alibi worker never
                                                      # draws photos
    return photos(n)


def _plain_onnx(clf) -> bytes:
    """The classifier's preprocessing and model alone (no perturbation front) as ONNX:
    images (N, H, W, 3) float32 in 0..255 -> probabilities, exported like
    :func:`lime_spark.models.onnx.export_onnx` (frozen graph, tf2onnx, same opset)."""
    import logging

    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    from lime_spark.models.onnx import OPSET

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    height, width = clf.input_size
    spec = tf.TensorSpec([None, height, width, 3], tf.float32, name="images")
    concrete = tf.function(lambda x: clf._predict(clf._prepare(x)),
                           input_signature=[spec]).get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    proto, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(), input_names=[t.name for t in frozen.inputs],
        output_names=[t.name for t in frozen.outputs], opset=OPSET)
    return proto.SerializeToString()


def _median(values):
    import numpy as np

    return float(np.median(np.asarray(values, dtype=float)))


def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--first", type=int, default=0, help="skip this many photos")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--tau", type=float, default=0.15)
    parser.add_argument("--beam-size", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--coverage-samples", type=int, default=10000)
    parser.add_argument("--remeasure", type=int, default=1000,
                        help="fresh samples per anchor for the re-measured precision")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alibi-python", type=Path, default=repo / ".venv-alibi" / "bin" / "python")
    parser.add_argument("--skip-alibi", action="store_true")
    parser.add_argument("--models-dir", type=Path, default=repo.parent / "shared" / "models")
    parser.add_argument("--json", type=Path, help="write the per-image figures here")
    parser.add_argument("--alibi-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.alibi_worker is not None:
        return alibi_worker(args.alibi_worker, args.index)
    if not args.skip_alibi and not args.alibi_python.exists():
        parser.error(f"{args.alibi_python} is missing: run `bash scripts/alibi_env.sh` first")

    sys.path.insert(0, str(repo / "scripts"))
    from _bench import keras_home

    if "KERAS_HOME" not in os.environ:
        keras_home(args.models_dir)

    import numpy as np

    from lime_spark import load_classifier, make_fill, perturb_batch, resize_image
    from lime_spark.anchors import (AnchorExplainer, anchor_coverage, anchor_precision,
                                    coverage_masks)
    from lime_spark.sampling import derive_seed

    clf = load_classifier("mobilenet", weights="imagenet", alpha=0.25,
                          input_shape=(128, 128, 3), runtime="onnx")
    clf.use_onnx(clf.onnx_bytes, f"bench: {args.threads} intra-op thread(s)",
                 threads=args.threads)
    explainer = AnchorExplainer(threshold=args.threshold, delta=args.delta, tau=args.tau,
                                beam_size=args.beam_size, batch_size=args.batch_size,
                                coverage_samples=args.coverage_samples)
    photos = _photos(args.first + args.images)[args.first:]
    images = np.stack([resize_image(p, clf.input_size) for p in photos])
    seeds = [derive_seed(args.seed, f"photo-{args.first + i}") for i in range(len(images))]
    segments = np.stack([explainer.segment(img, random_state=s % 2**31)
                         for img, s in zip(images, seeds)])
    fills = np.stack([make_fill(img, seg, explainer.config.fill, **explainer.config.fill_params)
                      for img, seg in zip(images, segments)])

    # the model alone, per row: ours on design rows, alibi's on the same rows as images
    probe = np.random.default_rng(0).integers(0, 2, (320, int(segments[0].max()) + 1),
                                              dtype=np.uint8)
    probe_images = perturb_batch(images[0], fills[0], segments[0], probe)
    clf.predict_design(images[0], fills[0], segments[0], probe[:ONNX_BATCH])  # warm-up
    ours_ms_per_row = _best_of(lambda: clf.predict_design(
        images[0], fills[0], segments[0], probe)) / len(probe) * 1000

    alibi, alibi_ms_per_row = None, float("nan")
    with tempfile.TemporaryDirectory(prefix="bench-anchors-") as tmp:
        work = Path(tmp)
        if not args.skip_alibi:
            alibi = []
            (work / "model.onnx").write_bytes(_plain_onnx(clf))
            np.save(work / "probe.npy", probe_images)
            np.savez(work / "images.npz", images=images, segments=segments, fills=fills)
            (work / "params.json").write_text(json.dumps({
                "threads": args.threads, "threshold": args.threshold, "delta": args.delta,
                "tau": args.tau, "batch_size": args.batch_size, "beam_size": args.beam_size,
                "coverage_samples": args.coverage_samples,
                "seeds": [s % 2**31 for s in seeds]}))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        ours = []
        # interleaved, image by image, so the machine's load falls on both alike
        for i, (image, seg) in enumerate(zip(images, segments)):
            start = time.perf_counter()
            exp = explainer.explain(image, clf, segments=seg, random_state=seeds[i])
            seconds = time.perf_counter() - start
            ours.append({"anchor": list(exp.anchor), "label": exp.label,
                         "precision": exp.precision, "success": exp.success,
                         "seconds": seconds, "rows": exp.n_samples,
                         "calls": exp.n_model_calls})
            line = (f"image {i + 1}/{len(images)}: ours {seconds:.1f} s, {exp.n_samples} rows, "
                    f"size {len(exp.anchor)}")
            if alibi is not None:
                subprocess.run([str(args.alibi_python), str(Path(__file__).resolve()),
                                "--alibi-worker", str(work), "--index", str(i)],
                               check=True, env=env)
                alibi.append(json.loads((work / f"alibi-{i}.json").read_text()))
                if i == 0:
                    alibi_ms_per_row = alibi[0]["ms_per_row"]
                line += (f"; alibi {alibi[-1]['seconds']:.1f} s, {alibi[-1]['rows']} rows, "
                         f"size {len(alibi[-1]['anchor'])}")
            print(line, flush=True)

    # the same re-measurement for both: fresh samples, a common pool of coverage masks
    methods = {"ours": ours} if alibi is None else {"ours": ours, "alibi": alibi}
    for i, (image, seg, fill) in enumerate(zip(images, segments, fills)):
        k = int(seg.max()) + 1
        masks = coverage_masks(args.coverage_samples, k,
                               random_state=derive_seed(seeds[i], "coverage"))
        for name, rows in methods.items():
            r = rows[i]
            r["precision_remeasured"] = anchor_precision(
                image, fill, seg, r["anchor"], r["label"], clf, n_samples=args.remeasure,
                random_state=derive_seed(seeds[i], "remeasure"))
            r["coverage"] = anchor_coverage(r["anchor"], masks)

    print(f"\n{len(images)} photos, MobileNet v1 0.25 @128 (ONNX Runtime {args.threads} "
          f"thread(s), model alone: ours {ours_ms_per_row:.2f} ms/row, alibi "
          f"{alibi_ms_per_row:.2f} ms/row); threshold {args.threshold}, delta {args.delta}, "
          f"tau {args.tau}, beam {args.beam_size}, batch {args.batch_size}; precision "
          f"re-measured on {args.remeasure} fresh samples, coverage on "
          f"{args.coverage_samples} common masks\n")
    header = "| image | method | s/image | model rows | model calls | size | precision | coverage |"
    print(header)
    print("|---|---|---|---|---|---|---|---|")
    for i in range(len(images)):
        for name, rows in methods.items():
            r = rows[i]
            print(f"| {args.first + i} | {name} | {r['seconds']:.2f} | {r['rows']} | "
                  f"{r['calls']} | {len(r['anchor'])} | {r['precision_remeasured']:.3f} | "
                  f"{r['coverage']:.4f} |")
    summary = {}
    for name, rows in methods.items():
        summary[name] = {key: _median([r[key] if key != "size" else len(r["anchor"])
                                       for r in rows])
                         for key in ("seconds", "rows", "calls", "size",
                                     "precision_remeasured", "coverage")}
        summary[name]["success"] = float(np.mean([r["success"] for r in rows]))
        s = summary[name]
        print(f"| median | {name} | {s['seconds']:.2f} | {s['rows']:.0f} | {s['calls']:.0f} | "
              f"{s['size']:.1f} | {s['precision_remeasured']:.3f} | {s['coverage']:.4f} |")
    if alibi is not None:
        a, o = summary["alibi"], summary["ours"]
        ratios = [a_["seconds"] / o_["seconds"] for a_, o_ in zip(alibi, ours)]
        same_label = all(a_["label"] == o_["label"] for a_, o_ in zip(alibi, ours))
        print(f"\ntime alibi/ours: median of per-image ratios {_median(ratios):.1f}x, ratio of "
              f"medians {a['seconds'] / o['seconds']:.1f}x (target >= 5x)")
        print(f"model rows alibi/ours: {a['rows'] / o['rows']:.1f}x; model calls "
              f"alibi/ours: {a['calls'] / o['calls']:.1f}x")
        print(f"re-measured precision, median: ours {o['precision_remeasured']:.3f}, alibi "
              f"{a['precision_remeasured']:.3f} (target: ours >= alibi); mean: ours "
              f"{np.mean([r['precision_remeasured'] for r in ours]):.3f}, alibi "
              f"{np.mean([r['precision_remeasured'] for r in alibi]):.3f}")
        print(f"coverage, median: ours {o['coverage']:.4f}, alibi {a['coverage']:.4f} "
              f"(target: within 0.05); same label on every image: {same_label}")
        summary["ratios"] = {"seconds_median_of_ratios": _median(ratios),
                             "seconds_ratio_of_medians": a["seconds"] / o["seconds"]}
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "ours": ours, "alibi": alibi, "summary": summary,
                                         "ms_per_row": {"ours": ours_ms_per_row,
                                                        "alibi": alibi_ms_per_row}},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
