"""The ``lime-spark`` console script and the spark-submit entry point's parser.

``lime-spark explain`` builds its own SparkSession (``local[*]`` unless
``--master``/``--conf spark.master=...``), so it works without spark-submit;
``spark-submit jobs/explain_images.py`` takes the same options.  ``lime-spark
compare`` (the drift table of a run against a baseline run) builds one the same way.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import MISSING, fields
from typing import Any

from ._logging import configure_logging
from .config import JobConfig, load_config
from .exceptions import LimeSparkError
from .spark._env import parse_assignment_raw

__all__ = ["main", "build_parser", "config_from_args", "run_explain", "run_compare",
           "print_drift"]

logger = logging.getLogger("lime_spark.cli")

_RAW_STRING_TYPES = {"str", "str | None"}


def _convert(field_type: str, text: str) -> Any:
    import yaml

    if field_type in _RAW_STRING_TYPES:
        if field_type == "str | None" and text.lower() in ("null", "none", "~"):
            return None
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def add_job_options(parser: argparse.ArgumentParser) -> None:
    """Add one ``--option`` per JobConfig field, plus --config and --set."""
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="options file (see conf/default.yaml); the options below override it")
    parser.add_argument("--set", dest="assignments", metavar="KEY=VALUE", action="append",
                        default=[], help="set any option, e.g. --set model_args.alpha=0.25")
    group = parser.add_argument_group("job options (defaults in conf/default.yaml)")
    for f in fields(JobConfig):
        default = f.default if f.default is not MISSING else f.default_factory()
        flags = ["--" + name.replace("_", "-") for name in (f.name, *f.metadata["aliases"])]
        extra = " (required)" if f.metadata.get("required") else f" (default: {default!r})"
        group.add_argument(*flags, dest=f.name, metavar=f.name.upper(), default=None,
                           help=f.metadata["help"] + extra)


def config_from_args(args: argparse.Namespace) -> JobConfig:
    """Resolve the JobConfig from a parsed command line."""
    explicit = {}
    for f in fields(JobConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            explicit[f.name] = _convert(str(f.type), value)
    return load_config(config_file=args.config, assignments=args.assignments,
                       overrides=explicit).resolved()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lime-spark", description="Explain Keras image classifiers with LIME on Spark.")
    sub = parser.add_subparsers(dest="command", required=True)
    explain = sub.add_parser(
        "explain", help="explain a Parquet list of images (the batch job)",
        description="Explain every image of a Parquet list with LIME and write the images, "
                    "explanations and features tables, overlay PNGs and a run summary.")
    add_job_options(explain)
    explain.add_argument("--master", help="Spark master (default: local[*] outside spark-submit)")
    explain.add_argument("--conf", dest="spark_conf", metavar="KEY=VALUE", action="append",
                         default=[], help="a Spark setting, e.g. --conf spark.executor.memory=8g")

    from . import report
    from .spark import sqlserver

    sql = sub.add_parser(
        "sql-server", help="serve the registered tables over JDBC (Spark Thrift server)",
        description="Start the Spark Thrift JDBC/ODBC server on 127.0.0.1 over lime-spark's "
                    "catalog, so beeline, DBeaver, Tableau or any JDBC client can query.")
    sqlserver.add_arguments(sql)
    rep = sub.add_parser(
        "report", help="write the static HTML audit report of a run",
        description="Write ROOT/report/run_id=R/index.html for a finished run.")
    report.add_arguments(rep)
    compare = sub.add_parser(
        "compare", help="compare a run with a baseline run: the drift table",
        description="Compare the explanations of run B (--run-id) with those of run A "
                    "(--baseline) under one output root, image by image and label by label; "
                    "write ROOT/drift/run_id=B/ and add the counts to B's summary.json "
                    "(docs/drift.md).")
    add_compare_arguments(compare)
    return parser


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lime-spark compare``."""
    from .spark.drift import DEFAULT_THRESHOLDS

    parser.add_argument("--output", required=True, help="the output root of both runs (any URI)")
    parser.add_argument("--run-id", required=True, help="run B, the run compared")
    parser.add_argument("--baseline", required=True, help="run A, the baseline")
    parser.add_argument("--rank-threshold", type=float, default=None, metavar="X",
                        help="a stable row drifts when its rank_correlation is below X and "
                             "its top5_jaccard below Y "
                             f"(default: {DEFAULT_THRESHOLDS['rank_correlation']})")
    parser.add_argument("--jaccard-threshold", type=float, default=None, metavar="Y",
                        help="see --rank-threshold (default: "
                             f"{DEFAULT_THRESHOLDS['top5_jaccard']}: at most one superpixel of "
                             "the top 5 in common)")
    parser.add_argument("--min-stability", type=float, default=None, metavar="S",
                        help="judge rank_correlation and top5_jaccard only where the label's "
                             "explanation has stability >= S in both runs (default: "
                             f"{DEFAULT_THRESHOLDS['min_stability']}; 0: every row)")
    parser.add_argument("--master", help="Spark master (default: local[*])")
    parser.add_argument("--conf", dest="spark_conf", metavar="KEY=VALUE", action="append",
                        default=[], help="a Spark setting, as for explain")
    parser.add_argument("--log-level", default="WARNING", type=str.upper,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="level of lime-spark's own loggers (default: WARNING)")


def print_config(config: JobConfig, stream: Any = None) -> None:
    """Print the resolved configuration as YAML, secrets masked (``storage.redact_value``)."""
    import yaml

    from .storage import redact_value

    stream = stream or sys.stdout
    stream.write("# lime-spark resolved configuration\n")
    stream.write(yaml.safe_dump(redact_value(config.to_dict()), sort_keys=False,
                                default_flow_style=False))
    stream.flush()


def print_summary(summary: dict[str, Any], stream: Any = None) -> None:
    stream = stream or sys.stdout
    imgs, t = summary["images"], summary["timings"]
    stream.write(
        f"\nrun {summary['run_id']}: {imgs['rows']} images, {imgs['ok']} ok, {imgs['error']} error"
        + (f" {imgs['errors_by_class']}" if imgs["errors_by_class"] else "")
        + f"; {t['total_seconds']:.1f}s total, {t['images_per_second'] or 0:.2f} images/s; "
        f"model loaded {summary['workers']['model_loads']}x in "
        f"{summary['workers']['python_workers']} Python worker(s)"
        + (f"; model busy {100 * t['model_busy_fraction']:.0f}% of worker time"
           if t.get("model_busy_fraction") is not None else "") + "\n"
        f"results under {summary['output']}: images/ explanations/ features/ overlays/ "
        f"runs/run_id={summary['run_id']}/summary.json\n"
        + (f"report: {summary['report']}\n" if summary.get("report") else ""))
    stream.flush()


def run_explain(config: JobConfig, *, master: str | None = None,
                spark_conf: Sequence[str] = (), spark: Any = None) -> dict[str, Any]:
    """Start (or reuse) a session, run the job, stop the session we started."""
    from .preflight import preflight
    from .spark.job import run_job
    from .spark.s3 import check_s3a_available
    from .spark.session import build_session

    conf = dict(parse_assignment_raw(item) for item in spark_conf)
    own = spark is None
    if own:
        # everything that needs no Spark fails here, in about a second (run_job repeats
        # preflight for callers that bring their own session; it is a few file checks)
        check_s3a_available([config.input, config.output], conf, master=master)
        preflight(config)
        spark = build_session(app_name=f"lime-spark {config.run_id}", master=master, conf=conf)
    try:
        return run_job(spark, config)
    finally:
        if own:
            spark.stop()


def run_compare(args: argparse.Namespace, *, spark: Any = None) -> dict[str, Any]:
    """``lime-spark compare``: check the arguments, start (or reuse) a session, compare."""
    from .spark.drift import check_runs, check_thresholds, compare_runs
    from .spark.s3 import check_s3a_available
    from .spark.session import build_session

    thresholds = check_thresholds({"rank_correlation": args.rank_threshold,
                                   "top5_jaccard": args.jaccard_threshold,
                                   "min_stability": args.min_stability})
    check_runs(args.output, args.run_id, args.baseline)      # before Spark starts
    conf = dict(parse_assignment_raw(item) for item in args.spark_conf)
    own = spark is None
    if own:
        check_s3a_available([args.output], conf, master=args.master)
        spark = build_session(app_name=f"lime-spark compare {args.run_id}", master=args.master,
                              conf=conf)
    try:
        return compare_runs(spark, args.output, args.run_id, args.baseline,
                            thresholds=thresholds)
    finally:
        if own:
            spark.stop()


def print_drift(summary: dict[str, Any], stream: Any = None) -> None:
    """One line of counts, then where the drift table lies."""
    stream = stream or sys.stdout
    t = summary["thresholds"]
    stream.write(
        f"run {summary['run_id']} against {summary['baseline']}: {summary['images']} images "
        f"compared ({summary['only_in_a']} only in {summary['baseline']}, "
        f"{summary['only_in_b']} only in {summary['run_id']}); {summary['drifted_images']} "
        f"drifted, top label changed in {summary['top_label_changed']}; "
        f"{summary['drifted_rows']} of {summary['rows']} rows drifted (top label changed, or "
        f"rank_correlation < {t['rank_correlation']:g} and top5_jaccard < "
        f"{t['top5_jaccard']:g} where stability >= {t['min_stability']:g} in both runs)\n"
        f"drift table: {summary['table']}/ (summary.json: drift)\n")
    stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "explain":
            config = config_from_args(args)
            configure_logging(config.log_level)
            print_config(config)
            summary = run_explain(config, master=args.master, spark_conf=args.spark_conf)
            print_summary(summary)
            return 0
        if args.command == "sql-server":
            from .spark import sqlserver

            configure_logging(args.log_level)
            return sqlserver.run(args)
        if args.command == "report":
            from . import report

            return report.run(args)
        if args.command == "compare":
            configure_logging(args.log_level)
            print_drift(run_compare(args))
            return 0
    except LimeSparkError as exc:
        from .storage import redact

        print(f"lime-spark: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
