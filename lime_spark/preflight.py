"""Checks a job can make before any Spark session or TensorFlow import: under a second.

``lime-spark explain`` runs :func:`preflight` before it starts Spark, and
:func:`lime_spark.spark.job.run_job` runs it again (cheap) for callers that
bring their own session.  Option values were checked when the
:class:`~lime_spark.config.JobConfig` was built; what is left is what the
options point at: the input, the model files, the output root, the run lock.
"""

from __future__ import annotations

import os
import uuid

from .config import JobConfig
from .exceptions import ConfigurationError, ModelLoadError
from .models import model_is_file
from .publish import check_run_lock
from .storage import filesystem, join_uri, remove_tree, to_fsspec_uri, write_bytes

__all__ = ["preflight", "output_uri", "check_input_exists",
           "check_output_writable", "check_model_files"]


def output_uri(root: str) -> str:
    """The output root as written into tables (absolute for local paths)."""
    if "://" in root or root.startswith("file:"):
        return root.rstrip("/")
    return os.path.abspath(root)


def check_input_exists(uri: str) -> None:
    """A local input (no glob) must exist; object stores and globs are checked by Spark."""
    local = to_fsspec_uri(uri)
    if "://" in local or any(ch in local for ch in "*?[{"):
        return
    if not os.path.exists(local):
        raise ConfigurationError(
            f"Expected an input Parquet file or folder. Received: --input {uri!r}, "
            f"which does not exist ({os.path.abspath(local)})")


def _check_readable_file(what: str, uri: str, error: type[Exception]) -> None:
    fs, path = filesystem(uri)
    try:
        is_file = fs.isfile(path)
    except Exception as exc:  # noqa: BLE001 - unknown protocol, no credentials, ...
        raise error(f"Expected {what} to be a readable file. Received: {uri!r} "
                    f"({type(exc).__name__}: {exc})") from exc
    if not is_file:
        state = "a directory" if fs.isdir(path) else "not found"
        raise error(f"Expected {what} to be a readable file. Received: {uri!r} ({state})")
    if "://" not in to_fsspec_uri(uri) and not os.access(path, os.R_OK):
        raise error(f"Expected {what} to be a readable file. Received: {uri!r} (permission denied)")


def check_model_files(config: JobConfig) -> None:
    """The model file, a weights file and a labels file, where given, exist and are files."""
    if model_is_file(config.model):
        _check_readable_file("--model", config.model, ModelLoadError)
    elif config.weights not in (None, "imagenet"):
        _check_readable_file("--weights", config.weights, ModelLoadError)
    if isinstance(config.label_names, str) and config.label_names not in ("auto", "imagenet"):
        _check_readable_file("--label-names", config.label_names, ConfigurationError)


def check_output_writable(root: str) -> None:
    """Write and delete a probe object under the output root."""
    probe = join_uri(root, "_lime_spark_probe", uuid.uuid4().hex)
    try:
        write_bytes(probe, b"")
        remove_tree(join_uri(root, "_lime_spark_probe"))
    except Exception as exc:  # noqa: BLE001
        raise ConfigurationError(
            f"Expected a writable output root. Received: --output {root!r} "
            f"({type(exc).__name__}: {exc})") from exc


def preflight(config: JobConfig) -> str:
    """Run every check that needs neither Spark nor TensorFlow; return the output root.

    Raises
    ------
    ConfigurationError, ModelLoadError, RunLockedError
        With a one-line message naming the option at fault.
    """
    check_input_exists(config.input)
    check_model_files(config)
    root = output_uri(config.output)
    check_output_writable(root)
    if config.run_id is not None:
        check_run_lock(root, config.run_id, stale_after=config.lock_stale_seconds,
                       break_stale=config.break_stale_lock)
    return root
