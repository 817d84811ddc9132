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
import logging
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
from lime_spark.shapes import SHAPE_CLASSES
from lime_spark.spark.catalog import (
    CATALOG_DIR_ENV,
    _derby_locked,
    _jdbc_runner,
    check_catalog,
    metastore_dir,
    register_tables,
    release_catalog,
    server_info_path,
)
from lime_spark.spark.sqlserver import beeline_path, check_bind

REPO = Path(__file__).resolve().parents[2]

# tests/conftest.py points the catalog at a private temporary folder before any
# session is built, so no test touches ~/.lime-spark.
CATALOG_DIR = Path(os.environ[CATALOG_DIR_ENV])

BEELINE = beeline_path()
QUERIES = ("lowest_fit", "label_drift", "label_mismatch", "errors", "top_superpixels")
LATEST_RUN = "SELECT max(run_id) AS run_id FROM images"
SMALL = {"n_samples": 200, "n_superpixels": 20, "top_labels": 2, "overlays": False,
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


# a path with what Spark SQL would substitute is kept as written (not ${env:HOME}: Hadoop cannot
# read a path with ':' in a folder name)
LITERAL_PARTS = ("${spark.app.name}", "out-${spark.master}")
LITERAL_END = "/${spark.app.name}/out-${spark.master}/images"


def _literal_root(tmp_path: Path) -> Path:
    root = tmp_path.joinpath(*LITERAL_PARTS)
    for table in ("images", "explanations", "features"):
        _write(root, table, "r1", [{"image_id": "x"}])
    return root


def test_registration_keeps_variable_references_in_the_output_path(spark, catalog, tmp_path):
    root = _literal_root(tmp_path)
    try:
        register_tables(spark, "literal", str(root))
        register_tables(spark, "literal", str(root))          # same root: no "another root"
        detail = {r[0]: r[1] for r in spark.sql("DESCRIBE TABLE EXTENDED literal.images").collect()}
        assert detail["Location"].endswith(LITERAL_END)
        assert _partitions(spark, "literal.features") == ["run_id=r1"]
        props = dict(tuple(r) for r in spark.sql("SHOW TBLPROPERTIES literal.images").collect())
        assert props["lime_spark.output"] == str(root)
        # the session's own setting is back: substitution still works for the user
        assert spark.sql("SELECT '${spark.app.name}'").first()[0] == spark.sparkContext.appName
        spark.sql("DROP DATABASE literal CASCADE")
    finally:
        release_catalog(spark)


def test_check_catalog_refuses_a_metastore_another_process_holds(spark, catalog, tmp_path):
    with pytest.raises(ConfigurationError, match="SQL identifier.*Received: database='bad-name'"):
        check_catalog(spark, "bad-name")
    spark.sql("SHOW DATABASES").collect()         # this session opens the metastore ...
    check_catalog(spark, "audit")                 # ... which does not count as another process
    metastore = catalog / "metastore_db"
    import pyspark

    jars = sorted(Path(pyspark.__file__).parent.joinpath("jars").glob("derby*.jar"))
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get(
        "JAVA_HOME") else "java"
    holder = subprocess.Popen(                    # another JVM with the metastore open
        [java, f"-Dderby.system.home={catalog}", "-cp", os.pathsep.join(map(str, jars)),
         "org.apache.derby.tools.ij"],
        cwd=catalog, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        holder.stdin.write(f"connect 'jdbc:derby:{metastore}';\n".encode())
        holder.stdin.flush()
        deadline = time.monotonic() + 60
        while not _derby_locked(metastore):
            assert holder.poll() is None and time.monotonic() < deadline, "ij did not boot Derby"
            time.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(ConfigurationError,
                           match=r"Expected the catalog in .* to be free\. Received: it is open "
                                 r"in another process .*lime-spark sql-server"):
            check_catalog(spark, "audit")
        assert time.monotonic() - started < 5
        # the job checks the catalog before anything else of its own: no image, no table
        import pyarrow as pa
        import pyarrow.parquet as pq

        from lime_spark.cli import run_explain
        from lime_spark.config import load_config

        pq.write_table(pa.table({"path": [str(tmp_path / "a.png")]}), tmp_path / "in.parquet")
        (tmp_path / "never-loaded.keras").write_bytes(b"not read: the catalog fails first")
        config = load_config(overrides={
            "input": str(tmp_path / "in.parquet"), "output": str(tmp_path / "out"),
            "model": str(tmp_path / "never-loaded.keras"), "database": "audit"}).resolved()
        with pytest.raises(ConfigurationError, match="to be free"):
            run_explain(config, spark=spark)
        assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    finally:
        holder.stdin.close()                      # ij exits at end of input
        try:
            holder.wait(30)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
    check_catalog(spark, "audit")


# --- the server's bind address (no JVM) ----------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost",
                                  "LOCALHOST"])
def test_loopback_binds_need_nothing(host):
    assert check_bind(host, {}) == host


@pytest.mark.parametrize("host,conf", [
    ("0.0.0.0", {}), ("::", {}), ("192.168.1.5", {}), ("myhost.example.com", {}),
    ("0.0.0.0", {"spark.hadoop.hive.server2.authentication": "NONE"}),
    ("0.0.0.0", {"hive.server2.authentication": "nosasl"}),
])
def test_non_loopback_bind_without_authentication_is_refused(host, conf):
    with pytest.raises(ConfigurationError,
                       match=r"Expected --bind to be a loopback address .* Received: --bind "
                             + re.escape(host) + r" .*--insecure-bind"):
        check_bind(host, conf)


def test_non_loopback_bind_with_authentication_or_insecure_bind(caplog):
    assert check_bind("0.0.0.0", {"spark.hadoop.hive.server2.authentication": "LDAP"}) == "0.0.0.0"
    assert check_bind("10.0.0.5", {"hive.server2.authentication": "KERBEROS"}) == "10.0.0.5"
    with caplog.at_level(logging.WARNING, logger="lime_spark.spark.sqlserver"):
        assert check_bind("0.0.0.0", {}, insecure=True) == "0.0.0.0"
    assert "WITHOUT AUTHENTICATION" in caplog.text


@pytest.mark.parametrize("extra,env", [
    (["--bind", "0.0.0.0"], None),
    (["--conf", "spark.hadoop.hive.server2.thrift.bind.host=0.0.0.0"], None),  # not a way around
    (["--conf", "hive.server2.thrift.bind.host=10.1.2.3"], None),
    ([], "0.0.0.0"),                       # HiveServer2 prefers this variable to its settings
])
def test_sql_server_refuses_an_open_bind_before_starting_spark(monkeypatch, capsys, extra, env):
    import lime_spark.cli
    import lime_spark.spark.session

    def no_session(**kwargs):
        raise AssertionError("a session was built")

    monkeypatch.setattr(lime_spark.spark.session, "build_session", no_session)
    monkeypatch.setattr(lime_spark.cli, "configure_logging", lambda level: None)
    if env is None:
        monkeypatch.delenv("HIVE_SERVER2_THRIFT_BIND_HOST", raising=False)
    else:
        monkeypatch.setenv("HIVE_SERVER2_THRIFT_BIND_HOST", env)
    assert lime_spark.cli.main(["sql-server", "--port", str(_free_port()), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lime-spark: error: Expected ")
    assert ("loopback address" in err) if env is None else ("HIVE_SERVER2_THRIFT_BIND_HOST" in err)


# --- a real job run, the JDBC server, and the audit queries --------------------------------------

def _run(spark, shapes, input_uri, output, **overrides):
    cfg = load_config(overrides={"input": input_uri, "output": str(output),
                                 "model": shapes["model_path"], "preprocess": "none",
                                 "label_names": list(SHAPE_CLASSES), **SMALL, **overrides})
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


def _listening_addresses(port: int) -> set:
    """Addresses of LISTEN sockets on ``port`` (Linux /proc/net/tcp{,6})."""
    import ipaddress

    found = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = b"".join(bytes.fromhex(address[i:i + 8])[::-1]     # little-endian words
                               for i in range(0, len(address), 8))
                found.add(ipaddress.ip_address(raw))
    return found


def test_sql_server_listens_on_loopback_only(server):
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp")
    addresses = _listening_addresses(server["port"])
    assert addresses and all(
        a.is_loopback or (a.version == 6 and a.ipv4_mapped and a.ipv4_mapped.is_loopback)
        for a in addresses), addresses
    info = json.loads(server_info_path(CATALOG_DIR).read_text())
    assert info["host"] == info["bind"] == "127.0.0.1"


def test_registration_through_the_server_keeps_variable_references(spark, server, tmp_path):
    root = _literal_root(tmp_path)
    url = f"jdbc:hive2://127.0.0.1:{server['port']}/default"
    assert register_tables(spark, "literal_jdbc", str(root)) == [
        "literal_jdbc.images", "literal_jdbc.explanations", "literal_jdbc.features"]
    with _jdbc_runner(spark, url) as run:
        try:
            location = next(r[1] for r in run("DESCRIBE TABLE EXTENDED literal_jdbc.images")
                            if r[0] == "Location")
            assert location.endswith(LITERAL_END)
            assert [r[0] for r in run("SHOW PARTITIONS literal_jdbc.images")] == ["run_id=r1"]
        finally:
            run("DROP DATABASE literal_jdbc CASCADE")


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
