"""Run ids: what a run id may be, checked wherever one becomes part of a path."""

from __future__ import annotations

import re
from typing import Any

from .exceptions import ConfigurationError

__all__ = ["RUN_ID_PATTERN", "check_run_id"]

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
