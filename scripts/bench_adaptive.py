"""Benchmark: how many model calls an explanation needs, fixed budgets against ``n_samples="auto"``.

For each of 32 real photos (scikit-image's bundled colour photos, their
mirror images and centre crops), with the real ImageNet MobileNet v1 0.25
@128 on ONNX Runtime and one fixed SLIC segmentation per image:

* two reference explanations with 10,000 independent samples each (seeds A
  and B; their agreement with each other is the ceiling);
* fixed budgets of 250, 500, 1000 and 2000 samples, independent (Python
  lime's design) and paired; and ``auto`` (paired, min 256, max 1000, delta
  0.05), all explaining the reference's top 3 labels.

Per contender: mean and p95 model calls per image; agreement with reference A
as the Jaccard index of the top-5 superpixels by weight (for the top label,
and averaged over the top 3 labels); Spearman rank correlation of the top
label's weights; seconds per image; 95% bootstrap intervals over images.
For ``auto`` also: the share of explanations (image x label) the rule called
stable whose top-5 is not reference A's top-5 up to the rule's tie tolerance,
against the promised ``delta``.

Usage: .venv/bin/python scripts/bench_adaptive.py [--images 32] [--reference 10000]
       [--models-dir ../shared/models]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from _bench import keras_home

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BUDGETS = (250, 500, 1000, 2000)
TOP = 5
LABELS = 3


def _photos(n: int):
    """n RGB photos: scikit-image's colour photos, mirrored and centre-cropped."""
    import numpy as np
    import skimage.data as d

    bases = [d.astronaut(), d.chelsea(), d.coffee(), d.rocket(), d.hubble_deep_field(),
             d.immunohistochemistry(), d.retina(), d.stereo_motorcycle()[0], d.colorwheel(),
             np.stack([d.camera()] * 3, axis=-1)]           # the ones bundled (no download)
    variants = []
    for b in bases:
        h, w = b.shape[:2]
        crop = b[h // 6: h - h // 6, w // 6: w - w // 6]
        variants += [b, b[:, ::-1], crop, crop[:, ::-1]]
    return [np.ascontiguousarray(v) for v in variants[:n]]


def _jaccard(a, b) -> float:
    a, b = set(map(int, a)), set(map(int, b))
    return len(a & b) / len(a | b)


def _top(exp, label):
    from lime_spark.stability import top_k

    return top_k(exp.coefficients(label), TOP)


def _agrees_up_to_ties(exp, reference, label, tie_tolerance) -> bool:
    """exp's top-5 is reference's top-5, up to the rule's tie tolerance on the reference."""
    import numpy as np

    ref = reference.coefficients(label)
    chosen = np.zeros(len(ref), bool)
    chosen[_top(exp, label)] = True
    tolerance = tie_tolerance * float(np.abs(ref).max())
    return bool(ref[chosen].min() >= ref[~chosen].max() - tolerance)


def _bootstrap(values, rng, n: int = 1000) -> tuple[float, float]:
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(n)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--reference", type=int, default=10_000)
    parser.add_argument("--models-dir", type=Path, default=repo.parent / "shared" / "models")
    args = parser.parse_args(argv)
    keras_home(args.models_dir)

    import numpy as np
    from scipy.stats import spearmanr

    from lime_spark import ImageExplainer, load_classifier, resize_image

    clf = load_classifier("mobilenet", weights="imagenet", alpha=0.25,
                          input_shape=(128, 128, 3), runtime="onnx")
    contenders = {f"fixed {n} {s}": {"n_samples": n, "sampling": s, "max_samples": max(n, 1000)}
                  for n in BUDGETS for s in ("independent", "paired")}
    contenders["auto (paired)"] = {}
    rows = {name: [] for name in contenders}
    ceiling, promise = [], []
    tie_tolerance = ImageExplainer().config.tie_tolerance
    delta = ImageExplainer().config.delta
    photos = _photos(args.images)
    for i, photo in enumerate(photos):
        image = resize_image(photo, clf.input_size)
        segments = ImageExplainer().segment(image, random_state=0)
        refs = []
        for seed in (1, 2):
            ref_explainer = ImageExplainer(n_samples=args.reference, sampling="independent",
                                           max_samples=args.reference, random_state=seed)
            refs.append(ref_explainer.explain(image, clf, segments=segments,
                                              top_labels=LABELS))
        ref = refs[0]
        labels = ref.top_labels[:LABELS]
        ceiling.append(np.mean([_jaccard(_top(refs[0], lab), _top(refs[1], lab))
                                for lab in labels]))
        for j, (name, options) in enumerate(contenders.items()):
            explainer = ImageExplainer(**options, random_state=100 + 7 * i + j)
            start = time.perf_counter()
            exp = explainer.explain(image, clf, segments=segments, labels=labels)
            seconds = time.perf_counter() - start
            per_label = [_jaccard(_top(exp, lab), _top(ref, lab)) for lab in labels]
            rho = spearmanr(exp.coefficients(labels[0]), ref.coefficients(labels[0])).statistic
            rows[name].append({"calls": exp.n_samples, "j_top": per_label[0],
                               "j_top3": float(np.mean(per_label)), "rho": float(rho),
                               "seconds": seconds})
            if name.startswith("auto"):
                for lab in labels:
                    if exp.stability[lab] >= 1 - delta:
                        promise.append(not _agrees_up_to_ties(exp, ref, lab, tie_tolerance))
        print(f"image {i + 1}/{len(photos)}: ceiling {ceiling[-1]:.2f}, auto "
              f"{rows['auto (paired)'][-1]['calls']} calls, "
              f"J {rows['auto (paired)'][-1]['j_top3']:.2f}", flush=True)

    rng = np.random.default_rng(0)
    print(f"\n{len(photos)} photos, MobileNet v1 0.25 @128 (ONNX Runtime), SLIC ~50 "
          f"superpixels, reference {args.reference} independent samples; Jaccard of the "
          f"top-{TOP} superpixels by weight against the reference (95% bootstrap intervals "
          "over images)\n")
    print("| design | mean calls | p95 calls | Jaccard, top label | Jaccard, top 3 labels "
          "| rank corr. | s/image |")
    print("|---|---|---|---|---|---|---|")
    for name, values in rows.items():
        calls = np.array([v["calls"] for v in values])
        j1 = [v["j_top"] for v in values]
        j3 = [v["j_top3"] for v in values]
        lo, hi = _bootstrap(j3, rng)
        clo, chi = _bootstrap(calls, rng)
        print(f"| {name} | {calls.mean():.0f} [{clo:.0f}, {chi:.0f}] | "
              f"{np.percentile(calls, 95):.0f} | {np.mean(j1):.3f} | {np.mean(j3):.3f} "
              f"[{lo:.3f}, {hi:.3f}] | {np.mean([v['rho'] for v in values]):.3f} | "
              f"{np.mean([v['seconds'] for v in values]):.3f} |")
    lo, hi = _bootstrap(ceiling, rng)
    print(f"| ceiling: reference A vs B ({args.reference} each) | - | - | - | "
          f"{np.mean(ceiling):.3f} [{lo:.3f}, {hi:.3f}] | - | - |")
    auto = rows["auto (paired)"]
    fixed = rows["fixed 1000 independent"]
    gap = np.mean([v["j_top3"] for v in auto]) - np.mean([v["j_top3"] for v in fixed])
    print(f"\nauto: {np.mean([v['calls'] for v in auto]):.0f} calls per image on average "
          "(target <= 400); Jaccard (top 3) minus fixed-1000 independent's: "
          f"{gap:+.3f} (target >= -0.02)")
    if promise:
        wrong = float(np.mean(promise))
        se = (delta * (1 - delta) / len(promise)) ** 0.5
        print(f"auto, explanations called stable: {len(promise)}; top-{TOP} not the "
              f"reference's (up to ties): {wrong:.3f} (promised <= {delta}, +2 s.e. "
              f"{delta + 2 * se:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
