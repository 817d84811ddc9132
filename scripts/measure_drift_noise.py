"""Run-to-run noise of the drift measures, to choose ``lime-spark compare``'s thresholds.

The same model explaining the same images with another ``--seed`` draws other
perturbed samples; its explanations differ only by sampling noise, and a
drift threshold should flag almost none of them.  This script

1. writes ``--images`` photos (scikit-image's bundled colour photos, their
   mirror images and crops; no download) as 320x240 PNGs;
2. runs the real batch job (:func:`lime_spark.spark.job.run_job` on local
   Spark) with the real ImageNet MobileNet v1 0.25 @128 and the job's
   defaults (slic, 50 superpixels, ``n_samples=auto``, top 5 labels; overlays,
   metrics and report off: they do not change a surrogate's weights) once per
   ``--seeds`` value;
3. as positive controls, runs it once more (first seed) with each of two
   *changed models*: ``left-half``, the same MobileNet behind a fixed layer
   that greys out the right half of its input (whatever evidence lay there is
   gone: a known change of what the model looks at), and ``perturbed``, the
   MobileNet with Gaussian noise of 0.5% of each kernel's standard deviation
   added to every convolution kernel (a slightly different model, as after
   retraining: about 15% of the top labels change);
4. computes the drift rows (:func:`lime_spark.spark.drift.drift_rows`) of
   every pair of seeds and of each control against the first seed, and
   prints the quantiles of ``rank_correlation`` and ``top5_jaccard`` (all
   rows, rows whose explanations are stable in both runs, and per label
   rank), then the share of images and rows flagged for candidate thresholds
   (an image is flagged when any of its rows is), with and without the
   stability gate (``min_stability``).

Usage::

    KERAS_HOME=... .venv/bin/python scripts/measure_drift_noise.py [--images 40]
        [--seeds 0 1 2] [--master local[2]] [--no-control] [--json out.json]
        [--keep FOLDER] [--max-flagged 0.05] [--models-dir ../shared/models]

It exits 1 when the default thresholds flag more than ``--max-flagged`` of
the same-model image comparisons (the acceptance bar, 5%).

The figures and the choice of :data:`lime_spark.spark.drift.DEFAULT_THRESHOLDS`
are in ``docs/drift.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _bench import keras_home

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SIZE = (320, 240)
RANK_CANDIDATES = (None, 0.3, 0.4, 0.5, 0.6)
JACCARD_CANDIDATES = (None, 0.1, 0.2, 0.3)
"""top5_jaccard takes the values k / (10 - k) for k superpixels in common (5 a side):
0, 0.111, 0.25, 0.429, 0.667, 1; ``< 0.1`` flags none in common, ``< 0.2`` at most one,
``< 0.3`` at most two."""
STABILITY_CANDIDATES = (0.0, 0.95)
"""``min_stability`` gates: 0 judges every row; 0.95 is the explainer's 1 - delta."""
RULES = ("and", "or")
"""How the two measures combine: drift.py's rule (both moved), or either one."""
QUANTILES = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5)


def _photos(n: int):
    """n RGB photos: scikit-image's colour photos, mirrored and cropped (as bench_adaptive.py's,
    with four off-centre crops per photo for up to 80)."""
    import numpy as np
    import skimage.data as d

    bases = [d.astronaut(), d.chelsea(), d.coffee(), d.rocket(), d.hubble_deep_field(),
             d.immunohistochemistry(), d.retina(), d.stereo_motorcycle()[0], d.colorwheel(),
             np.stack([d.camera()] * 3, axis=-1)]           # the ones bundled (no download)
    first, second = [], []
    for b in bases:
        h, w = b.shape[:2]
        crop = b[h // 6: h - h // 6, w // 6: w - w // 6]
        first += [b, b[:, ::-1], crop, crop[:, ::-1]]
        second += [b[: 2 * h // 3, : 2 * w // 3], b[h // 3:, w // 3:],
                   b[: 2 * h // 3, w // 3:], b[h // 3:, : 2 * w // 3]]
    photos = first + second
    if n > len(photos):
        raise SystemExit(f"at most {len(photos)} images (asked for {n})")
    return [np.ascontiguousarray(p) for p in photos[:n]]


def _write_inputs(folder: Path, n: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, photo in enumerate(_photos(n)):
        path = folder / f"photo_{i:03d}.png"
        Image.fromarray(photo).resize(SIZE, Image.Resampling.BICUBIC).save(path)
        rows.append({"path": str(path), "image_id": f"photo_{i:03d}"})
    table = folder.parent / "input.parquet"
    pq.write_table(pa.Table.from_pylist(rows), table)
    return table


def _mobilenet():
    import keras

    return keras.applications.MobileNet(alpha=0.25, input_shape=(128, 128, 3),
                                        weights="imagenet")


def _left_half_mobilenet(path: Path) -> Path:
    """MobileNet 0.25 @128 behind a fixed layer that zeroes (greys, after the mobilenet
    preprocessing) the right half of its input: Permute, diagonal Dense, Permute."""
    import keras
    import numpy as np

    inputs = keras.Input((128, 128, 3))
    x = keras.layers.Permute((1, 3, 2))(inputs)              # width last
    mask = keras.layers.Dense(128, use_bias=False, trainable=False, name="left_half")
    x = keras.layers.Permute((1, 3, 2))(mask(x))
    model = keras.Model(inputs, _mobilenet()(x))
    mask.set_weights([np.diag((np.arange(128) < 64).astype("float32"))])
    model.save(path)
    return path


def _perturbed_mobilenet(path: Path, scale: float = 0.005) -> Path:
    """MobileNet 0.25 @128 with N(0, scale * std(kernel)) added to every convolution kernel."""
    import numpy as np

    model = _mobilenet()
    rng = np.random.default_rng(0)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights and type(layer).__name__ in ("Conv2D", "DepthwiseConv2D"):
            kernel = weights[0]
            noise = rng.normal(0.0, scale * float(kernel.std()), kernel.shape)
            layer.set_weights([kernel + noise.astype(kernel.dtype), *weights[1:]])
    model.save(path)
    return path


CONTROLS = {"left-half": _left_half_mobilenet, "perturbed": _perturbed_mobilenet}


def _quantiles(values) -> str:
    import numpy as np

    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return "(none)"
    return "  ".join(f"q{int(q * 100):02d}={np.quantile(values, q):+.3f}" for q in QUANTILES)


def _stable(rows, gate):
    import numpy as np

    return np.minimum(rows.stability_a.to_numpy(float), rows.stability_b.to_numpy(float)) >= gate


def _moved(rows, rank_t, jaccard_t, rule="and"):
    """Whether the measures moved: both below their thresholds ("and", drift.py's rule) or
    either ("or"); None leaves a measure out.  A null rank_correlation never moved."""
    import numpy as np

    tests = []
    if rank_t is not None:
        tests.append(np.nan_to_num(rows.rank_correlation.to_numpy(float), nan=np.inf) < rank_t)
    if jaccard_t is not None:
        tests.append(np.nan_to_num(rows.top5_jaccard.to_numpy(float), nan=np.inf) < jaccard_t)
    if not tests:
        return np.zeros(len(rows), bool)
    return np.logical_and.reduce(tests) if rule == "and" else np.logical_or.reduce(tests)


def _flags(rows, rank_t, jaccard_t, gate=0.0, rule="and"):
    """Per-row ``drifted`` for one candidate, as drift.py computes it."""
    return rows.top_label_changed.to_numpy(bool) | (_stable(rows, gate)
                                                    & _moved(rows, rank_t, jaccard_t, rule))


def _image_share(rows, flag) -> float:
    return float(rows.assign(flag=flag).groupby("image_id").flag.any().mean())


def _describe(name: str, rows) -> dict:
    """Print and return the distributions of one comparison."""
    stable = rows[_stable(rows, 0.95)]
    out = {"rows": int(len(rows)), "images": int(rows.image_id.nunique()),
           "top_label_changed_images": int(rows[rows.top_label_changed].image_id.nunique()),
           "rank_correlation_null": int(rows.rank_correlation.isna().sum()),
           "stable_rows": int(len(stable)), "by_rank": {}}
    print(f"\n== {name}: {out['images']} images, {out['rows']} rows, top label changed in "
          f"{out['top_label_changed_images']} images, rank_correlation null in "
          f"{out['rank_correlation_null']} rows, {len(stable)} rows stable (>= 0.95) in both")
    print(f"  all rows       rank_correlation {_quantiles(rows.rank_correlation)}")
    print(f"                 top5_jaccard     {_quantiles(rows.top5_jaccard)}")
    print(f"  stable in both rank_correlation {_quantiles(stable.rank_correlation)}"
          f"   min {stable.rank_correlation.min():+.3f}")
    print(f"                 top5_jaccard     {_quantiles(stable.top5_jaccard)}"
          f"   min {stable.top5_jaccard.min():+.3f}")
    for rank, part in rows.groupby("label_rank_a"):
        gated = part[_stable(part, 0.95)]
        print(f"  label rank {rank}   rank_correlation {_quantiles(part.rank_correlation)}")
        print(f"                 top5_jaccard     {_quantiles(part.top5_jaccard)}"
              f"   median prob {part.prob_a.median():.3f}, stable in both "
              f"{100 * len(gated) / max(len(part), 1):.0f}%")
        out["by_rank"][int(rank)] = {
            "rows": int(len(part)), "stable_rows": int(len(gated)),
            "median_prob": float(part.prob_a.median()),
            "rank_correlation_quantiles": {str(q): float(part.rank_correlation.quantile(q))
                                           for q in QUANTILES},
            "top5_jaccard_quantiles": {str(q): float(part.top5_jaccard.quantile(q))
                                       for q in QUANTILES},
            "stable_rank_correlation_min": float(gated.rank_correlation.min())
            if len(gated) else None,
            "stable_top5_jaccard_min": float(gated.top5_jaccard.min()) if len(gated) else None,
            "top5_jaccard_counts": {f"{v:.3f}": int(c) for v, c in
                                    part.top5_jaccard.round(3).value_counts().sort_index()
                                    .items()}}
    return out


def _candidates():
    for rule, gate, rank_t, jaccard_t in itertools.product(
            RULES, STABILITY_CANDIDATES, RANK_CANDIDATES, JACCARD_CANDIDATES):
        if rank_t is None and jaccard_t is None:
            continue
        if (rank_t is None or jaccard_t is None) and rule == "or":
            continue                      # one measure alone: the same under both rules
        yield rule, gate, rank_t, jaccard_t


def _flag_table(results: dict, controls: list[str]) -> dict:
    """Print, per candidate: the share of images (and rows) flagged by the noise comparisons
    (changed top labels count; none change there), and the share of each control's rows
    stable in both runs that the measures flag (its power, top label changes left out)."""
    noise = [n for n in results if n.split(" vs ")[0] not in controls]
    control_names = [n for n in results if n not in noise]
    print("\n== flagged per candidate: noise as % of images (% of rows); controls as % of "
          "their rows stable in both runs, flagged by the measures alone")
    header = (f"{'rule':>4} {'stab >=':>7} {'rank <':>6} {'jacc <':>6} | "
              + " | ".join(f"{n:>20}" for n in [*noise, *control_names]))
    print(header)
    print("-" * len(header))
    table = {}
    for rule, gate, rank_t, jaccard_t in _candidates():
        key = f"{rule} min_stability={gate} rank<{rank_t} jaccard<{jaccard_t}"
        table[key], cells = {}, []
        for name in noise:
            rows = results[name]
            flag = _flags(rows, rank_t, jaccard_t, gate, rule)
            images = _image_share(rows, flag)
            table[key][name] = {"images": images, "rows": float(flag.mean())}
            cells.append(f"{100 * images:5.1f}% ({100 * flag.mean():4.1f}%)")
        for name in control_names:
            rows = results[name]
            stable = rows[_stable(rows, max(gate, 0.95))]
            power = float(_moved(stable, rank_t, jaccard_t, rule).mean()) if len(stable) else 0.0
            table[key][name] = {"stable_rows_flagged": power, "stable_rows": int(len(stable))}
            cells.append(f"{100 * power:5.1f}% of {len(stable)}")
        print(f"{rule:>4} {gate:>7} {str(rank_t):>6} {str(jaccard_t):>6} | "
              + " | ".join(f"{c:>20}" for c in cells))
    return table


def _control_summary(name: str, rows) -> dict:
    """What the default thresholds make of a control."""
    from lime_spark.spark.drift import DEFAULT_THRESHOLDS as T

    flag = _flags(rows, T["rank_correlation"], T["top5_jaccard"], T["min_stability"])
    per_image = rows.assign(flag=flag).groupby("image_id")
    changed = per_image.top_label_changed.any()
    flagged = per_image.flag.any()
    stable = rows[_stable(rows, T["min_stability"])]
    out = {"images": int(len(changed)), "top_label_changed": int(changed.sum()),
           "flagged": int(flagged.sum()),
           "flagged_top_label_unchanged": int((flagged & ~changed).sum()),
           "top_label_unchanged": int((~changed).sum()),
           "stable_rows": int(len(stable)),
           "stable_rows_moved": int(_moved(stable, T["rank_correlation"],
                                           T["top5_jaccard"]).sum())}
    print(f"\n== {name}, default thresholds: {out['flagged']} of {out['images']} images "
          f"flagged ({out['top_label_changed']} with a changed top label; "
          f"{out['flagged_top_label_unchanged']} of the {out['top_label_unchanged']} others); "
          f"the measures moved in {out['stable_rows_moved']} of the {out['stable_rows']} rows "
          "stable in both runs")
    return out


def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--no-control", action="store_true",
                        help="skip the changed-model positive controls")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--max-flagged", type=float, default=0.05,
                        help="exit 1 when the default thresholds flag more than this share of "
                             "the same-model image comparisons (default 0.05, the acceptance "
                             "bar)")
    parser.add_argument("--keep", type=Path,
                        help="work in this folder and keep it; runs already there are reused")
    parser.add_argument("--models-dir", type=Path, default=repo.parent / "shared" / "models")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) < 2:
        parser.error("--seeds needs two distinct seeds at least")

    work = args.keep or Path(tempfile.mkdtemp(prefix="drift-noise-"))
    work.mkdir(parents=True, exist_ok=True)
    keras_home(args.models_dir, Path(tempfile.mkdtemp(prefix="drift-noise-keras-")))
    os.environ.setdefault("LIME_SPARK_CATALOG_DIR", str(work / "catalog"))

    from lime_spark.cli import run_explain
    from lime_spark.config import load_config
    from lime_spark.spark.drift import DEFAULT_THRESHOLDS, drift_rows
    from lime_spark.spark.session import build_session

    input_uri = _write_inputs(work / "images", args.images)
    out = work / "out"
    common = {"input": str(input_uri), "output": str(out), "label_names": "imagenet",
              "overlays": False, "metrics": False, "report": False, "log_level": "WARNING"}
    mobilenet = {"model": "mobilenet", "model_args": {"alpha": 0.25,
                                                      "input_shape": [128, 128, 3]}}
    spark = build_session(app_name="measure-drift-noise", master=args.master,
                          conf={"spark.ui.showConsoleProgress": "false"})
    try:
        started = time.perf_counter()

        def done(run_id: str) -> bool:       # --keep: a run of an earlier invocation
            return bool(args.keep) and (out / "runs" / f"run_id={run_id}" /
                                        "summary.json").exists()

        for seed in args.seeds:
            run_id = f"seed{seed}"
            if done(run_id):
                continue
            t0 = time.perf_counter()
            summary = run_explain(load_config(overrides={**common, **mobilenet,
                                                         "run_id": run_id, "seed": seed}),
                                  spark=spark)
            print(f"job {run_id}: {summary['images']['ok']} ok images in "
                  f"{time.perf_counter() - t0:.0f}s ({summary['model']['runtime']['used']})",
                  flush=True)
        base = f"seed{args.seeds[0]}"
        controls = [] if args.no_control else list(CONTROLS)
        for name in controls:
            if done(name):
                continue
            model = CONTROLS[name](work / f"{name}.keras")
            t0 = time.perf_counter()
            run_explain(load_config(overrides={**common, "model": str(model),
                                               "preprocess": "mobilenet", "run_id": name,
                                               "seed": args.seeds[0]}), spark=spark)
            print(f"job {name}: {time.perf_counter() - t0:.0f}s", flush=True)

        results = {}
        for a, b in itertools.combinations(args.seeds, 2):
            results[f"seed{b} vs seed{a}"] = drift_rows(spark, str(out), f"seed{b}",
                                                        f"seed{a}").toPandas()
        noise = list(results)
        for name in controls:
            results[f"{name} vs {base}"] = drift_rows(spark, str(out), name, base).toPandas()
        elapsed = time.perf_counter() - started
    finally:
        spark.stop()

    import pandas as pd

    print(f"\n{args.images} photos {SIZE[0]}x{SIZE[1]}, MobileNet v1 0.25 @128, job defaults "
          f"(slic, 50 superpixels, n_samples auto, top 5 labels), seeds {args.seeds}, "
          f"master {args.master}; {elapsed:.0f}s")
    figures = {"images": args.images, "seeds": args.seeds,
               "default_thresholds": DEFAULT_THRESHOLDS, "comparisons": {}}
    for name, rows in results.items():
        figures["comparisons"][name] = _describe(name, rows)
    pooled = pd.concat([results[n].assign(image_id=results[n].image_id + "|" + n)
                        for n in noise])
    figures["comparisons"]["noise, pooled"] = _describe("noise, all seed pairs pooled", pooled)
    figures["flagged"] = _flag_table({"noise (pooled)": pooled, **results}, controls)
    figures["controls"] = {name: _control_summary(f"{name} vs {base}",
                                                  results[f"{name} vs {base}"])
                           for name in controls}
    print(f"\ndefault thresholds {DEFAULT_THRESHOLDS}:")
    defaults = {}
    for name, rows in {"noise (pooled)": pooled, **results}.items():
        flag = _flags(rows, DEFAULT_THRESHOLDS["rank_correlation"],
                      DEFAULT_THRESHOLDS["top5_jaccard"], DEFAULT_THRESHOLDS["min_stability"])
        defaults[name] = {"images": _image_share(rows, flag), "rows": float(flag.mean()),
                          "images_flagged": int(rows.assign(f=flag).groupby("image_id").f.any()
                                                .sum()),
                          "of_images": int(rows.image_id.nunique())}
        print(f"  {name}: {defaults[name]['images_flagged']} of {defaults[name]['of_images']} "
              f"images ({100 * defaults[name]['images']:.1f}%), {int(flag.sum())} of "
              f"{len(flag)} rows flagged")
    figures["defaults"] = defaults
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    if defaults["noise (pooled)"]["images"] > args.max_flagged:
        print(f"FAIL: the default thresholds flag more than {100 * args.max_flagged:g}% of the "
              "same-model image comparisons")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
