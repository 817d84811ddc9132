"""Explain scikit-image's bundled photos with the ImageNet MobileNet, in one process.

Writes the superpixels and an overlay per explained label to OUT (default
./out/inprocess) and prints each photo's top labels with their explanation fit.
Weights and class index come through Keras' cache; a KERAS_HOME seeded from
../shared/models works offline (scripts/demo.sh does that).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "horse")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/inprocess"))
    parser.add_argument("--weights", default="imagenet",
                        help="'imagenet' (Keras' cache) or a MobileNet weights file")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--photos", default=",".join(PHOTOS))
    args = parser.parse_args(argv)

    import numpy as np
    import skimage.data

    from lime_spark import ImageExplainer, deletion_insertion_auc, load_classifier, resize_image
    from lime_spark.render import render_explanation, render_superpixels

    kwargs = {"alpha": 0.25, "input_shape": (128, 128, 3)} if args.weights == "imagenet" else {}
    clf = load_classifier("mobilenet", weights=args.weights, **kwargs)
    explainer = ImageExplainer(n_samples=args.num_samples, random_state=0)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.photos.split(","):
        original = getattr(skimage.data, name)()
        if original.dtype == bool:            # the horse is a binary silhouette
            original = original.astype(np.uint8) * 255
        if original.ndim == 2:
            original = np.stack([original] * 3, axis=-1)
        original = original[..., :3]
        exp = explainer.explain(resize_image(original, clf.input_size), clf, top_labels=3)
        folder = args.out / name
        folder.mkdir(exist_ok=True)
        (folder / "segments.png").write_bytes(render_superpixels(original, exp.segments))
        lines = []
        for label in exp.top_labels:
            top = sorted(exp.local_exp[label], key=lambda x: -x[1])[:5]
            (folder / f"{label}.png").write_bytes(
                render_explanation(original, exp.segments, top, threshold=0.0, display="block"))
            lines.append(f"{clf.label_name(label)} p={exp.predictions[label]:.2f} "
                         f"fit={exp.score[label]:.2f}")
        d_auc, i_auc = deletion_insertion_auc(exp, clf)
        print(f"{name:10s} {exp.seconds:5.2f}s  " + "; ".join(lines)
              + f"; deletion/insertion AUC {d_auc:.2f}/{i_auc:.2f}")
    print(f"overlays: {args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
