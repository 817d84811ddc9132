"""The Spark catalog (Hive metastore) where the output tables are registered.

Placeholder wired into the session and the job; the SQL work fills it in.
"""

from __future__ import annotations

from typing import Any

__all__ = ["catalog_settings", "register_tables"]


def catalog_settings() -> dict[str, str]:
    """Spark settings for the project's Hive metastore and warehouse."""
    return {}


def register_tables(spark: Any, database: str, root: str) -> None:
    """Register images/explanations/features over ``root`` in ``database``."""
    from ..exceptions import ConfigurationError

    raise ConfigurationError("--database is not supported yet")
