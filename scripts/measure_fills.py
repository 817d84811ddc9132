"""Pointing-game hit rate of every fill, next to Python lime's, on known evidence.

Trains the small CNN of :mod:`lime_spark.shapes` once (fixed seed) on
generated shapes images, then explains held-out, correctly classified images
with lime-spark's ``ImageExplainer`` (its defaults: slic, 50 superpixels,
1000 samples) under each fill, and with Python lime 0.2.0.1's
``LimeImageExplainer`` on the same slic segments.  For each method it reports
how often the top positive superpixel of the predicted label lies on the
class-deciding object (see :func:`lime_spark.shapes.pointing_game_hit`),
with a 95% Wilson interval, and the mean explanation fit (R squared).

Usage::

    python scripts/measure_fills.py --n-images 120 --seed 0
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

os.environ.setdefault("TQDM_DISABLE", "1")  # lime's progress bar; set before lime is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

logger = logging.getLogger("measure_fills")

LIME_SPARK_FILLS: tuple[tuple[str, object], ...] = (
    ("median", "median"),
    ("mean", "mean"),
    ("blur", "blur"),
    ("grey", "grey"),
    ("0 (black)", 0),
)
"""(table name, ``fill`` argument) of the lime-spark fills measured."""

LIME_HIDE_COLORS: tuple[tuple[str, object], ...] = (
    ("mean (hide_color=None)", None),
    ("grey (hide_color=128)", 128),
)
"""(table name, ``hide_color``) of the Python lime runs measured."""


@dataclass
class Tally:
    """Per-method results over the explained images."""

    hits: list[bool] = field(default_factory=list)
    hits_loose: list[bool] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    seconds: float = 0.0


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``hits / n``."""
    if n == 0:
        return float("nan"), float("nan")
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-images", type=int, default=120,
                        help="held-out images generated (default 120); only correctly "
                             "classified ones are explained")
    parser.add_argument("--num-samples", type=int, default=1000,
                        help="perturbed samples per explanation (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument("--n-train", type=int, default=1000,
                        help="training images (default 1000)")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs (default 6)")
    parser.add_argument("--no-lime", action="store_true",
                        help="skip the Python lime runs")
    return parser.parse_args(argv)


def _lime_runner(classifier: Callable, num_samples: int, hide_color: object
                 ) -> Callable[[np.ndarray, np.ndarray, int], object]:
    from lime.lime_image import LimeImageExplainer

    def run(image: np.ndarray, segments: np.ndarray, seed: int) -> object:
        explainer = LimeImageExplainer(random_state=seed % 2**32)
        return explainer.explain_instance(
            image, classifier, top_labels=1, hide_color=hide_color,
            num_samples=num_samples, batch_size=128,
            segmentation_fn=lambda img: segments)

    return run


def measure(args: argparse.Namespace) -> tuple[list[tuple[str, str, Tally]], dict]:
    """Train once, explain every kept held-out image with every method."""
    from lime_spark import DEFAULT_FILL, Classifier, ImageExplainer
    from lime_spark.sampling import derive_seed
    from lime_spark.shapes import (
        erase_object,
        make_shapes_dataset,
        pointing_game_hit,
        superpixel_overlap,
        train_shapes_classifier,
    )

    started = time.perf_counter()
    train_x, train_y, _ = make_shapes_dataset(args.n_train, random_state=derive_seed(args.seed,
                                                                                    "train"))
    test_x, test_y, test_masks = make_shapes_dataset(
        args.n_images, include_empty=False, random_state=derive_seed(args.seed, "held-out"))
    model = train_shapes_classifier(train_x, train_y, epochs=args.epochs,
                                    random_state=args.seed)
    train_seconds = time.perf_counter() - started
    classifier = Classifier(model)
    predicted = classifier(test_x).argmax(axis=1)
    correct = predicted == test_y
    keep = np.flatnonzero(correct)
    erased = classifier(np.stack([erase_object(test_x[i], test_masks[i]) for i in keep]))
    info = {"accuracy": float(correct.mean()), "n_held_out": int(len(test_y)),
            "n_explained": int(len(keep)), "train_seconds": train_seconds,
            "erased_changes": float(np.mean(erased.argmax(axis=1) != test_y[keep]))}
    logger.info("held-out accuracy %.3f; explaining %d images", info["accuracy"], len(keep))

    methods: list[tuple[str, str, Callable]] = []
    for name, fill in LIME_SPARK_FILLS:
        explainer = ImageExplainer(fill=fill, n_samples=args.num_samples)
        if isinstance(fill, str) and fill == DEFAULT_FILL:
            name += " (default)"
        methods.append(("lime-spark", name,
                        lambda image, segments, seed, e=explainer: e.explain(
                            image, classifier, top_labels=1, random_state=seed)))
    if not args.no_lime:
        for name, hide_color in LIME_HIDE_COLORS:
            methods.append(("lime 0.2.0.1", name,
                            _lime_runner(classifier, args.num_samples, hide_color)))
    tallies = [Tally() for _ in methods]
    segmenter = ImageExplainer()
    chance = []
    for count, i in enumerate(keep):
        image, label, mask = test_x[i], int(test_y[i]), test_masks[i]
        seed = derive_seed(args.seed, f"held-out-{i}")
        segments = segmenter.segment(image)
        chance.append(float(np.mean(superpixel_overlap(segments, mask) >= 0.5)))
        for (_, _, run), tally in zip(methods, tallies):
            t0 = time.perf_counter()
            exp = run(image, segments, seed)
            tally.seconds += time.perf_counter() - t0
            if not np.array_equal(exp.segments, segments):
                raise RuntimeError(f"image {i}: methods saw different segments")
            top = int(exp.top_labels[0])
            if top != label:
                raise RuntimeError(f"image {i}: explained label {top} != predicted {label}")
            tally.hits.append(pointing_game_hit(exp, label, mask))
            tally.hits_loose.append(pointing_game_hit(exp, label, mask, min_overlap=0.25))
            score = exp.score[label] if isinstance(exp.score, dict) else exp.score
            tally.scores.append(float(score))
        if (count + 1) % 25 == 0:
            logger.info("%d/%d images", count + 1, len(keep))
    info["chance"] = float(np.mean(chance)) if chance else float("nan")
    info["seconds"] = time.perf_counter() - started
    return [(lib, name, t) for (lib, name, _), t in zip(methods, tallies)], info


def format_table(results: list[tuple[str, str, Tally]], info: dict) -> str:
    """The markdown table of the measurements."""
    lines = [
        "| library | fill | hit rate | 95% CI | hit rate (>=25% overlap) | n images "
        "| mean R^2 | s / image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lib, name, t in results:
        n = len(t.hits)
        hits = int(np.sum(t.hits))
        lo, hi = wilson_interval(hits, n)
        lines.append(
            f"| {lib} | {name} | {hits / max(n, 1):.3f} | {lo:.2f}-{hi:.2f} "
            f"| {np.mean(t.hits_loose):.3f} | {n} | {np.mean(t.scores):.3f} "
            f"| {t.seconds / max(n, 1):.2f} |")
    lines.append("")
    lines.append(
        f"Model: held-out accuracy {info['accuracy']:.3f} ({info['n_held_out']} images, "
        f"{info['n_explained']} correctly classified were explained); erasing the object "
        f"changes the prediction of {info['erased_changes']:.3f} of them; a random superpixel "
        f"hits {info['chance']:.3f}.  Hit: the top positive superpixel of the predicted label "
        f"has >= 50% object pixels.  Total {info['seconds']:.0f} s (training "
        f"{info['train_seconds']:.0f} s).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print the table and the command."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    results, info = measure(args)
    command = shlex.join(["python", "scripts/measure_fills.py", *(sys.argv[1:] if argv is None
                                                                  else argv)])
    print(format_table(results, info))
    print()
    print(f"Command: `{command}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
