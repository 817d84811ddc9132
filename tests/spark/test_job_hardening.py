"""Issue 9 findings 6-9: what a hostile or unlucky input list, a rerun or a
second job can still do to a run (real local Spark, real files).

- 6: duplicate ids whose 8-hex path digests collide are renamed, never fail the job;
- 7: text that is not UTF-8 in a path or id is one error row, not a dead partition;
- 8: distinct ids never share an overlay folder (empty id, case-only differences);
- 9: a rerun replaces the whole run (also when every image fails), a failed rerun
  leaves the previous run intact, and a run id has one writer at a time;
- 13 (failing fast, before Spark) is tested in tests/e2e/test_reliability_cli.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lime_spark.batch import renamed_image_id
from lime_spark.cli import run_explain
from lime_spark.config import load_config
from lime_spark.exceptions import RunLockedError
from lime_spark.publish import acquire_run_lock, lock_uri, read_run_lock
from lime_spark.storage import safe_key

from .conftest import write_png
from .test_reliability import _photo

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SMALL = {"n_samples": 16, "batch_size": 16, "n_superpixels": 6, "top_labels": 2,
         "report": False, "metrics": False}


def _config(input_uri: str, output: Path, model: str, **overrides):
    return load_config(overrides={"input": input_uri, "output": str(output), "model": model,
                                  "preprocess": "none", **SMALL, **overrides}).resolved()


def _run(spark, input_uri, output, model, **overrides) -> dict:
    return run_explain(_config(input_uri, output, model, **overrides), spark=spark)


def _table(output: Path, name: str, run_id: str):
    return duckdb.sql(
        f"select * exclude (run_id) from read_parquet('{output}/{name}/*/*.parquet', "
        f"hive_partitioning=true, hive_types={{'run_id': VARCHAR}}) "
        f"where run_id = '{run_id}'").df()


def _colliding_paths(folder: Path) -> tuple[str, str]:
    """Two image paths whose sha256 hex digests share their first 8 digits (birthday search)."""
    seen: dict[str, str] = {}
    i = 0
    while True:
        path = str(folder / f"img-{i}.png")
        head = hashlib.sha256(path.encode()).hexdigest()[:8]
        if head in seen:
            return seen[head], path
        seen[head] = path
        i += 1


def _binary_input(path: Path, rows: list[tuple[bytes | None, bytes | None]]) -> str:
    """An input Parquet whose image_id and path columns hold raw bytes (maybe not UTF-8)."""
    table = pa.table({"image_id": pa.array([r[0] for r in rows], pa.binary()),
                      "path": pa.array([r[1] for r in rows], pa.binary())})
    pq.write_table(table, path)
    return str(path)


def _photo_list(folder: Path, n: int) -> str:
    """``n`` small photos in ``folder`` and an input Parquet listing them."""
    paths = [folder / f"{i}.png" for i in range(n)]
    for seed, path in enumerate(paths):
        write_png(path, _photo(40, 30, seed))
    listing = str(folder / "list.parquet")
    pq.write_table(pa.table({"path": [str(p) for p in paths]}), listing)
    return listing


def test_hostile_rows_are_error_rows_and_ids_never_share_a_folder(spark, tiny_model, tmp_path):
    images = tmp_path / "images"
    p1, p2 = _colliding_paths(images)
    assert p1 != p2 and renamed_image_id("dup", p1) != renamed_image_id("dup", p2)
    good = {name: str(images / f"{name}.png") for name in ("zero", "upper", "lower", "third")}
    for seed, path in enumerate([p1, p2, *good.values()]):
        write_png(Path(path), _photo(40, 30, seed))
    adversarial = renamed_image_id("dup", p1)          # an input id equal to a renamed one
    rows = [
        (b"\x00empty", good["zero"].encode()),          # its key must differ from ""'s
        (b"", str(images / "missing.png").encode()),     # error row with the empty id
        (b"Cat", good["upper"].encode()),                # ids differing only in case
        (b"cat", good["lower"].encode()),
        (b"bad path", str(images).encode() + b"/\xff.png"),   # not UTF-8
        (b"bad \xff id", good["zero"].encode()),              # not UTF-8
        (b"cesu \xed\xa0\x80", good["zero"].encode()),        # a UTF-16 surrogate, not UTF-8
        (b"dup", p1.encode()), (b"dup", p2.encode()),   # 8-hex digests of the paths collide
        (adversarial.encode(), good["third"].encode()),
    ]
    input_uri = _binary_input(tmp_path / "in.parquet", rows)
    root = tmp_path / "out"
    summary = _run(spark, input_uri, root, tiny_model, run_id="hostile")

    table = _table(root, "images", "hostile")
    assert summary["images"]["rows"] == len(table) == len(rows)      # nothing lost
    assert len(set(table.image_id)) == len(table)     # nothing twice (pandas is_unique stops at NUL)
    errors = table[table.status == "error"].set_index("image_id")
    assert set(errors.error_class) == {"InvalidImageError", "StorageError"}
    utf8 = errors[errors.error_message.str.contains("Expected UTF-8 text")]
    assert sorted(utf8.index) == sorted(["bad path", "bad \\xff id", "cesu \\xed\\xa0\\x80"])
    assert "'path'" in utf8.loc["bad path", "error_message"]
    assert "'image_id'" in utf8.loc["bad \\xff id", "error_message"]
    assert errors.loc["", "error_class"] == "StorageError"

    ok = table[table.status == "ok"]
    # pass 1 renames the two "dup" rows; dup@<digest of p1> then equals the adversarial
    # input id, so pass 2 renames both of those rows again
    assert set(ok.image_id) == {"\x00empty", "Cat", "cat", renamed_image_id(adversarial, p1),
                                renamed_image_id("dup", p2),
                                renamed_image_id(adversarial, good["third"])}
    assert summary["duplicate_ids"]["passes"] == 2
    assert summary["duplicate_ids"]["rows"] == 3
    # every explained image has its own overlay folder, also on a case-insensitive store
    folders = {p.name for p in (root / "overlays" / "run_id=hostile").iterdir()}
    assert folders == {safe_key(i) for i in ok.image_id}
    assert len({f.lower() for f in folders}) == len(folders) == len(ok)
    for folder in folders:
        assert (root / "overlays" / "run_id=hostile" / folder / "segments.png").is_file()


def test_a_rerun_replaces_the_whole_run_even_when_every_image_fails(spark, tiny_model, tmp_path):
    good = _photo_list(tmp_path, 3)
    root = tmp_path / "out"
    _run(spark, good, root, tiny_model, run_id="keep")
    first = _run(spark, good, root, tiny_model, run_id="night")
    assert first["table_rows"]["explanations"] == 6
    assert len(list((root / "overlays" / "run_id=night").iterdir())) == 3

    # a stale lock of a dead job: refused without the flag, broken with it
    lock = Path(lock_uri(str(root), "night"))
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"token": "dead", "owner": "someone@elsewhere pid 1",
                                "started": "2026-11-30T00:00:00Z", "heartbeat": time.time() - 7200}))
    missing = str(tmp_path / "missing.parquet")
    pq.write_table(pa.table({"path": [str(tmp_path / f"gone-{n}.png") for n in range(2)]}),
                   missing)
    with pytest.raises(RunLockedError, match="stale lock.*--break-stale-lock"):
        _run(spark, missing, root, tiny_model, run_id="night")
    again = _run(spark, missing, root, tiny_model, run_id="night", break_stale_lock=True)
    assert again["images"] == {"rows": 2, "ok": 0, "error": 2,
                               "errors_by_class": {"StorageError": 2},
                               "explained": 2, "reused": 0, "resumed": 0}
    assert not lock.exists()

    # nothing of the first "night" is left beside the new error rows ...
    assert len(_table(root, "images", "night")) == 2
    assert _table(root, "explanations", "night").empty
    assert _table(root, "features", "night").empty
    assert not (root / "overlays" / "run_id=night").exists()
    # ... another run is untouched, and no staging area or lock stays behind
    assert len(_table(root, "explanations", "keep")) == 6
    assert len(list((root / "overlays" / "run_id=keep").iterdir())) == 3
    assert not (root / "_staging").exists() and not (root / "_locks").exists()


def test_a_live_lock_is_never_broken(spark, tiny_model, tmp_path):
    write_png(tmp_path / "a.png", _photo(40, 30))
    input_uri = str(tmp_path / "in.parquet")
    pq.write_table(pa.table({"path": [str(tmp_path / "a.png")]}), input_uri)
    root = tmp_path / "out"
    with acquire_run_lock(str(root), "busy", stale_after=600) as held:
        record = read_run_lock(str(root), "busy")
        assert record["token"] == held.token and f"pid {os.getpid()}" in record["owner"]
        for flag in (False, True):
            with pytest.raises(RunLockedError, match="Wait for that job to finish"):
                _run(spark, input_uri, root, tiny_model, run_id="busy", break_stale_lock=flag)
        with pytest.raises(RunLockedError):
            acquire_run_lock(str(root), "busy", stale_after=600)
    assert read_run_lock(str(root), "busy") is None
    assert not (root / "images").exists()                 # the refused job wrote nothing


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYSPARK_GATEWAY", "SPARK_CONNECT"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def test_a_failed_rerun_leaves_the_previous_run_as_it_was(spark, tiny_model, tmp_path):
    input_uri = _photo_list(tmp_path, 4)
    root = tmp_path / "out"
    _run(spark, input_uri, root, tiny_model, run_id="r", partitions=2)
    before = {name: _table(root, name, "r") for name in ("images", "explanations", "features")}
    overlays = sorted((root / "overlays" / "run_id=r").rglob("*.png"))
    assert len(overlays) == 4 * 3

    # local[2]: no task retries, so the worker that exits kills the rerun
    fail_dir = tmp_path / "fail"
    fail_dir.mkdir()
    options = {**SMALL, "preprocess": "none"}
    args = [str(BIN / "lime-spark"), "explain", "--input", input_uri, "--output", str(root),
            "--model", tiny_model, "--run-id", "r", "--partitions", "2", "--master", "local[2]",
            "--conf", "spark.ui.enabled=false",
            "--conf", "spark.sql.execution.arrow.maxRecordsPerBatch=1",
            *[f"--{k.replace('_', '-')}={str(v).lower() if isinstance(v, bool) else v}"
              for k, v in options.items()]]
    proc = subprocess.run(args, env=_env(LIME_SPARK_FAIL_ONCE=str(fail_dir)), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "fault injection" in proc.stderr, proc.stderr[-3000:]

    for name, frame in before.items():
        assert _table(root, name, "r").equals(frame), name
    assert sorted((root / "overlays" / "run_id=r").rglob("*.png")) == overlays
    uris = _table(root, "explanations", "r").overlay_uri
    assert all(Path(uri).is_file() for uri in uris)
    assert read_run_lock(str(root), "r") is None and not (root / "_locks").exists()
    # what stays is the rows the finished task committed (nothing else): the same command
    # again explains only the others, and then nothing stays
    staged = [p.relative_to(root) for p in (root / "_staging").rglob("*") if p.is_file()] \
        if (root / "_staging").exists() else []
    committed = [p for p in staged if p.parts[2:4] == ("work", "committed")]
    assert all(p.parts[:3] == ("_staging", "run_id=r", "work") for p in staged), staged
    assert all(p.parts[3] in ("committed", "overlays") for p in staged), staged
    again = _run(spark, input_uri, root, tiny_model, run_id="r", partitions=2)
    assert again["images"]["resumed"] == (2 if committed else 0)
    assert again["images"]["explained"] == 4 - again["images"]["resumed"]
    keys = {"images": ["image_id"], "explanations": ["image_id", "label"],
            "features": ["image_id", "label", "feature"]}

    def comparable(frame, name):
        return (frame.drop(columns="seconds", errors="ignore").sort_values(keys[name])
                .reset_index(drop=True))

    for name, frame in before.items():
        assert comparable(_table(root, name, "r"), name).equals(comparable(frame, name)), name
    assert not (root / "_staging").exists()
