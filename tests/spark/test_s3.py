"""Object storage: the job on a real S3 API (moto on 127.0.0.1) with s3a:// input and output.

The end-to-end test runs ``lime-spark explain`` in a subprocess, as a user
does, with only the standard AWS variables pointing at the server: Spark's
S3A connector reads the input Parquet and writes the tables, s3fs reads the
images, model and labels and writes the overlays and ``summary.json``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lime_spark.shapes import SHAPE_CLASSES, make_shapes_dataset, train_shapes_classifier
from lime_spark.spark.s3 import S3A_PACKAGE, s3a_jars, s3a_settings
from lime_spark.storage import read_bytes, to_fsspec_uri, to_hadoop_uri, write_bytes

from .s3_server import S3Server, s3_bucket, s3_server  # noqa: F401  (fixtures)

BIN = Path(sys.executable).parent
P = "spark.hadoop.fs.s3a."
ENV_PROVIDER = "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
SDK_CHAIN = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"


# -- the environment -> Spark settings mapping (no Spark) ------------------------------------

def _settings(env, tmp_path, **kwargs):
    kwargs.setdefault("jars_dir", tmp_path / "no-jars")
    kwargs.setdefault("spark_submit", False)
    return s3a_settings(env, home=tmp_path, **kwargs)


def test_custom_endpoint_region_and_keys_map_to_s3a_without_the_secret(tmp_path):
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ACCESS_KEY_ID": "AKIAKEYID0000001",
           "AWS_SECRET_ACCESS_KEY": "very-secret-value", "AWS_DEFAULT_REGION": "eu-west-3"}
    settings = _settings(env, tmp_path)
    assert settings[P + "endpoint"] == "http://127.0.0.1:9000"
    assert settings[P + "path.style.access"] == "true"
    assert settings[P + "connection.ssl.enabled"] == "false"
    assert settings[P + "endpoint.region"] == "eu-west-3"
    providers = settings[P + "aws.credentials.provider"].split(",")
    # conf keys (--conf spark.hadoop.fs.s3a.access.key=...) first, then the environment
    assert providers[:3] == ["org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider",
                             "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider", ENV_PROVIDER]
    text = json.dumps(settings)
    assert "very-secret-value" not in text and "AKIAKEYID0000001" not in text
    assert not any(k.endswith(("access.key", "secret.key", "session.token")) for k in settings)


def test_service_endpoint_wins_and_aws_endpoints_keep_virtual_hosts(tmp_path):
    settings = _settings({"AWS_ENDPOINT_URL": "http://other:1",
                          "AWS_ENDPOINT_URL_S3": "https://minio.example:9000"}, tmp_path)
    assert settings[P + "endpoint"] == "https://minio.example:9000"
    assert P + "connection.ssl.enabled" not in settings
    assert settings[P + "endpoint.region"] == "us-east-1"       # botocore's default too
    aws = _settings({"AWS_ENDPOINT_URL": "https://s3.eu-west-1.amazonaws.com",
                     "AWS_REGION": "eu-west-1"}, tmp_path)
    assert P + "path.style.access" not in aws and aws[P + "endpoint.region"] == "eu-west-1"


def test_profiles_use_the_sdk_chain_and_nothing_keeps_hadoop_defaults(tmp_path):
    profile = _settings({"AWS_PROFILE": "analytics"}, tmp_path)
    assert profile[P + "aws.credentials.provider"].split(",")[-1] == SDK_CHAIN
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text("[default]\n")
    assert _settings({}, tmp_path)[P + "aws.credentials.provider"].endswith(SDK_CHAIN)
    # no AWS configuration at all (a cluster with instance roles and core-site.xml)
    assert _settings({}, tmp_path / "elsewhere") == {}


def test_jars_go_on_the_classpath_locally_and_are_shipped_to_remote_clusters(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("hadoop-aws-3.5.0.jar", "bundle-2.35.4.jar"):
        (lib / name).write_bytes(b"")
    local = _settings({}, tmp_path / "h", jars_dir=lib, master="local[2]")
    assert local["spark.driver.extraClassPath"] == local["spark.executor.extraClassPath"]
    assert local["spark.driver.extraClassPath"].split(os.pathsep) == [
        str(lib / "bundle-2.35.4.jar"), str(lib / "hadoop-aws-3.5.0.jar")]
    assert "spark.jars" not in local
    assert _settings({}, tmp_path / "h", jars_dir=lib)["spark.driver.extraClassPath"]
    remote = _settings({}, tmp_path / "h", jars_dir=lib, master="spark://head:7077")
    assert remote == {"spark.jars": f"{lib / 'bundle-2.35.4.jar'},{lib / 'hadoop-aws-3.5.0.jar'}"}
    # spark-submit's own --jars/--packages are left alone
    assert _settings({}, tmp_path / "h", jars_dir=lib, spark_submit=True) == {}
    assert S3A_PACKAGE == "org.apache.hadoop:hadoop-aws:3.5.0"


def test_pyspark_bundles_the_hadoop_that_hadoop_aws_matches():
    import pyspark

    bundled = sorted((Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar"))
    assert [p.name for p in bundled] == [f"hadoop-client-api-{S3A_PACKAGE.rsplit(':', 1)[1]}.jar"]


def test_fsspec_side_reads_the_same_environment(s3_server, s3_bucket, monkeypatch):
    import s3fs

    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        uri = f"s3a://{s3_bucket}/dir with space/ünï.bin"
        write_bytes(uri, b"payload")
        assert read_bytes(uri) == b"payload"
        assert s3_server.filesystem().cat(to_fsspec_uri(uri)) == b"payload"
        assert to_hadoop_uri(to_fsspec_uri(uri)) == uri
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


# -- the job end to end on S3 ----------------------------------------------------------------

def _png(image) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def s3a_jars_present():
    if not s3a_jars():
        if os.environ.get("LIME_SPARK_SKIP_S3A_JARS") == "1":
            pytest.skip("LIME_SPARK_SKIP_S3A_JARS=1: no S3A jars in conf/jars/lib")
        pytest.fail("Spark's S3A jars are missing from conf/jars/lib: run scripts/_setup.sh --s3a-jars "
                    "(it fetches them with Maven from conf/jars/pom.xml)")


@pytest.fixture(scope="module")
def s3_job_inputs(s3_server, tmp_path_factory):
    """A bucket holding a tiny trained model, its labels, images (keys with spaces) and the list."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs = s3_server.filesystem()
    bucket = "lime-e2e"
    fs.mkdir(bucket)
    images, labels, _ = make_shapes_dataset(240, random_state=31)
    model = train_shapes_classifier(images, labels, epochs=2, random_state=0)
    local = tmp_path_factory.mktemp("s3-model") / "model.keras"
    model.save(local)
    fs.put_file(str(local), f"{bucket}/models/model.keras")
    fs.pipe_file(f"{bucket}/models/classes.txt", ("\n".join(SHAPE_CLASSES) + "\n").encode())

    held_out, held_labels, _ = make_shapes_dataset(4, random_state=32)
    keys = ["images/shape 0.png", "images/shape 1.png", "images/sub dir/ünï 2.png",
            "images/shape 3.png"]
    rows = []
    for i, key in enumerate(keys):
        fs.pipe_file(f"{bucket}/{key}", _png(held_out[i]))
        scheme = "s3" if i == 3 else "s3a"            # both spellings are accepted
        rows.append({"path": f"{scheme}://{bucket}/{key}", "image_id": f"img/{i} x",
                     "label": SHAPE_CLASSES[int(held_labels[i])]})
    fs.pipe_file(f"{bucket}/images/broken file.jpg", b"\xff\xd8\xff\xe0 truncated jpeg")
    rows += [{"path": f"s3a://{bucket}/images/broken file.jpg", "image_id": "broken", "label": None},
             {"path": f"s3a://{bucket}/images/missing.png", "image_id": "missing", "label": None},
             {"path": "s3a://no-such-bucket-lime/a.png", "image_id": "nobucket", "label": None}]
    with fs.open(f"{bucket}/input/list.parquet", "wb") as fh:
        pq.write_table(pa.Table.from_pylist(rows), fh)
    return {"bucket": bucket, "n_ok": len(keys), "n_rows": len(rows)}


def _explain(server: S3Server, bucket: str, run_id: str, partitions: int, cwd: Path):
    cmd = [str(BIN / "lime-spark"), "explain",
           "--input", f"s3a://{bucket}/input/list.parquet", "--output", f"s3a://{bucket}/lime",
           "--model", f"s3a://{bucket}/models/model.keras", "--preprocess", "none",
           "--labels", f"s3a://{bucket}/models/classes.txt", "--num-samples", "100",
           "--n-superpixels", "16", "--top-labels", "2", "--run-id", run_id,
           "--partitions", str(partitions), "--master", "local[2]",
           "--conf", "spark.ui.enabled=false", "--conf", "spark.ui.showConsoleProgress=false",
           "--conf", "spark.driver.memory=1g"]
    env = server.env(dict(os.environ))
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _read_table(fs, bucket: str, name: str, run_id: str):
    import pyarrow.dataset as ds

    table = ds.dataset(f"{bucket}/lime/{name}", filesystem=fs, format="parquet",
                       partitioning="hive").to_table()
    frame = table.to_pandas()
    return frame[frame.run_id == run_id].reset_index(drop=True)


def test_job_reads_and_writes_s3_end_to_end(s3_server, s3_job_inputs, s3a_jars_present, tmp_path):
    from PIL import Image

    bucket = s3_job_inputs["bucket"]
    n_ok, n_rows = s3_job_inputs["n_ok"], s3_job_inputs["n_rows"]
    first = _explain(s3_server, bucket, "s3run", 2, tmp_path)
    assert f"run s3run: {n_rows} images, {n_ok} ok, {n_rows - n_ok} error" in first.stdout
    fs = s3_server.filesystem()

    images = _read_table(fs, bucket, "images", "s3run")
    assert len(images) == n_rows and images.image_id.is_unique
    ok = images[images.status == "ok"]
    assert sorted(ok.image_id) == [f"img/{i} x" for i in range(n_ok)]
    assert set(ok.top_label_name) <= set(SHAPE_CLASSES) and (ok.n_samples == 100).all()
    errors = images[images.status == "error"].set_index("image_id")
    assert errors.error_class.to_dict() == {"broken": "InvalidImageError",
                                           "missing": "StorageError",
                                           "nobucket": "StorageError"}
    assert "missing.png" in errors.error_message["missing"]

    explanations = _read_table(fs, bucket, "explanations", "s3run")
    assert len(explanations) == n_ok * 2
    prefix = f"s3a://{bucket}/lime/overlays/run_id=s3run/"
    for uri in explanations.overlay_uri:
        assert uri.startswith(prefix)
        with Image.open(io.BytesIO(fs.cat(to_fsspec_uri(uri)))) as im:
            assert im.size[0] == 64 and im.size[1] > 64 and im.mode == "RGB"   # + caption
    features = _read_table(fs, bucket, "features", "s3run")
    n_sp = ok.set_index("image_id").n_superpixels
    for (image_id, _), count in features.groupby(["image_id", "label"]).size().items():
        assert count == n_sp[image_id]

    overlays = sorted(fs.find(f"{bucket}/lime/overlays/run_id=s3run"))
    assert len(overlays) == n_ok * 3                      # segments.png + 2 labels per image
    assert f"{bucket}/lime/overlays/run_id=s3run/img%2F0%20x/segments.png" in overlays
    summary_text = fs.cat(f"{bucket}/lime/runs/run_id=s3run/summary.json").decode()
    summary = json.loads(summary_text)
    assert summary["output"] == f"s3a://{bucket}/lime"
    assert summary["table_rows"] == {"images": n_rows, "explanations": n_ok * 2,
                                     "features": len(features)}

    # another run's partition, to be left alone by the rerun
    for key in fs.find(f"{bucket}/lime/images/run_id=s3run"):
        fs.copy(key, key.replace("run_id=s3run", "run_id=older"))
    # the same run id again, in one partition (one Python worker starts TensorFlow: quicker
    # on a busy machine): this run's partitions and overlays are replaced, never appended to
    second = _explain(s3_server, bucket, "s3run", 1, tmp_path)
    fs = s3_server.filesystem()                          # no listings cached from run 1
    again = {name: _read_table(fs, bucket, name, "s3run")
             for name in ("images", "explanations", "features")}
    assert len(again["images"]) == n_rows and again["images"].image_id.is_unique
    assert len(again["explanations"]) == n_ok * 2
    assert len(again["features"]) == len(features)
    assert not again["features"].duplicated(["image_id", "label", "feature"]).any()
    assert sorted(fs.find(f"{bucket}/lime/overlays/run_id=s3run")) == overlays
    assert len(_read_table(fs, bucket, "images", "older")) == n_rows

    # credentials never leave the environment: logs, summary.json, error rows, other objects
    error_rows = again["images"][again["images"].status == "error"].to_json()
    texts = {"stdout+stderr (run 1)": first.stdout + first.stderr,
             "stdout+stderr (run 2)": second.stdout + second.stderr,
             "summary.json": summary_text, "error rows": error_rows}
    for key in fs.find(f"{bucket}/lime"):
        if not key.endswith(".parquet"):
            texts[key] = fs.cat(key).decode("latin-1")
    for where, text in texts.items():
        for secret in s3_server.secrets:
            assert secret not in text, f"a credential leaked into {where}"
