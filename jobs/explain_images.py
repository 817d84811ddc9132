"""spark-submit entry point: explain a Parquet list of images with LIME.

    spark-submit jobs/explain_images.py --input URI --output URI --model PATH_OR_NAME [...]

Takes the options of ``lime-spark explain`` (see ``--help``); the master and
Spark settings come from spark-submit.
"""

import sys

from lime_spark.cli import build_parser, config_from_args, configure_logging, print_config, \
    print_summary, run_explain
from lime_spark.exceptions import LimeSparkError


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(["explain", *(sys.argv[1:] if argv is None else argv)])
    try:
        config = config_from_args(args)                  # extract the settings
        configure_logging(config.log_level)
        print_config(config)
        summary = run_explain(config, master=args.master, spark_conf=args.spark_conf)
        print_summary(summary)                           # transform + load happen in run_job
        return 0
    except LimeSparkError as exc:
        print(f"lime-spark: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
