"""S3-compatible object storage settings shared by Spark (S3A) and fsspec (s3fs).

Placeholder wired into :func:`lime_spark.spark.session.build_session`; the S3
work fills it in.
"""

from __future__ import annotations

__all__ = ["s3a_settings"]


def s3a_settings() -> dict[str, str]:
    """Spark settings (``spark.hadoop.fs.s3a.*``, S3A jars) derived from the environment."""
    return {}
