"""Secrets are masked in error messages, log lines and configuration dumps (storage.redact)."""

from __future__ import annotations

import io
import logging

import pytest
import yaml

from lime_spark._logging import RedactingFormatter
from lime_spark.cli import main, print_config
from lime_spark.config import JobConfig
from lime_spark.storage import redact, redact_value

REQUIRED = {"input": "in.parquet", "output": "out", "model": "m.keras"}


@pytest.mark.parametrize("text,expected", [
    # user:password in URLs
    ("https://alice:hunter2@host/data/cat.jpg", "https://alice:***@host/data/cat.jpg"),
    ("mysql://root:s3cr3t@db:3306/metastore", "mysql://root:***@db:3306/metastore"),
    ("Could not read 'ftp://u:p%40ss@files/x.png': refused",
     "Could not read 'ftp://u:***@files/x.png': refused"),
    # signed URLs: S3, GCS, Azure SAS
    ("https://b.s3.amazonaws.com/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
     "&X-Amz-Credential=AKIAABCDEFGHIJKLMNOP%2F20261123%2Fus-east-1%2Fs3%2Faws4_request"
     "&X-Amz-Date=20261123T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
     "&X-Amz-Security-Token=FQoGZXIvYXdzEJr&X-Amz-Signature=deadbeef01",
     "https://b.s3.amazonaws.com/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
     "&X-Amz-Credential=***&X-Amz-Date=20261123T000000Z&X-Amz-Expires=3600"
     "&X-Amz-SignedHeaders=host&X-Amz-Security-Token=***&X-Amz-Signature=***"),
    ("https://storage.googleapis.com/b/o.png?X-Goog-Algorithm=GOOG4-RSA-SHA256"
     "&X-Goog-Credential=sa%40p.iam.gserviceaccount.com%2F20261123&X-Goog-Signature=0a1b2c#top",
     "https://storage.googleapis.com/b/o.png?X-Goog-Algorithm=GOOG4-RSA-SHA256"
     "&X-Goog-Credential=***&X-Goog-Signature=***#top"),
    ("https://acct.blob.core.windows.net/c/x.png?sv=2022-11-02&sp=r&sig=abc%2Bdef%3D",
     "https://acct.blob.core.windows.net/c/x.png?sv=2022-11-02&sp=r&sig=***"),
    ("https://cdn.example.com/x.jpg?Expires=1&Signature=Zm9v~bar&Key-Pair-Id=K2",
     "https://cdn.example.com/x.jpg?Expires=1&Signature=***&Key-Pair-Id=K2"),
    ("https://api.example.com/v1/img?api_key=sk_live_123&q=cat",
     "https://api.example.com/v1/img?api_key=***&q=cat"),
    ("https://maps.example.com/x?key=AbCdEf123&size=2",
     "https://maps.example.com/x?key=***&size=2"),
    ("https://h/x?token=t0k3n", "https://h/x?token=***"),
    ("jdbc:postgresql://db/meta?user=hive&password=p%40ss",
     "jdbc:postgresql://db/meta?user=hive&password=***"),
    # Authorization headers and Bearer tokens
    ("Authorization: Bearer x", "Authorization: Bearer ***"),
    ("curl -H 'Authorization: Bearer eyJhbGciOi.abc.def' url",
     "curl -H 'Authorization: Bearer ***' url"),
    ("headers={'Authorization': 'Basic YWxpY2U6aHVudGVyMg=='}",
     "headers={'Authorization': 'Basic ***'}"),
    ("Authorization: AWS4-HMAC-SHA256 Credential=AKIAABCDEFGHIJKLMNOP/20261123/us-east-1/s3/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature=fe5f80f77d5fa3",
     "Authorization: AWS4-HMAC-SHA256 Credential=***, SignedHeaders=host;x-amz-date, "
     "Signature=***"),
    ("server said: Bearer abcdefghijklmnop expired", "server said: Bearer *** expired"),
    # key=value, key: value, quoted JSON and Python keys
    ("spark.hadoop.fs.s3a.secret.key=abc123 and token: x9",
     "spark.hadoop.fs.s3a.secret.key=*** and token: ***"),
    ("api_key=sk_live_1 apikey: zzz API-KEY=yy password = hunter2",
     "api_key=*** apikey: *** API-KEY=*** password = ***"),
    ('{"AccessKeyId": "ASIAABCDEFGHIJKLMNOP", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG", '
     '"SessionToken": "FQoG\\"ZX", "Expiration": "2026-11-23"}',
     '{"AccessKeyId": "***", "SecretAccessKey": "***", "SessionToken": "***", '
     '"Expiration": "2026-11-23"}'),
    ("{'aws_access_key_id': 'x1', 'aws_secret_access_key': 'wJal rX', 'region': 'us-east-1'}",
     "{'aws_access_key_id': '***', 'aws_secret_access_key': '***', 'region': 'us-east-1'}"),
    ("client_secret=abc; passwd=def", "client_secret=***; passwd=***"),
    ("password='unterminated", "password='***"),
    # well-known token formats anywhere
    ("key id AKIAABCDEFGHIJKLMNOP in use", "key id *** in use"),
    ("git https://ghp_abcdefghijklmnopqrstuvwxyz0123456789AB@github.com/x",
     "git https://***@github.com/x"),
    ("maps key AIzaSyA1234567890abcdefghijklmnopqrstuv here", "maps key *** here"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fw ok", "jwt *** ok"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----",
     "-----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY-----"),
])
def test_redact_masks_secrets(text, expected):
    assert redact(text) == expected
    assert redact(expected) == expected          # idempotent: masking twice changes nothing


@pytest.mark.parametrize("text", [
    "s3://bucket/cat.jpg",
    "s3a://my-bucket/images/run_id=2026-11-23/part-0.parquet",
    "https://example.com/images/cat.jpg?width=200&format=png",
    "ssh://git@github.com/org/repo.git",
    "https://user@host/x",
    "http://host:8080/path@foo",
    "Expected an existing file. Received: '/data/token_images/cat.jpg' (not found)",
    "Could not read '/data/secret_photo.jpg': permission denied",
    "/data/tokens.txt: not an image",
    "Expected key=value. Received: 'abc'",
    "tokenizer: loaded; passwords_policy: x",
    "--conf spark.hadoop.fs.s3a.aws.credentials.provider=org.apache.hadoop.fs.s3a."
    "SimpleAWSCredentialsProvider",
    "hadoop.security.credential.provider.path=jceks://file/etc/creds.jceks",
    "An error occurred (SignatureDoesNotMatch) when calling the GetObject operation: The "
    "request signature we calculated does not match the signature you provided.",
    "Expected a bearer token for the endpoint",
    "run 20261123T190000Z: 4 images, 3 ok, 1 error {'InvalidImageError': 1}",
    "Expected run_id of 1-64 letters, digits, '_', '-' or '.'. Received: run_id='a/b'",
    "",
])
def test_redact_leaves_innocent_text_unchanged(text):
    assert redact(text) == text


def test_redact_is_fast_on_long_text():
    import time

    started = time.perf_counter()
    for blob in ("a" * 200_000, "a." * 100_000, "&" + "x" * 100_000, "password: " * 20_000,
                 "?" + "token" * 20_000):
        redact(blob)
    assert time.perf_counter() - started < 5


def test_redact_value_masks_secret_keys_and_strings_recursively():
    value = {"output": "s3a://b/out", "input": "https://alice:hunter2@h/list.parquet",
             "model_args": {"api_key": "k1", "token": 12345, "use_token": True,
                            "password": None, "nested": {"SecretAccessKey": "x"}},
             "fill": (1, 2, 3), "labels": ["cat", "https://a:b@h/labels.txt"], "seed": 7}
    assert redact_value(value) == {
        "output": "s3a://b/out", "input": "https://alice:***@h/list.parquet",
        "model_args": {"api_key": "***", "token": "***", "use_token": True, "password": None,
                       "nested": {"SecretAccessKey": "***"}},
        "fill": [1, 2, 3], "labels": ["cat", "https://a:***@h/labels.txt"], "seed": 7}


def test_printed_configuration_masks_secrets():
    cfg = JobConfig(**{**REQUIRED, "input": "https://alice:hunter2@host/list.parquet",
                       "model_args": {"api_key": "sk_live_9"}})
    out = io.StringIO()
    print_config(cfg, out)
    text = out.getvalue()
    assert "hunter2" not in text and "sk_live_9" not in text
    printed = yaml.safe_load(text)
    assert printed["input"] == "https://alice:***@host/list.parquet"
    assert printed["model_args"] == {"api_key": "***"} and printed["output"] == "out"


def test_cli_error_line_masks_secrets(capsys):
    assert main(["explain", "--input", "i", "--output", "o", "--model", "m",
                 "--database", "https://alice:hunter2@host/db?token=t0k3n"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lime-spark: error: Expected database to be a SQL identifier")
    assert "database='https://alice:***@host/db?token=***'" in err
    assert "hunter2" not in err and "t0k3n" not in err


def test_log_lines_and_tracebacks_are_masked():
    record = logging.LogRecord("lime_spark.x", logging.WARNING, __file__, 1,
                               "reading %s", ("https://a:hunter2@h/x.jpg",), None)
    try:
        raise OSError("403 for https://h/x.jpg?X-Amz-Signature=s3cr3t")
    except OSError:
        import sys

        record.exc_info = sys.exc_info()
    line = RedactingFormatter("%(message)s").format(record)
    assert "https://a:***@h/x.jpg" in line and "X-Amz-Signature=***" in line
    assert "hunter2" not in line and "s3cr3t" not in line
