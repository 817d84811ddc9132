"""The S3A jars are fetched only where needed: a job on S3 without them fails early, with the fix.

:func:`lime_spark.spark.s3.check_s3a_available` runs before any Spark session
(no JVM, no pyspark import); these tests give it a fake environment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lime_spark.exceptions import ConfigurationError, LimeSparkError
from lime_spark.spark import s3
from lime_spark.spark.s3 import S3A_PACKAGE, check_s3a_available


@pytest.fixture
def repo(tmp_path):
    """A checkout's layout: scripts/_setup.sh, conf/jars/pom.xml, no conf/jars/lib yet."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "_setup.sh").write_text("#!/bin/bash\n")
    (tmp_path / "conf" / "jars").mkdir(parents=True)
    (tmp_path / "conf" / "jars" / "pom.xml").write_text("<project/>")
    return tmp_path


@pytest.fixture(autouse=True)
def _no_spark_home(monkeypatch, tmp_path):
    # pyspark's own jars/ never holds hadoop-aws; SPARK_HOME is under the test's control
    monkeypatch.setattr(s3, "_pyspark_jars_dirs", lambda env: [Path(env["SPARK_HOME"]) / "jars"]
                        if env.get("SPARK_HOME") else [])
    monkeypatch.setenv("LIME_SPARK_CONF_DIR", str(tmp_path / "no-conf"))


def _check(uris, repo, conf=None, **kwargs):
    kwargs.setdefault("env", {})
    kwargs.setdefault("spark_submit", False)
    check_s3a_available(uris, conf, jars_dir=repo / "conf" / "jars" / "lib", **kwargs)


def _fill(lib: Path, *names: str) -> None:
    lib.mkdir(parents=True, exist_ok=True)
    for name in names:
        (lib / name).write_bytes(b"")


@pytest.mark.parametrize("uris", [
    ["out/", "/data/images.parquet", None],
    ["file:///data/in.parquet", "gs://bucket/out", "hdfs:///x", "memory://y"],
    [],
])
def test_no_s3_uri_needs_no_jars(uris, repo):
    _check(uris, repo)


@pytest.mark.parametrize("uri", ["s3a://bucket/in.parquet", "s3://bucket/in.parquet",
                                 "S3A://bucket/in.parquet", "s3n://bucket/in.parquet"])
def test_s3_without_jars_is_one_line_naming_the_uri_and_both_fixes(uri, repo, monkeypatch):
    monkeypatch.chdir(repo)
    with pytest.raises(ConfigurationError) as info:
        _check(["out/", uri], repo)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{uri} needs Spark's S3A connector")
    assert "`scripts/_setup.sh --s3a-jars`" in message          # relative: run from the checkout
    assert f"--conf spark.jars.packages={S3A_PACKAGE}" in message
    assert isinstance(info.value, LimeSparkError) and isinstance(info.value, ValueError)


def test_message_gives_the_scripts_full_path_from_elsewhere(repo, monkeypatch):
    monkeypatch.chdir(repo / "conf")
    with pytest.raises(ConfigurationError, match=f"`{repo / 'scripts' / '_setup.sh'} --s3a-jars`"):
        _check(["s3a://b/out"], repo)


def test_without_the_script_the_message_gives_maven_then_only_the_package(repo):
    (repo / "scripts" / "_setup.sh").unlink()
    with pytest.raises(ConfigurationError, match=r"`mvn -q -f \S+pom.xml dependency:copy-dependencies`"):
        _check(["s3a://b/out"], repo)
    (repo / "conf" / "jars" / "pom.xml").unlink()
    with pytest.raises(ConfigurationError) as info:
        _check(["s3a://b/out"], repo)
    assert "run `" not in str(info.value) and S3A_PACKAGE in str(info.value)


def test_fetched_jars_are_enough_but_half_of_them_is_not(repo):
    lib = repo / "conf" / "jars" / "lib"
    _fill(lib, "hadoop-aws-3.5.0.jar")                           # the SDK bundle is missing
    with pytest.raises(ConfigurationError):
        _check(["s3a://b/in"], repo)
    _fill(lib, "bundle-2.35.4.jar", "wildfly-openssl-2.2.5.Final.jar")
    _check(["s3a://b/in", "s3a://b/out"], repo)


@pytest.mark.parametrize("key", ["spark.jars.packages", "spark.jars", "spark.driver.extraClassPath",
                                 "spark.executor.extraClassPath"])
def test_hadoop_aws_named_in_the_spark_conf_is_enough(key, repo):
    _check(["s3a://b/in"], repo, {key: f"com.example:other:1,{S3A_PACKAGE}"})
    with pytest.raises(ConfigurationError):
        _check(["s3a://b/in"], repo, {key: "com.example:other:1"})


def test_spark_local_conf_pyspark_submit_args_and_spark_home_count(repo, tmp_path, monkeypatch):
    conf = tmp_path / "conf-dir"
    conf.mkdir()
    (conf / "spark-local.conf").write_text(f"spark.jars.packages  {S3A_PACKAGE}\n")
    monkeypatch.setenv("LIME_SPARK_CONF_DIR", str(conf))
    _check(["s3a://b/in"], repo)                                 # local master: the file applies
    with pytest.raises(ConfigurationError):
        _check(["s3a://b/in"], repo, master="spark://head:7077")  # a cluster master: it does not
    monkeypatch.setenv("LIME_SPARK_CONF_DIR", str(tmp_path / "no-conf"))

    _check(["s3a://b/in"], repo, env={"PYSPARK_SUBMIT_ARGS": f"--packages {S3A_PACKAGE} pyspark-shell"})
    spark_home = tmp_path / "spark"
    _fill(spark_home / "jars", "hadoop-aws-3.5.0.jar")
    _check(["s3a://b/in"], repo, env={"SPARK_HOME": str(spark_home)})


def test_under_spark_submit_the_driver_jvm_decides(repo, monkeypatch):
    _fill(repo / "conf" / "jars" / "lib", "hadoop-aws-3.5.0.jar", "bundle-2.35.4.jar")
    monkeypatch.setattr(s3, "_driver_jvm_has_s3a", lambda: False)
    with pytest.raises(ConfigurationError) as info:                # local jars: not on its classpath
        _check(["s3a://b/in"], repo, {"spark.jars.packages": S3A_PACKAGE}, spark_submit=True)
    message = str(info.value)
    assert "\n" not in message and f"--packages {S3A_PACKAGE}" in message
    assert "--s3a-jars" in message
    monkeypatch.setattr(s3, "_driver_jvm_has_s3a", lambda: True)
    _check(["s3a://b/in"], repo, spark_submit=True)
    monkeypatch.setattr(s3, "_driver_jvm_has_s3a", lambda: None)   # cannot tell: let Spark say
    _check(["s3a://b/in"], repo, spark_submit=True)


def test_no_jvm_is_started_and_pyspark_is_not_imported(repo, monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert s3._driver_jvm_has_s3a() is None                      # never launches a gateway itself
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from lime_spark.exceptions import ConfigurationError\n"
            "from lime_spark.spark.s3 import check_s3a_available\n"
            "try:\n"
            "    check_s3a_available(['s3a://b/in'], jars_dir=Path(sys.argv[1]), spark_submit=False)\n"
            "except ConfigurationError:\n"
            "    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))\n")
    out = subprocess.run([sys.executable, "-c", code, str(repo / "conf" / "jars" / "lib")],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "[]"
