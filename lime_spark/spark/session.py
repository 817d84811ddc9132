"""SparkSession defaults for lime-spark runs.

Without a master (plain ``python``/``lime-spark explain``, not spark-submit)
the session runs ``local[*]`` with ``PYSPARK_PYTHON`` set to the running
interpreter and the settings of ``conf/spark-local.conf``.  Under
spark-submit the submitted master and settings win.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from ._env import conf_dir, is_spark_submit, read_spark_conf
from .catalog import catalog_settings
from .s3 import s3a_settings

__all__ = ["conf_dir", "read_spark_conf", "build_session", "is_spark_submit"]

logger = logging.getLogger(__name__)


def build_session(*, app_name: str = "lime-spark", master: str | None = None,
                  conf: Mapping[str, str] | None = None):
    """Get or create the SparkSession for a run.

    Parameters
    ----------
    app_name : str
    master : str, optional
        e.g. ``local[2]`` or ``local-cluster[2,1,1024]``; without it and outside
        spark-submit, ``local[*]``.
    conf : mapping, optional
        Spark settings; they override ``conf/spark-local.conf``.
    """
    from pyspark.sql import SparkSession

    conf = dict(conf or {})
    master = master or conf.pop("spark.master", None)
    settings: dict[str, str] = {}
    local = master is None and not is_spark_submit() or (master or "").startswith("local")
    if master is None and not is_spark_submit():
        master = "local[*]"
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        path = conf_dir() / "spark-local.conf"
        if path.exists():
            settings.update(read_spark_conf(path))
        else:
            logger.warning("%s not found; using Spark's own defaults", path)
    settings.update(s3a_settings(master=master))
    settings.update(catalog_settings())
    for key, sep in (("spark.driver.extraClassPath", ":"), ("spark.executor.extraClassPath", ":"),
                     ("spark.jars", ",")):
        if key in conf and settings.get(key):     # the user's entries come in addition to ours
            conf[key] = f"{conf[key]}{sep}{settings[key]}"
    settings.update(conf)
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
