"""Tables in the catalog, the Thrift JDBC server, and docs/queries.sql in beeline and DuckDB.

Real local Spark with a Hive metastore (embedded Derby) in a temporary folder,
a real ``lime-spark sql-server`` subprocess, pyspark's bundled beeline, DuckDB
on the Parquet files.
"""

from __future__ import annotations

import csv
import decimal
import getpass
import io
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lime_spark.cli import run_explain
from lime_spark.config import load_config
from lime_spark.exceptions import ConfigurationError
from lime_spark.spark.catalog import (
    CATALOG_DIR_ENV,
    metastore_dir,
    register_tables,
    release_catalog,
    server_info_path,
)
from lime_spark.spark.sqlserver import beeline_path
from lime_spark.testing import SHAPE_CLASSES

REPO = Path(__file__).resolve().parents[2]

# tests/conftest.py points the catalog at a private temporary folder before any
# session is built, so no test touches ~/.lime-spark.
CATALOG_DIR = Path(os.environ[CATALOG_DIR_ENV])

BEELINE = beeline_path()
QUERIES = ("lowest_fit", "label_drift", "label_mismatch", "errors", "top_superpixels")
LATEST_RUN = "SELECT max(run_id) AS run_id FROM images"
SMALL = {"num_samples": 200, "n_superpixels": 20, "top_labels": 2, "overlays": False,
         "report": False}


@pytest.fixture(scope="module")
def catalog(spark):
    assert metastore_dir(spark) == CATALOG_DIR.absolute()
    return CATALOG_DIR


def _write(root: Path, table: str, run_id: str, rows: list[dict]) -> None:
    folder = root / table / f"run_id={run_id}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-0.parquet")


def _partitions(spark, table: str) -> list[str]:
    return sorted(r[0] for r in spark.sql(f"SHOW PARTITIONS {table}").collect())


def test_register_tables_refreshes_is_idempotent_and_refuses_another_root(spark, catalog,
                                                                          tmp_path):
    root = tmp_path / "out dir"          # a space in the location
    for run in ("a", "b"):
        _write(root, "images", run, [{"image_id": f"{run}1", "status": "ok"}])
        _write(root, "explanations", run, [{"image_id": f"{run}1", "label": 1}])
        _write(root, "features", run, [{"image_id": f"{run}1", "label": 1, "feature": 0}])
    try:
        assert register_tables(spark, "cheap", str(root)) == [
            "cheap.images", "cheap.explanations", "cheap.features"]
        assert _partitions(spark, "cheap.images") == ["run_id=a", "run_id=b"]
        detail = {r[0]: r[1] for r in spark.sql("DESCRIBE TABLE EXTENDED cheap.features").collect()}
        assert detail["Type"] == "EXTERNAL" and detail["Provider"] == "parquet"
        assert detail["Location"].endswith("out dir/features")

        # a new run with a new column; a deleted run; registering again is idempotent
        _write(root, "images", "c", [{"image_id": "c1", "status": "ok", "extra": 2.5}])
        shutil.rmtree(root / "images" / "run_id=a")
        register_tables(spark, "cheap", str(root))
        register_tables(spark, "cheap", str(root) + "/")
        assert _partitions(spark, "cheap.images") == ["run_id=b", "run_id=c"]
        rows = spark.sql("SELECT run_id, image_id, extra FROM cheap.images ORDER BY run_id").collect()
        assert [tuple(r) for r in rows] == [("b", "b1", None), ("c", "c1", 2.5)]
        assert spark.sql("SELECT count(*) FROM cheap.features").first()[0] == 2

        other = tmp_path / "other"
        for table in ("images", "explanations", "features"):
            _write(other, table, "a", [{"image_id": "x"}])
        with pytest.raises(ConfigurationError, match=r"cheap\.images is registered over .*out dir"):
            register_tables(spark, "cheap", str(other))
        with pytest.raises(ConfigurationError, match="SQL identifier"):
            register_tables(spark, "bad-name", str(root))
        with pytest.raises(ConfigurationError, match="Parquet files"):
            register_tables(spark, "cheap2", str(tmp_path / "nothing"))
        with pytest.raises(ConfigurationError, match="database=.*1db"):
            load_config(overrides={"input": "i", "output": "o", "model": "m", "database": "1db"})
        spark.sql("DROP DATABASE cheap CASCADE")      # external tables: the files stay
        assert (root / "images" / "run_id=c" / "part-0.parquet").exists()
    finally:
        release_catalog(spark)
    assert not (REPO / "derby.log").exists() and not (REPO / "metastore_db").exists()
    assert (catalog / "derby.log").exists() and (catalog / "metastore_db").is_dir()


# --- a real job run, the JDBC server, and the audit queries --------------------------------------

def _run(spark, shapes, input_uri, output, **overrides):
    cfg = load_config(overrides={"input": input_uri, "output": str(output),
                                 "model": shapes["model_path"], "preprocess": "none",
                                 "labels": list(SHAPE_CLASSES), **SMALL, **overrides})
    return run_explain(cfg.resolved(), spark=spark)


def _inputs(tmp_path: Path, shapes: dict, n: int, *, corrupt: bool) -> str:
    from .conftest import write_input, write_png

    rows = []
    for i in range(n):
        path = tmp_path / "images" / f"shape {i}.png"
        write_png(path, shapes["images"][i])
        label = SHAPE_CLASSES[int(shapes["labels"][i])]
        if i == 1:                     # a wrong expected label: the mismatch query finds it
            label = next(c for c in SHAPE_CLASSES if c != label)
        rows.append({"path": str(path), "image_id": f"img/{i}", "label": label})
    if corrupt:
        bad = tmp_path / "images" / "broken.jpg"
        bad.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
        rows.append({"path": str(bad), "image_id": "broken", "label": None})
    return write_input(tmp_path / f"input-{n}.parquet", rows)


@pytest.fixture(scope="module")
def first_run(spark, shapes, catalog, tmp_path_factory):
    """Run n1 (4 images) registered with the session's own catalog."""
    tmp = tmp_path_factory.mktemp("audit")
    out = tmp / "out"
    _run(spark, shapes, _inputs(tmp, shapes, 4, corrupt=False), out, run_id="n1",
         database="audit")
    return {"tmp": tmp, "out": out}


def test_job_registers_tables_in_the_catalog(spark, first_run):
    try:
        tables = {t.name: t for t in spark.catalog.listTables("audit")}
        assert set(tables) == {"images", "explanations", "features"}
        assert all(t.tableType == "EXTERNAL" for t in tables.values())
        for name in tables:
            assert _partitions(spark, f"audit.{name}") == ["run_id=n1"]
        assert spark.sql("SELECT count(*) FROM audit.images").first()[0] == 4
    finally:
        release_catalog(spark)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(first_run, catalog):
    """``lime-spark sql-server`` in a subprocess over the test catalog."""
    port = _free_port()
    cwd = first_run["tmp"] / "server-cwd"
    cwd.mkdir()
    log = first_run["tmp"] / "server.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lime_spark.cli", "sql-server", "--port", str(port),
             "--master", "local[1]", "--conf", "spark.ui.enabled=false",
             "--conf", "spark.driver.memory=1g", "--conf", "spark.sql.shuffle.partitions=2"],
            cwd=cwd, stdout=sink, stderr=subprocess.STDOUT,
            env={**os.environ, CATALOG_DIR_ENV: str(catalog)})
    info = {"proc": proc, "port": port, "log": log, "cwd": cwd}
    try:
        deadline = time.monotonic() + 150
        while "jdbc:hive2://" not in log.read_text(errors="replace"):
            assert proc.poll() is None, f"sql-server exited:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"sql-server not up:\n{log.read_text()[-4000:]}"
            time.sleep(0.5)
        yield info
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def second_run(spark, shapes, first_run, server):
    """Run n2 (6 images and a corrupt one) while the server holds the catalog."""
    tmp, out = first_run["tmp"], first_run["out"]
    summary = _run(spark, shapes, _inputs(tmp, shapes, 6, corrupt=True), out, run_id="n2",
                   database="audit")
    assert summary["images"]["error"] == 1
    return out


_MARKER = "SELECT '<<end>>' AS lime_spark_marker;"


def _beeline(port: int, statements: list[str], folder: Path) -> list[list[list[str]]]:
    """Run statements in one beeline session; per statement its CSV rows, header first."""
    script = folder / "statements.sql"
    script.write_text("\n".join(f"{sql}\n{_MARKER}" for sql in statements) + "\n",
                      encoding="utf-8")
    proc = subprocess.run(
        [BEELINE, "-u", f"jdbc:hive2://127.0.0.1:{port}/audit", "-n", getpass.getuser(),
         "--outputformat=csv2", "--silent=true", "-f", str(script)],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=300,
        env={**os.environ, "SPARK_BEELINE_OPTS": "-Ddisable.quoting.for.sv=false"})
    stdout = proc.stdout.decode("utf-8", errors="replace")
    assert proc.returncode == 0, (f"beeline failed:\n{stdout[-2000:]}\n"
                                  f"{proc.stderr.decode(errors='replace')[-4000:]}")
    text = re.sub(r"\rnull *", "", stdout)    # beeline echoes an empty prompt to stdout
    blocks = text.split("lime_spark_marker\n<<end>>\n")
    assert len(blocks) == len(statements) + 1 and not blocks[-1].strip(), text[-2000:]
    return [list(csv.reader(io.StringIO(block))) for block in blocks[:-1]]


def _duckdb(out: Path, sql: str) -> tuple[list[str], list[tuple]]:
    preamble = _duckdb_preamble().replace("/path/to/out", str(out))
    con = duckdb.connect()
    for statement in _statements(preamble):
        con.execute(statement)
    result = con.execute(sql)
    return [d[0] for d in result.description], result.fetchall()


def _duckdb_preamble() -> str:
    text = (REPO / "docs" / "sql.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", text, flags=re.S)
    return next(b for b in blocks if "CREATE OR REPLACE VIEW images" in b)


def _statements(text: str) -> list[str]:
    parts = [p.strip() for p in re.split(r";[ \t]*\n", text + "\n")]
    return [p for p in parts if re.sub(r"--[^\n]*", "", p).strip()]


def _queries() -> dict[str, str]:
    queries = {}
    for statement in _statements((REPO / "docs" / "queries.sql").read_text(encoding="utf-8")):
        match = re.search(r"^-- \([a-z]\) (\w+):", statement, flags=re.M)
        assert match, f"statement without a '-- (x) name:' comment:\n{statement}"
        queries[match.group(1)] = statement + ";"
    return queries


def _same(text: str, value) -> bool:
    if value is None:
        return text == "NULL"
    if isinstance(value, bool):
        return text.lower() == str(value).lower()
    if isinstance(value, (int, float, decimal.Decimal)):
        got = float(text)
        return (math.isnan(got) and math.isnan(float(value))) or math.isclose(
            got, float(value), rel_tol=1e-9, abs_tol=1e-12)
    return text == str(value)


def _agree(beeline_rows: list[list[str]], out: Path, sql: str) -> list[dict]:
    """Assert beeline's rows equal DuckDB's for ``sql``; return DuckDB's rows as dicts."""
    header, *rows = beeline_rows
    columns, expected = _duckdb(out, sql)
    assert header == columns, sql
    assert len(rows) == len(expected), f"{sql}\nbeeline {rows}\nduckdb {expected}"
    for got, want in zip(rows, expected):
        assert all(_same(g, w) for g, w in zip(got, want)), f"beeline {got}\nduckdb {want}"
    return [dict(zip(columns, row)) for row in expected]


def test_queries_give_the_same_results_in_beeline_and_duckdb(server, second_run, tmp_path):
    port, out = server["port"], second_run
    queries = _queries()
    assert tuple(queries) == QUERIES
    # the documented parameters: a literal run id, a label name
    variants = {f"{name}@n1": queries[name].replace(LATEST_RUN, "SELECT 'n1' AS run_id")
                for name in ("label_drift", "errors")}
    assert all(LATEST_RUN in sql for sql in queries.values())
    variants["top_superpixels@ring"] = queries["top_superpixels"].replace(
        "CAST(NULL AS STRING) AS label_name", "'ring' AS label_name")
    partitions = [f"SHOW PARTITIONS {table};" for table in ("images", "explanations", "features")]
    statements = {**queries, **variants}
    blocks = _beeline(port, partitions + list(statements.values()), tmp_path)

    for table, block in zip(("images", "explanations", "features"), blocks):
        assert block == [["partition"], ["run_id=n1"], ["run_id=n2"]], table
    results = {name: _agree(block, out, sql)
               for (name, sql), block in zip(statements.items(), blocks[3:])}

    lowest = results["lowest_fit"]
    assert len(lowest) == 6 and [r["model_r2"] for r in lowest] == sorted(
        r["model_r2"] for r in lowest)
    drift = results["label_drift"]
    assert {(r["run_id"], r["previous_run_id"]) for r in drift} == {("n2", "n1")}
    assert sum(r["images"] for r in drift) == 6 and sum(r["previous_images"] for r in drift) == 4
    assert math.isclose(sum(r["share"] for r in drift), 1.0)
    assert {(r["run_id"], r["previous_run_id"]) for r in results["label_drift@n1"]} == {
        ("n1", None)}
    assert "img/1" in {r["image_id"] for r in results["label_mismatch"]}
    assert [(r["error_class"], r["class_images"], r["image_id"]) for r in results["errors"]] == [
        ("InvalidImageError", 1, "broken")]
    assert results["errors@n1"] == []
    top = results["top_superpixels"]
    assert {r["image_id"] for r in top} == {f"img/{i}" for i in range(6)}
    for image in {r["image_id"] for r in top}:
        shares = [r["cumulative_share"] for r in top if r["image_id"] == image]
        assert shares[-1] >= 0.5 - 1e-9 and all(s < 0.5 for s in shares[:-1])
    assert {r["label_name"] for r in results["top_superpixels@ring"]} <= {"ring"}


def test_sql_server_stops_on_sigterm_and_leaves_the_catalog_usable(spark, server, second_run):
    proc = server["proc"]
    assert json.loads(server_info_path(CATALOG_DIR).read_text())["port"] == server["port"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, server["log"].read_text()[-4000:]
    assert not server_info_path(CATALOG_DIR).exists()
    assert not any((server["cwd"] / name).exists()
                   for name in ("derby.log", "metastore_db", "spark-warehouse"))
    try:       # the metastore is free again: this session sees both runs
        for table in ("images", "explanations", "features"):
            assert _partitions(spark, f"audit.{table}") == ["run_id=n1", "run_id=n2"]
    finally:
        release_catalog(spark)
