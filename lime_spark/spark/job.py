"""The distributed explanation job: Parquet of image URIs in, tables and overlays out.

``run_job(spark, config)`` is a short sequence of named phases over
:func:`lime_spark.spark.explain_images`:

1. **check**: everything that needs no Spark (:func:`lime_spark.preflight.preflight`),
   then the catalog (``--database``) and the ``--baseline`` run;
2. **lock** the run id (:mod:`lime_spark.publish`); clear what a dead job left,
   except its committed rows and overlays (``--resume``);
3. **read** the image list (:func:`read_image_list`);
4. **distinct ids**: rows sharing an ``image_id`` are renamed (:func:`distinct_image_ids`);
5. **plan**: rows committed by a dead job of this run are kept, rows of earlier
   runs with the same content, model and explainer digests are reused, the rest
   is explained (:func:`lime_spark.spark.resume.plan_run`);
6. **explain** with :func:`~lime_spark.spark.api.explain_images`; every task
   commits its rows into the run's work area;
7. **write** the three tables from the committed and the reused rows and
   **publish** them with the overlays (the run's old partitions are replaced as
   a whole);
8. **summary** (``runs/run_id=R/summary.json``), **catalog**, **drift**
   (``--baseline``), **report**.

Results depend only on (run seed, image id), so a retried task reproduces its
rows and overlays exactly (``docs/reliability.md``).
"""

from __future__ import annotations

import json
import logging
import platform
import time
from typing import Any

from ..batch import (RENAME_DIGEST_HEX, BatchSettings, check_classifier_outputs, explainer_key,
                     uses_anchors)
from ..config import JobConfig, run_list
from ..exceptions import ConfigurationError
from ..explainer import ExplainerConfig, ImageExplainer
from ..preflight import output_uri, preflight
from ..keys import explainer_options
from ..publish import (acquire_run_lock, discard_staging, publish_run, remove_partial_writes,
                       staging_uri)
from ..storage import (exists, filesystem, join_uri, redact_value, remove_tree, to_hadoop_uri,
                       write_bytes)
from ..tables import IMAGE_COLUMNS
from ..timings import STAGES, busy_fraction
from .api import explain_images
from .resume import (Plan, committed_rows, committed_rows_exist, committed_uri, plan_run,
                     reused_tables, work_uri)
from .worker import FAIL_ONCE_ENV, RESULT_SCHEMA

__all__ = ["run_job", "read_image_list", "distinct_image_ids", "output_uri", "RESULT_SCHEMA",
           "FAIL_ONCE_ENV"]

logger = logging.getLogger(__name__)

_DUPLICATE_EXAMPLES = 20

_TABLES_STAGED = ("images", "explanations", "features", "anchors")
_PUBLISHED = (*_TABLES_STAGED, "overlays")
"""The folders of a run that are staged and then swapped in (tables and overlays)."""


def run_job(spark: Any, config: JobConfig) -> dict[str, Any]:
    """Run one explanation job and return its summary (also written to summary.json).

    A job that fails before publishing leaves the previous run of the same
    id as it was; the rows its finished tasks committed stay in the run's
    work area, and the same command run again explains only the rest
    (``--resume``, :mod:`lime_spark.spark.resume`).

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
    root = _check(spark, cfg)
    with acquire_run_lock(root, cfg.run_id, stale_after=cfg.lock_stale_seconds,
                          break_stale=cfg.break_stale_lock):
        _clear_staging(root, cfg)
        work = work_uri(root, cfg.run_id)
        try:
            loading = time.perf_counter()
            classifier = _load_model(spark, cfg)
            load_seconds = time.perf_counter() - loading
            explainer = ImageExplainer(cfg.section(ExplainerConfig))
            settings = cfg.section(BatchSettings, run_id=cfg.run_id, run_seed=cfg.seed,
                                   output_root=root, overlay_root=work)
            keys = {"model_digest": classifier.digest,
                    "explainer_digest": explainer_key(explainer, settings, classifier),
                    "explainer_options": explainer_options(explainer.config, settings,
                                                           classifier)}
            images, duplicates = distinct_image_ids(read_image_list(spark, cfg))
            images = images.localCheckpoint()
            plan = plan_run(spark, images, root=root, run_id=cfg.run_id,
                            model_digest=keys["model_digest"], digest=keys["explainer_digest"],
                            reuse=cfg.reuse, reuse_from=run_list(cfg.reuse_from),
                            overlays=cfg.overlays, max_bytes=cfg.max_bytes,
                            read_retries=cfg.read_retries)
            result, partitions = _explain(plan.to_explain, classifier, explainer, settings,
                                          cfg, root)
            summary = _write_and_publish(result, plan, cfg, root, work)
        except BaseException:
            _keep_or_discard_work(root, cfg.run_id)
            raise
        summary.update(_describe_run(spark, cfg, classifier, duplicates), partitions=partitions)
        summary["keys"] = keys
        summary["timings"]["total_seconds"] = round(time.perf_counter() - started, 3)
        summary["timings"]["driver_model_load_seconds"] = round(load_seconds, 3)
        _finish(spark, cfg, root, summary)
    return summary


def _clear_staging(root: str, cfg: JobConfig) -> None:
    """What a dead job of this run left: its tables always, its committed rows and overlays
    unless they are resumed (``--resume``)."""
    if not cfg.resume:
        remove_tree(staging_uri(root, cfg.run_id))
        return
    fs, path = filesystem(staging_uri(root, cfg.run_id))
    fs.invalidate_cache()
    try:
        entries = fs.ls(path, detail=False)
    except FileNotFoundError:
        return
    work = filesystem(work_uri(root, cfg.run_id))[1].rstrip("/")
    for entry in entries:                       # older jobs' token folders
        if entry.rstrip("/") != work:
            fs.rm(entry, recursive=True)
    for name in _TABLES_STAGED:
        remove_tree(join_uri(work_uri(root, cfg.run_id), name))
    remove_partial_writes(work_uri(root, cfg.run_id))


def _keep_or_discard_work(root: str, run_id: str) -> None:
    """After a failed job: keep the work area when tasks committed rows (the same command
    resumes), else remove it."""
    if committed_rows_exist(root, run_id):
        logger.warning("run %s failed; the rows of its finished tasks are kept in %s: run the "
                       "same command again to explain only the rest", run_id,
                       redact_value(work_uri(root, run_id)))
        return
    discard_staging(root, run_id, work_uri(root, run_id))


def _check(spark: Any, cfg: JobConfig) -> str:
    """Phase 1: the checks that need no Spark job; returns the output root."""
    root = preflight(cfg)
    logger.info("lime-spark run %s: %s -> %s", cfg.run_id,
                redact_value(cfg.input), redact_value(root))
    if cfg.database:
        from .catalog import check_catalog

        check_catalog(spark, cfg.database)
    if cfg.baseline is not None:
        if cfg.baseline == cfg.run_id:
            raise ConfigurationError(
                f"Expected --baseline to name another run than --run-id. Received: "
                f"baseline={cfg.baseline!r}")
        if not exists(join_uri(root, "images", f"run_id={cfg.baseline}")):
            raise ConfigurationError(
                f"Expected the --baseline run to have an images partition under the output "
                f"root. Received: baseline={cfg.baseline!r}, with no "
                f"{redact_value(join_uri(root, 'images', f'run_id={cfg.baseline}'))}")
    return root


def _load_model(spark: Any, cfg: JobConfig) -> Any:
    """Load the classifier on the driver, choose its runtime, probe that it returns probabilities."""
    from ..models import load_classifier
    from .gpu import executors_have_gpus

    classifier = load_classifier(cfg.model, weights=cfg.weights, preprocess=cfg.preprocess,
                                 label_names=cfg.label_names, batch_size=cfg.batch_size,
                                 output_activation=cfg.output_activation, runtime=cfg.runtime,
                                 gpu=executors_have_gpus(spark), **cfg.model_args)
    check_classifier_outputs(classifier)
    return classifier


def read_image_list(spark: Any, cfg: JobConfig) -> Any:
    """The input Parquet's rows as ``image_id``, ``path``, ``expected_label``.

    Raises
    ------
    ConfigurationError
        The input cannot be read as Parquet or has no ``path_column``.
    """
    from .api import input_rows

    try:
        df = spark.read.parquet(to_hadoop_uri(cfg.input))
    except Exception as exc:  # noqa: BLE001 - AnalysisException and Py4J errors
        raise ConfigurationError(
            f"Could not read the input Parquet {cfg.input!r}: {str(exc).splitlines()[0]}"
        ) from exc
    if cfg.path_column not in df.columns:
        raise ConfigurationError(
            f"Expected a column {cfg.path_column!r} with image paths in {cfg.input!r}. "
            f"Received columns: {df.columns}")
    label = cfg.label_column if cfg.label_column in df.columns else None
    return input_rows(df, path_col=cfg.path_column, id_col=cfg.id_column, label_col=label)


def _explain(images: Any, classifier: Any, explainer: ImageExplainer, settings: BatchSettings,
             cfg: JobConfig, root: str) -> tuple[Any, int]:
    """Phase 5: repartition the rows and explain them (lazily); each task commits its rows
    and writes its overlays into the run's work area."""
    spark = images.sparkSession
    n_rows = images.count()
    # 4 tasks per core: with n_samples=auto an image costs 256 to 1000 model rows, and
    # smaller tasks leave less of the job's end to one busy core
    partitions = cfg.partitions or max(1, min(n_rows, 4 * spark.sparkContext.defaultParallelism))
    if not spark.sparkContext.getConf().contains("spark.sql.execution.arrow.maxRecordsPerBatch"):
        # input rows are paths; a small batch keeps explained rows streaming out
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "16")
    return explain_images(
        images.repartition(partitions), classifier,
        label_col="expected_label", explainer=explainer, top_labels=cfg.top_labels,
        overlays_to=root if cfg.overlays else None, run_id=cfg.run_id, seed=cfg.seed,
        settings=settings, log_level=cfg.log_level,
        commit_to=committed_uri(root, cfg.run_id)), partitions


def _write_and_publish(result: Any, plan: Plan, cfg: JobConfig, root: str,
                       work: str) -> dict[str, Any]:
    """Phase 6: explain (the statistics of this job's rows), then the tables from the committed
    and the reused rows into the work area, then the swap into place."""
    from pyspark.sql import functions as F

    explain_started = time.perf_counter()
    stats = result.agg(
        F.count("*").alias("rows"),
        F.sum(F.col("_model_loaded").cast("int")).alias("model_loads"),
        F.countDistinct("_worker_pid").alias("workers"),
        F.sum("_read_retries").alias("read_retries"),
        F.sum("seconds").alias("image_seconds"),
        F.collect_set("_gpu").alias("gpus"),
        F.max("_max_rss").alias("max_rss"),
        F.sum(F.col("_segmentation_fallback").cast("int")).alias("segmentation_fallbacks"),
        F.sum("_worker_seconds").alias("worker_seconds"),
        F.sum("_model_load_seconds").alias("model_load_seconds"),
        *(F.sum(f"_stages.{stage}").alias(f"stage_{stage}") for stage in STAGES),
    ).first()
    explain_seconds = time.perf_counter() - explain_started

    spark = result.sparkSession
    committed = committed_rows(spark, root, cfg.run_id)
    tables: dict[str, Any] = {}
    if committed is not None:
        tables = {
            "images": committed.select(*IMAGE_COLUMNS),
            "explanations": committed.select(F.explode("explanations").alias("e")).select("e.*"),
            "features": committed.select(F.explode("features").alias("f")).select("f.*"),
        }
        if uses_anchors(cfg.methods):
            tables["anchors"] = committed.select(F.explode("anchors").alias("a")).select("a.*")
    if plan.pairs is not None:
        for name, frame in reused_tables(spark, root, plan.pairs).items():
            if name == "anchors" and not uses_anchors(cfg.methods):
                continue
            tables[name] = tables[name].unionByName(frame) if name in tables else frame
    writing = time.perf_counter()
    run_col = F.lit(cfg.run_id).alias("run_id")
    for name, frame in tables.items():
        frame.select("*", run_col).write.mode("overwrite").partitionBy("run_id").parquet(
            to_hadoop_uri(join_uri(work, name)))
    counts = _table_counts(spark, work, cfg.run_id) if tables else _NO_ROWS
    remove_partial_writes(join_uri(work, "overlays"))
    publish_run(root, cfg.run_id, work, _PUBLISHED)
    write_seconds = time.perf_counter() - writing

    explained = int(stats["rows"])
    rows = counts["images"]
    return {
        "run_id": cfg.run_id,
        "input": redact_value(cfg.input),
        "output": redact_value(root),
        "images": {"rows": rows, "ok": counts["ok"], "error": rows - counts["ok"],
                   "errors_by_class": counts["errors_by_class"],
                   "explained": explained, "reused": plan.reused, "resumed": plan.resumed},
        "reuse": {"mode": cfg.reuse, "from_runs": plan.sources,
                  "contents_hashed": plan.hashed,
                  "plan_seconds": round(plan.seconds, 3),
                  "overlays": "copied" if cfg.overlays and plan.reused else None},
        "table_rows": {"explanations": counts["explanations"],
                       "features": counts["features"], "images": rows,
                       **({"anchors": counts["anchors"]} if uses_anchors(cfg.methods) else {})},
        "timings": {"total_seconds": None,
                    "plan_seconds": round(plan.seconds, 3),
                    "explain_seconds": round(explain_seconds, 3),
                    "write_seconds": round(write_seconds, 3),
                    "image_seconds_sum": round(float(stats["image_seconds"] or 0.0), 3),
                    "images_per_second": round(explained / explain_seconds, 3)
                    if explain_seconds else None,
                    **_stage_timings(stats)},
        "workers": {"python_workers": int(stats["workers"]),
                    "model_loads": int(stats["model_loads"] or 0),
                    "gpus": sorted(g for g in stats["gpus"] if g),
                    "peak_rss_mb": round(stats["max_rss"] / 2**20, 1)
                    if stats["max_rss"] is not None else None},
        "segmentation_fallbacks": int(stats["segmentation_fallbacks"] or 0),
        "storage": {"read_retries": int(stats["read_retries"] or 0)},
    }


_NO_ROWS = {"images": 0, "ok": 0, "errors_by_class": {}, "explanations": 0, "features": 0,
            "anchors": 0}


def _table_counts(spark: Any, work: str, run_id: str) -> dict[str, Any]:
    """Rows of the tables just written (read back: the run's own counts, reused rows
    included)."""
    from pyspark.sql import functions as F

    def read(name: str) -> Any:
        return spark.read.parquet(to_hadoop_uri(join_uri(work, name, f"run_id={run_id}")))

    images = read("images")
    by_status = images.groupBy("status", "error_class").count().collect()
    errors: dict[str, int] = {}
    for r in by_status:
        if r["status"] == "error":
            errors[r["error_class"]] = errors.get(r["error_class"], 0) + int(r["count"])
    return {"images": sum(int(r["count"]) for r in by_status),
            "ok": sum(int(r["count"]) for r in by_status if r["status"] == "ok"),
            "errors_by_class": dict(sorted(errors.items())),
            "explanations": read("explanations").count() if _has(work, "explanations", run_id)
            else 0,
            "features": read("features").count() if _has(work, "features", run_id) else 0,
            "anchors": read("anchors").count() if _has(work, "anchors", run_id) else 0}


def _has(work: str, name: str, run_id: str) -> bool:
    return exists(join_uri(work, name, f"run_id={run_id}"))


def _stage_timings(stats: Any) -> dict[str, Any]:
    """``timings``' worker figures: seconds per stage summed over images, worker seconds
    summed over partitions (model loading apart), and the model's share of them."""
    stages = {stage: round(float(stats[f"stage_{stage}"] or 0.0), 3) for stage in STAGES}
    worker = float(stats["worker_seconds"] or 0.0)
    return {"stages": stages, "worker_seconds": round(worker, 3),
            "model_load_seconds": round(float(stats["model_load_seconds"] or 0.0), 3),
            "model_busy_fraction": busy_fraction(stages["model"], worker)}


def _describe_run(spark: Any, cfg: JobConfig, classifier: Any,
                  duplicates: dict[str, Any]) -> dict[str, Any]:
    """The summary's description of the run: model, Spark, options, versions."""
    return {
        "duplicate_ids": duplicates,
        "model": {"name": classifier.name, "digest": classifier.digest,
                  "input_size": list(classifier.input_size),
                  "preprocess": classifier.preprocess_name
                  if isinstance(classifier.preprocess_name, str) else None,
                  "n_classes": classifier.n_classes,
                  "runtime": {"used": classifier.runtime, "requested": cfg.runtime,
                              "reason": classifier.runtime_reason}},
        "spark": {"master": spark.sparkContext.master, "version": spark.version,
                  "default_parallelism": spark.sparkContext.defaultParallelism},
        "config": redact_value(cfg.to_dict()),
        "versions": _versions(),
    }


def distinct_image_ids(images: Any) -> tuple[Any, dict[str, Any]]:
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
    if cfg.baseline is not None:
        from .drift import compare_runs

        try:
            summary["drift"] = compare_runs(spark, root, cfg.run_id, cfg.baseline, lock=False,
                                            report=False)
        except Exception as exc:  # noqa: BLE001 - the run is published; say why, keep it
            logger.warning("could not compare run %s with its baseline %s: %s: %s",
                           cfg.run_id, cfg.baseline, type(exc).__name__, exc)
            summary["drift"] = {"baseline": cfg.baseline,
                                "error": f"{type(exc).__name__}: {exc}"}
        save_summary()
        if cfg.database:
            register_tables(spark, cfg.database, root)        # the drift table too
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
