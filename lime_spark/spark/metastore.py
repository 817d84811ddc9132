"""The embedded Derby metastore of a session: where it is, releasing it, and who holds it.

An embedded Derby database can be open in one JVM at a time, and the JVM that
opened it keeps it until told otherwise.  :func:`metastore_dir` finds the
folder from the session's JDBC URL (None for any other metastore),
:func:`release_catalog` shuts the database down so another process can open
it, and :func:`is_metastore_locked` and :func:`_derby_locked` tell, from an
error or from Derby's lock file, that another process holds it.  Used by
:mod:`lime_spark.spark.catalog` and ``lime-spark sql-server``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from ..exceptions import ConfigurationError

__all__ = ["metastore_dir", "release_catalog", "is_metastore_locked"]

logger = logging.getLogger(__name__)

_METASTORE_URL = "javax.jdo.option.ConnectionURL"
_EMBEDDED_DERBY = re.compile(r"jdbc:derby:(?!//)(?:;)?(?:databaseName=)?([^;]+)")


def metastore_dir(spark: Any) -> Path | None:
    """The folder holding the session's embedded Derby metastore, or None (not embedded Derby)."""
    conf = spark.sparkContext.getConf()
    url = conf.get(f"spark.hadoop.{_METASTORE_URL}", None) or conf.get(_METASTORE_URL, None)
    match = _EMBEDDED_DERBY.match(url or "")
    if match is None or not os.path.isabs(match.group(1)):
        return None
    return Path(match.group(1)).parent


def release_catalog(spark: Any) -> None:
    """Shut down the session's embedded Derby metastore so another process can open it.

    The session reopens it on its next catalog access.  A no-op for other metastores.
    Statements running concurrently in this session that touch the catalog may fail.
    """
    folder = metastore_dir(spark)
    if folder is None:
        return
    jvm = spark.sparkContext._jvm
    try:
        jvm.java.sql.DriverManager.getConnection(
            f"jdbc:derby:;databaseName={folder / 'metastore_db'};shutdown=true")
    except Exception as exc:  # noqa: BLE001 - Derby reports a clean shutdown as SQLState 08006
        state = _sql_state(exc)
        if state not in ("08006", "XJ004", "08001"):   # shut down / not open / no Derby here
            logger.warning("could not release the metastore in %s: %s", folder,
                           str(exc).splitlines()[0])
            return
    logger.debug("released the Derby metastore in %s", folder)


def _prepare_derby(spark: Any) -> None:
    """Create the catalog folder and point derby.system.home at it before Derby starts."""
    folder = metastore_dir(spark)
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    system = spark.sparkContext._jvm.java.lang.System
    if not system.getProperty("derby.system.home"):
        system.setProperty("derby.system.home", str(folder))


def _metastore_error(spark: Any, exc: Exception) -> Exception:
    if isinstance(exc, ConfigurationError):
        return exc
    if is_metastore_locked(exc):
        return _locked_error(metastore_dir(spark))
    return exc


def _locked_error(folder: Path | None) -> ConfigurationError:
    return ConfigurationError(
        f"Expected the catalog in {folder} to be free. Received: it is open in another process "
        "(embedded Derby allows one). Stop that process (a notebook or spark-shell using the "
        "same catalog) or start `lime-spark sql-server`, through which jobs register their "
        "tables, and run again.")


def _derby_locked(database: Path) -> bool:
    """Whether another process holds the Derby database's exclusive lock (``dbex.lck``).

    Derby takes a whole-file lock on ``dbex.lck`` (``FileChannel.tryLock``, an
    fcntl lock on POSIX) while a JVM has the database open; a stale file from a
    killed JVM is not locked.  Probes the lock for an instant; False where it
    cannot be probed.
    """
    try:
        import fcntl
    except ImportError:       # not POSIX: registering reports a held metastore instead
        return False
    try:
        fh = open(database / "dbex.lck", "r+b")  # noqa: SIM115 - closed below
    except OSError:           # no lock file (never opened) or not ours to probe
        return False
    with fh:
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.lockf(fh, fcntl.LOCK_UN)
    return False


def is_metastore_locked(exc: BaseException) -> bool:
    """Whether ``exc`` (a PySpark or Py4J error) says another JVM has the Derby metastore open."""
    texts = [str(exc)]
    java = getattr(exc, "_origin", None) or getattr(exc, "java_exception", None)
    for _ in range(30):                     # the Derby error is deep in the cause chain
        if java is None:
            break
        try:
            texts.append(str(java.toString()))
            java = java.getCause()
        except Exception:  # noqa: BLE001 - the JVM is gone
            break
    text = "\n".join(texts)
    return "XSDB6" in text or "Another instance of Derby may have already booted" in text


def _sql_state(exc: Exception) -> str | None:
    java = getattr(exc, "java_exception", None)
    try:
        return java.getSQLState() if java is not None else None
    except Exception:  # noqa: BLE001 - not an SQLException
        return None
