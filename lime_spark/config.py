"""The job's configuration: one frozen dataclass, one table of options.

Every option is a field of :class:`JobConfig` with its default and a one-line
help text.  The command line (``lime-spark explain`` and
``jobs/explain_images.py``), ``conf/default.yaml`` and the resolved
configuration printed at start are all generated from these fields, so they
cannot drift apart.  Precedence: defaults < ``--config FILE.yaml`` <
``--set key=value`` < explicit options.  Unknown keys are an error.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ._validation import check_int, check_one_of, check_real
from .exceptions import ConfigurationError
from .explainer import DEFAULT_FILL
from .images import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_PIXELS
from .segmentation import SEGMENTERS
from .storage import DEFAULT_MAX_BYTES
from .surrogate import FEATURE_SELECTIONS

__all__ = ["JobConfig", "load_config", "render_default_yaml", "parse_assignment",
           "RUN_ID_PATTERN", "check_run_id"]

RUN_ID_PATTERN = re.compile(r"(?!\.{1,2}\Z)(?!__HIVE_DEFAULT_PARTITION__\Z)[A-Za-z0-9_.-]{1,64}")
"""What a run id may be (``RUN_ID_PATTERN.fullmatch``): 1-64 letters, digits, ``_``, ``-``, ``.``.

Not ``.`` or ``..`` (they would name a folder above the partition) and not
Hive's null partition ``__HIVE_DEFAULT_PARTITION__``.  A run id is always text:
``0123`` and ``2026-11-23`` are run ids, never a number or a date.
"""


def check_run_id(value: Any) -> str:
    """Return ``value`` if it is a valid run id (see :data:`RUN_ID_PATTERN`).

    Raises
    ------
    ConfigurationError
        For anything else, non-strings included: a run id is never coerced
        (``83`` is not ``"0123"``).

    Examples
    --------
    >>> check_run_id("2026-11-23")
    '2026-11-23'
    """
    if not isinstance(value, str):
        raise ConfigurationError(
            "Expected run_id to be text (1-64 letters, digits, '_', '-' or '.'). Received: "
            f"run_id={value!r} of type {type(value).__name__}; in Python pass a str, in YAML "
            "quote it (run_id: '0123').")
    if not RUN_ID_PATTERN.fullmatch(value):
        raise ConfigurationError(
            "Expected run_id of 1-64 letters, digits, '_', '-' or '.' (not '.' or '..'). "
            f"Received: run_id={value!r}")
    return value


def _opt(default: Any, help: str, **extra: Any) -> Any:
    meta = {"help": help, **extra}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class JobConfig:
    """Resolved settings of one explanation run (see ``conf/default.yaml``)."""

    input: str | None = _opt(None, "Parquet file or dataset (any URI) listing the images", required=True)
    output: str | None = _opt(None, "output root (local path, s3a://, gs://, ...)", required=True)
    model: str | None = _opt(None, "a .keras file (any URI) or a keras.applications name", required=True)
    weights: str | None = _opt("imagenet", "for application names: imagenet (Keras' cache) or a weights file")
    model_args: dict = _opt({}, "keras.applications constructor arguments, e.g. {alpha: 0.25}")
    preprocess: str = _opt("auto", "keras.applications module whose preprocess_input to use, none, or auto")
    labels: str | None = _opt("auto", "class names: imagenet, a file (lines or JSON), or auto")
    output_activation: str = _opt("none", "applied to model outputs: none, softmax (logits), sigmoid")
    num_samples: int = _opt(1000, "perturbed images per explanation, the original included")
    top_labels: int = _opt(5, "explain this many most probable labels per image")
    batch_size: int = _opt(128, "images per model call (fixed shape, last batch padded)")
    segmentation: str = _opt("slic", "superpixels: slic, quickshift, felzenszwalb or grid")
    n_superpixels: int = _opt(50, "target number of superpixels (R lime's default)")
    segmentation_params: dict = _opt({}, "extra segmenter parameters, e.g. {compactness: 20}")
    fill: Any = _opt(DEFAULT_FILL, "hidden superpixels: median, mean, blur, a colour name or [r, g, b]")
    kernel_width: float = _opt(0.25, "width of lime's exponential kernel on cosine distance")
    feature_selection: str = _opt("auto", "auto, forward_selection, highest_weights, lasso_path, none")
    num_features: int | None = _opt(None, "most superpixels per label in the surrogate (null: all)")
    seed: int = _opt(0, "run seed; each image's seed derives from (seed, image_id)")
    run_id: str | None = _opt(None, "partition value of this run (null: UTC time, e.g. 20261123T190000Z)")
    lock_stale_seconds: float = _opt(3600.0, "a run lock whose heartbeat is older than this belongs to a dead job (stale)")
    break_stale_lock: bool = _opt(False, "break a stale lock of this run id (a live lock is never broken)")
    partitions: int | None = _opt(None, "Spark partitions of the image list (null: 2 x default parallelism)")
    path_column: str = _opt("path", "input column with image URIs")
    id_column: str = _opt("image_id", "input column with image ids (absent: a hash of the path)")
    label_column: str = _opt("label", "input column with the expected label, kept for audits (optional)")
    max_pixels: int = _opt(DEFAULT_MAX_PIXELS, "decompression-bomb guard: largest width x height decoded")
    max_bytes: int = _opt(DEFAULT_MAX_BYTES, "largest image file read, in bytes (checked from its size first)")
    max_decode_bytes: int = _opt(DEFAULT_MAX_DECODE_BYTES, "largest memory one decode may need, in bytes (estimated from the header)")
    read_retries: int = _opt(3, "retries with backoff of transient storage read errors per image")
    image_timeout: float | None = _opt(None, "seconds one image may take before it becomes an error row (null: no limit)")
    overlays: bool = _opt(True, "write overlay PNGs per explained label and a superpixel PNG per image")
    overlay_display: str = _opt("outline", "overlay style: outline or block (R lime's display)")
    overlay_features: int = _opt(5, "most positive superpixels drawn per label overlay")
    overlay_max_side: int = _opt(1024, "longest side of overlay PNGs in pixels (0: the original size)")
    metrics: bool = _opt(True, "compute deletion/insertion AUC for the top label")
    database: str | None = _opt(None, "register images/explanations/features in this Spark catalog database")
    report: bool = _opt(True, "write the static HTML audit report under report/run_id=R/")
    log_level: str = _opt("INFO", "log level of lime-spark's own loggers")

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.metadata.get("required") and not getattr(self, f.name):
                raise ConfigurationError(
                    f"Missing required option {f.name!r} (--{f.name.replace('_', '-')})."
                )
        for name in ("num_samples", "top_labels", "batch_size", "n_superpixels",
                     "overlay_features", "read_retries", "max_pixels", "max_bytes",
                     "max_decode_bytes"):
            check_int(name, getattr(self, name), minimum=0 if name == "read_retries" else 1)
        check_int("num_samples", self.num_samples, minimum=2)
        check_int("n_superpixels", self.n_superpixels, minimum=2)
        check_int("seed", self.seed)
        check_int("overlay_max_side", self.overlay_max_side, minimum=0)
        for name in ("partitions", "num_features"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), minimum=1)
        check_real("kernel_width", self.kernel_width, minimum=0, exclusive_minimum=True)
        if self.image_timeout is not None:
            check_real("image_timeout", self.image_timeout, minimum=0, exclusive_minimum=True)
        check_one_of("segmentation", self.segmentation, SEGMENTERS)
        check_one_of("feature_selection", self.feature_selection, FEATURE_SELECTIONS)
        check_one_of("output_activation", self.output_activation, ("none", "softmax", "sigmoid"))
        check_one_of("overlay_display", self.overlay_display, ("outline", "block"))
        check_one_of("log_level", str(self.log_level).upper(),
                     ("DEBUG", "INFO", "WARNING", "ERROR"))
        for name in ("model_args", "segmentation_params"):
            if not isinstance(getattr(self, name), Mapping):
                raise ConfigurationError(
                    f"Expected {name} to be a mapping. Received: {name}={getattr(self, name)!r}"
                )
        check_real("lock_stale_seconds", self.lock_stale_seconds, minimum=0, exclusive_minimum=True)
        for name in ("overlays", "metrics", "report", "break_stale_lock"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(
                    f"Expected {name} to be true or false. Received: {name}={getattr(self, name)!r}"
                )
        if self.run_id is not None:
            check_run_id(self.run_id)
        if self.database is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}",
                                                          str(self.database)):
            raise ConfigurationError(
                "Expected database to be a SQL identifier (letters, digits and '_', not starting "
                f"with a digit). Received: database={self.database!r}"
            )

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
    return frozenset(f.name for f in fields(JobConfig) if str(f.type) in ("str", "str | None"))


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
        if head in ("model_args", "segmentation_params"):
            values.setdefault(head, {})
            values[head] = {**values[head], sub: value}
            return
    values[key] = value


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
