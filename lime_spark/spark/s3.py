"""S3-compatible object storage settings shared by Spark (S3A) and fsspec (s3fs).

One configuration for both sides: the standard AWS variables. botocore (and so
s3fs, which the job uses for images, overlays and ``summary.json``) reads them
itself; :func:`s3a_settings` translates them into ``spark.hadoop.fs.s3a.*``
for Spark's S3A connector, which the job uses for the Parquet tables.

========================================  ==============================================
environment                               Spark (S3A)
========================================  ==============================================
``AWS_ENDPOINT_URL_S3``,                  ``fs.s3a.endpoint``; a non-AWS endpoint also
``AWS_ENDPOINT_URL``                      turns on ``fs.s3a.path.style.access`` (as
                                          botocore does), ``http://`` turns off
                                          ``fs.s3a.connection.ssl.enabled``
``AWS_DEFAULT_REGION``, ``AWS_REGION``    ``fs.s3a.endpoint.region`` (``us-east-1``
                                          with a custom endpoint and no region, as
                                          botocore)
``AWS_ACCESS_KEY_ID``,                    ``fs.s3a.aws.credentials.provider`` reads them
``AWS_SECRET_ACCESS_KEY``,                from the environment
``AWS_SESSION_TOKEN``                     (``EnvironmentVariableCredentialsProvider``):
                                          the secret is never copied into the Spark conf
``AWS_PROFILE``, ``~/.aws``,              the AWS SDK's default chain
``AWS_WEB_IDENTITY_TOKEN_FILE``, ...      (``DefaultCredentialsProvider``: profiles, SSO,
                                          web identity, containers, instance roles)
nothing                                   nothing: Hadoop's own defaults and
                                          ``core-site.xml`` apply (instance roles)
========================================  ==============================================

``spark.hadoop.fs.s3a.*`` given with ``--conf`` (or per bucket,
``fs.s3a.bucket.NAME.*``) override these, for whatever must differ between the
two sides; values given in the Spark conf win because
:func:`lime_spark.spark.session.build_session` applies them last.  S3A keys
in the conf (``fs.s3a.access.key``) come first in the provider chain.

Outside spark-submit, the S3A jars fetched by ``scripts/_setup.sh --s3a-jars``
(or ``scripts/test.sh``) into ``conf/jars/lib/`` go on the classpath: for local masters (``local[*]``,
``local-cluster[...]``: same machine) on ``spark.driver.extraClassPath`` and
``spark.executor.extraClassPath``, because ``spark.jars`` would copy the
686 MB AWS SDK bundle into every session's scratch folder; for other masters
on ``spark.jars``, which ships them to the executors.  Under spark-submit the
submitted ``--jars``/``--packages`` are left alone.

Nothing fetches the jars unasked (the demo does not need them):
:func:`check_s3a_available` tells, before a Spark session starts, whether a
job whose tables are on S3 will find the connector, and raises a
:class:`~lime_spark.exceptions.ConfigurationError` that names the fix when it
will not.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from ..exceptions import ConfigurationError
from ._env import conf_dir, is_spark_submit, read_spark_conf

__all__ = ["s3a_settings", "s3a_jars", "check_s3a_available", "HADOOP_AWS_VERSION",
           "S3A_PACKAGE", "S3A_SETUP_COMMAND"]

logger = logging.getLogger(__name__)

HADOOP_AWS_VERSION = "3.5.0"
"""The Hadoop release that pyspark bundles (``pyspark/jars/hadoop-client-api-*.jar``)."""

S3A_PACKAGE = f"org.apache.hadoop:hadoop-aws:{HADOOP_AWS_VERSION}"
"""``spark-submit --packages`` coordinate for clusters."""

S3A_SETUP_COMMAND = "scripts/_setup.sh --s3a-jars"
"""Fetches the S3A jars into ``conf/jars/lib`` (Maven, ``conf/jars/pom.xml``)."""

_S3_SCHEMES = ("s3", "s3a", "s3n")
_S3A_CLASS = "org.apache.hadoop.fs.s3a.S3AFileSystem"
_CLASSPATH_KEYS = ("spark.jars", "spark.jars.packages", "spark.driver.extraClassPath",
                   "spark.executor.extraClassPath")

_PREFIX = "spark.hadoop.fs.s3a."
_TEMPORARY = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
_SIMPLE = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
_ENVIRONMENT = "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
_INSTANCE = "org.apache.hadoop.fs.s3a.auth.IAMInstanceCredentialsProvider"
_DEFAULT_CHAIN = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"
_PROFILE_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
                      "AWS_CONFIG_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                      "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def _endpoint(env: Mapping[str, str]) -> str | None:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _is_aws_host(host: str) -> bool:
    return host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")


def _endpoint_settings(endpoint: str) -> dict[str, str]:
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    settings = {_PREFIX + "endpoint": endpoint}
    if parts.scheme == "http":
        settings[_PREFIX + "connection.ssl.enabled"] = "false"
    if not _is_aws_host(parts.hostname or ""):
        # MinIO, Ceph, moto, ...: buckets are not DNS names there; botocore
        # addresses custom endpoints by path as well.
        settings[_PREFIX + "path.style.access"] = "true"
    return settings


def _profile_in_use(env: Mapping[str, str], home: Path | None) -> bool:
    if any(env.get(name) for name in _PROFILE_VARIABLES):
        return True
    return home is not None and any(
        (home / ".aws" / name).is_file() for name in ("credentials", "config"))


def _credential_providers(env: Mapping[str, str], home: Path | None) -> str | None:
    """The S3A provider chain for what the environment holds, or None to keep Hadoop's.

    Keys set in the Spark conf (``fs.s3a.access.key``, ``fs.s3a.session.token``)
    always come first, so ``--conf`` can override the environment.
    """
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        # read from the environment by each JVM that needs them (the driver and,
        # locally, the executors); executors without them fall back to roles
        return ",".join((_TEMPORARY, _SIMPLE, _ENVIRONMENT, _INSTANCE))
    if _profile_in_use(env, home):
        return ",".join((_TEMPORARY, _SIMPLE, _DEFAULT_CHAIN))
    return None


def s3a_jars(folder: Path | None = None) -> list[Path]:
    """The S3A jars in ``folder`` (default ``conf/jars/lib``), sorted; empty when absent."""
    if folder is None:
        folder = _default_jars_dir()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.jar") if p.is_file())


def _default_jars_dir() -> Path:
    return conf_dir() / "jars" / "lib"


def _complete_jars(jars: list[Path]) -> bool:
    """hadoop-aws and the AWS SDK bundle it needs (what ``conf/jars/pom.xml`` resolves)."""
    names = [p.name for p in jars]
    return (any(n.startswith("hadoop-aws-") for n in names)
            and any(n.startswith("bundle-") for n in names))


def _names_hadoop_aws(value: str | None) -> bool:
    return "hadoop-aws" in (value or "")


def _pyspark_jars_dirs(env: Mapping[str, str]) -> list[Path]:
    """``$SPARK_HOME/jars`` and pyspark's own ``jars/``, found without importing pyspark."""
    folders = []
    if env.get("SPARK_HOME"):
        folders.append(Path(env["SPARK_HOME"]) / "jars")
    try:
        spec = importlib.util.find_spec("pyspark")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        folders.append(Path(location) / "jars")
    return folders


def _fetch_command(folder: Path) -> str | None:
    """How to fill ``folder`` on this machine: the setup script of its checkout, or Maven."""
    repo = folder.parent.parent.parent                  # <repo>/conf/jars/lib
    script = repo / "scripts" / "_setup.sh"
    if script.is_file():
        try:
            shown = script.relative_to(Path.cwd()) if repo == Path.cwd() else script
        except ValueError:
            shown = script
        return f"{shown} --s3a-jars"
    pom = folder.parent / "pom.xml"
    if pom.is_file():
        return f"mvn -q -f {pom} dependency:copy-dependencies"
    return None


def _driver_jvm_has_s3a() -> bool | None:
    """Under spark-submit: whether the driver JVM (already running) can load S3A.

    None when it cannot be told; the job then goes on and Spark reports.
    """
    if "PYSPARK_GATEWAY_PORT" not in os.environ:        # no JVM to ask: never start one here
        return None
    try:
        from py4j.protocol import Py4JJavaError
        from pyspark import SparkContext

        SparkContext._ensure_initialized()          # connects to spark-submit's JVM; no context
        jvm = SparkContext._jvm
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        try:
            jvm.java.lang.Class.forName(_S3A_CLASS, False, loader)
        except Py4JJavaError:
            return False
        return True
    except Exception:                                 # noqa: BLE001 - no verdict, no block
        logger.debug("could not ask the driver JVM for %s", _S3A_CLASS, exc_info=True)
        return None


def check_s3a_available(uris: Iterable[str | None], conf: Mapping[str, str] | None = None, *,
                        master: str | None = None, jars_dir: Path | None = None,
                        env: Mapping[str, str] | None = None,
                        spark_submit: bool | None = None) -> None:
    """Fail early, with the fix, when Spark is to use S3 without its S3A connector.

    Call it before the Spark session starts, with the URIs that Spark itself
    reads or writes (the job's ``input`` and ``output``; images, model and
    labels go through fsspec/s3fs and need no jars).  Nothing happens unless
    one of them is ``s3://``, ``s3a://`` or ``s3n://``.  The connector counts
    as available when any of these holds:

    - under spark-submit (its ``--jars``, ``--packages``, a cluster's own
      Spark): the driver JVM, running already, loads ``S3AFileSystem``; when
      that cannot be asked, the check passes.  Otherwise:
    - ``conf/jars/lib`` (``jars_dir``) holds hadoop-aws and the AWS SDK bundle
      (``scripts/_setup.sh --s3a-jars``), which the session puts on the classpath;
    - ``conf`` (the ``--conf`` settings, and ``conf/spark-local.conf`` for a
      local master) names hadoop-aws in ``spark.jars``, ``spark.jars.packages``
      or an ``extraClassPath``; so does ``$PYSPARK_SUBMIT_ARGS``;
    - ``$SPARK_HOME/jars`` or pyspark's ``jars/`` has a ``hadoop-aws-*.jar``.

    Parameters
    ----------
    uris : iterable of str or None
        URIs or local paths; None entries are ignored.
    conf : mapping, optional
        Spark settings given by the user (``--conf key=value``).
    master : str, optional
        The session's master; None is the local default.
    jars_dir : Path, optional
        Folder of the S3A jars (default ``conf/jars/lib``).
    env : mapping, optional
        The environment (default ``os.environ``).
    spark_submit : bool, optional
        Whether spark-submit started this driver (default: detected).

    Raises
    ------
    ConfigurationError
        One line: the first S3 URI, what is missing and the commands that fix it.

    Examples
    --------
    >>> check_s3a_available(["out/", "/data/images.parquet"])      # no S3: nothing to check
    """
    s3_uris = [u for u in uris if u and urlsplit(u).scheme.lower() in _S3_SCHEMES]
    if not s3_uris:
        return
    env = os.environ if env is None else env
    conf = dict(conf or {})
    if spark_submit is None:
        spark_submit = is_spark_submit()
    folder = _default_jars_dir() if jars_dir is None else jars_dir
    fetch = _fetch_command(folder)
    if spark_submit:        # the JVM runs already, with whatever spark-submit put on its classpath
        if _driver_jvm_has_s3a() is not False:
            return
        here = f"; on this machine `{fetch}` fetches them into {folder}" if fetch else ""
        raise ConfigurationError(
            f"{s3_uris[0]} needs Spark's S3A connector, which the driver cannot load: submit "
            f"with --packages {S3A_PACKAGE} (or --jars with hadoop-aws and the AWS SDK "
            f"bundle{here}).")
    if _complete_jars(s3a_jars(folder)):
        return
    if _is_local(master):
        local_conf = conf_dir() / "spark-local.conf"
        if local_conf.is_file():
            conf = {**read_spark_conf(local_conf), **conf}
    if any(_names_hadoop_aws(conf.get(key)) for key in _CLASSPATH_KEYS):
        return
    if _names_hadoop_aws(env.get("PYSPARK_SUBMIT_ARGS")):
        return
    if any(f.is_dir() and any(f.glob("hadoop-aws-*.jar")) for f in _pyspark_jars_dirs(env)):
        return
    run = f"run `{fetch}` once (Maven, about 700 MB, into {folder}), or " if fetch else ""
    raise ConfigurationError(
        f"{s3_uris[0]} needs Spark's S3A connector (hadoop-aws {HADOOP_AWS_VERSION} and the "
        f"AWS SDK bundle), which is not installed: {run}pass "
        f"--conf spark.jars.packages={S3A_PACKAGE}.")


def _is_local(master: str | None) -> bool:
    return master is None or master.startswith("local")


def _jar_settings(jars: list[Path], master: str | None) -> dict[str, str]:
    if _is_local(master):
        classpath = os.pathsep.join(str(p) for p in jars)
        return {"spark.driver.extraClassPath": classpath,
                "spark.executor.extraClassPath": classpath}
    return {"spark.jars": ",".join(str(p) for p in jars)}


def s3a_settings(env: Mapping[str, str] | None = None, *, master: str | None = None,
                 home: Path | None = None, jars_dir: Path | None = None,
                 spark_submit: bool | None = None) -> dict[str, str]:
    """Spark settings (``spark.hadoop.fs.s3a.*``, S3A jars) derived from the environment.

    Parameters
    ----------
    env : mapping, optional
        The environment to read (default ``os.environ``).
    master : str, optional
        The session's master; None means the local default of
        :func:`~lime_spark.spark.session.build_session` (``local[*]``).  It
        decides how the S3A jars reach the executors.
    home : Path, optional
        Where ``.aws/`` is looked for (default the user's home).
    jars_dir : Path, optional
        Folder of the S3A jars (default ``conf/jars/lib``).
    spark_submit : bool, optional
        Whether spark-submit started this driver (default: detected); then the
        jars are left to its ``--jars``/``--packages``.

    Returns
    -------
    dict of str to str
        Never a secret: credentials stay in the environment (or the AWS
        profile files) and are read there by the AWS SDK.

    Examples
    --------
    >>> s3a_settings({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}, home=Path("/nonexistent"),
    ...              jars_dir=Path("/nonexistent"))["spark.hadoop.fs.s3a.path.style.access"]
    'true'
    """
    env = os.environ if env is None else env
    if home is None:
        try:
            home = Path.home()
        except RuntimeError:
            home = None
    settings: dict[str, str] = {}
    endpoint = _endpoint(env)
    if endpoint:
        settings.update(_endpoint_settings(endpoint))
    region = env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION")
    if region:
        settings[_PREFIX + "endpoint.region"] = region
    elif endpoint:
        settings[_PREFIX + "endpoint.region"] = "us-east-1"
    providers = _credential_providers(env, home)
    if providers:
        settings[_PREFIX + "aws.credentials.provider"] = providers

    if spark_submit is None:
        spark_submit = is_spark_submit()
    if spark_submit:
        return settings
    jars = s3a_jars(jars_dir)
    if jars:
        settings.update(_jar_settings(jars, master))
    elif endpoint:
        logger.warning("S3 endpoint %s is configured but the S3A jars are missing from "
                       "conf/jars/lib (run %s, or pass --conf spark.jars.packages=%s)",
                       endpoint, S3A_SETUP_COMMAND, S3A_PACKAGE)
    return settings
