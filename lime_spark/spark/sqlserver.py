"""``lime-spark sql-server``: the Spark Thrift JDBC/ODBC server over the catalog.

Starts ``org.apache.spark.sql.hive.thriftserver.HiveThriftServer2`` (bundled
with pyspark) inside a session built by
:func:`lime_spark.spark.session.build_session`, so the server has exactly the
job's settings: the project's catalog (:mod:`lime_spark.spark.catalog`), the
S3A settings, ``conf/spark-local.conf``.  It listens on 127.0.0.1 only, refreshes
the partitions of every lime-spark table at start, leaves its port in
``<catalog>/sql-server.json`` (jobs register their tables through it while it
holds the metastore) and runs in the foreground until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from ..exceptions import ConfigurationError, LimeSparkError

__all__ = ["add_arguments", "run", "jdbc_url", "beeline_path"]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
_START_TIMEOUT = 120.0


def jdbc_url(port: int, database: str = "default") -> str:
    """The JDBC URL of a server on ``port``."""
    return f"jdbc:hive2://{HOST}:{port}/{database}"


def beeline_path() -> str:
    """The beeline script bundled with pyspark."""
    import pyspark

    return os.path.join(os.path.dirname(pyspark.__file__), "bin", "beeline")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lime-spark sql-server``."""
    parser.add_argument("--port", type=int, default=10000,
                        help="TCP port on 127.0.0.1 (default: 10000)")
    parser.add_argument("--master", help="Spark master running the queries (default: local[*])")
    parser.add_argument("--conf", dest="spark_conf", metavar="KEY=VALUE", action="append",
                        default=[], help="a Spark setting, as for explain "
                                         "(e.g. --conf spark.hadoop.fs.s3a.endpoint=...)")
    parser.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="level of lime-spark's own loggers (default: INFO)")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 after Ctrl-C/SIGTERM."""
    from ..cli import configure_logging, parse_assignment_raw
    from .catalog import (
        catalog_dir,
        is_metastore_locked,
        metastore_dir,
        repair_tables,
        server_info_path,
    )
    from .session import build_session

    configure_logging(args.log_level)
    port = _check_port(args.port)
    conf = {
        "spark.hadoop.hive.server2.thrift.bind.host": HOST,
        "spark.hadoop.hive.server2.thrift.port": str(port),
        "spark.hadoop.hive.server2.transport.mode": "binary",
        **dict(parse_assignment_raw(item) for item in args.spark_conf),
    }
    folder = catalog_dir()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    spark = build_session(app_name="lime-spark sql-server", master=args.master, conf=conf)
    stop = _StopSignal()
    info_path = None
    server = None
    try:
        impl = spark.conf.get("spark.sql.catalogImplementation", "in-memory")
        if impl != "hive":
            raise ConfigurationError(
                "Expected the Hive catalog for the SQL server. Received: "
                f"spark.sql.catalogImplementation={impl}")
        metastore = metastore_dir(spark)
        if metastore is not None:
            spark.sparkContext._jvm.java.lang.System.setProperty(
                "derby.system.home", str(metastore))
        try:
            refreshed = repair_tables(spark)
        except Exception as exc:  # noqa: BLE001 - a metastore another process holds
            if is_metastore_locked(exc):
                raise LimeSparkError(
                    f"The catalog in {metastore} is open in another process (embedded Derby "
                    "allows one); stop it and start the server again.") from exc
            raise
        logger.info("refreshed partitions of %d table(s): %s", len(refreshed),
                    ", ".join(refreshed) or "none")
        jvm = spark.sparkContext._jvm
        server = jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithContext(
            spark._jsparkSession.sqlContext())
        _wait_for_port(port, _START_TIMEOUT)
        if metastore is not None:
            info_path = server_info_path(metastore)
            info_path.write_text(json.dumps({"port": port, "pid": os.getpid(),
                                             "url": jdbc_url(port)}), encoding="utf-8")
        databases = [row[0] for row in spark.sql("SHOW DATABASES").collect()]
        sys.stdout.write(
            f"lime-spark sql-server: {jdbc_url(port)}\n"
            f"  catalog: {metastore or 'the session catalog'}; databases: {', '.join(databases)}\n"
            f"  {beeline_path()} -u {jdbc_url(port, databases[-1])} -n $USER\n"
            "  Ctrl-C stops the server.\n")
        sys.stdout.flush()
        stop.wait(lambda: spark.sparkContext._jsc.sc().isStopped())
        logger.info("stopping the SQL server")
        return 0
    finally:
        stop.restore()
        if info_path is not None:
            _remove_own_info(info_path)
        if server is not None:
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - JVM already gone
                logger.debug("server.stop failed", exc_info=True)
        spark.stop()


def _check_port(port: Any) -> int:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigurationError(f"Expected --port between 1 and 65535. Received: --port {port!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise ConfigurationError(
                f"Expected a free port on {HOST}. Received: --port {port} ({exc.strerror})"
            ) from exc
    return port


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise LimeSparkError(
                    f"The Thrift server did not listen on {HOST}:{port} within {timeout:.0f}s; "
                    "see the Spark log above.") from None
            time.sleep(0.2)


def _remove_own_info(path: Any) -> None:
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


class _StopSignal:
    """Turns SIGTERM into a clean stop; Ctrl-C (SIGINT) does the same."""

    def __init__(self) -> None:
        self._stopped = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self._stopped = True

    def wait(self, dead: Any) -> None:
        checks = 0
        try:
            while not self._stopped:
                time.sleep(0.5)
                checks += 1
                if checks % 20 == 0 and _safe(dead):
                    raise LimeSparkError("the Spark session stopped; the SQL server is down")
        except KeyboardInterrupt:
            pass

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)


def _safe(dead: Any) -> bool:
    try:
        return bool(dead())
    except Exception:  # noqa: BLE001 - the JVM is gone
        return True
