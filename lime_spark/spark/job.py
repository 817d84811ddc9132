"""The distributed explanation job: Parquet of image URIs in, tables and overlays out.

``run_job(spark, config)`` is the whole job: read the image list, broadcast
the model, explain every image in ``mapInArrow`` over partitions of rows,
write the ``images``, ``explanations`` and ``features`` tables partitioned by
``run_id`` (replacing only this run's partitions), and ``summary.json``.
The per-image work is :func:`lime_spark.batch.explain_record`.

Reliability (``docs/reliability.md``): every check that can fail on the
options alone (input missing, output not writable, model unreadable or not
returning probabilities) runs on the driver before any Spark job; input rows
sharing an ``image_id`` get distinct ids (:func:`lime_spark.batch.renamed_image_id`);
results depend only on (run seed, image id), so a retried task reproduces its
rows and overlays exactly.  ``LIME_SPARK_FAIL_ONCE=DIR`` is a fault injection
switch for tests: the first attempt of partition 1 exits its Python worker
after its first output batch.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from collections.abc import Iterator
from typing import Any

from ..batch import (RENAME_DIGEST_HEX, BatchSettings, ImageRecord, RecordResult, base_row,
                     check_classifier_outputs, error_row, explain_record)
from ..config import JobConfig
from ..exceptions import ConfigurationError, InvalidImageError
from ..preflight import output_uri, preflight
from ..publish import (acquire_run_lock, discard_staging, publish_run, remove_partial_writes,
                       staging_uri)
from ..storage import join_uri, redact_value, remove_tree, to_hadoop_uri, write_bytes
from .gpu import pin_task_gpus, task_cpus
from .model_cache import ModelPayload, get_classifier

__all__ = ["run_job", "explain_partitions", "RESULT_SCHEMA", "output_uri", "FAIL_ONCE_ENV",
           "INPUT_COLUMNS"]

logger = logging.getLogger(__name__)

FAIL_ONCE_ENV = "LIME_SPARK_FAIL_ONCE"
"""Fault injection for tests: a folder; see :func:`_fail_once`."""

_DUPLICATE_EXAMPLES = 20

INPUT_COLUMNS = ("image_id", "path", "expected_label")
"""The columns of the input rows the partition function receives."""

_IMAGE_FIELDS = """
    image_id STRING, path STRING, expected_label STRING, status STRING, error_class STRING,
    error_message STRING, width INT, height INT, n_superpixels INT, n_samples INT,
    top_label INT, top_label_name STRING, top_prob DOUBLE, seconds DOUBLE,
    model_name STRING, model_digest STRING, seed BIGINT"""
_EXPLANATION_FIELDS = """
    image_id STRING, label INT, label_name STRING, label_rank INT, label_prob DOUBLE,
    model_r2 DOUBLE, intercept DOUBLE, local_pred DOUBLE, deletion_auc DOUBLE,
    insertion_auc DOUBLE, overlay_uri STRING"""
_FEATURE_FIELDS = """
    image_id STRING, label INT, feature INT, feature_weight DOUBLE, feature_rank INT,
    pixel_count BIGINT, bbox_x0 INT, bbox_y0 INT, bbox_x1 INT, bbox_y1 INT"""

RESULT_SCHEMA = (
    f"{_IMAGE_FIELDS}, explanations ARRAY<STRUCT<{_EXPLANATION_FIELDS}>>, "
    f"features ARRAY<STRUCT<{_FEATURE_FIELDS}>>, "
    "_worker_pid INT, _model_loaded BOOLEAN, _gpu STRING, _read_retries INT, _max_rss BIGINT, "
    "_segmentation_fallback BOOLEAN"
)
"""One row per input row; the three tables are projections of it."""


def _column_names(fields: str) -> list[str]:
    return [part.split()[0] for part in fields.strip().split(",")]


def _configure_worker_logging(level: str) -> None:
    root = logging.getLogger("lime_spark")
    if not any(getattr(h, "_lime_spark", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        from .._logging import LOG_FORMAT, RedactingFormatter

        handler.setFormatter(RedactingFormatter(LOG_FORMAT))
        handler._lime_spark = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(level.upper())


def explain_partitions(batches: Iterator[Any], *, broadcast: Any, model_key: str,
                       settings: BatchSettings, explainer_kwargs: dict[str, Any],
                       arrow_schema: Any, log_level: str = "INFO") -> Iterator[Any]:
    """``mapInArrow`` function: Arrow batches of input rows to batches of result rows."""
    import pyarrow as pa
    from pyspark import TaskContext

    _configure_worker_logging(log_level)
    gpu = pin_task_gpus()
    threads = task_cpus()
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:       # already set in this reused worker
        pass
    from ..explainer import ImageExplainer

    classifier, loaded = get_classifier(model_key, lambda: broadcast.value)
    if loaded:
        _warm_up(classifier)
    explainer = ImageExplainer(**explainer_kwargs)
    ctx = TaskContext.get()
    partition = ctx.partitionId() if ctx else -1
    attempt = ctx.attemptNumber() if ctx else 0
    started = time.perf_counter()
    counts = {"ok": 0, "error": 0}
    pid = os.getpid()
    for batch in batches:
        rows = []
        for record, bad_text in _records(batch):
            if bad_text is None:
                result = explain_record(record, classifier=classifier, explainer=explainer,
                                        settings=settings)
            else:
                result = _bad_text_result(record, bad_text, base_row(classifier, explainer))
            counts[result.image["status"]] += 1
            rows.append({**result.image, "explanations": result.explanations,
                         "features": result.features, "_worker_pid": pid,
                         "_model_loaded": loaded, "_gpu": gpu,
                         "_read_retries": result.read_retries, "_max_rss": _peak_rss(),
                         "_segmentation_fallback": result.segmentation_fallback})
            loaded = False
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=arrow_schema)
            _fail_once(partition, attempt)
    seconds = time.perf_counter() - started
    total = counts["ok"] + counts["error"]
    logger.info("partition %d (attempt %d, worker %d): %d images, %d ok, %d error in %.1fs "
                "(%.2f images/s)", partition, attempt, pid, total, counts["ok"],
                counts["error"], seconds, total / seconds if seconds else 0.0)


def _records(batch: Any) -> Iterator[tuple[ImageRecord, str | None]]:
    """The input rows of an Arrow batch, each decoded on its own.

    Text columns are read as bytes and decoded per value, so one value that is
    not UTF-8 makes its own row an error row (the second item names the
    column) instead of failing the whole batch; such a value is shown with
    backslash escapes (``b'\\xff'`` -> ``\\xff``).
    """
    import pyarrow as pa

    columns = {}
    for name in INPUT_COLUMNS:
        index = batch.schema.get_field_index(name)
        columns[name] = (batch.column(index).cast(pa.binary()).to_pylist() if index >= 0
                         else [None] * batch.num_rows)
    for i in range(batch.num_rows):
        values, bad = {}, None
        for name in INPUT_COLUMNS:
            raw = columns[name][i]
            try:
                values[name] = None if raw is None else raw.decode("utf-8")
            except UnicodeDecodeError:
                values[name] = raw.decode("utf-8", "backslashreplace")
                bad = bad or name
        yield ImageRecord(values["image_id"], values["path"], values["expected_label"]), bad


def _bad_text_result(record: ImageRecord, column: str, base: dict[str, Any]) -> RecordResult:
    """The error row of an input row whose ``column`` is not valid UTF-8."""
    exc = InvalidImageError(
        f"Expected UTF-8 text in the input column {column!r}. Received: bytes that are not "
        f"UTF-8 (shown with backslash escapes: {getattr(record, column)!r}); fix the input list")
    return RecordResult(error_row(record, record.image_id or "", exc, time.perf_counter(), base))


def _warm_up(classifier: Any) -> None:
    """Build the classifier's compiled functions once per Python worker, before any image.

    Tracing (and XLA compiling) takes seconds; done here it counts neither
    against the first image's ``image_timeout`` nor in its ``seconds``.
    """
    import numpy as np

    started = time.perf_counter()
    height, width = classifier.input_size
    image = np.zeros((height, width, 3), np.float32)
    classifier.predict_masks(image, image, np.zeros((height, width), np.int32),
                             np.ones((1, 1), np.float32))
    logger.info("model %s compiled in %.1fs", classifier.name, time.perf_counter() - started)


def _peak_rss() -> int | None:
    """Peak resident memory of this Python worker so far, in bytes (None where unknown)."""
    try:
        import resource
    except ImportError:        # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _fail_once(partition: int, attempt: int) -> None:
    """Fault injection: exit this Python worker hard, once, in partition 1.

    When ``$LIME_SPARK_FAIL_ONCE`` names a folder, the first attempt of
    partition 1 to get here (after yielding its first output batch, so
    mid-partition, with overlays already written) creates
    ``partition-1.failed`` there and calls ``os._exit``: Spark sees a crashed
    worker and retries the task (given ``spark.task.maxFailures`` > 1, e.g. a
    ``local[2,4]`` master).  The marker file makes every later attempt, in
    any process, pass.  For tests; never set it in production.
    """
    folder = os.environ.get(FAIL_ONCE_ENV)
    if not folder or partition != 1:
        return
    marker = os.path.join(folder, "partition-1.failed")
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as fh:
        json.dump({"partition": partition, "attempt": attempt, "pid": os.getpid()}, fh)
    logger.error("%s=%s: Python worker %d exits in partition %d, attempt %d (fault injection)",
                 FAIL_ONCE_ENV, folder, os.getpid(), partition, attempt)
    for handler in logging.getLogger("lime_spark").handlers:
        handler.flush()
    os._exit(17)


def _rename_duplicate_ids(images: Any) -> tuple[Any, dict[str, Any]]:
    """Give every input row a distinct ``image_id`` (see :func:`lime_spark.batch.renamed_image_id`).

    Ids used by one row only are kept.  Every row of an id shared by several
    rows becomes ``id@<16 hex of sha256(path)>``, plus ``~k`` for the k-th row
    with the same id and digest (ordered by path, then expected label; rows
    equal in all three columns are interchangeable).  Within one pass the new
    ids are distinct from each other (the digest has a fixed length and ``~k``
    ends in a non-hex character); should a new id equal an id of another
    input row, the rule is applied again to the rows sharing it.  Every pass
    makes the ids it renames at least 17 characters longer, so passes end
    after at most (longest input id) / 17 + 1 of them; the job never fails
    for this.

    Returns
    -------
    (DataFrame, dict)
        The rows with distinct ids, and counts for ``summary.json``:
        ``ids`` (ids shared by several input rows), ``rows`` (rows renamed),
        ``passes`` and up to 20 ``examples`` of ``{image_id, path, renamed_to}``.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    stats: dict[str, Any] = {"ids": 0, "rows": 0, "passes": 0, "examples": []}
    frame = images.withColumn("_input_image_id", F.col("image_id"))
    while True:
        frame = frame.localCheckpoint() if stats["passes"] else frame
        shared = frame.groupBy("image_id").count().where(F.col("count") > 1).count()
        if shared == 0:
            break
        stats["ids"] = stats["ids"] or int(shared)
        stats["passes"] += 1
        digest = F.substring(F.sha2(F.coalesce(F.col("path"), F.lit("")), 256), 1,
                             RENAME_DIGEST_HEX)
        occurrence = F.row_number().over(
            Window.partitionBy("image_id", digest).orderBy(
                F.col("path").asc_nulls_first(), F.col("expected_label").asc_nulls_first()))
        renamed = F.concat(F.col("image_id"), F.lit("@"), digest,
                           F.when(occurrence > 1, F.concat(F.lit("~"), occurrence.cast("string")))
                            .otherwise(F.lit("")))
        frame = frame.withColumn(
            "image_id",
            F.when(F.count(F.lit(1)).over(Window.partitionBy("image_id")) > 1, renamed)
             .otherwise(F.col("image_id")))
    if stats["ids"]:
        changed = frame.where(F.col("image_id") != F.col("_input_image_id"))
        stats["rows"] = changed.count()
        stats["examples"] = [
            {"image_id": r["_input_image_id"], "path": r["path"], "renamed_to": r["image_id"]}
            for r in changed.orderBy("_input_image_id", "path", "image_id")
                            .limit(_DUPLICATE_EXAMPLES).collect()]
        logger.warning("%d input rows share %d image id(s); they were renamed id@<hash of path> "
                       "(summary.json: duplicate_ids)", stats["rows"], stats["ids"])
    return frame.drop("_input_image_id"), stats


def _read_input(spark: Any, cfg: JobConfig):
    from pyspark.sql import functions as F

    uri = to_hadoop_uri(cfg.input)
    try:
        df = spark.read.parquet(uri)
    except Exception as exc:  # noqa: BLE001 - AnalysisException and Py4J errors
        raise ConfigurationError(
            f"Could not read the input Parquet {cfg.input!r}: {str(exc).splitlines()[0]}"
        ) from exc
    columns = df.columns
    if cfg.path_column not in columns:
        raise ConfigurationError(
            f"Expected a column {cfg.path_column!r} with image paths in {cfg.input!r}. "
            f"Received columns: {columns}"
        )
    path = F.col(cfg.path_column).cast("string")
    # a missing or null id is the path's hash (batch.image_id_for_path); no path and no id: ""
    path_id = F.substring(F.sha2(path, 256), 1, 16)
    image_id = F.coalesce(F.col(cfg.id_column).cast("string") if cfg.id_column in columns
                          else path_id, path_id, F.lit(""))
    label = (F.col(cfg.label_column).cast("string") if cfg.label_column in columns
             else F.lit(None).cast("string"))
    return df.select(image_id.alias("image_id"), path.alias("path"),
                     label.alias("expected_label"))


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("lime-spark", "pyspark", "tensorflow", "keras", "numpy", "scikit-image",
                 "scikit-learn", "pillow", "pyarrow"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("lime-spark", "pyspark", "tensorflow", "keras", "numpy", "scikit-image",
                 "scikit-learn", "pillow", "pyarrow"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


_PUBLISHED = ("images", "explanations", "features", "overlays")
"""The folders of a run that are staged and then swapped in (tables and overlays)."""


def run_job(spark: Any, config: JobConfig) -> dict[str, Any]:
    """Run one explanation job and return its summary (also written to summary.json).

    Phases: check (no Spark), lock the run id, load and probe the model, read
    the input and rename duplicate ids, explain into a staging area, publish
    (swap the staged run in), summary, catalog, report.  A job that fails
    before publishing leaves the previous run of the same id as it was.

    Raises
    ------
    ConfigurationError, ModelLoadError, ClassifierOutputError, RunLockedError
        Before any Spark job, for a missing input, an output root that cannot
        be written, a run id another job is writing, a catalog that cannot be
        used, a model that cannot be loaded or does not return probabilities;
        a bad input column fails after Spark read the input's schema, still
        before any image.
    """
    cfg = config.resolved()
    started = time.perf_counter()
    root = preflight(cfg)
    logger.info("lime-spark run %s: %s -> %s", cfg.run_id,
                redact_value(cfg.input), redact_value(root))
    if cfg.database:
        from .catalog import check_catalog

        check_catalog(spark, cfg.database)
    with acquire_run_lock(root, cfg.run_id, stale_after=cfg.lock_stale_seconds,
                          break_stale=cfg.break_stale_lock) as lock:
        staging = staging_uri(root, cfg.run_id, lock.token)
        remove_tree(staging_uri(root, cfg.run_id))      # what a dead job of this run left
        try:
            summary = _explain_and_publish(spark, cfg, root, staging)
        except BaseException:
            discard_staging(root, cfg.run_id, staging)
            raise
        summary["timings"]["total_seconds"] = round(time.perf_counter() - started, 3)
        _finish(spark, cfg, root, summary)
    return summary


def _explain_and_publish(spark: Any, cfg: JobConfig, root: str, staging: str) -> dict[str, Any]:
    """Explain every input row into ``staging``, then publish the run; return the summary."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import _parse_datatype_string

    from ..models import load_classifier

    classifier = load_classifier(cfg.model, weights=cfg.weights, preprocess=cfg.preprocess,
                                 labels=cfg.labels, batch_size=cfg.batch_size,
                                 output_activation=cfg.output_activation, **cfg.model_args)
    check_classifier_outputs(classifier)
    images = _read_input(spark, cfg)
    images, duplicates = _rename_duplicate_ids(images)

    payload = ModelPayload.from_classifier(classifier)
    broadcast = spark.sparkContext.broadcast(payload)
    logger.info("model %s (%d MB as .keras, digest %s) broadcast to executors", payload.name,
                len(payload.keras_bytes) // 2**20, payload.digest[:12])

    n_rows = images.count()
    partitions = cfg.partitions or max(1, min(n_rows, 2 * spark.sparkContext.defaultParallelism))
    images = images.repartition(partitions)

    settings = BatchSettings(
        run_id=cfg.run_id, run_seed=cfg.seed, output_root=root, top_labels=cfg.top_labels,
        max_pixels=cfg.max_pixels, max_bytes=cfg.max_bytes, max_decode_bytes=cfg.max_decode_bytes,
        read_retries=cfg.read_retries, overlays=cfg.overlays,
        overlay_display=cfg.overlay_display, overlay_features=cfg.overlay_features,
        overlay_max_side=cfg.overlay_max_side, metrics=cfg.metrics,
        image_timeout=cfg.image_timeout, overlay_root=staging)
    explainer_kwargs = dict(
        segmentation=cfg.segmentation, n_superpixels=cfg.n_superpixels,
        segmentation_params=dict(cfg.segmentation_params), num_samples=cfg.num_samples,
        batch_size=cfg.batch_size, fill=cfg.fill, kernel_width=cfg.kernel_width,
        feature_selection=cfg.feature_selection, num_features=cfg.num_features)
    schema = _parse_datatype_string(RESULT_SCHEMA)
    arrow_schema = to_arrow_schema(schema)
    model_key = payload.key
    log_level = cfg.log_level

    def fn(batches):
        return explain_partitions(batches, broadcast=broadcast, model_key=model_key,
                                  settings=settings, explainer_kwargs=explainer_kwargs,
                                  arrow_schema=arrow_schema, log_level=log_level)

    if not spark.sparkContext.getConf().contains("spark.sql.execution.arrow.maxRecordsPerBatch"):
        # input rows are paths; a small batch keeps explained rows streaming out
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "16")
    result = images.mapInArrow(fn, schema).persist()
    explain_started = time.perf_counter()
    stats = result.agg(
        F.count("*").alias("rows"),
        F.sum(F.when(F.col("status") == "ok", 1).otherwise(0)).alias("ok"),
        F.sum(F.col("_model_loaded").cast("int")).alias("model_loads"),
        F.countDistinct("_worker_pid").alias("workers"),
        F.sum("_read_retries").alias("read_retries"),
        F.sum("seconds").alias("image_seconds"),
        F.collect_set("_gpu").alias("gpus"),
        F.max("_max_rss").alias("max_rss"),
        F.sum(F.col("_segmentation_fallback").cast("int")).alias("segmentation_fallbacks"),
        F.sum(F.size("explanations")).alias("explanation_rows"),
        F.sum(F.size("features")).alias("feature_rows"),
    ).first()
    explain_seconds = time.perf_counter() - explain_started
    errors = {r["error_class"]: r["count"] for r in
              result.where(F.col("status") == "error").groupBy("error_class").count().collect()}

    run_col = F.lit(cfg.run_id).alias("run_id")
    tables = {
        "images": result.select(*_column_names(_IMAGE_FIELDS), run_col),
        "explanations": result.select(F.explode("explanations").alias("e"))
                              .select("e.*", run_col),
        "features": result.select(F.explode("features").alias("f")).select("f.*", run_col),
    }
    for name, frame in tables.items():
        frame.write.mode("overwrite").partitionBy("run_id").parquet(
            to_hadoop_uri(join_uri(staging, name)))
    table_rows = {"explanations": int(stats["explanation_rows"] or 0),
                  "features": int(stats["feature_rows"] or 0),
                  "images": int(stats["rows"])}
    result.unpersist()
    broadcast.unpersist()
    remove_partial_writes(join_uri(staging, "overlays"))
    publish_run(root, cfg.run_id, staging, _PUBLISHED)

    return {
        "run_id": cfg.run_id,
        "input": redact_value(cfg.input),
        "output": redact_value(root),
        "images": {"rows": int(stats["rows"]), "ok": int(stats["ok"] or 0),
                   "error": int(stats["rows"]) - int(stats["ok"] or 0),
                   "errors_by_class": dict(sorted(errors.items()))},
        "table_rows": table_rows,
        "partitions": partitions,
        "timings": {"total_seconds": None,
                    "explain_seconds": round(explain_seconds, 3),
                    "image_seconds_sum": round(float(stats["image_seconds"] or 0.0), 3),
                    "images_per_second": round(int(stats["rows"]) / explain_seconds, 3)
                    if explain_seconds else None},
        "workers": {"python_workers": int(stats["workers"]),
                    "model_loads": int(stats["model_loads"] or 0),
                    "gpus": sorted(g for g in stats["gpus"] if g),
                    "peak_rss_mb": round(stats["max_rss"] / 2**20, 1)
                    if stats["max_rss"] is not None else None},
        "duplicate_ids": duplicates,
        "segmentation_fallbacks": int(stats["segmentation_fallbacks"] or 0),
        "storage": {"read_retries": int(stats["read_retries"] or 0)},
        "model": {"name": payload.name, "digest": payload.digest,
                  "input_size": list(payload.input_size), "preprocess": payload.preprocess,
                  "n_classes": classifier.n_classes},
        "spark": {"master": spark.sparkContext.master, "version": spark.version,
                  "default_parallelism": spark.sparkContext.defaultParallelism},
        "config": redact_value(cfg.to_dict()),
        "versions": _versions(),
    }


def _finish(spark: Any, cfg: JobConfig, root: str, summary: dict[str, Any]) -> None:
    """Write summary.json, register the tables, write the report (the run is published)."""
    summary_uri = join_uri(root, "runs", f"run_id={cfg.run_id}", "summary.json")

    def save_summary() -> None:
        write_bytes(summary_uri, json.dumps(summary, indent=2, default=str).encode("utf-8"))

    save_summary()                       # the tables are written: never lose their summary
    if cfg.database:
        from .catalog import register_tables

        register_tables(spark, cfg.database, root)
        summary["database"] = cfg.database
        save_summary()
    if cfg.report:
        from ..report import write_report

        try:
            summary["report"] = write_report(root, cfg.run_id)
            save_summary()
        except Exception as exc:  # noqa: BLE001 - the report must not fail a finished run
            logger.warning("could not write the report of run %s: %s: %s", cfg.run_id,
                           type(exc).__name__, exc)
    logger.info("run %s done: %d images (%d ok, %d error) in %.1fs, %.2f images/s",
                cfg.run_id, summary["images"]["rows"], summary["images"]["ok"],
                summary["images"]["error"], summary["timings"]["total_seconds"],
                summary["timings"]["images_per_second"] or 0.0)
