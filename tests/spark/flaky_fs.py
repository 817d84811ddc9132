"""``flaky://``: the local filesystem with storage faults chosen by file name, for tests.

``flaky:///abs/path/name.png`` reads ``/abs/path/name.png``, except that

- a name containing ``fail<N>`` (``a-fail2.png``) raises a transient
  ``ConnectionError`` on its first N opens, then reads normally;
- a name containing ``broken`` raises a transient ``ConnectionError`` on every
  open (an object that stays unreadable);
- a name containing ``denied`` raises ``PermissionError`` (not transient);
- a name containing ``slow<S>`` sleeps S seconds in every open (stuck storage).

Opens are counted across processes in ``$FLAKY_FS_STATE`` (one line per open
with its time, in ``<state>/<file name>.opens``), so a Spark task retried in
another Python worker sees the same counts and the test can read the times
of the attempts.  Without ``$FLAKY_FS_STATE`` nothing is recorded and
``fail<N>`` files never fail.

Spark's Python workers find the protocol through fsspec's plugin entry point
(group ``fsspec.specs``): :func:`write_entry_point` writes a ``.dist-info``
folder declaring it; put that folder's parent and the repository root on the
workers' ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from fsspec.implementations.local import LocalFileSystem

PROTOCOL = "flaky"
STATE_ENV = "FLAKY_FS_STATE"

_FAIL = re.compile(r"fail(\d+)")
_SLOW = re.compile(r"slow(\d+(?:\.\d+)?)")


def _record_open(name: str) -> int:
    """Append this open to the state file; return how many opens came before it."""
    state = os.environ.get(STATE_ENV)
    if not state:
        return 0
    path = Path(state) / f"{name}.opens"
    with open(path, "a+", encoding="utf-8") as fh:
        fh.seek(0)
        before = sum(1 for _ in fh)
        fh.write(f"{time.time():.6f} {os.getpid()}\n")
    return before


def open_times(state: Path, name: str) -> list[float]:
    """The times of the opens of file ``name`` recorded in ``state``."""
    path = Path(state) / f"{name}.opens"
    if not path.exists():
        return []
    return [float(line.split()[0]) for line in path.read_text().splitlines() if line.strip()]


class FlakyFileSystem(LocalFileSystem):
    """A local filesystem whose opens fail or stall according to the file's name."""

    protocol = PROTOCOL

    @classmethod
    def _strip_protocol(cls, path):
        path = str(path)
        if path.startswith(f"{PROTOCOL}://"):
            path = path[len(PROTOCOL) + 3:]
        return super()._strip_protocol(path)

    def _open(self, path, mode="rb", **kwargs):
        name = os.path.basename(self._strip_protocol(path))
        if "r" in mode:
            before = _record_open(name)
            if (m := _SLOW.search(name)) is not None:
                time.sleep(float(m.group(1)))
            if "denied" in name:
                raise PermissionError(f"flaky: access denied to {name}")
            if "broken" in name:
                raise ConnectionError(f"flaky: connection reset while reading {name}")
            if (m := _FAIL.search(name)) is not None and before < int(m.group(1)):
                raise ConnectionError(
                    f"flaky: connection reset while reading {name} (open {before + 1})")
        return super()._open(path, mode=mode, **kwargs)


def write_entry_point(folder: Path) -> Path:
    """Declare ``flaky://`` to fsspec in a ``.dist-info`` under ``folder``; returns ``folder``."""
    info = Path(folder) / "lime_spark_test_flaky_fs-0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lime-spark-test-flaky-fs\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(
        f"[fsspec.specs]\n{PROTOCOL} = tests.spark.flaky_fs:FlakyFileSystem\n")
    return Path(folder)
