"""Options declared once: a dataclass field with its default, help text and constraint.

Each stage declares its options as a frozen dataclass (``ExplainerConfig`` in
:mod:`lime_spark.explainer`, ``BatchSettings`` in :mod:`lime_spark.batch`, the
model, input and run sections in :mod:`lime_spark.config`), each field made
with :func:`option`, as scikit-learn declares ``_parameter_constraints``.
:func:`validate` checks an instance against its declarations;
:func:`lime_spark.config.JobConfig` is composed of the sections' fields, so
the command line, ``conf/default.yaml``, ``--help`` and validation all come
from these declarations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ._validation import check_int, check_one_of, check_real
from .exceptions import ConfigurationError

__all__ = ["option", "validate", "job_fields", "canonical_names", "Int", "IntOrAuto", "Real",
           "OneOf", "Bool", "MappingOf", "Optional", "configured"]

Constraint = Callable[[str, Any], Any]
"""Checks ``(name, value)`` and raises ConfigurationError (the check_* style)."""


def Int(minimum: int | None = None, maximum: int | None = None) -> Constraint:
    return lambda name, value: check_int(name, value, minimum=minimum, maximum=maximum)


def IntOrAuto(minimum: int | None = None) -> Constraint:
    """An int (>= minimum) or the string ``"auto"``."""
    def check(name: str, value: Any) -> Any:
        return value if value == "auto" else check_int(name, value, minimum=minimum)
    return check


def Real(minimum: float | None = None, *, exclusive: bool = False) -> Constraint:
    return lambda name, value: check_real(name, value, minimum=minimum,
                                          exclusive_minimum=exclusive)


def OneOf(options: Any, *, upper: bool = False, or_callable: bool = False) -> Constraint:
    def check(name: str, value: Any) -> Any:
        if or_callable and callable(value):
            return value
        return check_one_of(name, str(value).upper() if upper else value, tuple(options))
    return check


def Bool() -> Constraint:
    def check(name: str, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ConfigurationError(
                f"Expected {name} to be true or false. Received: {name}={value!r}")
        return value
    return check


def MappingOf() -> Constraint:
    def check(name: str, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ConfigurationError(
                f"Expected {name} to be a mapping. Received: {name}={value!r}")
        return value
    return check


def Optional(constraint: Constraint) -> Constraint:
    return lambda name, value: value if value is None else constraint(name, value)


def option(default: Any, help: str, constraint: Constraint | None = None, *,
           required: bool = False, job: bool = True, aliases: tuple[str, ...] = ()) -> Any:
    """A dataclass field declaring one option.

    Parameters
    ----------
    default : Any
        Its default (a dict or list default is copied per instance).
    help : str
        One line: the ``--help`` text and the comment in ``conf/default.yaml``.
    constraint : callable, optional
        ``constraint(name, value)`` raises ConfigurationError for a bad value.
    required : bool
        The job needs a value (``input``, ``output``, ``model``).
    job : bool
        False for a value the job sets itself (a run's seed, its output root),
        not an option of ``lime-spark explain``.
    aliases : tuple of str
        Other accepted names (Python lime's ``num_samples`` for ``n_samples``):
        keyword arguments, YAML keys and ``--flags`` under these names set
        the option.
    """
    meta = {"help": help, "constraint": constraint, "required": required, "job": job,
            "aliases": tuple(aliases)}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def validate(instance: Any) -> None:
    """Check every field of a dataclass instance against its declared constraint."""
    for f in dataclasses.fields(instance):
        constraint = f.metadata.get("constraint")
        if constraint is not None:
            constraint(f.name, getattr(instance, f.name))


def job_fields(section: type) -> list[dataclasses.Field]:
    """The fields of a stage's dataclass that are options of the job, in declaration order."""
    return [f for f in dataclasses.fields(section) if f.metadata.get("job", False)]


def canonical_names(section: type, values: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """``values`` with every alias key renamed to its option's name.

    Raises
    ------
    ConfigurationError
        When an option is given under two of its names.
    """
    alias_of = {alias: f.name for f in dataclasses.fields(section)
                for alias in f.metadata.get("aliases", ())}
    out: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for key, value in values.items():
        name = alias_of.get(key, key)
        if name in out:
            raise ConfigurationError(
                f"Expected {what} option {name!r} once. Received it twice: as "
                f"{given_as[name]!r} and as {key!r}")
        out[name], given_as[name] = value, key
    return out


def configured(section: type, config: Any, overrides: Mapping[str, Any], *, what: str) -> Any:
    """A stage's config: ``config`` (or the defaults) with the keyword ``overrides`` applied.

    The constructor arguments of an explainer (``ImageExplainer(config, **overrides)``):
    aliases are renamed, ``None`` for a dict option means empty, and the result is
    validated as any instance of ``section``.

    Raises
    ------
    ConfigurationError
        ``config`` is not a ``section``, or an override names no option.
    """
    if config is not None and not isinstance(config, section):
        raise ConfigurationError(
            f"Expected config to be an {section.__name__}. Received: {type(config).__name__}")
    overrides = canonical_names(section, overrides, what=what)
    known = {f.name for f in dataclasses.fields(section)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigurationError(
            f"Unknown {what} option(s) {unknown}. Known options: {sorted(known)}")
    for name in ("segmentation_params", "fill_params"):
        if name in overrides and overrides[name] is None:
            overrides[name] = {}
    return dataclasses.replace(config or section(), **overrides)
