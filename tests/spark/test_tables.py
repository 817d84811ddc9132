"""The tables' Arrow schemas are what Spark derives from their DDL (needs the JVM's parser)."""

from __future__ import annotations

import pytest

from lime_spark.tables import TABLES, arrow_schema, ddl


@pytest.mark.parametrize("name", TABLES)
def test_arrow_schema_is_sparks(spark, name):
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import _parse_datatype_string

    assert arrow_schema(name).equals(to_arrow_schema(_parse_datatype_string(ddl(name))))
