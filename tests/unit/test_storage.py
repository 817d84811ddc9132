from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lime_spark.exceptions import ConfigurationError, StorageError
from lime_spark.storage import (
    join_uri,
    read_bytes,
    redact,
    remove_tree,
    safe_key,
    to_fsspec_uri,
    to_hadoop_uri,
    write_bytes,
)


@given(st.text(max_size=300))
def test_safe_key_is_one_harmless_path_segment(image_id):
    key = safe_key(image_id)
    assert "/" not in key and "\\" not in key and "\x00" not in key
    assert key not in ("", ".", "..") and not key.startswith(".")
    assert len(key) <= 150
    assert key.isascii() and " " not in key


def test_safe_key_is_injective_on_tricky_ids():
    ids = ["../../x", "a/b", "a%2Fb", "a b", "ü", "u", ".", "..", "x" * 400, "x" * 401, ""]
    assert len({safe_key(i) for i in ids}) == len(ids)


def test_uri_mapping_both_ways():
    assert to_fsspec_uri("s3a://bucket/key with space") == "s3://bucket/key with space"
    assert to_hadoop_uri("s3://bucket/k") == "s3a://bucket/k"
    assert to_hadoop_uri("s3a://bucket/k") == "s3a://bucket/k"
    assert to_fsspec_uri("file:///tmp/x") == "/tmp/x"
    assert to_hadoop_uri("rel/dir") == "file://" + os.path.abspath("rel/dir")
    assert to_fsspec_uri("gs://b/k") == "gs://b/k"


def test_join_refuses_to_climb_out():
    assert join_uri("s3://b/root/", "overlays", "run_id=1/x") == "s3://b/root/overlays/run_id=1/x"
    with pytest.raises(ConfigurationError, match="inside"):
        join_uri("/out", "overlays", "../../etc")


def test_atomic_write_read_and_errors(tmp_path):
    target = tmp_path / "a" / "b.bin"
    write_bytes(str(target), b"one")
    write_bytes(str(target), b"two")
    assert read_bytes(str(target)) == b"two"
    assert sorted(os.listdir(target.parent)) == ["b.bin"]      # no temp files left
    with pytest.raises(StorageError, match="not found"):
        read_bytes(str(tmp_path / "missing.png"))
    with pytest.raises(StorageError, match="directory"):
        read_bytes(str(tmp_path / "a"))
    remove_tree(str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()
    remove_tree(str(tmp_path / "a"))                          # missing is fine


def test_transient_errors_are_retried_then_reported(monkeypatch):
    from fsspec.implementations.memory import MemoryFileSystem

    uri = "memory://lime-storage-retry/x.bin"
    write_bytes(uri, b"data")
    calls = {"n": 0}
    real_open = MemoryFileSystem._open

    def flaky(self, p, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ConnectionError("connection reset by peer")
        return real_open(self, p, *args, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "_open", flaky)
    try:
        retried = []
        assert read_bytes(uri, backoff=0.001, on_retry=retried.append) == b"data"
        assert len(retried) == 2
        calls["n"] = -100
        with pytest.raises(StorageError, match="after 2 attempt"):
            read_bytes(uri, retries=1, backoff=0.001)
    finally:
        monkeypatch.undo()
        remove_tree("memory://lime-storage-retry")


def test_redact_hides_secrets():
    text = redact("spark.hadoop.fs.s3a.secret.key=abc123 AKIAABCDEFGHIJKLMNOP token: x9")
    assert "abc123" not in text and "AKIA" not in text and "x9" not in text
