"""The table declarations: every schema derived from them agrees, the README shows them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lime_spark import tables
from lime_spark.exceptions import ConfigurationError
from lime_spark.tables import (
    EXPLANATION_COLUMNS,
    FEATURE_COLUMNS,
    IMAGE_COLUMNS,
    TABLES,
    arrow_schema,
    ddl,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def _spark_type(sql_type: str):
    """The pyspark DataType whose DDL name (``simpleString``) is ``sql_type``, without a JVM."""
    from pyspark.sql import types as T

    match = re.fullmatch(r"ARRAY<(.+)>", sql_type)
    if match:
        return T.ArrayType(_spark_type(match.group(1)))
    atomic = {t.simpleString().upper(): t for t in (
        T.StringType(), T.IntegerType(), T.LongType(), T.DoubleType(), T.BooleanType())}
    return atomic[sql_type]


def _spark_schema(name: str):
    """The StructType of a table, from its DDL string (names and Spark's own type names)."""
    from pyspark.sql import types as T

    fields = [part.strip().split(" ", 1) for part in ddl(name).split(", ")]
    return T.StructType([T.StructField(n, _spark_type(t), True) for n, t in fields])


def test_tables_and_column_tuples():
    assert TABLES == ("images", "explanations", "features")
    assert tables.column_names("images") == IMAGE_COLUMNS
    assert tables.column_names("explanations") == EXPLANATION_COLUMNS
    assert tables.column_names("features") == FEATURE_COLUMNS
    for name in TABLES:
        names = tables.column_names(name)
        assert len(set(names)) == len(names) and tables.PARTITION_COLUMN not in names
        assert tuple(arrow_schema(name).names) == names
        assert all(c.doc and "\n" not in c.doc and "|" not in c.doc
                   for c in tables.table(name).columns)


def test_the_old_names_still_import():
    from lime_spark import batch
    from lime_spark.spark import catalog

    assert (batch.IMAGE_COLUMNS, batch.EXPLANATION_COLUMNS, batch.FEATURE_COLUMNS) == \
        (IMAGE_COLUMNS, EXPLANATION_COLUMNS, FEATURE_COLUMNS)
    assert catalog.TABLES == TABLES


@pytest.mark.parametrize("name", TABLES)
def test_arrow_schema_is_what_pyspark_derives_from_the_ddl(name):
    from pyspark.sql.pandas.types import to_arrow_schema

    spark_schema = _spark_schema(name)
    # the DDL round-trips through Spark's type names: every type is a Spark DDL type
    assert spark_schema.simpleString().upper() == \
        "STRUCT<" + ddl(name).replace(" ", ":").replace(",:", ",").upper() + ">"
    assert arrow_schema(name).equals(to_arrow_schema(spark_schema), check_metadata=True)


def test_result_schema_is_the_three_tables():
    from lime_spark.spark.job import RESULT_SCHEMA

    assert RESULT_SCHEMA.startswith(ddl("images") + ", ")
    assert f"explanations ARRAY<STRUCT<{ddl('explanations')}>>" in RESULT_SCHEMA
    assert f"features ARRAY<STRUCT<{ddl('features')}>>" in RESULT_SCHEMA


def test_unknown_names_and_types_are_errors():
    with pytest.raises(ConfigurationError, match="Received: table='image'"):
        tables.table("image")
    with pytest.raises(ConfigurationError, match="Received: sql_type='int'"):
        tables.Column("x", "int", True, "lower case")
    assert tables.Column("x", "ARRAY<BIGINT>", True, "ok").sql_type == "ARRAY<BIGINT>"


def test_readme_shows_the_declarations():
    text = README.read_text(encoding="utf-8")
    assert tables.readme_markdown() in text, (
        "README.md's tables block is out of date: run "
        "`python -m lime_spark.tables --write-readme README.md`")
    assert tables.update_readme(text) == text
    for name in TABLES:
        assert f"| `{tables.table(name).path}` |" in text


def test_update_readme_replaces_only_the_block():
    stale = f"# T\n\nbefore\n{tables.README_BEGIN}\nold\n{tables.README_END}\nafter\n"
    assert tables.update_readme(stale) == f"# T\n\nbefore\n{tables.readme_markdown()}after\n"
    with pytest.raises(ConfigurationError, match="end marker missing"):
        tables.update_readme(f"{tables.README_BEGIN}\nold\n")


def test_main_prints_and_writes_the_block(tmp_path, capsys):
    assert tables.main(["--readme"]) == 0
    assert capsys.readouterr().out == tables.readme_markdown()
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{tables.README_BEGIN}\n{tables.README_END}\ny\n", encoding="utf-8")
    assert tables.main(["--write-readme", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == f"x\n{tables.readme_markdown()}y\n"


@pytest.fixture(scope="module")
def classifier(tiny_classifier):
    return tiny_classifier


def test_rows_keep_the_declared_columns_types_and_nulls(tmp_path, classifier):
    """explain_record's rows: the declared columns, Arrow-typed, null only where declared."""
    import numpy as np
    import pyarrow as pa
    from PIL import Image

    from lime_spark import ImageExplainer
    from lime_spark.batch import BatchSettings, ImageRecord, explain_record

    path = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
                    ).save(path)
    explainer = ImageExplainer(segmentation="grid", n_superpixels=9, n_samples=32)
    settings = BatchSettings(run_id="t", run_seed=1, output_root=str(tmp_path / "out"),
                             top_labels=2, overlays=False)
    ok = explain_record(ImageRecord(None, str(path)), classifier=classifier,
                        explainer=explainer, settings=settings)
    failed = explain_record(ImageRecord(None, None), classifier=classifier,
                            explainer=explainer, settings=settings)
    assert ok.image["status"] == "ok" and failed.image["status"] == "error"
    rows = {"images": [ok.image, failed.image], "explanations": ok.explanations,
            "features": ok.features}
    for name in TABLES:
        declared = tables.table(name)
        assert rows[name] and all(set(row) == set(declared.column_names) for row in rows[name])
        pa.Table.from_pylist(rows[name], schema=arrow_schema(name))     # types fit
        for column in declared.columns:
            if not column.nullable:
                assert all(row[column.name] is not None for row in rows[name]), column.name
