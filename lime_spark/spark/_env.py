"""Where a run's Spark settings come from: the driver's environment and the conf folder.

The bottom of ``lime_spark.spark``: :mod:`~lime_spark.spark.session`,
:mod:`~lime_spark.spark.s3`, :mod:`~lime_spark.spark.catalog` and the
command line all read these, and this module imports none of them (nor
pyspark), so none of them has to import another to ask.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..exceptions import LimeSparkError

__all__ = ["conf_dir", "read_spark_conf", "is_spark_submit", "parse_assignment_raw"]


def conf_dir() -> Path:
    """The folder with ``spark-local.conf`` and ``default.yaml`` (``$LIME_SPARK_CONF_DIR``
    or the repository's ``conf/``)."""
    env = os.environ.get("LIME_SPARK_CONF_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "conf"


def read_spark_conf(path: Path) -> dict[str, str]:
    """Parse a ``spark-defaults.conf``-style file: ``key value`` lines, ``#`` comments."""
    settings = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        settings[key.strip()] = value.strip()
    return settings


def parse_assignment_raw(text: str) -> tuple[str, str]:
    """``key=value`` for Spark settings (``--conf``), value kept as text."""
    if "=" not in text:
        raise LimeSparkError(f"Expected --conf KEY=VALUE. Received: {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def is_spark_submit() -> bool:
    """Whether this driver was started by spark-submit (the JVM gateway exists already)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ
