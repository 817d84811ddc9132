"""The Spark catalog (a Hive metastore) where the output tables are registered.

Local sessions keep the project's catalog in one folder,
``$LIME_SPARK_CATALOG_DIR`` (default ``~/.lime-spark/catalog``), never in the
current directory::

    metastore_db/      the Hive metastore (embedded Derby database)
    warehouse/         spark.sql.warehouse.dir (a folder per database; the tables are external)
    derby.log          Derby's log (derby.system.home)
    sql-server.json    while ``lime-spark sql-server`` runs: its port and JDBC URL

:func:`catalog_settings` gives the Spark settings for that folder;
:func:`lime_spark.spark.session.build_session` merges them into every session.
Under spark-submit they apply only when ``LIME_SPARK_CATALOG_DIR`` is set, so a
cluster's own metastore (``hive-site.xml``, ``spark.sql.catalogImplementation``)
is left alone.  ``--conf`` settings override them (e.g. a shared metastore via
``spark.hadoop.hive.metastore.uris`` or another
``spark.hadoop.javax.jdo.option.ConnectionURL``).

:func:`register_tables` (the job's ``--database NAME``) registers ``images``,
``explanations`` and ``features`` (and the optional tables, ``anchors`` and
``drift``, once a run wrote one under the root) as external Parquet tables
partitioned by ``run_id`` over the output root and discovers new ``run_id`` partitions
(``MSCK REPAIR TABLE ... SYNC PARTITIONS``).  Registering the same root again
is a no-op apart from the partition refresh (and columns a newer lime-spark
added); a table name already registered over another root is an error: the
tables of one database describe one output root.

An embedded Derby metastore can be open in one JVM at a time.  The job
therefore releases it after registering (:func:`release_catalog`), and while
``lime-spark sql-server`` holds it, the job registers through the server's
JDBC endpoint instead.  :func:`check_catalog` tells before a run whether
registering can work.  The Derby handling (finding, releasing and probing the
metastore) is :mod:`lime_spark.spark.metastore`'s.

The DDL is built from the output root and run with Spark's variable
substitution off (``spark.sql.variable.substitute=false``), so a path holding
``${env:HOME}`` or ``${spark.app.name}`` is registered as written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..exceptions import ConfigurationError
from ..storage import exists, join_uri, to_hadoop_uri
from ..tables import ALL_TABLES, TABLES  # TABLES re-exported
from ..tables import table as declared_table
from ._env import is_spark_submit
from .metastore import (  # metastore_dir, release_catalog, is_metastore_locked: re-exported
    _METASTORE_URL,
    _derby_locked,
    _locked_error,
    _metastore_error,
    _prepare_derby,
    is_metastore_locked,
    metastore_dir,
    release_catalog,
)

__all__ = ["TABLES", "CATALOG_DIR_ENV", "catalog_dir", "catalog_settings", "register_tables",
           "repair_tables", "release_catalog", "metastore_dir", "server_info_path",
           "check_database_name", "check_catalog", "is_metastore_locked"]

logger = logging.getLogger(__name__)

CATALOG_DIR_ENV = "LIME_SPARK_CATALOG_DIR"
DEFAULT_CATALOG_DIR = "~/.lime-spark/catalog"

_TABLE_PROPERTY = "lime_spark.table"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_SUBSTITUTE = "spark.sql.variable.substitute"

SqlRunner = Callable[[str], list[tuple[Any, ...]]]
"""Runs one SQL statement, returns its rows (empty for DDL)."""


def catalog_dir() -> Path | None:
    """The project's catalog folder, or None where the session's own catalog applies.

    ``$LIME_SPARK_CATALOG_DIR`` when set; otherwise ``~/.lime-spark/catalog``,
    except under spark-submit (a cluster's metastore configuration wins there).
    """
    env = os.environ.get(CATALOG_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    if is_spark_submit():
        return None
    return Path(DEFAULT_CATALOG_DIR).expanduser().absolute()


def catalog_settings(directory: str | os.PathLike | None = None) -> dict[str, str]:
    """Spark settings for a Hive metastore (embedded Derby) and warehouse in one folder.

    Parameters
    ----------
    directory : path, optional
        The catalog folder; default :func:`catalog_dir`.  Without one, no settings.

    Returns
    -------
    dict
        ``spark.sql.catalogImplementation=hive``, the metastore's JDBC URL
        (``spark.hadoop.javax.jdo.option.ConnectionURL``),
        ``spark.sql.warehouse.dir`` and ``-Dderby.system.home`` for the driver.
    """
    folder = Path(directory).expanduser().absolute() if directory else catalog_dir()
    if folder is None:
        return {}
    return {
        "spark.sql.catalogImplementation": "hive",
        f"spark.hadoop.{_METASTORE_URL}":
            f"jdbc:derby:;databaseName={folder / 'metastore_db'};create=true",
        "spark.sql.warehouse.dir": (folder / "warehouse").as_uri(),
        # derby.log beside the metastore, not in the current directory (local JVMs;
        # register_tables and sql-server also set it at run time)
        "spark.driver.defaultJavaOptions": f'"-Dderby.system.home={folder}"',
    }


def check_database_name(database: str) -> str:
    """Return ``database`` if it is a plain SQL identifier, else raise ConfigurationError."""
    if not isinstance(database, str) or not _IDENTIFIER.fullmatch(database):
        raise ConfigurationError(
            "Expected database to be a SQL identifier (letters, digits and '_', not starting "
            f"with a digit). Received: database={database!r}")
    return database


def server_info_path(folder: str | os.PathLike) -> Path:
    """Where a running ``lime-spark sql-server`` leaves its port for jobs (``sql-server.json``)."""
    return Path(folder) / "sql-server.json"


def check_catalog(spark: Any, database: str) -> None:
    """Fail fast (before a job's work) when ``database`` cannot be registered in this session.

    Checks, in well under a second and without opening the metastore: the
    name; that a running ``lime-spark sql-server`` will take the registration,
    or else that the catalog is persistent (Hive) and, for an embedded Derby
    metastore, that no other process has it open (this session's own hold is
    released first, as after every registration).

    Raises
    ------
    ConfigurationError
        For a database name that is not an identifier, an in-memory catalog or
        a Derby metastore open in another process.
    """
    check_database_name(database)
    if _running_server(spark) is not None:
        return
    _check_persistent_catalog(spark)
    folder = metastore_dir(spark)
    if folder is None:
        return
    release_catalog(spark)
    if _derby_locked(folder / "metastore_db"):
        raise _locked_error(folder)


def register_tables(spark: Any, database: str, root: str) -> list[str]:
    """Register images/explanations/features (anchors, drift) over ``root`` in ``database``.

    External Parquet tables partitioned by ``run_id`` over ``ROOT/<table>``;
    every ``run_id`` folder found becomes a partition (and partitions whose
    folder is gone are dropped).  Idempotent for the same root.  The optional
    tables (:data:`lime_spark.tables.ALL_TABLES` beyond :data:`TABLES`:
    ``anchors``, ``drift``) are registered when their folder exists, with
    their declared columns while it holds no Parquet file.

    Parameters
    ----------
    spark : SparkSession
        The job's session; its catalog must be persistent (Hive).
    database : str
        Created if missing.
    root : str
        The output root, as the job writes it (absolute path or URI).

    Returns
    -------
    list of str
        The qualified table names, e.g. ``["audit.images", ...]``, optional ones last.

    Raises
    ------
    ConfigurationError
        For a database name that is not an identifier, an in-memory catalog, a
        table of that name over another root, or a metastore held by another
        process.
    """
    check_database_name(database)
    optional = [name for name in ALL_TABLES
                if name not in TABLES and exists(join_uri(root, name))]
    locations = {name: to_hadoop_uri(join_uri(root, name)) for name in (*TABLES, *optional)}
    schemas = {name: _data_columns(spark, uri) for name, uri in locations.items()
               if name in TABLES}
    for name in optional:
        try:
            schemas[name] = _data_columns(spark, locations[name])
        except ConfigurationError:           # no Parquet file (yet): the declared columns
            schemas[name] = [(c.name, c.sql_type.lower()) for c in declared_table(name).columns]
    server = _running_server(spark)
    if server is not None:
        logger.info("registering tables in %s through the running sql-server (%s)",
                    database, server)
        with _jdbc_runner(spark, server) as run:
            return _register(run, database, root, locations, schemas)
    _check_persistent_catalog(spark)
    _prepare_derby(spark)
    try:
        return _register(_session_runner(spark), database, root, locations, schemas)
    except Exception as exc:
        error = _metastore_error(spark, exc)
        if error is exc:
            raise
        raise error from exc
    finally:
        release_catalog(spark)


def repair_tables(spark: Any) -> list[str]:
    """Refresh the partitions of every lime-spark table in the session's catalog.

    Returns the qualified names of the tables refreshed.
    """
    run = _session_runner(spark)
    done = []
    for (db, *_) in run("SHOW DATABASES"):
        for row in run(f"SHOW TABLES IN `{db}`"):
            name, temporary = row[1], row[-1]
            if temporary in (True, "true"):
                continue
            props = dict((k, v) for k, v, *_ in run(f"SHOW TBLPROPERTIES `{db}`.`{name}`"))
            if _TABLE_PROPERTY not in props:
                continue
            try:
                run(f"MSCK REPAIR TABLE `{db}`.`{name}` SYNC PARTITIONS")
            except Exception as exc:  # noqa: BLE001 - e.g. a location that is gone
                logger.warning("could not refresh the partitions of %s.%s: %s", db, name,
                               str(exc).splitlines()[0])
                continue
            done.append(f"{db}.{name}")
    return done


# --- registration ------------------------------------------------------------------------------

def _register(run: SqlRunner, database: str, root: str, locations: dict[str, str],
              schemas: dict[str, list[tuple[str, str]]]) -> list[str]:
    run(f"CREATE DATABASE IF NOT EXISTS `{database}` COMMENT {_literal('lime-spark output tables')}")
    existing = {row[1] for row in run(f"SHOW TABLES IN `{database}`")}
    names = []
    for name in locations:
        table = f"`{database}`.`{name}`"
        columns = schemas[name]
        if name in existing:
            current, location = _describe(run, table)
            if _normalize_location(location) != _normalize_location(locations[name]):
                raise ConfigurationError(
                    f"Table {database}.{name} is registered over {location}, not over this run's "
                    f"output {locations[name]}. One database holds the tables of one output root: "
                    f"use another --database, or DROP DATABASE {database} CASCADE (external "
                    "tables: their Parquet files stay) and register again to re-point it.")
            added = [(col, typ) for col, typ in columns if col.lower() not in current]
            if added:
                run(f"ALTER TABLE {table} ADD COLUMNS ({_column_list(added)})")
                logger.info("added columns %s to %s.%s", [c for c, _ in added], database, name)
        else:
            run(f"CREATE TABLE {table} ({_column_list(columns)}, `run_id` STRING) USING parquet "
                f"PARTITIONED BY (`run_id`) LOCATION {_literal(locations[name])} "
                f"COMMENT {_literal(f'lime-spark {name} table; one partition per run_id')} "
                f"TBLPROPERTIES ({_literal(_TABLE_PROPERTY)} = {_literal(name)}, "
                f"'lime_spark.output' = {_literal(root)})")
            logger.info("created table %s.%s over %s", database, name, locations[name])
        run(f"MSCK REPAIR TABLE {table} SYNC PARTITIONS")
        names.append(f"{database}.{name}")
    return names


def _data_columns(spark: Any, uri: str) -> list[tuple[str, str]]:
    """(name, Spark SQL type) of the Parquet files under ``uri``, without ``run_id``."""
    try:
        schema = spark.read.option("mergeSchema", "true").parquet(_glob_escape(uri)).schema
    except Exception as exc:  # noqa: BLE001 - AnalysisException: no files yet
        raise ConfigurationError(
            f"Expected Parquet files under {uri} to register. Received: "
            f"{str(exc).splitlines()[0]}") from exc
    return [(f.name, f.dataType.simpleString()) for f in schema.fields if f.name != "run_id"]


def _glob_escape(uri: str) -> str:
    """``uri`` with Hadoop's glob characters escaped, so that Spark reads that very folder."""
    return re.sub(r"([\\{}\[\]*?])", r"\\\1", uri)


def _describe(run: SqlRunner, table: str) -> tuple[set[str], str]:
    """Lower-cased column names and the location of a table."""
    columns: set[str] = set()
    location = ""
    in_columns = True
    for col_name, data_type, *_ in run(f"DESCRIBE TABLE EXTENDED {table}"):
        col_name = (col_name or "").strip()
        if not col_name or col_name.startswith("#"):
            in_columns = False
        elif in_columns:
            columns.add(col_name.lower())
        elif col_name == "Location":
            location = (data_type or "").strip()
    return columns, location


def _column_list(columns: list[tuple[str, str]]) -> str:
    return ", ".join(f"`{name}` {typ}" for name, typ in columns)


def _literal(text: str) -> str:
    """A Spark SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _normalize_location(uri: str) -> str:
    uri = uri.strip().rstrip("/")
    match = re.match(r"file:(?://)?(/.*)", uri)
    if match:
        return "file:" + os.path.normpath(match.group(1))
    if "://" not in uri and uri.startswith("/"):
        return "file:" + os.path.normpath(uri)
    return uri


# --- where the SQL runs ------------------------------------------------------------------------

def _session_runner(spark: Any) -> SqlRunner:
    """Runs statements in ``spark`` with variable substitution off (restored after each)."""
    def run(sql: str) -> list[tuple[Any, ...]]:
        logger.debug("SQL: %s", sql)
        with _no_substitution(spark):
            return [tuple(row) for row in spark.sql(sql).collect()]
    return run


@contextlib.contextmanager
def _no_substitution(spark: Any):
    """``spark.sql.variable.substitute=false`` for the duration: ``${...}`` stays literal."""
    previous = spark.conf.get(_SUBSTITUTE, None)
    spark.conf.set(_SUBSTITUTE, "false")
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(_SUBSTITUTE)
        else:
            spark.conf.set(_SUBSTITUTE, previous)


class _jdbc_runner:
    """Runs statements on a Thrift server through the Hive JDBC driver in the session's JVM."""

    def __init__(self, spark: Any, url: str) -> None:
        self._jvm = spark.sparkContext._jvm
        self._url = url
        self._conn = None

    def __enter__(self) -> SqlRunner:
        import getpass

        self._jvm.java.lang.Class.forName("org.apache.hive.jdbc.HiveDriver")
        props = self._jvm.java.util.Properties()
        props.setProperty("user", getpass.getuser())
        try:
            self._conn = self._jvm.java.sql.DriverManager.getConnection(self._url, props)
        except Exception as exc:  # noqa: BLE001 - Py4JJavaError: refused, authentication
            raise ConfigurationError(
                f"Expected to register the tables through the running lime-spark sql-server "
                f"({self._url}), which holds the catalog. Received: "
                f"{str(exc).strip().splitlines()[0]}. A server with authentication does not "
                "take registrations: stop it, run the job (or register), and start it "
                "again.") from exc
        try:
            # the server session's own setting, for this connection only
            self._run(f"SET {_SUBSTITUTE}=false")
        except Exception:
            self._conn.close()
            raise
        return self._run

    def __exit__(self, *exc: Any) -> None:
        self._conn.close()

    def _run(self, sql: str) -> list[tuple[Any, ...]]:
        logger.debug("SQL via JDBC: %s", sql)
        statement = self._conn.createStatement()
        try:
            if not statement.execute(sql):
                return []
            result = statement.getResultSet()
            n = result.getMetaData().getColumnCount()
            rows = []
            while result.next():
                rows.append(tuple(result.getString(i + 1) for i in range(n)))
            return rows
        finally:
            statement.close()


def _running_server(spark: Any) -> str | None:
    """JDBC URL of a ``lime-spark sql-server`` that holds this session's metastore, if any."""
    folder = metastore_dir(spark)
    if folder is None:
        return None
    path = server_info_path(folder)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        port = int(info["port"])
        host = str(info.get("host") or "127.0.0.1")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        logger.info("ignoring %s: nothing listens on %s port %d", path, host, port)
        return None
    return f"jdbc:hive2://{f'[{host}]' if ':' in host else host}:{port}/default"


def _check_persistent_catalog(spark: Any) -> None:
    impl = spark.conf.get("spark.sql.catalogImplementation", "in-memory")
    if impl != "hive":
        raise ConfigurationError(
            "Expected a persistent (Hive) catalog to register tables in. Received: "
            f"spark.sql.catalogImplementation={impl}. Set {CATALOG_DIR_ENV} (lime-spark's own "
            "metastore) or run with the cluster's Hive metastore configured.")
