"""Benchmark: the second night of an audit, which reuses the first night's rows.

Night 1 explains N photos (640x480 JPEGs, the real MobileNet, the product's
defaults: ``n_samples=auto``, overlays and metrics on, ``--runtime auto``) on
local[2]; night 2 lists the same N photos plus ``--new`` new ones under the same
output root with ``--reuse auto`` (the default).  Night 2 must explain exactly
the new photos and copy the other rows, identical to night 1's; the figures are
night 2's whole job time (hashing the contents, planning, copying rows and
overlays, explaining the new photos, writing the tables) against night 1's,
and against night 1's explain stage.  A warm-up job on other photos (its own
output root) runs first, so both nights find the Python workers and the
model ready.  ``--changed-options`` adds a night 3 with another sample budget,
which must reuse nothing.

Usage: .venv/bin/python scripts/bench_nightly.py [--images 40] [--new 5]
       [--changed-options] [--models-dir ../shared/models]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _bench import keras_home
from bench_spark import _make_images

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _rows(root: Path, name: str, run_id: str):
    import pyarrow.parquet as pq

    keys = {"images": ["image_id"], "explanations": ["image_id", "label"],
            "features": ["image_id", "label", "feature"]}[name]
    frame = pq.read_table(root / name / f"run_id={run_id}").to_pandas()
    frame = frame.drop(columns=[c for c in ("seconds", "reused_from") if c in frame])
    if "overlay_uri" in frame:
        frame["overlay_uri"] = frame.overlay_uri.str.replace(f"run_id={run_id}", "run_id=R")
    return frame.sort_values(keys).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40, help="photos of night 1")
    parser.add_argument("--new", type=int, default=5, help="photos night 2 adds")
    parser.add_argument("--changed-options", action="store_true",
                        help="a night 3 with --num-samples 500 (reuses nothing)")
    parser.add_argument("--models-dir", type=Path, default=repo.parent / "shared" / "models")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-nightly-"))
    keras_home(args.models_dir, work / "keras-home")
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _make_images(work / "images", args.images + args.new + 4, (640, 480))
    warm, rows = rows[:4], rows[4:]
    pq.write_table(pa.Table.from_pylist(warm), work / "warm.parquet")
    pq.write_table(pa.Table.from_pylist(rows[:args.images]), work / "night1.parquet")
    pq.write_table(pa.Table.from_pylist(rows), work / "night2.parquet")

    from lime_spark.cli import run_explain
    from lime_spark.config import load_config
    from lime_spark.spark.session import build_session

    common = {"model": "mobilenet", "model_args": {"alpha": 0.25, "input_shape": [128, 128, 3]},
              "label_names": "imagenet", "log_level": "WARNING", "report": False}
    out = work / "out"
    spark = build_session(app_name="bench-nightly", master="local[2]",
                          conf={"spark.ui.enabled": "false",
                                "spark.ui.showConsoleProgress": "false"})
    try:
        run_explain(load_config(overrides={**common, "input": str(work / "warm.parquet"),
                                           "output": str(work / "warm-out"),
                                           "run_id": "warm"}), spark=spark)

        def night(name: str, run_id: str, **options) -> dict:
            cfg = load_config(overrides={**common, "input": str(work / name),
                                         "output": str(out), "run_id": run_id, **options})
            return run_explain(cfg, spark=spark)

        one = night("night1.parquet", "night1")
        two = night("night2.parquet", "night2")
        three = night("night2.parquet", "night3", n_samples=500) if args.changed_options \
            else None
    finally:
        spark.stop()

    assert one["images"]["explained"] == args.images, one["images"]
    assert (two["images"]["explained"], two["images"]["reused"]) == (args.new,
                                                        args.images), two["images"]
    old = {name: _rows(out, name, "night1") for name in ("images", "explanations", "features")}
    new = {name: _rows(out, name, "night2") for name in ("images", "explanations", "features")}
    kept = set(old["images"].image_id)
    for name in old:
        reused = new[name][new[name].image_id.isin(kept)].reset_index(drop=True)
        assert reused.equals(old[name]), f"night 2's reused {name} rows differ from night 1's"
    print(f"night 1: {args.images} photos explained; night 2: {two['images']['reused']} reused "
          f"(rows identical to night 1's), {two['images']['explained']} explained")

    t1, t2 = one["timings"], two["timings"]
    print(f"{'seconds':32s}{'night 1':>10s}{'night 2':>10s}{'ratio':>8s}")
    for label, key in (("whole job", "total_seconds"),
                       ("  model load (driver)", "driver_model_load_seconds"),
                       ("  plan (hash, match, copy)", "plan_seconds"),
                       ("  explain stage", "explain_seconds"),
                       ("  tables written, published", "write_seconds")):
        a, b = t1.get(key) or 0.0, t2.get(key) or 0.0
        print(f"{label:32s}{a:10.1f}{b:10.1f}{b / a if a else float('nan'):8.2f}")
    print(f"night 2's whole job / night 1's explain stage: "
          f"{t2['total_seconds'] / t1['explain_seconds']:.2f}; night 2's explain stage / "
          f"night 1's: {t2['explain_seconds'] / t1['explain_seconds']:.2f}")
    if three is not None:
        assert three["images"]["reused"] == 0, three["images"]
        print(f"night 3 (--num-samples 500): {three['images']['explained']} explained, "
              f"0 reused, {three['timings']['total_seconds']:.1f} s")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
