"""Spark glue: the only part of lime-spark that imports pyspark."""

from .job import run_job

__all__ = ["run_job"]
