"""Logging for entry points and Spark workers: secrets never reach a log line.

:class:`RedactingFormatter` formats every line (workers use it too);
:func:`configure_logging` is the handler setup that only entry points run.
"""

from __future__ import annotations

import logging
import sys

from .storage import redact

__all__ = ["RedactingFormatter", "LOG_FORMAT", "configure_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """A Formatter that passes every formatted line, tracebacks included, through ``redact``."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str) -> None:
    """Entry points only: log lime-spark's records to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    root = logging.getLogger("lime_spark")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
