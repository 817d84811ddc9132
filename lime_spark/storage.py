"""Object storage through fsspec: URIs, safe keys, atomic writes, retried reads.

Spark (Hadoop) names S3 ``s3a://``; fsspec (s3fs) names it ``s3://``.  The job
takes either and maps between them with :func:`to_fsspec_uri` and
:func:`to_hadoop_uri`.  Endpoint, region and credentials come from the
standard AWS variables for both sides (see ``lime_spark.spark.session``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import random
import re
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ._validation import check_int
from .exceptions import ConfigurationError, ImageTooLargeError, LimeSparkError, StorageError

__all__ = [
    "to_fsspec_uri",
    "to_hadoop_uri",
    "join_uri",
    "safe_key",
    "filesystem",
    "read_bytes",
    "DEFAULT_MAX_BYTES",
    "write_bytes",
    "write_file",
    "copy_folder",
    "remove_tree",
    "is_local_filesystem",
    "exists",
    "redact",
    "redact_value",
]

logger = logging.getLogger(__name__)

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_SAFE_CHAR = re.compile(r"[A-Za-z0-9_-]")
_UPPER = re.compile(r"[A-Z]")
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
    """A single path segment for any image id, distinct for distinct ids.

    Every character outside ``[A-Za-z0-9_-]`` is percent-encoded (its UTF-8
    bytes; a lone surrogate its surrogate-pass bytes), so ``/``, ``..``,
    spaces and unicode can never form another path.  The encoding never
    produces ``~`` or a lowercase hex digit after ``%``, which leaves room for
    keys no id encodes to:

    - the empty id is ``%empty``;
    - an id with an uppercase ASCII letter gets ``~`` and 12 hex digits of
      sha256(id), so ids differing only in case (``Cat``, ``cat``) get
      distinct folders on case-insensitive stores too;
    - an id whose key would exceed 150 characters is cut and suffixed with
      ``~`` and 16 hex digits of sha256(id).

    Examples
    --------
    >>> safe_key("../../x y")
    '%2E%2E%2F%2E%2E%2Fx%20y'
    >>> safe_key("")
    '%empty'
    """
    text = str(image_id)
    out = []
    for ch in text:
        if _SAFE_CHAR.match(ch):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    key = "".join(out) or "%empty"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    if len(key) > _MAX_KEY:
        key = f"{key[:_MAX_KEY - 17]}~{digest[:16]}"
    elif _UPPER.search(text):
        key = f"{key[:_MAX_KEY - 13]}~{digest[:12]}"
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


DEFAULT_MAX_BYTES: int = 256 * 1024 * 1024
"""Default largest object :func:`read_bytes` reads: 256 MiB.

Far above any real photo (a 100-megapixel JPEG is 20-60 MB, an uncompressed
16-bit RGB TIFF of 36 megapixels 216 MB), far below what would exhaust a
worker's memory.
"""

_READ_CHUNK = 8 * 1024 * 1024      # bytes per read once the expected size is passed or unknown

#: Kinds of local files that are never read, with their names for messages.
_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def read_bytes(uri: str, *, retries: int = 3, backoff: float = 0.2,
               on_retry: Callable[[BaseException], None] | None = None,
               max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Read a whole object of at most ``max_bytes``, retrying transient errors.

    Parameters
    ----------
    uri : str
        Local path, ``file:`` URI or any fsspec URI (``s3://``, ``s3a://``, ``gs://``, ...).
    retries : int, default 3
        Retries of transient errors (connection errors, timeouts, other I/O
        errors) with exponential backoff: ``backoff * 2**k * U[1, 2)`` seconds.
        "Not found", "is a directory", "permission denied", a file that is not
        a regular file and an object larger than ``max_bytes`` are not retried.
    backoff : float, default 0.2
        Seconds before the first retry.
    on_retry : callable, optional
        Called with the exception before each retry.
    max_bytes : int, default DEFAULT_MAX_BYTES
        Largest object read (256 MiB). Checked before reading where the store
        tells the size (local files, object stores' metadata), and enforced by
        never reading more than ``max_bytes + 1`` bytes where it does not.

    Returns
    -------
    bytes
        The object's content.

    Raises
    ------
    StorageError
        For a missing object, a directory, a local path that is not a regular
        file (a FIFO, a device such as ``/dev/zero``, a socket: refused from
        ``stat`` without being read, so a FIFO cannot block the read), or an
        error that outlived the retries.
    ImageTooLargeError
        The object has more than ``max_bytes`` bytes.
    ConfigurationError
        ``max_bytes`` is not a positive integer.
    """
    max_bytes = check_int("max_bytes", max_bytes, minimum=1)
    fs, path = filesystem(uri)
    local = is_local_filesystem(fs)
    attempt = 0
    while True:
        try:
            if local:
                return _read_local_file(path, uri, max_bytes)
            return _read_object(fs, path, uri, max_bytes)
        except LimeSparkError:
            raise
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


def _read_local_file(path: str, uri: str, max_bytes: int) -> bytes:
    """A local regular file of at most ``max_bytes``; anything else raises before reading."""
    _check_regular(os.stat(path).st_mode, uri)       # stat never opens: a FIFO cannot block
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
             | getattr(os, "O_CLOEXEC", 0))
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)                           # the file opened, not the name
        _check_regular(info.st_mode, uri)
        _check_size(info.st_size, uri, max_bytes)
        return _read_capped(lambda n: os.read(fd, n), uri, max_bytes, info.st_size)
    finally:
        os.close(fd)


def _read_object(fs: Any, path: str, uri: str, max_bytes: int) -> bytes:
    """An object of a (remote) fsspec filesystem, size checked first when the store tells it."""
    info = fs.info(path)
    kind = info.get("type")
    if kind == "directory":
        raise IsADirectoryError(path)
    if kind not in (None, "file"):
        raise StorageError(
            f"Expected a regular file. Received: {uri!r}, which the store lists as type "
            f"{kind!r}; list only image files in the input")
    size = info.get("size")
    size = int(size) if isinstance(size, (int, float)) and not isinstance(size, bool) else None
    if size is not None:
        _check_size(size, uri, max_bytes)
    with fs.open(path, "rb") as stream:
        return _read_capped(stream.read, uri, max_bytes, size)


def _check_regular(mode: int, uri: str) -> None:
    """Raise IsADirectoryError for a directory, StorageError for any other non-regular file."""
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(uri)
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
    raise StorageError(
        f"Expected a regular file. Received: {uri!r}, which is {kind}; devices, FIFOs and "
        "sockets are never read: list only image files in the input")


def _check_size(size: int, uri: str, max_bytes: int) -> None:
    if size > max_bytes:
        raise ImageTooLargeError(
            f"Expected a file of at most max_bytes={max_bytes} bytes ({_mib(max_bytes)}). "
            f"Received: {uri!r} of {size} bytes ({_mib(size)}); raise max_bytes "
            "(--max-bytes) if it is a genuine image")


def _read_capped(read: Callable[[int], bytes], uri: str, max_bytes: int,
                 expected: int | None) -> bytes:
    """Call ``read`` until end of file, never asking for more than ``max_bytes + 1`` bytes in all.

    The first read asks for ``expected + 1`` bytes (one call for a file whose
    size is known), later ones for chunks of 8 MiB.
    """
    step = expected + 1 if expected is not None else _READ_CHUNK
    parts: list[bytes] = []
    total = 0
    while total <= max_bytes:
        chunk = read(min(step, max_bytes + 1 - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
        step = _READ_CHUNK
    if total > max_bytes:
        raise ImageTooLargeError(
            f"Expected a file of at most max_bytes={max_bytes} bytes ({_mib(max_bytes)}). "
            f"Received: {uri!r}, which has more (the store did not tell its size; reading "
            f"stopped after {total} bytes); raise max_bytes (--max-bytes) if it is a "
            "genuine image")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


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


def write_file(uri: str, local_path: str) -> None:
    """Copy a local file to ``uri`` atomically (as :func:`write_bytes`), without reading it
    into memory."""
    fs, path = filesystem(uri)
    parent = posixpath.dirname(path)
    if is_local_filesystem(fs):
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
        shutil.copyfile(local_path, tmp)
        os.replace(tmp, path)
        return
    fs.put_file(local_path, path)


def copy_folder(src: str, dst: str) -> int:
    """Copy the files directly in folder ``src`` into folder ``dst``, each atomically.

    Returns the number of files copied.  Object stores copy server side (no
    bytes through this process).

    Raises
    ------
    FileNotFoundError
        ``src`` holds no file.
    """
    fs, src_path = filesystem(src)
    _, dst_path = filesystem(dst)
    if is_local_filesystem(fs):
        try:
            names = sorted(n for n in os.listdir(src_path)
                           if os.path.isfile(os.path.join(src_path, n)) and not n.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            names = []
        if not names:
            raise FileNotFoundError(f"no file in {src}")
        os.makedirs(dst_path, exist_ok=True)
        for name in names:
            tmp = os.path.join(dst_path, f".{name}.{uuid.uuid4().hex}.tmp")
            shutil.copyfile(os.path.join(src_path, name), tmp)
            os.replace(tmp, os.path.join(dst_path, name))
        return len(names)
    src_path, dst_path = src_path.rstrip("/"), dst_path.rstrip("/")
    try:
        files = [f for f in fs.find(src_path, maxdepth=1) if f != src_path]
    except FileNotFoundError:
        files = []
    if not files:
        raise FileNotFoundError(f"no file in {src}")
    for path in files:
        fs.copy(path, dst_path + "/" + posixpath.basename(path))
    return len(files)


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


_MASK = "***"

# A name that says its value is secret: the keyword may carry a prefix and a suffix
# (fs.s3a.secret.key, aws_secret_access_key, SecretAccessKey, X-Amz-Security-Token) but
# must not run on into a longer lower-case word (tokenizer, passwords_policy is fine).
_SECRET_WORD = (r"(?:secret|password|passwd|passphrase|tokens?|credentials?|signature|"
                r"access[._-]?key|api[._-]?key|apikey|private[._-]?key|account[._-]?key|"
                r"session[._-]?key|client[._-]?secret)(?-i:(?![a-z]))")
_SECRET_NAME = re.compile(r"(?i)" + _SECRET_WORD)
# names that say where a secret is, not the secret (hadoop.security.credential.provider.path,
# password_file), and file names (/data/tokens.txt: ...)
_NOT_SECRET_SUFFIX = re.compile(
    r"(?i)(?:provider|path|file|type|class|url|uri|endpoint|length|count|expiry|expiration"
    r"|\.(?:jpe?g|png|gif|bmp|tiff?|webp|avif|txt|json|ya?ml|parquet|csv|html?|keras|h5))$")
_QUOTED = r"(?:\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*')"

_PRIVATE_KEY = re.compile(
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----).*?(-----END [A-Z ]*PRIVATE KEY-----)", re.S)
# scheme://user:password@host
_URL_PASSWORD = re.compile(
    r"(?i)\b([a-z][a-z0-9+.-]{0,30}://[^\s/?#@:]*:)(?!\*\*\*@)([^\s/?#@]+)(@)")
# Authorization: Bearer x / Basic x / token x (AWS4-HMAC-SHA256 keeps its scheme; its
# Credential= and Signature= are masked below)
_AUTHORIZATION = re.compile(
    r"(?i)(\b(?:proxy-)?authorization['\"]?\s*[=:]\s*['\"]?"
    r"(?:(?:bearer|basic|token|digest|negotiate)\s+)?+)(?!\*\*\*|aws4-)([^\s,;'\"]+)")
_BEARER = re.compile(r"(?i)(\bbearer\s+)(?!\*\*\*)([A-Za-z0-9._~+/-]{8,}=*)")
# ?X-Amz-Signature=...&  ?sig=...  ?key=...  (a query value ends at & or #)
_QUERY_SECRET = re.compile(
    r"(?i)([?&](?:[\w.-]*?" + _SECRET_WORD + r"[\w.-]*|key|sig|code)=)(?!\*\*\*)([^&#\s'\"]+)")
# password=x, token: x, "SecretAccessKey": "x", 'aws_secret_access_key': 'x'
_KEY_VALUE = re.compile(
    r"(?i)(" + _SECRET_WORD + r"[\w.-]*)(['\"]?\s*[=:]\s*)(?!['\"]?\*\*\*)"
    r"(" + _QUOTED + r"|['\"]?[^\s,;'\"]+)")
_TOKENS = re.compile(
    r"\b(?:(?:AKIA|ASIA)[A-Z0-9]{12,}"           # AWS access key ids
    r"|AIza[0-9A-Za-z_-]{35}"                    # Google API keys
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"            # Slack
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})(?![\w-])")  # JWTs


def _mask_key_value(match: re.Match) -> str:
    name, separator, value = match.groups()
    if _NOT_SECRET_SUFFIX.search(name):
        return match.group(0)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{name}{separator}{quote}{_MASK}{quote if value[1:].endswith(quote) else ''}"


def redact(text: str) -> str:
    """Mask secrets in text (error messages, log lines, configuration dumps).

    Masks with ``***``: the values of secret-looking ``key=value``/``key: value``
    pairs, quoted JSON/Python keys included (``"SecretAccessKey": "..."``); the
    password of ``scheme://user:password@host``; signed-URL query parameters
    (``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token``,
    ``X-Goog-Signature``, ``sig``, ``token``, ``key``, ``api_key``, ...);
    ``Authorization:`` header values and ``Bearer`` tokens; PEM private keys;
    AWS key ids, Google API keys, GitHub and Slack tokens and JWTs.  Other text is
    unchanged, and ``redact(redact(t)) == redact(t)``.

    Examples
    --------
    >>> redact("https://alice:hunter2@host/a.jpg?X-Amz-Signature=ab12&X-Amz-Date=20261123")
    'https://alice:***@host/a.jpg?X-Amz-Signature=***&X-Amz-Date=20261123'
    """
    text = _PRIVATE_KEY.sub(rf"\1{_MASK}\2", text)
    text = _URL_PASSWORD.sub(rf"\1{_MASK}\3", text)
    text = _AUTHORIZATION.sub(rf"\1{_MASK}", text)
    text = _BEARER.sub(rf"\1{_MASK}", text)
    text = _QUERY_SECRET.sub(rf"\1{_MASK}", text)
    text = _KEY_VALUE.sub(_mask_key_value, text)
    return _TOKENS.sub(_MASK, text)


def redact_value(value: Any) -> Any:
    """:func:`redact` applied through dicts and lists (``summary.json``, printed configuration).

    Strings are redacted; a mapping's value whose key names a secret
    (``password``, ``secret_key``, ``token``, ...) is replaced by ``***``
    unless it is None or a bool; tuples become lists; other values are kept.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: _MASK if _is_secret_name(key) and _is_scalar(item) else redact_value(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item) for item in value]
    return value


def _is_secret_name(key: Any) -> bool:
    name = str(key)
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET_SUFFIX.search(name)


def _is_scalar(value: Any) -> bool:
    return value is not None and not isinstance(value, (bool, Mapping, list, tuple))
