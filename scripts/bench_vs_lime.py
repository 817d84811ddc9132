"""Benchmark: lime-spark's in-process explainer against Python lime 0.2.0.1.

Both run side by side in one process, on the same real ImageNet MobileNet
(alpha 0.25, 128x128) and the same photos (scikit-image's bundled ones).
Runs are interleaved and repeated; medians are reported.

Figures:
  A  as users meet them: lime at its defaults with its Keras tutorial's
     classifier_fn (model.predict on preprocessed images, hide_color=0, quickshift,
     batch_size=10) against lime-spark at its defaults.           target >= 10x
  B  at equal settings (the same classifier callable, the same segments,
     mean fill, batch 128): lime-spark's time above the floor against lime's
     time above the floor.                                         target <= 1/3
  C  lime-spark at its defaults against the floor.               target <= 1.3x
The floor: the same 1000 perturbed images through a compiled forward
(tf.function) in fixed batches of 128 (the last one padded).

Usage: .venv/bin/python scripts/bench_vs_lime.py [--repeats 3] [--photos chelsea,coffee,astronaut]
       [--models-dir ../shared/models]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

from _bench import keras_home

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")


def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--photos", default="chelsea,coffee,astronaut")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--models-dir", type=Path, default=repo.parent / "shared" / "models")
    args = parser.parse_args(argv)
    keras_home(args.models_dir)

    import numpy as np
    import skimage.data
    import tensorflow as tf
    from lime.lime_image import LimeImageExplainer

    import keras
    from lime_spark import ImageExplainer, load_classifier, resize_image
    from lime_spark.perturb import iter_perturbed, make_fill
    from lime_spark.sampling import sample_design

    clf = load_classifier("mobilenet", weights="imagenet", alpha=0.25, input_shape=(128, 128, 3))
    model = clf.model
    preprocess = keras.applications.mobilenet.preprocess_input
    photos = {name: resize_image(getattr(skimage.data, name)(), (128, 128))
              for name in args.photos.split(",")}
    n = args.num_samples

    forward = tf.function(lambda x: model(preprocess(x), training=False),
                          input_signature=[tf.TensorSpec([128, 128, 128, 3], tf.float32)])

    def floor(image):
        explainer = ImageExplainer()
        segments = explainer.segment(image)
        design = sample_design(n, int(segments.max()) + 1, random_state=0)
        fill = make_fill(image, segments, explainer.config.fill)
        images = np.concatenate(list(iter_perturbed(image, fill, segments, design, 128)))
        padded = np.zeros((-(-n // 128) * 128, 128, 128, 3), np.float32)
        padded[:n] = images
        start = time.perf_counter()
        for s in range(0, len(padded), 128):
            np.asarray(forward(padded[s:s + 128]))
        return time.perf_counter() - start

    tutorial_fn = functools.partial(model.predict, verbose=0)

    def lime_defaults(image):
        pre = preprocess(image.astype("float64"))
        start = time.perf_counter()
        LimeImageExplainer().explain_instance(pre, tutorial_fn, top_labels=5, hide_color=0,
                                              num_samples=n)
        return time.perf_counter() - start

    def ours_defaults(image):
        start = time.perf_counter()
        ImageExplainer().explain(image, clf, top_labels=5)
        return time.perf_counter() - start

    def lime_equal(image, segments):
        start = time.perf_counter()
        LimeImageExplainer(random_state=0).explain_instance(
            image, clf, top_labels=5, hide_color=None, num_samples=n, batch_size=128,
            segmentation_fn=lambda img: segments)
        return time.perf_counter() - start

    def ours_equal(image, segments):
        start = time.perf_counter()
        ImageExplainer(fill="mean", random_state=0).explain(
            image, lambda batch: clf(batch), top_labels=5, segments=segments)
        return time.perf_counter() - start

    # warm up every path once (tracing, oneDNN kernels)
    warm = photos[next(iter(photos))]
    seg = ImageExplainer().segment(warm)
    floor(warm), ours_defaults(warm), ours_equal(warm, seg), lime_equal(warm, seg)
    clf(warm[None]), tutorial_fn(preprocess(warm[None].astype("float32")))

    times: dict[str, list[float]] = {k: [] for k in
                                     ("floor", "lime_defaults", "ours_defaults", "lime_equal",
                                      "ours_equal")}
    for rep in range(args.repeats):
        for name, image in photos.items():
            segments = ImageExplainer().segment(image)
            for key, fn in [("floor", lambda: floor(image)),
                            ("ours_defaults", lambda: ours_defaults(image)),
                            ("lime_equal", lambda: lime_equal(image, segments)),
                            ("ours_equal", lambda: ours_equal(image, segments)),
                            ("lime_defaults", lambda: lime_defaults(image))]:
                times[key].append(fn())
            print(f"repeat {rep + 1}/{args.repeats} {name}: " + ", ".join(
                f"{k}={v[-1]:.3f}s" for k, v in times.items()), file=sys.stderr, flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    a = med["lime_defaults"] / med["ours_defaults"]
    b = (med["ours_equal"] - med["floor"]) / (med["lime_equal"] - med["floor"])
    c = med["ours_defaults"] / med["floor"]
    print(f"\nMobileNet v1 0.25 @128, {n} samples, top 5 labels, photos {args.photos}, "
          f"{args.repeats} repeats, medians of {len(times['floor'])} runs (seconds per image):")
    print("| run | s/image |\n|---|---|")
    for key, label in [("floor", "floor: compiled forward, fixed batches of 128"),
                       ("lime_defaults", "lime 0.2.0.1 defaults, tutorial classifier_fn"),
                       ("ours_defaults", "lime-spark defaults"),
                       ("lime_equal", "lime, equal settings (same callable, segments, batch 128)"),
                       ("ours_equal", "lime-spark, equal settings")]:
        print(f"| {label} | {med[key]:.3f} |")
    print(f"\nA  lime defaults / lime-spark defaults          = {a:6.1f}x   (target >= 10x)")
    print(f"B  lime-spark above floor / lime above floor     = {b:6.3f}    (target <= 0.333)")
    print(f"C  lime-spark defaults / floor                   = {c:6.2f}x   (target <= 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
