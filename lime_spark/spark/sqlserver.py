"""``lime-spark sql-server``: the Spark Thrift JDBC/ODBC server over the catalog.

Placeholder; the SQL work fills it in.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=10000, help="port on 127.0.0.1")


def run(args: argparse.Namespace) -> int:
    from ..exceptions import LimeSparkError

    raise LimeSparkError("sql-server is not implemented yet")
