"""Constraint checks used once, at the public boundaries."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any

from .exceptions import ConfigurationError


def check_one_of(name: str, value: Any, options: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``options``, else raise."""
    options = tuple(options)
    if value not in options:
        listed = ", ".join(f"`{o}`" for o in options)
        raise ConfigurationError(
            f"Expected {name} to be one of {listed}. Received: {name}={value!r}"
        )
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """Return ``value`` as int if it is an integer within bounds, else raise."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ConfigurationError(
            f"Expected {name} to be an integer. Received: {name}={value!r}"
        )
    value = int(value)
    if minimum is not None and value < minimum:
        raise ConfigurationError(
            f"Expected {name} >= {minimum}. Received: {name}={value!r}"
        )
    if maximum is not None and value > maximum:
        raise ConfigurationError(
            f"Expected {name} <= {maximum}. Received: {name}={value!r}"
        )
    return value


def check_real(name: str, value: Any, *, minimum: float | None = None,
               exclusive_minimum: bool = False) -> float:
    """Return ``value`` as float if it is a finite real within bounds, else raise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigurationError(
            f"Expected {name} to be a number. Received: {name}={value!r}"
        )
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigurationError(
            f"Expected {name} to be finite. Received: {name}={value!r}"
        )
    if minimum is not None:
        bad = value <= minimum if exclusive_minimum else value < minimum
        if bad:
            op = ">" if exclusive_minimum else ">="
            raise ConfigurationError(
                f"Expected {name} {op} {minimum}. Received: {name}={value!r}"
            )
    return value
