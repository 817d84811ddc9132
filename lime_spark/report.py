"""The static HTML audit report of a run (``ROOT/report/run_id=R/index.html``).

Placeholder wired into the job and the CLI; the report work fills it in.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run", "write_report"]


def write_report(output_root: str, run_id: str) -> str | None:
    """Write the report of run ``run_id`` under ``output_root``; return its URI."""
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="the job's output root")
    parser.add_argument("--run-id", required=True, help="the run to report")


def run(args: argparse.Namespace) -> int:
    uri = write_report(args.output, args.run_id)
    print(uri)
    return 0
