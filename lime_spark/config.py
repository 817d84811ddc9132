"""The job's configuration, composed of the options each stage declares once.

Every option is declared, with its default, one-line help and constraint
(:func:`lime_spark.options.option`), in the stage that uses it: the input
(:class:`InputConfig`), the run (:class:`RunConfig`), the model
(:class:`ModelConfig`), LIME (:class:`lime_spark.explainer.ExplainerConfig`)
and the per-image work (:class:`lime_spark.batch.BatchSettings`).
:class:`JobConfig` is made of those fields, and the command line
(``lime-spark explain`` and ``jobs/explain_images.py``), ``conf/default.yaml``,
``--help``, validation and the resolved configuration printed at start are
all generated from them, so they cannot drift apart.  Precedence: defaults <
``--config FILE.yaml`` < ``--set key=value`` < explicit options.  Unknown keys
are an error.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from .batch import BatchSettings
from .exceptions import ConfigurationError
from .explainer import ExplainerConfig
from .models.onnx import RUNTIMES
from .options import (Bool, Int, MappingOf, OneOf, Optional, Real, canonical_names, job_fields,
                      option, validate)
from .run_ids import RUN_ID_PATTERN, check_run_id

__all__ = ["JobConfig", "InputConfig", "ModelConfig", "RunConfig", "SECTIONS", "load_config",
           "render_default_yaml", "parse_assignment", "RUN_ID_PATTERN", "check_run_id", "run_list"]

@dataclass(frozen=True)
class InputConfig:
    """Where the image list is and which of its columns to read."""

    input: str | None = option(None, "Parquet file or dataset (any URI) listing the images",
                               required=True)
    path_column: str = option("path", "input column with image URIs")
    id_column: str = option("image_id", "input column with image ids (absent: a hash of the path)")
    label_column: str = option(
        "label", "input column with the expected label, kept for audits (optional)")
    partitions: int | None = option(
        None, "Spark partitions of the image list (null: 4 x default parallelism)",
        Optional(Int(1)))


@dataclass(frozen=True)
class ModelConfig:
    """The classifier: what :func:`lime_spark.models.load_classifier` takes."""

    model: str | None = option(
        None, "a .keras file (any URI) or a keras.applications name", required=True)
    weights: str | None = option(
        "imagenet", "for application names: imagenet (Keras' cache) or a weights file")
    model_args: dict = option(
        {}, "keras.applications constructor arguments, e.g. {alpha: 0.25}", MappingOf())
    preprocess: str = option(
        "auto", "keras.applications module whose preprocess_input to use, none, or auto")
    label_names: str | None = option(
        "auto", "class names: imagenet, a file (lines or JSON), or auto", aliases=("labels",))
    output_activation: str = option(
        "none", "applied to model outputs: none, softmax (logits), sigmoid",
        OneOf(("none", "softmax", "sigmoid")))
    runtime: str = option(
        "auto", "what runs the model: auto (ONNX Runtime on CPU executors where it agrees "
        "with TensorFlow to 1e-4), tensorflow or onnx", OneOf(RUNTIMES))


def _check_database(name: str, value: Any) -> Any:
    if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", str(value)):
        raise ConfigurationError(
            "Expected database to be a SQL identifier (letters, digits and '_', not starting "
            f"with a digit). Received: database={value!r}")
    return value


def run_list(value: Any) -> list[str] | None:
    """``reuse_from`` as a list of run ids (None stays None)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


def _check_run_list(name: str, value: Any) -> Any:
    if not isinstance(value, (str, list, tuple)):
        raise ConfigurationError(
            f"Expected {name} to be run ids, a list or comma-separated. Received: {name}={value!r}")
    runs = run_list(value)
    if not runs:
        raise ConfigurationError(f"Expected {name} to name at least one run. Received: "
                                 f"{name}={value!r}")
    for run in runs:
        check_run_id(run)
    return value


@dataclass(frozen=True)
class RunConfig:
    """The run: where it writes, its id and seed, and what it does after the tables."""

    output: str | None = option(None, "output root (local path, s3a://, gs://, ...)",
                                required=True)
    run_id: str | None = option(
        None, "partition value of this run (null: UTC time, e.g. 20261123T190000Z)",
        lambda name, value: value if value is None else check_run_id(value))
    seed: int = option(0, "run seed; each image's seed derives from (seed, sha256 of its bytes)",
                       Int())
    lock_stale_seconds: float = option(
        3600.0, "a run lock whose heartbeat is older than this belongs to a dead job (stale)",
        Real(0, exclusive=True))
    break_stale_lock: bool = option(
        False, "break a stale lock of this run id (a live lock is never broken)", Bool())
    database: str | None = option(
        None, "register images/explanations/features in this Spark catalog database",
        _check_database)
    report: bool = option(
        True, "write the static HTML audit report under report/run_id=R/", Bool())
    reuse: str = option(
        "auto", "auto: copy the rows of images an earlier run under the output root explained "
        "with the same content, model and explainer digests; none: explain every image",
        OneOf(("auto", "none")))
    reuse_from: str | None = option(
        None, "run ids to reuse from, a list or comma-separated (null: every earlier run)",
        Optional(_check_run_list))
    resume: bool = option(
        True, "keep the rows a dead job of this run id committed and explain only the rest "
        "(false: start the run afresh)", Bool())
    baseline: str | None = option(
        None, "after publishing, compare with this run: the drift table and the report's "
        "changed-since view (lime-spark compare)",
        lambda name, value: value if value is None else check_run_id(value))
    log_level: str = option("INFO", "log level of lime-spark's own loggers",
                            OneOf(("DEBUG", "INFO", "WARNING", "ERROR"), upper=True))


SECTIONS: tuple[type, ...] = (InputConfig, RunConfig, ModelConfig, ExplainerConfig, BatchSettings)
"""The stages whose options make up the job's, in the order of ``conf/default.yaml``."""


def _composed(*sections: type) -> Any:
    """Class decorator: a frozen dataclass whose fields are the sections' job options."""
    def decorate(cls: type) -> type:
        annotations: dict[str, Any] = {}
        for section in sections:
            for f in job_fields(section):
                if f.name in annotations:
                    raise TypeError(f"option {f.name!r} is declared by two sections")
                annotations[f.name] = f.type
                copy = (dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)
                        if f.default is dataclasses.MISSING
                        else dataclasses.field(default=f.default, metadata=f.metadata))
                setattr(cls, f.name, copy)
        cls.__annotations__ = annotations
        return dataclass(frozen=True)(cls)
    return decorate


@_composed(*SECTIONS)
class JobConfig:
    """Resolved settings of one explanation run (see ``conf/default.yaml``).

    Its fields are the job options of :data:`SECTIONS`, each declared once
    in its stage (:class:`InputConfig`, :class:`RunConfig`,
    :class:`ModelConfig`, :class:`~lime_spark.explainer.ExplainerConfig`,
    :class:`~lime_spark.batch.BatchSettings`); :meth:`section` gives a stage
    its own config back.
    """

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.metadata.get("required") and not getattr(self, f.name):
                raise ConfigurationError(
                    f"Missing required option {f.name!r} (--{f.name.replace('_', '-')})."
                )
        validate(self)

    def section(self, stage: type, **values: Any) -> Any:
        """The stage's config built from this job's options (plus ``values`` it does not have)."""
        mine = {f.name: getattr(self, f.name) for f in job_fields(stage)}
        return stage(**{**mine, **values})

    def resolved(self) -> JobConfig:
        """A copy with ``run_id`` filled in (UTC time) when it was left open."""
        if self.run_id is not None:
            return self
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return dataclasses.replace(self, run_id=now)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every option (for summary.json and the start log)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def options(cls) -> list[dataclasses.Field]:
        """The option fields in declaration order."""
        return list(fields(cls))


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as YAML (numbers, booleans, null, lists).

    The value of a text option (``run_id``, ``input``, ...) is kept as written:
    ``run_id=0123`` gives ``"0123"``, ``run_id=2026-11-23`` gives ``"2026-11-23"``
    (``null`` still means "unset").
    """
    import yaml

    if "=" not in text:
        raise ConfigurationError(f"Expected key=value. Received: {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip().replace("-", "_")
    if not raw.strip():
        return key, ""
    try:
        loader = yaml.SafeLoader(raw)
        try:
            node = loader.get_single_node()
            value = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError:
        return key, raw
    if key in _text_options():
        value = _as_written(node, value)
    return key, value


def _text_options() -> frozenset[str]:
    """Options typed ``str``: YAML must not turn their values into numbers or dates."""
    return frozenset(name for f in fields(JobConfig) if str(f.type) in ("str", "str | None")
                     for name in (f.name, *f.metadata["aliases"]))


def _as_written(node: Any, value: Any) -> Any:
    """A YAML scalar's text exactly as written (quotes removed), unless it is null."""
    import yaml

    if isinstance(node, yaml.ScalarNode) and node.tag != "tag:yaml.org,2002:null":
        return node.value
    return value


def _read_yaml_file(config_file: str) -> dict[str, Any]:
    """The options of a ``--config`` file; text options keep their scalars as written."""
    import fsspec
    import yaml

    from .storage import to_fsspec_uri

    try:
        with fsspec.open(to_fsspec_uri(config_file), "rt", encoding="utf-8") as fh:
            loader = yaml.SafeLoader(fh.read())
        try:
            node = loader.get_single_node()
            loaded = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(
            f"Could not read config file {config_file!r}: {type(exc).__name__}: {exc}"
        ) from exc
    loaded = {} if loaded is None else loaded
    if not isinstance(loaded, dict):
        raise ConfigurationError(
            f"Expected a mapping of options in {config_file!r}. Received: {type(loaded).__name__}"
        )
    text_options = _text_options()
    for key_node, value_node in node.value if node is not None else ():
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if isinstance(key, str) and key.replace("-", "_") in text_options and key in loaded:
            loaded[key] = _as_written(value_node, loaded[key])
    return {str(k).replace("-", "_"): v for k, v in loaded.items()}


def _set_nested(values: dict[str, Any], key: str, value: Any) -> None:
    if "." in key:
        head, sub = key.split(".", 1)
        if head in _MAPPING_OPTIONS:
            values.setdefault(head, {})
            values[head] = {**values[head], sub: value}
            return
    values[key] = value


_MAPPING_OPTIONS = frozenset(f.name for f in fields(JobConfig)
                             if f.default is dataclasses.MISSING
                             and isinstance(f.default_factory(), dict))
"""Options holding a mapping: ``--set model_args.alpha=0.25`` sets one key."""


def load_config(*, config_file: str | None = None, assignments: Sequence[str] = (),
                overrides: Mapping[str, Any] | None = None) -> JobConfig:
    """Build a :class:`JobConfig` from a YAML file, ``key=value`` strings and explicit values.

    Raises
    ------
    ConfigurationError
        For unknown keys, unreadable files and values outside their constraints.
    """
    known = {f.name for f in fields(JobConfig)}
    values: dict[str, Any] = {}
    if config_file:
        values.update(_read_yaml_file(config_file))
    for text in assignments:
        key, value = parse_assignment(text)
        _set_nested(values, key, value)
    for key, value in (overrides or {}).items():
        _set_nested(values, key, value)
    values = canonical_names(JobConfig, values, what="job")
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigurationError(
            f"Unknown option(s) {unknown}. Known options: {sorted(known)}"
        )
    return JobConfig(**values)


def render_default_yaml() -> str:
    """``conf/default.yaml``: every option with its default and a one-line comment."""
    import yaml

    lines = ["# lime-spark job options with their defaults (generated from lime_spark/config.py;",
             "# tests/unit/test_config.py checks this file). Copy, edit, and pass --config FILE.",
             "# Required options (input, output, model) have no default."]
    for f in fields(JobConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        value = yaml.safe_dump(default, default_flow_style=True).strip()
        if value.endswith("\n..."):
            value = value[:-4].strip()
        value = value.removesuffix("...").strip()
        lines.append(f"# {f.metadata['help']}")
        lines.append(f"{f.name}: {value}")
    return "\n".join(lines) + "\n"
