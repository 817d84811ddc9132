"""Publishing a run: one writer per run id, a staging area, then the swap into place.

A run writes nothing where readers look until it has succeeded:

1. :func:`acquire_run_lock` takes ``ROOT/_locks/run_id=R.json`` (owner, host,
   pid, start time and a heartbeat the driver refreshes), so two jobs never
   write one run id at once.  A lock whose heartbeat is older than
   ``stale_after`` seconds belongs to a job that died; it is broken only when
   asked (``--break-stale-lock``).  A live lock is never broken; a lock whose
   job ran on this host under a process id that no longer exists (a killed
   driver) is broken at once.
2. The job writes its tables and overlays under
   ``ROOT/_staging/run_id=R/<token>/`` (:func:`staging_uri`).
3. :func:`publish_run` swaps them in: for every table, the run's old
   partition is deleted explicitly (also when the new run has no rows for
   that table) and the staged one moved into its place; the same for
   ``overlays/run_id=R``.  A run that fails before this step leaves the
   previous run of that id exactly as it was.

On local disk a move is one ``rename`` per table; on object stores it is a
copy per object (S3 has no rename), so a reader listing a table *during*
the swap of that table can see part of it.  No Spark here.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .run_ids import check_run_id
from .exceptions import RunLockedError, StorageError
from .storage import exists, filesystem, is_local_filesystem, join_uri, remove_tree, write_bytes

__all__ = ["LOCK_FOLDER", "STAGING_FOLDER", "RunLock", "lock_uri", "staging_uri", "read_run_lock",
           "check_run_lock", "acquire_run_lock", "publish_run", "discard_staging",
           "remove_partial_writes"]

logger = logging.getLogger(__name__)

LOCK_FOLDER = "_locks"
STAGING_FOLDER = "_staging"


def lock_uri(root: str, run_id: str) -> str:
    """Where the lock of run ``run_id`` lives."""
    return join_uri(root, LOCK_FOLDER, f"run_id={check_run_id(run_id)}.json")


def staging_uri(root: str, run_id: str, token: str | None = None) -> str:
    """The staging folder of run ``run_id`` (of one job, ``token``, when given)."""
    folder = join_uri(root, STAGING_FOLDER, f"run_id={check_run_id(run_id)}")
    return join_uri(folder, token) if token else folder


def _now() -> float:
    return time.time()


def _iso(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_run_lock(root: str, run_id: str) -> dict[str, Any] | None:
    """The lock record of a run, or None when the run is not locked."""
    fs, path = filesystem(lock_uri(root, run_id))
    try:
        with fs.open(path, "rb") as fh:
            record = json.loads(fh.read().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        # a lock cut short while being written: treat as held since its mtime
        record = {"token": None, "owner": "unknown (unreadable lock file)"}
        try:
            record["heartbeat"] = float(fs.modified(path).timestamp())
        except Exception:  # noqa: BLE001 - some stores have no mtime
            record["heartbeat"] = _now()
    return record if isinstance(record, dict) else None


def _describe(record: dict[str, Any]) -> str:
    since = record.get("started")
    beat = record.get("heartbeat")
    age = f", last heartbeat {_now() - float(beat):.0f}s ago" if beat is not None else ""
    return f"{record.get('owner', 'unknown')}" + (f" since {since}" if since else "") + age


def check_run_lock(root: str, run_id: str, *, stale_after: float,
                   break_stale: bool = False) -> dict[str, Any] | None:
    """Raise :class:`RunLockedError` unless run ``run_id`` may be written now.

    Returns the stale lock record that :func:`acquire_run_lock` will break
    (``break_stale``), else None.
    """
    record = read_run_lock(root, run_id)
    if record is None:
        return None
    if _dead_here(record):
        logger.warning("the lock of run %s belongs to %s, no longer running on this host: "
                       "breaking it", run_id, _describe(record))
        return record
    age = _now() - float(record.get("heartbeat") or 0.0)
    where = lock_uri(root, run_id)
    if age < stale_after:
        raise RunLockedError(
            f"Expected no other job writing run {run_id!r}. Received: a lock held by "
            f"{_describe(record)} ({where}). Wait for that job to finish, or use another "
            "--run-id; a lock is stale (its job died) once its heartbeat is older than "
            f"--lock-stale-seconds={stale_after:g}")
    if not break_stale:
        raise RunLockedError(
            f"Expected no lock on run {run_id!r}. Received: a stale lock of {_describe(record)} "
            f"({where}), older than --lock-stale-seconds={stale_after:g}: its job probably died. "
            "If no job is writing this run, pass --break-stale-lock to break it")
    return record


def _dead_here(record: dict[str, Any]) -> bool:
    """Whether the lock's job ran on this host under a process id that no longer exists
    (a killed driver: its lock is broken at once, whatever its heartbeat's age)."""
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:          # exists, owned by another user
        return False
    return False


@dataclass
class RunLock:
    """A held run lock; refreshes its heartbeat in a daemon thread until released."""

    root: str
    run_id: str
    record: dict[str, Any]
    interval: float
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        return lock_uri(self.root, self.run_id)

    @property
    def token(self) -> str:
        return str(self.record["token"])

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            current = read_run_lock(self.root, self.run_id)
            if current is None or current.get("token") != self.token:
                logger.error("the lock of run %s was taken by %s; this job no longer holds it",
                             self.run_id, _describe(current) if current else "nobody")
                return
            self.record["heartbeat"] = _now()
            try:
                write_bytes(self.uri, json.dumps(self.record).encode("utf-8"))
            except Exception as exc:  # noqa: BLE001 - retried at the next beat
                logger.warning("could not refresh the lock of run %s: %s", self.run_id, exc)

    def start(self) -> RunLock:
        self._thread = threading.Thread(target=self._beat, name=f"lime-spark-lock-{self.run_id}",
                                        daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Stop the heartbeat and delete the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        current = read_run_lock(self.root, self.run_id)
        if current is not None and current.get("token") == self.token:
            fs, path = filesystem(self.uri)
            try:
                fs.rm(path)
            except FileNotFoundError:
                pass
        _remove_empty_folders(join_uri(self.root, LOCK_FOLDER))

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def acquire_run_lock(root: str, run_id: str, *, stale_after: float = 3600.0,
                     break_stale: bool = False) -> RunLock:
    """Take the lock of run ``run_id`` under ``root`` or raise :class:`RunLockedError`.

    Creation is exclusive on local disk (``O_EXCL``); on object stores the
    lock is written, read back and compared (a race of two jobs starting in
    the same second is resolved in favour of the last writer, and the other
    job notices at its next heartbeat).
    """
    stale = check_run_lock(root, run_id, stale_after=stale_after, break_stale=break_stale)
    uri = lock_uri(root, run_id)
    if stale is not None:
        logger.warning("breaking the stale lock of run %s held by %s", run_id, _describe(stale))
        remove_tree(uri)
    started = _now()
    record = {"token": uuid.uuid4().hex, "owner": f"{getpass.getuser()}@{socket.gethostname()} "
                                                  f"pid {os.getpid()}",
              "host": socket.gethostname(), "pid": os.getpid(),
              "started": _iso(started), "heartbeat": started, "run_id": run_id}
    data = json.dumps(record).encode("utf-8")
    fs, path = filesystem(uri)
    if is_local_filesystem(fs):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            check_run_lock(root, run_id, stale_after=stale_after, break_stale=False)
            raise RunLockedError(f"Expected to take the lock of run {run_id!r}. Received: "
                                 f"another job took it first ({uri})") from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    else:
        write_bytes(uri, data)
        current = read_run_lock(root, run_id)
        if current is None or current.get("token") != record["token"]:
            raise RunLockedError(f"Expected to take the lock of run {run_id!r}. Received: "
                                 f"another job took it first ({uri})")
    interval = max(1.0, min(60.0, stale_after / 4))
    return RunLock(root, run_id, record, interval).start()


def _move(src: str, dst: str) -> None:
    """Move a folder: one rename on local disk, a copy per object then a delete elsewhere."""
    fs, src_path = filesystem(src)
    _, dst_path = filesystem(dst)
    if is_local_filesystem(fs):
        os.makedirs(os.path.dirname(dst_path), exist_ok=True)
        os.replace(src_path, dst_path)
        return
    src_path, dst_path = src_path.rstrip("/"), dst_path.rstrip("/")
    for path in fs.find(src_path):         # objects only: S3A's folder markers are not copied
        fs.copy(path, dst_path + path[len(src_path):])
    fs.rm(src_path, recursive=True)


def publish_run(root: str, run_id: str, staging: str, folders: Iterable[str]) -> dict[str, bool]:
    """Swap the staged run into place, folder by folder; remove the staging area.

    For each name in ``folders`` (``images``, ..., ``overlays``) the run's
    partition ``ROOT/<name>/run_id=R`` is deleted, then the staged
    ``STAGING/<name>/run_id=R`` (when the run wrote one) moved there.

    Returns
    -------
    dict
        Folder name -> whether the new run has a partition there.
    """
    run = f"run_id={check_run_id(run_id)}"
    filesystem(root)[0].invalidate_cache()   # Spark wrote behind fsspec's listing cache
    published = {}
    for name in folders:
        src = join_uri(staging, name, run)
        dst = join_uri(root, name, run)
        remove_tree(dst)
        present = exists(src)
        if present:
            try:
                _move(src, dst)
            except Exception as exc:
                raise StorageError(f"Could not move the staged {name} of run {run_id!r} from "
                                   f"{src} to {dst}: {type(exc).__name__}: {exc}") from exc
        published[name] = present
    discard_staging(root, run_id, staging)
    return published


def discard_staging(root: str, run_id: str, staging: str) -> None:
    """Delete a job's staging folder, and the staging folders above it once empty."""
    remove_tree(staging)
    _remove_empty_folders(staging_uri(root, run_id), join_uri(root, STAGING_FOLDER))


def _remove_empty_folders(*uris: str) -> None:
    """Remove local folders that are empty, in order (object stores have no empty folders)."""
    for uri in uris:
        fs, path = filesystem(uri)
        if not is_local_filesystem(fs):
            return
        try:
            os.rmdir(path)
        except OSError:          # not empty (another run's), or gone
            return


def remove_partial_writes(folder: str) -> int:
    """Delete temporary files of writes that a killed worker left under ``folder`` (local only)."""
    fs, path = filesystem(folder)
    if not is_local_filesystem(fs):
        return 0
    removed = 0
    for parent, _, files in os.walk(path):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                os.remove(os.path.join(parent, name))
                removed += 1
    if removed:
        logger.warning("removed %d partial overlay file(s) of failed task attempts", removed)
    return removed
