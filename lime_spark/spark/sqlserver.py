"""``lime-spark sql-server``: the Spark Thrift JDBC/ODBC server over the catalog.

Starts ``org.apache.spark.sql.hive.thriftserver.HiveThriftServer2`` (bundled
with pyspark) inside a session built by
:func:`lime_spark.spark.session.build_session`, so the server has exactly the
job's settings: the project's catalog (:mod:`lime_spark.spark.catalog`), the
S3A settings, ``conf/spark-local.conf``.  It refreshes the partitions of every
lime-spark table at start, leaves its address in ``<catalog>/sql-server.json``
(jobs register their tables through it while it holds the metastore) and runs
in the foreground until Ctrl-C or SIGTERM.

The Thrift server has no authentication of its own (``hive.server2.authentication``
is ``NONE``): whoever reaches its port can read every table and run SQL as
this user.  So it listens on 127.0.0.1 by default, and :func:`check_bind`
refuses any other address (``--bind``) unless an authentication mode is
configured (``--conf spark.hadoop.hive.server2.authentication=LDAP|KERBEROS|
PAM|CUSTOM`` with its settings) or ``--insecure-bind`` is given.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any

from ..exceptions import ConfigurationError, LimeSparkError
from ..storage import redact
from ._env import parse_assignment_raw

__all__ = ["add_arguments", "run", "jdbc_url", "beeline_path", "check_bind", "is_loopback"]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
_START_TIMEOUT = 120.0
_BIND_KEYS = ("spark.hadoop.hive.server2.thrift.bind.host", "hive.server2.thrift.bind.host")
_AUTH_KEYS = ("spark.hadoop.hive.server2.authentication", "hive.server2.authentication")
_BIND_ENV = "HIVE_SERVER2_THRIFT_BIND_HOST"     # HiveServer2 prefers it to its settings
_NO_AUTHENTICATION = ("NONE", "NOSASL")


def jdbc_url(port: int, database: str = "default", host: str = HOST) -> str:
    """The JDBC URL of a server on ``port`` (reached at ``host``)."""
    if ":" in host:
        host = f"[{host}]"
    return f"jdbc:hive2://{host}:{port}/{database}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address: 127.0.0.0/8, ``::1`` or ``localhost``.

    Host names other than ``localhost`` are not resolved and count as not loopback.
    """
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, conf: Mapping[str, str], *, insecure: bool = False) -> str:
    """Return ``host`` if the server may listen there, else raise ConfigurationError.

    A loopback address is always allowed.  Any other address (``0.0.0.0``, a
    LAN address, a host name) needs an authentication mode in ``conf``
    (``hive.server2.authentication`` other than ``NONE``/``NOSASL``, with or
    without the ``spark.hadoop.`` prefix) or ``insecure=True`` (``--insecure-bind``;
    a warning is logged).

    Parameters
    ----------
    host : str
        The address to listen on.
    conf : mapping of str to str
        The ``--conf`` settings of the server.
    insecure : bool
        Accept a non-loopback address without authentication.
    """
    if not isinstance(host, str) or not host.strip():
        raise ConfigurationError(f"Expected --bind to be an address. Received: --bind {host!r}")
    host = host.strip()
    if is_loopback(host):
        return host
    auth = next((conf[key] for key in _AUTH_KEYS if key in conf), "NONE").strip().upper()
    if auth not in _NO_AUTHENTICATION:
        logger.info("sql-server on %s with hive.server2.authentication=%s", host, auth)
        return host
    if insecure:
        logger.warning(
            "INSECURE: the SQL server listens on %s WITHOUT AUTHENTICATION (--insecure-bind): "
            "anyone who can reach this port can read every table and run SQL as this user, "
            "including reading files this user can read. Use it on a trusted network only.",
            host)
        return host
    raise ConfigurationError(
        "Expected --bind to be a loopback address (127.0.0.1, ::1, localhost) for a server "
        f"without authentication. Received: --bind {host} with hive.server2.authentication="
        f"{auth}. Anyone who can reach that address could read every table and run SQL as "
        "you. Reach the server through an SSH tunnel (ssh -L 10000:127.0.0.1:10000 HOST), "
        "configure authentication (--conf spark.hadoop.hive.server2.authentication=LDAP, "
        "KERBEROS, PAM or CUSTOM, with its settings), or pass --insecure-bind to accept the risk.")


def _requested_host(bind: str, conf: Mapping[str, str]) -> str:
    """The address HiveServer2 will listen on: ``--bind``, unless --conf or the environment say
    otherwise (a contradiction is an error)."""
    host = next((conf[key] for key in _BIND_KEYS if key in conf), None) or bind
    env = os.environ.get(_BIND_ENV, "").strip()
    if env and env != host:
        raise ConfigurationError(
            f"Expected the environment variable {_BIND_ENV} to be unset or {host!r} "
            f"(the server's --bind address). Received: {_BIND_ENV}={env!r}, which HiveServer2 "
            "would listen on instead. Unset it and pass --bind.")
    return host


def _connect_host(host: str) -> str:
    """Where clients on this machine reach a server listening on ``host``."""
    name = host.strip("[]")
    if name in ("0.0.0.0", "") or name == "::":
        return HOST
    return name


def beeline_path() -> str:
    """The beeline script bundled with pyspark."""
    import pyspark

    return os.path.join(os.path.dirname(pyspark.__file__), "bin", "beeline")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lime-spark sql-server``."""
    parser.add_argument("--port", type=int, default=10000,
                        help="TCP port (default: 10000)")
    parser.add_argument("--bind", default=HOST, metavar="HOST",
                        help=f"address to listen on (default: {HOST}, this machine only). The "
                             "server has no authentication: another address needs --conf "
                             "spark.hadoop.hive.server2.authentication=LDAP|KERBEROS|PAM|CUSTOM "
                             "(with its settings) or --insecure-bind")
    parser.add_argument("--insecure-bind", action="store_true",
                        help="allow --bind on a non-loopback address without authentication: "
                             "anyone reaching the port can read every table and run SQL")
    parser.add_argument("--master", help="Spark master running the queries (default: local[*])")
    parser.add_argument("--conf", dest="spark_conf", metavar="KEY=VALUE", action="append",
                        default=[], help="a Spark setting, as for explain "
                                         "(e.g. --conf spark.hadoop.fs.s3a.endpoint=...)")
    parser.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="level of lime-spark's own loggers (default: INFO)")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 after Ctrl-C/SIGTERM.

    Logging is the entry point's to configure (``lime-spark sql-server`` does,
    at ``--log-level``).
    """
    from .catalog import (
        catalog_dir,
        is_metastore_locked,
        metastore_dir,
        repair_tables,
        server_info_path,
    )
    from .session import build_session

    user_conf = dict(parse_assignment_raw(item) for item in args.spark_conf)
    bind = check_bind(_requested_host(getattr(args, "bind", HOST), user_conf), user_conf,
                      insecure=getattr(args, "insecure_bind", False))
    host = _connect_host(bind)
    port = _check_port(args.port, bind)
    conf = {
        "spark.hadoop.hive.server2.transport.mode": "binary",
        **user_conf,
        "spark.hadoop.hive.server2.thrift.bind.host": bind,
        "spark.hadoop.hive.server2.thrift.port": str(port),
    }
    conf.pop("hive.server2.thrift.bind.host", None)
    conf.pop("hive.server2.thrift.port", None)
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
        _wait_for_port(host, port, _START_TIMEOUT)
        if metastore is not None:
            info_path = server_info_path(metastore)
            info_path.write_text(json.dumps({"port": port, "host": host, "bind": bind,
                                             "pid": os.getpid(),
                                             "url": jdbc_url(port, host=host)}), encoding="utf-8")
        databases = [row[0] for row in spark.sql("SHOW DATABASES").collect()]
        exposed = "" if is_loopback(bind) else (
            f"  listening on {bind}: reachable from other machines"
            + ("" if _authenticated(user_conf) else " WITHOUT AUTHENTICATION") + "\n")
        sys.stdout.write(redact(
            f"lime-spark sql-server: {jdbc_url(port, host=host)}\n{exposed}"
            f"  catalog: {metastore or 'the session catalog'}; databases: {', '.join(databases)}\n"
            f"  {beeline_path()} -u {jdbc_url(port, databases[-1], host=host)} -n $USER\n"
            "  Ctrl-C stops the server.\n"))
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


def _authenticated(conf: Mapping[str, str]) -> bool:
    auth = next((conf[key] for key in _AUTH_KEYS if key in conf), "NONE")
    return auth.strip().upper() not in _NO_AUTHENTICATION


def _check_port(port: Any, host: str = HOST) -> int:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigurationError(f"Expected --port between 1 and 65535. Received: --port {port!r}")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigurationError(
            f"Expected --bind to be an address of this machine. Received: --bind {host} "
            f"({exc.strerror})") from exc
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(address)
        except OSError as exc:
            raise ConfigurationError(
                f"Expected a free port on {host}. Received: --port {port} ({exc.strerror}); "
                "pick another --port, or --bind an address of this machine") from exc
    return port


def _wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise LimeSparkError(
                    f"The Thrift server did not listen on {host}:{port} within {timeout:.0f}s; "
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
