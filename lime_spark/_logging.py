"""Log formatting for entry points and Spark workers: secrets never reach a log line."""

from __future__ import annotations

import logging

from .storage import redact

__all__ = ["RedactingFormatter", "LOG_FORMAT"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """A Formatter that passes every formatted line, tracebacks included, through ``redact``."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
