"""Explain only what has no rows yet: rows committed by a dead job (resume), and rows of
earlier runs with the same keys (reuse).

A run's work area, ``ROOT/_staging/run_id=R/work/``, outlives a job that dies:

- ``committed/part-<partition>-<attempt>-<random>.parquet``: the result rows of
  each finished task attempt (:class:`lime_spark.spark.worker._Commit`), each
  file written atomically;
- ``overlays/run_id=R/<key>/``: overlay PNGs, written by the workers and copied
  for reused images;
- ``images/``, ``explanations/``, ``features/``: the tables, written at the end
  and then swapped into place (:func:`lime_spark.publish.publish_run`).

:func:`plan_run` decides, before any image is explained, which input rows
need explaining:

1. **resume**: committed rows of this run id whose image id, path, expected
   label, content (``content_sha256`` of the bytes read now), model digest and
   explainer digest all match the input row are kept; they are not explained
   again.  Committed rows that do not match (the input or the options
   changed) are dropped from the work area with their overlays.
2. **reuse** (``--reuse auto``): the ``ok`` rows of earlier runs under the same
   output root (all of them, or the ``--reuse-from`` runs) with the same
   content, model and explainer digests are copied into this run, with
   ``reused_from`` naming the run that computed them, and their overlay files
   are *copied* into this run's overlay folder (not referenced: every run
   stays self-contained for readers, and deleting an old run never breaks a
   newer one).  A row whose overlays cannot be copied is explained instead.
3. the rest is explained, and each task commits its rows.

Contents are hashed in a Spark pass over the input (one extra read of each
image) only when there is something to compare them with: committed rows of
this run, or earlier runs with the same model and explainer digests.  The
tables are then the committed rows (one per image id: a retried task commits
the same images twice, with the same values) and the reused rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigurationError
from ..keys import content_sha256
from ..overlays import overlay_folder
from ..publish import staging_uri
from ..storage import (copy_folder, exists, filesystem, join_uri, read_bytes, remove_tree,
                       to_hadoop_uri)
from ..tables import IMAGE_COLUMNS, ddl

__all__ = ["work_uri", "committed_uri", "Plan", "plan_run", "committed_rows",
           "committed_rows_exist", "reused_tables", "discard_work"]

logger = logging.getLogger(__name__)

_HASH_THREADS = 8
"""Concurrent reads per task while hashing contents (reads wait on storage, not on a core)."""


def work_uri(root: str, run_id: str) -> str:
    """The run's work area, kept across jobs of the same run id until it is published."""
    return join_uri(staging_uri(root, run_id), "work")


def committed_uri(root: str, run_id: str) -> str:
    """Where task attempts commit their result rows."""
    return join_uri(work_uri(root, run_id), "committed")


def discard_work(root: str, run_id: str) -> None:
    """Delete the run's work area (``--resume false``, or after publishing)."""
    remove_tree(work_uri(root, run_id))


@dataclass
class Plan:
    """What :func:`plan_run` decided.

    ``to_explain`` holds the input rows to explain (``image_id``, ``path``,
    ``expected_label``); ``pairs`` the reused rows: the input row, the run and
    id it copies (``src_run_id``, ``src_image_id``), the run that computed it
    (``origin``) and its published overlay folder (``overlay_folder``).
    """

    to_explain: Any
    pairs: Any | None
    resumed: int
    reused: int
    hashed: bool
    sources: list[str]
    seconds: float


def committed_rows_exist(root: str, run_id: str) -> bool:
    """Whether a task attempt of the run committed rows (a Parquet file in ``committed/``)."""
    fs, path = filesystem(committed_uri(root, run_id))
    fs.invalidate_cache()
    try:
        names = fs.ls(path, detail=False)
    except FileNotFoundError:
        return False
    return any(n.endswith(".parquet") and not n.rsplit("/", 1)[-1].startswith((".", "_"))
               for n in names)


def _read_committed(spark: Any, root: str, run_id: str) -> Any | None:
    from .worker import RESULT_SCHEMA

    if not committed_rows_exist(root, run_id):
        return None
    return spark.read.schema(RESULT_SCHEMA).parquet(to_hadoop_uri(committed_uri(root, run_id)))


def committed_rows(spark: Any, root: str, run_id: str) -> Any | None:
    """The committed result rows of the run, one per image id (None: nothing committed)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rows = _read_committed(spark, root, run_id)
    if rows is None:
        return None
    first = Window.partitionBy("image_id").orderBy(F.col("_file"))
    return (rows.withColumn("_file", F.input_file_name())
                .withColumn("_n", F.row_number().over(first))
                .where(F.col("_n") == 1).drop("_n", "_file"))


def _read_table(spark: Any, root: str, name: str, runs: list[str] | None) -> Any | None:
    """Every run's partition of table ``name`` (or the ``runs``'), with ``run_id``."""
    from pyspark.sql import functions as F

    uri = join_uri(root, name)
    if not exists(uri):
        return None
    frame = (spark.read.schema(f"{ddl(name)}, run_id STRING")
             .option("basePath", to_hadoop_uri(uri)).parquet(to_hadoop_uri(uri)))
    return frame.where(F.col("run_id").isin(runs)) if runs is not None else frame


def _reuse_candidates(spark: Any, root: str, run_id: str, sources: list[str] | None,
                      model_digest: str, digest: str) -> Any | None:
    """One earlier ``ok`` row per content with the run's keys: ``content_sha256``,
    ``src_run_id``, ``src_image_id``, ``origin``; None when there is none."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    images = _read_table(spark, root, "images", sources)
    if images is None:
        return None
    if sources:
        present = {r["run_id"] for r in images.select("run_id").distinct().collect()}
        missing = sorted(set(sources) - present)
        if missing:
            raise ConfigurationError(
                f"Expected every --reuse-from run to have an images partition under {root}. "
                f"Received: no rows for run(s) {missing}")
    rows = images.where((F.col("status") == "ok") & (F.col("run_id") != run_id)
                        & F.col("content_sha256").isNotNull()
                        & (F.col("model_digest") == model_digest)
                        & (F.col("explainer_digest") == digest))
    origin = F.coalesce(F.col("reused_from"), F.col("run_id"))
    # prefer the run that computed the explanation, then the latest run id
    best = Window.partitionBy("content_sha256").orderBy(
        (F.col("origin") == F.col("src_run_id")).desc(), F.col("src_run_id").desc(),
        F.col("src_image_id"))
    out = (rows.select("content_sha256", F.col("run_id").alias("src_run_id"),
                       F.col("image_id").alias("src_image_id"), origin.alias("origin"))
               .withColumn("_n", F.row_number().over(best)).where(F.col("_n") == 1).drop("_n"))
    out = out.localCheckpoint()
    return out if out.limit(1).count() else None


def _hash_partitions(batches: Iterator[Any], *, max_bytes: int, retries: int) -> Iterator[Any]:
    """``mapInArrow``: each input row with ``content_sha256`` of its bytes (null when they
    cannot be read: the row is explained, and becomes its error row there)."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    def digest(path: str | None) -> str | None:
        if path is None:
            return None
        try:
            return content_sha256(read_bytes(path, retries=retries, max_bytes=max_bytes))
        except Exception:  # noqa: BLE001 - the explanation reports it as an error row
            return None

    with ThreadPoolExecutor(_HASH_THREADS) as pool:
        for batch in batches:
            paths = batch.column("path").to_pylist()
            hashes = list(pool.map(digest, paths))
            yield pa.RecordBatch.from_arrays(
                [*batch.columns, pa.array(hashes, pa.string())],
                names=[*batch.schema.names, "content_sha256"])


def _copy_partitions(batches: Iterator[Any], *, root: str, work: str, run_id: str) -> Iterator[Any]:
    """``mapInArrow``: copy each reused image's overlay folder into the work area; the rows
    whose copy succeeded, with the folder the tables will name."""
    import pyarrow as pa

    for batch in batches:
        rows = batch.to_pylist()
        kept = []
        for row in rows:
            src = overlay_folder(root, row["src_run_id"], row["src_image_id"])
            try:
                copy_folder(src, overlay_folder(work, run_id, row["image_id"]))
            except Exception as exc:  # noqa: BLE001 - explained instead
                logger.warning("image %s: could not copy the overlays of run %s (%s: %s); it is "
                               "explained again", row["image_id"], row["src_run_id"],
                               type(exc).__name__, exc)
                continue
            kept.append({**row, "overlay_folder": overlay_folder(root, run_id, row["image_id"])})
        if kept:
            yield pa.RecordBatch.from_pylist(
                kept, schema=batch.schema.append(pa.field("overlay_folder", pa.string())))


def _drop_stale(spark: Any, committed: Any, valid_ids: Any, root: str, run_id: str) -> int:
    """Rewrite the committed rows without those of ``committed`` not in ``valid_ids`` and
    remove those images' overlays; returns how many image ids were dropped."""
    from pyspark.sql import functions as F

    stale = committed.select("image_id").distinct().join(valid_ids, "image_id", "left_anti")
    stale_ids = [r["image_id"] for r in stale.collect()]
    if not stale_ids:
        return 0
    logger.warning("run %s: %d committed image(s) no longer match the input or the options "
                   "(path, label, content, model or explainer digest); they are explained "
                   "again", run_id, len(stale_ids))
    work = work_uri(root, run_id)
    kept_uri = join_uri(work, f"committed-{int(time.time() * 1000)}")
    (committed.join(valid_ids, "image_id", "left_semi")
              .write.mode("overwrite").parquet(to_hadoop_uri(kept_uri)))
    target = committed_uri(root, run_id)
    remove_tree(target)
    fs, kept_path = filesystem(kept_uri)
    _, target_path = filesystem(target)
    fs.invalidate_cache()
    fs.mv(kept_path, target_path, recursive=True)
    for image_id in stale_ids:
        remove_tree(overlay_folder(work, run_id, image_id))
    return len(stale_ids)


def _with_string(schema: Any, name: str) -> Any:
    """``schema`` (a StructType) with one more string column."""
    from pyspark.sql.types import StringType, StructType

    return StructType([*schema.fields]).add(name, StringType())


def plan_run(spark: Any, images: Any, *, root: str, run_id: str, model_digest: str,
             digest: str, reuse: str, reuse_from: list[str] | None, overlays: bool,
             max_bytes: int, read_retries: int) -> Plan:
    """Decide which input rows to explain (see the module's docstring).

    Parameters
    ----------
    images : DataFrame
        The input rows (``image_id``, ``path``, ``expected_label``), ids distinct.
    reuse : {"auto", "none"}
    reuse_from : list of str, optional
        The runs to reuse from (None: every run under ``root`` but this one).
    """
    from pyspark.sql import functions as F

    started = time.perf_counter()
    committed = committed_rows(spark, root, run_id)
    candidates = (_reuse_candidates(spark, root, run_id, reuse_from, model_digest, digest)
                  if reuse == "auto" else None)
    if committed is None and candidates is None:
        return Plan(images, None, 0, 0, False, [], time.perf_counter() - started)

    hashed = images.mapInArrow(
        lambda batches: _hash_partitions(batches, max_bytes=max_bytes, retries=read_retries),
        _with_string(images.schema, "content_sha256")).localCheckpoint()
    resumed = 0
    remaining = hashed
    if committed is not None:
        c = committed.alias("c")
        h = hashed.alias("h")
        valid = (c.join(h, F.col("c.image_id") == F.col("h.image_id"))
                  .where(F.col("c.path").eqNullSafe(F.col("h.path"))
                         & F.col("c.expected_label").eqNullSafe(F.col("h.expected_label"))
                         & F.col("c.content_sha256").eqNullSafe(F.col("h.content_sha256"))
                         & (F.col("c.model_digest") == model_digest)
                         & (F.col("c.explainer_digest") == digest))
                  .select(F.col("c.image_id").alias("image_id")).localCheckpoint())
        _drop_stale(spark, committed, valid, root, run_id)
        resumed = valid.count()
        remaining = hashed.join(valid, "image_id", "left_anti")

    pairs, reused, sources = None, 0, []
    if candidates is not None:
        matched = (remaining.where(F.col("content_sha256").isNotNull())
                            .join(candidates, "content_sha256"))
        if overlays:
            work = work_uri(root, run_id)
            matched = matched.mapInArrow(
                lambda batches: _copy_partitions(batches, root=root, work=work, run_id=run_id),
                _with_string(matched.schema, "overlay_folder"))
        else:
            matched = matched.withColumn("overlay_folder", F.lit(None).cast("string"))
        pairs = matched.localCheckpoint()
        reused = pairs.count()
        sources = sorted(r["src_run_id"] for r in pairs.select("src_run_id").distinct().collect())
        remaining = remaining.join(pairs.select("image_id"), "image_id", "left_anti")
    to_explain = remaining.select("image_id", "path", "expected_label")
    logger.info("run %s: %d image(s) resumed from committed rows, %d reused from run(s) %s",
                run_id, resumed, reused, ", ".join(sources) or "-")
    return Plan(to_explain, pairs if reused else None, resumed, reused, True, sources,
                time.perf_counter() - started)


def reused_tables(spark: Any, root: str, pairs: Any) -> dict[str, Any]:
    """The reused rows of the tables (the source rows with this run's ids, paths, expected
    labels, ``reused_from`` and overlay URIs); ``anchors`` when the sources have one."""
    from pyspark.sql import functions as F

    runs = sorted(r["src_run_id"] for r in pairs.select("src_run_id").distinct().collect())
    p = pairs.select("image_id", "path", "expected_label", "src_run_id", "src_image_id",
                     "origin", "overlay_folder").alias("p")
    out = {}
    for name in ("images", "explanations", "features", "anchors"):
        src = _read_table(spark, root, name, runs)
        if src is None:             # no earlier run wrote anchors
            continue
        src = src.alias("s")
        joined = src.join(p, (F.col("s.run_id") == F.col("p.src_run_id"))
                          & (F.col("s.image_id") == F.col("p.src_image_id")))
        columns = []
        for column in src.columns:
            if column == "run_id":
                continue
            if column == "image_id":
                value = F.col("p.image_id")
            elif name == "images" and column in ("path", "expected_label"):
                value = F.col(f"p.{column}")
            elif name == "images" and column == "reused_from":
                value = F.col("p.origin")
            elif column == "overlay_uri":       # the same file name in this run's folder
                value = F.when(F.col("s.overlay_uri").isNotNull(), F.concat(
                    F.col("p.overlay_folder"), F.lit("/"),
                    F.regexp_extract(F.col("s.overlay_uri"), r"[^/]+$", 0)))
            else:
                value = F.col(f"s.{column}")
            columns.append(value.alias(column))
        out[name] = joined.select(*columns)
    assert tuple(out["images"].columns) == IMAGE_COLUMNS
    return out
