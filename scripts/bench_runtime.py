"""Benchmark: one explanation on ONNX Runtime against TensorFlow, and against the TensorFlow floor.

For each model, side by side in one process, interleaved and repeated
(medians reported), on the same photo (scikit-image's ``chelsea`` at the
model's input size), the same segments and the same 1000-row design:

  floor      the model alone in a ``tf.function`` (its preprocess_input
             included) on the same 1000 perturbed images, fixed batches of 128
  tf         a whole explanation, ``runtime="tensorflow"`` (1000 samples, top 5)
  onnx       the same explanation, ``runtime="onnx"``
  onnx_forward  the same graph on the 1000 perturbed images built beforehand (its
             images path: each batch transposed and preprocessed in the graph), for
             reference

and prints onnx / floor (the targets: MobileNet 0.25 @128 <= 0.40,
EfficientNetB0 @224 <= 0.50, ResNet50 @224 <= 0.70), onnx / tf, and the
agreement of the two runtimes (largest probability difference, the smallest
rank correlation of per-superpixel coefficients over the explained labels).

Models: ``mobilenet`` is the real ImageNet MobileNet v1 0.25 @128 from
``../shared/models``; ``efficientnetb0`` and ``resnet50`` are built with random
weights (``weights=None``), which does not change their speed.

``--device gpu`` runs TensorFlow on the GPU (XLA for the model) against ONNX
Runtime's CUDA provider (``onnxruntime-gpu``, the ``gpu`` extra).

Usage: .venv/bin/python scripts/bench_runtime.py [--models mobilenet,efficientnetb0,resnet50]
       [--repeats 5] [--large-repeats 2] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from _bench import keras_home

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TARGETS = {"mobilenet": 0.40, "efficientnetb0": 0.50, "resnet50": 0.70}
LARGE = ("efficientnetb0", "resnet50")


def _classifiers(name: str, device: str, threads: int):
    """(TensorFlow classifier, ONNX classifier) of one model, the same weights."""
    import keras
    from lime_spark.models import Classifier, select_runtime
    from lime_spark.models.onnx import BATCH_SIZE, OnnxEngine, export_onnx

    if name == "mobilenet":
        from lime_spark import load_classifier

        tf_clf = load_classifier("mobilenet", weights="imagenet", alpha=0.25,
                                 input_shape=(128, 128, 3), runtime="tensorflow")
    else:
        build = {"efficientnetb0": (keras.applications.EfficientNetB0, "efficientnet"),
                 "resnet50": (keras.applications.ResNet50, "resnet50")}[name]
        model = build[0](weights=None, input_shape=(224, 224, 3))
        tf_clf = Classifier(model, preprocess=build[1], name=name)
    select_runtime(tf_clf, "tensorflow")
    onnx_clf = Classifier(tf_clf.model, preprocess=tf_clf.preprocess_name, name=name,
                          digest=tf_clf.digest, label_names=tf_clf.label_names)
    data = export_onnx(onnx_clf)
    providers = ["CUDAExecutionProvider"] if device == "gpu" else None
    onnx_clf.use_onnx(data, "benchmark", engine=OnnxEngine(
        data, batch_size=BATCH_SIZE, threads=threads, providers=providers))
    return tf_clf, onnx_clf


def _floor(tf_clf, image, fill, segments, design, device: str):
    """The model alone (with its preprocessing) on the 1000 perturbed images, in tf.function."""
    import numpy as np
    import tensorflow as tf
    from lime_spark.perturb import iter_perturbed

    height, width = tf_clf.input_size
    images = np.concatenate(list(iter_perturbed(image, fill, segments, design, 128)))
    images = images.astype(np.float32)
    pad = -len(images) % 128
    images = np.concatenate([images, np.zeros((pad, height, width, 3), np.float32)])
    forward = tf.function(lambda x: tf_clf.model(tf_clf._prepare(x), training=False),
                          jit_compile=device == "gpu",
                          input_signature=[tf.TensorSpec([128, height, width, 3], tf.float32)])
    forward(tf.constant(images[:128]))                   # trace once, outside the timing

    def run():
        start = time.perf_counter()
        for s in range(0, len(images), 128):
            np.asarray(forward(tf.constant(images[s:s + 128])))
        return time.perf_counter() - start
    return run


def _bench_model(name: str, args) -> dict[str, float]:
    import numpy as np
    import skimage.data
    from scipy.stats import spearmanr
    from lime_spark import ImageExplainer, resize_image
    from lime_spark.perturb import make_fill
    from lime_spark.sampling import sample_design

    tf_clf, onnx_clf = _classifiers(name, args.device, args.threads)
    image = resize_image(skimage.data.chelsea(), tf_clf.input_size)
    explainer = ImageExplainer(n_samples=args.n_samples, random_state=0)
    segments = explainer.segment(image, random_state=0)
    design = sample_design(args.n_samples, int(segments.max()) + 1, random_state=0)
    fill = make_fill(image, segments, explainer.config.fill)

    def explain(clf):
        def run():
            start = time.perf_counter()
            explainer.explain(image, clf, segments=segments, random_state=0)
            return time.perf_counter() - start
        return run

    from lime_spark.perturb import iter_perturbed

    perturbed = np.concatenate(list(iter_perturbed(image, fill, segments, design, 128)))

    def onnx_forward():
        start = time.perf_counter()
        onnx_clf(perturbed)
        return time.perf_counter() - start

    runs = {"floor": _floor(tf_clf, image, fill, segments, design, args.device),
            "tf": explain(tf_clf), "onnx": explain(onnx_clf), "onnx_forward": onnx_forward}
    for run in runs.values():                             # warm-up: trace, compile, allocate
        run()
    repeats = args.large_repeats if name in LARGE else args.repeats
    times: dict[str, list[float]] = {k: [] for k in runs}
    order = list(runs)
    for r in range(repeats):
        for key in order[r % len(order):] + order[:r % len(order)]:   # rotate who goes first
            times[key].append(runs[key]())
        print(f"  {name} repeat {r + 1}/{repeats}: "
              + ", ".join(f"{k}={v[-1]:.3f}s" for k, v in times.items()), flush=True)
    a = explainer.explain(image, tf_clf, segments=segments, random_state=0)
    b = explainer.explain(image, onnx_clf, segments=segments, random_state=0)
    rho = min(spearmanr(a.coefficients(lab), b.coefficients(lab)).statistic
              for lab in a.top_labels)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {**med, "max_prob_diff": float(np.abs(a.predictions - b.predictions).max()),
            "min_rank_corr": float(rho), "onnx_mb": len(onnx_clf.onnx_bytes) / 2**20}


def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet,efficientnetb0,resnet50")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large-repeats", type=int, default=2)
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="ONNX Runtime intra-op threads (TensorFlow uses all cores)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--models-dir", type=Path, default=repo.parent / "shared" / "models")
    args = parser.parse_args(argv)
    keras_home(args.models_dir)
    if args.device == "cpu":
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

    results = {}
    for name in args.models.split(","):
        print(f"{name}:", flush=True)
        results[name] = r = _bench_model(name, args)
        print(f"  {name}: onnx / floor = {r['onnx'] / r['floor']:.3f}, onnx / tf = "
              f"{r['onnx'] / r['tf']:.3f} (medians)", flush=True)
    print(f"\n{args.n_samples} samples, top 5 labels, device {args.device}, ONNX Runtime "
          f"threads {args.threads}; seconds per explanation (medians)\n")
    print("| model | TF floor | TF explanation | ONNX explanation | ONNX / floor | target "
          "| ONNX / TF | ONNX on ready images / floor | max prob diff | min rank corr |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    failed = []
    for name, r in results.items():
        ratio = r["onnx"] / r["floor"]
        target = TARGETS.get(name)
        if target is not None and ratio > target:
            failed.append(name)
        print(f"| {name} | {r['floor']:.3f} | {r['tf']:.3f} | {r['onnx']:.3f} | **{ratio:.2f}x** "
              f"| {'<= %.2f' % target if target else '-'} | {r['onnx'] / r['tf']:.2f}x "
              f"| {r['onnx_forward'] / r['floor']:.2f}x "
              f"| {r['max_prob_diff']:.1e} | {r['min_rank_corr']:.5f} |")
    if failed:
        print(f"\nabove target: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
