"""Object storage through fsspec: URIs, safe keys, atomic writes, retried reads.

Spark (Hadoop) names S3 ``s3a://``; fsspec (s3fs) names it ``s3://``.  The job
takes either and maps between them with :func:`to_fsspec_uri` and
:func:`to_hadoop_uri`.  Endpoint, region and credentials come from the
standard AWS variables for both sides (see ``lime_spark.spark.session``).
"""

from __future__ import annotations

import logging
import os
import posixpath
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from .exceptions import ConfigurationError, StorageError

__all__ = [
    "to_fsspec_uri",
    "to_hadoop_uri",
    "join_uri",
    "safe_key",
    "filesystem",
    "read_bytes",
    "write_bytes",
    "remove_tree",
    "is_local_filesystem",
    "exists",
    "redact",
]

logger = logging.getLogger(__name__)

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_SAFE_CHAR = re.compile(r"[A-Za-z0-9_-]")
_MAX_KEY = 150


def _scheme(uri: str) -> str | None:
    m = _SCHEME.match(uri)
    return m.group(1).lower() if m else None


def to_fsspec_uri(uri: str) -> str:
    """``s3a://`` and ``s3n://`` to ``s3://``; ``file:`` URIs to local paths; others unchanged."""
    scheme = _scheme(uri)
    if scheme in ("s3a", "s3n"):
        return "s3://" + uri.split("://", 1)[1]
    if scheme == "file":
        return uri[len("file://"):]
    if uri.startswith("file:"):
        return uri[len("file:"):]
    return uri


def to_hadoop_uri(uri: str) -> str:
    """``s3://`` to ``s3a://`` (Spark's S3A connector); local paths to absolute ``file:`` URIs."""
    scheme = _scheme(uri)
    if scheme == "s3":
        return "s3a://" + uri.split("://", 1)[1]
    if scheme is None and not uri.startswith("file:"):
        return "file://" + os.path.abspath(uri)
    return uri


def join_uri(root: str, *parts: str) -> str:
    """Join path parts onto a URI or local path with ``/``.

    Parts must not climb out of ``root``: ``..`` or an absolute part is an error.
    """
    out = root.rstrip("/")
    for part in parts:
        for piece in str(part).split("/"):
            if piece in ("", "."):
                continue
            if piece == "..":
                raise ConfigurationError(
                    f"Expected a path inside {root!r}. Received: part {part!r} with '..'"
                )
            out = f"{out}/{piece}"
    return out


def safe_key(image_id: str) -> str:
    """A single, reversible-enough path segment for any image id.

    Every character outside ``[A-Za-z0-9_-]`` is percent-encoded (its UTF-8
    bytes), so ``/``, ``..``, spaces and unicode can never form another path;
    ids whose encoding is longer than 150 characters are cut and suffixed
    with a hash so keys stay unique.

    Examples
    --------
    >>> safe_key("../../x y")
    '%2E%2E%2F%2E%2E%2Fx%20y'
    """
    out = []
    for ch in str(image_id):
        if _SAFE_CHAR.match(ch):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    key = "".join(out) or "%00empty"
    if len(key) > _MAX_KEY:
        import hashlib

        digest = hashlib.sha1(str(image_id).encode("utf-8")).hexdigest()[:16]
        key = f"{key[:_MAX_KEY - 17]}~{digest}"
    return key


def filesystem(uri: str) -> tuple[Any, str]:
    """The fsspec filesystem and the path within it for ``uri``."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(to_fsspec_uri(uri))
    return fs, path


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError,
                        PermissionError)):
        return False
    return isinstance(exc, (OSError, TimeoutError, ConnectionError))


def read_bytes(uri: str, *, retries: int = 3, backoff: float = 0.2,
               on_retry: Callable[[BaseException], None] | None = None) -> bytes:
    """Read a whole object, retrying transient errors with exponential backoff.

    Raises
    ------
    StorageError
        For a missing object, a directory, or an error that outlived the retries.
    """
    fs, path = filesystem(uri)
    attempt = 0
    while True:
        try:
            if fs.isdir(path):
                raise IsADirectoryError(path)
            with fs.open(path, "rb") as fh:
                return fh.read()
        except IsADirectoryError:
            raise StorageError(f"Expected a file. Received: {uri!r} is a directory") from None
        except FileNotFoundError:
            raise StorageError(f"Expected an existing file. Received: {uri!r} (not found)") from None
        except PermissionError as exc:
            raise StorageError(f"Could not read {uri!r}: permission denied ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - storage backends raise anything
            if attempt >= retries or not _is_transient(exc):
                raise StorageError(
                    f"Could not read {uri!r} after {attempt + 1} attempt(s): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            attempt += 1
            if on_retry is not None:
                on_retry(exc)
            time.sleep(backoff * (2 ** (attempt - 1)) * (1 + random.random()))


def write_bytes(uri: str, data: bytes) -> None:
    """Write an object atomically: readers see the old object or the whole new one.

    Local files are written to a temporary name and renamed; object stores
    replace an object in one PUT.
    """
    fs, path = filesystem(uri)
    parent = posixpath.dirname(path)
    if is_local_filesystem(fs):
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return
    fs.pipe_file(path, data)


def is_local_filesystem(fs: Any) -> bool:
    """Whether an fsspec filesystem is the local disk."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols


def remove_tree(uri: str) -> None:
    """Delete a folder (prefix) and everything under it; a missing one is fine."""
    fs, path = filesystem(uri)
    try:
        if fs.exists(path):
            fs.rm(path, recursive=True)
    except FileNotFoundError:
        pass


def exists(uri: str) -> bool:
    """Whether an object or folder exists at ``uri``."""
    fs, path = filesystem(uri)
    return bool(fs.exists(path))


_SECRET = re.compile(
    r"(?i)((?:secret|password|token|credential|access[._-]?key)[a-z0-9._-]*\s*[=:]\s*)([^\s,;'\"]+)")


def redact(text: str) -> str:
    """Mask values of secret-looking ``key=value`` pairs and AWS key ids in text."""
    text = _SECRET.sub(lambda m: m.group(1) + "***", text)
    return re.sub(r"\b(AKIA|ASIA)[A-Z0-9]{12,}\b", "***", text)
