"""Drift between two runs: did the explanations of the same images change?

``compare_runs(spark, root, "B", "A")`` reads the ``images``, ``explanations``
and ``features`` partitions of run B and of its baseline A under one output
root and writes the ``drift`` table (:data:`lime_spark.tables.DRIFT`) at
``ROOT/drift/run_id=B/``: one row per image explained (``status = 'ok'``) in
both runs and label explained in both, with

* ``prob_a``, ``prob_b``: the label's probability in each run;
* ``top_label_changed``: the image's most probable class differs;
* ``rank_correlation``: Spearman's correlation of the label's superpixel
  weights, over the superpixels in both surrogates (the Pearson correlation
  of their ranks, tied weights sharing their average rank); null with fewer
  than 3 such superpixels or when one side's weights are all equal;
* ``top5_jaccard``: ``|A & B| / |A | B|`` of the superpixels with
  ``feature_rank <= 5`` (largest absolute weights) in each run;
* ``drifted``: ``top_label_changed``; or, where the label's explanation is
  stable in both runs (``explanations.stability`` at least
  ``thresholds["min_stability"]``), ``rank_correlation`` below
  ``thresholds["rank_correlation"]`` *and* ``top5_jaccard`` below
  ``thresholds["top5_jaccard"]``: the whole order and the top superpixels
  both moved.  A null ``rank_correlation`` never drifts.

The default thresholds (:data:`DEFAULT_THRESHOLDS`) come from a measurement
of run-to-run noise, the same model and images with another ``--seed``
(``scripts/measure_drift_noise.py``, ``docs/drift.md``).  That noise is
large (the median top-5 overlap of two seeds is 3 of 5 superpixels, and
the rank correlation of a label whose evidence is one superpixel is mostly
the noise of the others), so one measure alone, or explanations their own
run calls unstable, would flag many unchanged images.

Superpixel ids are compared as they are: both runs must have split the
image alike (the same segmentation options and model input size; another
seed or another model of the same input size does).

The table is written into the run's staging area and swapped in as a whole
(:func:`lime_spark.publish.publish_run`), under run B's lock unless the
caller holds it (``lock=False``: the explain job's ``--baseline``).  The
returned summary is also stored as ``drift`` in run B's ``summary.json``,
and run B's report, if it has one, is written again.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any

from ..exceptions import ConfigurationError, StorageError
from ..publish import acquire_run_lock, discard_staging, publish_run, staging_uri
from ..run_ids import check_run_id
from ..storage import exists, filesystem, join_uri, read_bytes, to_hadoop_uri, write_bytes
from ..tables import DRIFT_COLUMNS, PARTITION_COLUMN, arrow_schema, ddl, table

__all__ = ["DEFAULT_THRESHOLDS", "TOP_FEATURES", "MIN_COMMON_FEATURES", "check_thresholds",
           "check_runs", "drift_rows", "compare_runs", "drift_uri"]

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLDS: dict[str, float] = {"rank_correlation": 0.5, "top5_jaccard": 0.2,
                                         "min_stability": 0.95}
"""A row drifts when the image's top label changed, or when the label's explanation is
stable in both runs (``explanations.stability >= 0.95``, the explainer's own 1 - delta)
and both measures moved: ``rank_correlation < 0.5`` and ``top5_jaccard < 0.2`` (at most
one of the five most important superpixels in common).  Chosen from the run-to-run noise
of the same model with other seeds (``docs/drift.md``)."""

TOP_FEATURES = 5
"""``top5_jaccard`` compares the superpixels with ``feature_rank <= TOP_FEATURES``."""

MIN_COMMON_FEATURES = 3
"""``rank_correlation`` needs at least this many superpixels in both surrogates."""

_FOLDER = "drift"
_READ_COLUMNS = {
    "images": ("image_id", "status", "top_label"),
    "explanations": ("image_id", "label", "label_name", "label_rank", "label_prob",
                     "stability"),
    "features": ("image_id", "label", "feature", "feature_weight", "feature_rank"),
}


def drift_uri(root: str, run_id: str) -> str:
    """Where the drift table of run ``run_id`` lies: ``ROOT/drift/run_id=R``."""
    return join_uri(root, _FOLDER, f"{PARTITION_COLUMN}={check_run_id(run_id)}")


def check_thresholds(thresholds: Mapping[str, Any] | None = None) -> dict[str, float]:
    """:data:`DEFAULT_THRESHOLDS` updated with ``thresholds``, checked.

    Parameters
    ----------
    thresholds : mapping, optional
        Any of ``rank_correlation`` (a number in [-1, 1]), ``top5_jaccard`` and
        ``min_stability`` (numbers in [0, 1]; ``min_stability=0`` judges every
        row, however unstable its explanations); a value of None keeps the default.

    Raises
    ------
    ConfigurationError
        For another key, a value that is not a finite number or one out of its range.

    Examples
    --------
    >>> check_thresholds({"top5_jaccard": 0.5}) == {**DEFAULT_THRESHOLDS, "top5_jaccard": 0.5}
    True
    """
    out = dict(DEFAULT_THRESHOLDS)
    if thresholds is None:
        return out
    if not isinstance(thresholds, Mapping):
        raise ConfigurationError(
            "Expected thresholds to be a mapping of rank_correlation, top5_jaccard and/or "
            f"min_stability to numbers. Received: thresholds={thresholds!r}")
    ranges = {"rank_correlation": (-1.0, 1.0), "top5_jaccard": (0.0, 1.0),
              "min_stability": (0.0, 1.0)}
    for key, value in thresholds.items():
        if key not in ranges:
            raise ConfigurationError(
                f"Expected threshold names among {', '.join(ranges)}. Received: {key!r}")
        if value is None:
            continue
        low, high = ranges[key]
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or not low <= value <= high):
            raise ConfigurationError(
                f"Expected the {key} threshold to be a number in [{low:g}, {high:g}]. "
                f"Received: {value!r}")
        out[key] = float(value)
    return out


def check_runs(root: str, run_id: str, baseline: str) -> None:
    """Raise ConfigurationError unless runs ``run_id`` and ``baseline`` differ and both exist."""
    check_run_id(run_id)
    check_run_id(baseline)
    if run_id == baseline:
        raise ConfigurationError(
            "Expected a baseline run other than the run compared. Received: "
            f"run_id={run_id!r} and baseline={baseline!r}")
    for role, run in (("run", run_id), ("baseline run", baseline)):
        if not exists(join_uri(root, "images", f"{PARTITION_COLUMN}={run}")):
            raise ConfigurationError(
                f"Expected a finished {role} {run!r} under {root!r}. Received: no "
                f"images/{PARTITION_COLUMN}={run}/ table there (run the job with "
                f"--run-id {run} first)")


def _glob_escape(uri: str) -> str:
    from .catalog import _glob_escape as escape

    return escape(uri)


def _read(spark: Any, root: str, name: str, run_id: str) -> Any:
    """The columns the comparison needs of one run's partition; empty when it has none.

    Read with the declared types as the schema: no footer is read to plan the query, and
    a column an old run lacks reads as null (its rows then take no part).
    """
    columns = _READ_COLUMNS[name]
    types = {c.name: c.sql_type for c in table(name).columns}
    schema = ", ".join(f"{c} {types[c]}" for c in columns)
    uri = join_uri(root, name, f"{PARTITION_COLUMN}={run_id}")
    if not exists(uri):      # a run without an ok image writes no explanations/features
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).parquet(_glob_escape(to_hadoop_uri(uri)))


def drift_rows(spark: Any, root: str, run_id: str, baseline: str, *,
               thresholds: Mapping[str, Any] | None = None) -> Any:
    """The drift rows of run ``run_id`` against ``baseline``, lazily (a Spark DataFrame).

    The drift table's columns (:data:`lime_spark.tables.DRIFT_COLUMNS`, without
    ``run_id``) followed by ``label_rank_a``, ``label_rank_b`` (the label's
    rank by probability in each run) and ``stability_a``, ``stability_b``
    (``explanations.stability``), for measurements.

    Parameters
    ----------
    spark : SparkSession
    root : str
        The output root holding both runs.
    run_id, baseline : str
        Run B and run A.
    thresholds : mapping, optional
        See :func:`check_thresholds`; they only decide ``drifted``.

    Raises
    ------
    ConfigurationError
        For a bad run id, ``run_id == baseline``, a run without an ``images``
        partition, or bad thresholds.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    limits = check_thresholds(thresholds)
    check_runs(root, run_id, baseline)
    key = ["image_id", "label"]
    in_b = F.col("_in_b")

    def a_(column: str) -> Any:          # the value of run A's row (null without one)
        return F.max(F.when(~in_b, F.col(column)))

    def b_(column: str) -> Any:
        return F.max(F.when(in_b, F.col(column)))

    # each table read once per run; A's and B's rows side by side by one aggregation
    images = (_both(spark, root, "images", run_id, baseline).where(F.col("status") == "ok")
              .groupBy("image_id")
              .agg(a_("top_label").alias("top_a"), b_("top_label").alias("top_b"),
                   F.max(F.when(~in_b, True)).alias("ok_a"), F.max(F.when(in_b, True))
                   .alias("ok_b"))
              .where(F.col("ok_a") & F.col("ok_b"))
              .select("image_id", (~F.col("top_a").eqNullSafe(F.col("top_b")))
                      .alias("top_label_changed")))
    labels = (_both(spark, root, "explanations", run_id, baseline).groupBy(*key)
              .agg(b_("label_name").alias("label_name"), a_("label_prob").alias("prob_a"),
                   b_("label_prob").alias("prob_b"), a_("label_rank").alias("label_rank_a"),
                   b_("label_rank").alias("label_rank_b"), a_("stability").alias("stability_a"),
                   b_("stability").alias("stability_b"))
              .where(F.col("prob_a").isNotNull() & F.col("prob_b").isNotNull()))
    # superpixels: one row each with both runs' weight and rank, clustered by image x label
    weights = (_both(spark, root, "features", run_id, baseline).repartition(*key)
               .groupBy(*key, "feature")
               .agg(a_("feature_weight").alias("w_a"), b_("feature_weight").alias("w_b"),
                    a_("feature_rank").alias("r_a"), b_("feature_rank").alias("r_b")))
    common = F.col("w_a").isNotNull() & F.col("w_b").isNotNull()
    group = Window.partitionBy(*key)
    for side in ("a", "b"):
        # the average rank among the superpixels in both surrogates, one window per side:
        # the others sort first (null) and are taken off; over the default frame (rows up
        # to the current value, ties included) the count is a value's last rank, rank()
        # its first, and tied weights share the mean of the two
        order = group.orderBy(F.when(common, F.col(f"w_{side}")).asc_nulls_first())
        weights = weights.withColumn(
            f"x_{side}",
            (F.rank().over(order) + F.count(F.lit(1)).over(order)) / 2.0
            - F.count(F.when(~common, 1)).over(order))
    x_a, x_b = F.when(common, F.col("x_a")), F.when(common, F.col("x_b"))
    top_a = F.coalesce(F.col("r_a") <= TOP_FEATURES, F.lit(False))
    top_b = F.coalesce(F.col("r_b") <= TOP_FEATURES, F.lit(False))
    stats = weights.groupBy(*key).agg(
        F.count(x_a).alias("n"), F.sum(x_a).alias("sx_a"), F.sum(x_a * x_a).alias("sxx_a"),
        F.sum(x_b).alias("sx_b"), F.sum(x_b * x_b).alias("sxx_b"),
        F.sum((x_a - x_b) * (x_a - x_b)).alias("sdd"),
        F.sum((top_a & top_b).cast("int")).alias("top_both"),
        F.sum((top_a | top_b).cast("int")).alias("top_either"))
    n = F.col("n").cast("double")
    var_a = n * F.col("sxx_a") - F.col("sx_a") * F.col("sx_a")
    var_b = n * F.col("sxx_b") - F.col("sx_b") * F.col("sx_b")
    # sum(x_a - x_b) is 0 (both sides rank 1..n), so n * cov = (var_a + var_b - n * sum d^2) / 2;
    # ranks are half-integers, so every term is exact in doubles
    pearson = (var_a + var_b - n * F.col("sdd")) / (2.0 * F.sqrt(var_a) * F.sqrt(var_b))
    stats = stats.select(
        *key,
        F.when(F.col("n") < MIN_COMMON_FEATURES, F.lit(None).cast("double"))
         .when((var_a <= 0) | (var_b <= 0), F.lit(None).cast("double"))
         .when(F.col("sdd") == 0, F.lit(1.0))                # the same order: exactly 1
         .otherwise(F.greatest(F.lit(-1.0), F.least(F.lit(1.0), pearson)))
         .alias("rank_correlation"),
        F.when(F.col("top_either") > 0, F.col("top_both") / F.col("top_either"))
         .alias("top5_jaccard"))

    rows = images.join(labels, "image_id").join(stats, key, "left")
    stable = F.coalesce(F.least("stability_a", "stability_b") >= limits["min_stability"],
                        F.lit(False))
    moved = (F.coalesce(F.col("rank_correlation") < limits["rank_correlation"], F.lit(False))
             & F.coalesce(F.col("top5_jaccard") < limits["top5_jaccard"], F.lit(False)))
    rows = rows.withColumn("drifted", F.col("top_label_changed") | (stable & moved)) \
               .withColumn("baseline_run_id", F.lit(baseline))
    types = {c.name: c.sql_type for c in table("drift").columns}
    return rows.select(*(F.col(c).cast(types[c]).alias(c) for c in DRIFT_COLUMNS),
                       F.col("label_rank_a").cast("int"), F.col("label_rank_b").cast("int"),
                       F.col("stability_a").cast("double"), F.col("stability_b").cast("double"))


def _both(spark: Any, root: str, name: str, run_id: str, baseline: str) -> Any:
    """Both runs' rows of table ``name``, ``_in_b`` telling run B's from run A's."""
    from pyspark.sql import functions as F

    return (_read(spark, root, name, baseline).withColumn("_in_b", F.lit(False))
            .unionByName(_read(spark, root, name, run_id).withColumn("_in_b", F.lit(True))))


def _counts(spark: Any, root: str, run_id: str, baseline: str, rows: Any,
            min_stability: float) -> dict[str, int]:
    """The summary's counts: images (from both runs' ``images``) and rows (``rows``, persisted)."""
    from pyspark.sql import functions as F

    def count(condition: Any) -> Any:
        return F.sum(F.when(condition, 1).otherwise(0))

    in_b = F.col("_in_b")
    per_image = (_both(spark, root, "images", run_id, baseline).where(F.col("status") == "ok")
                 .groupBy("image_id")
                 .agg(F.max(F.when(~in_b, F.col("top_label"))).alias("top_a"),
                      F.max(F.when(in_b, F.col("top_label"))).alias("top_b"),
                      F.max(F.when(~in_b, True)).alias("ok_a"),
                      F.max(F.when(in_b, True)).alias("ok_b")))
    both = F.col("ok_a").isNotNull() & F.col("ok_b").isNotNull()
    changed = both & ~F.col("top_a").eqNullSafe(F.col("top_b"))
    images = per_image.agg(count(both).alias("images"),
                           count(F.col("ok_b").isNull()).alias("only_in_a"),
                           count(F.col("ok_a").isNull()).alias("only_in_b"),
                           count(changed).alias("top_label_changed")).first()
    by_row = rows.agg(F.count(F.lit(1)).alias("rows"),
                      count(F.col("drifted")).alias("drifted_rows"),
                      count(F.least("stability_a", "stability_b") < min_stability)
                      .alias("unstable_rows"),
                      F.countDistinct("image_id").alias("images_with_rows"),
                      F.countDistinct(F.when(F.col("drifted"), F.col("image_id")))
                      .alias("drifted_with_rows"),
                      F.countDistinct(F.when(F.col("top_label_changed"), F.col("image_id")))
                      .alias("changed_with_rows")).first()
    out = {k: int(images[k] or 0) for k in ("images", "only_in_a", "only_in_b",
                                            "top_label_changed")}
    out.update({k: int(by_row[k] or 0) for k in ("rows", "drifted_rows", "unstable_rows")})
    # an image whose top label changed drifted, with or without a label in common
    out["drifted_images"] = (int(by_row["drifted_with_rows"]) + out["top_label_changed"]
                             - int(by_row["changed_with_rows"]))
    out["images_without_common_label"] = out["images"] - int(by_row["images_with_rows"] or 0)
    return out


def compare_runs(spark: Any, root: str, run_id: str, baseline: str, *,
                 thresholds: Mapping[str, Any] | None = None, lock: bool = True,
                 report: bool | None = None, stale_after: float = 3600.0) -> dict[str, Any]:
    """Compare run ``run_id`` (B) with ``baseline`` (A); write B's ``drift`` table.

    Parameters
    ----------
    spark : SparkSession
    root : str
        The output root of both runs (local path or URI, as the job's ``--output``).
    run_id : str
        Run B: the drift table goes to ``ROOT/drift/run_id=B/``, replacing a
        previous comparison of B as a whole.
    baseline : str
        Run A.
    thresholds : mapping, optional
        Any of ``rank_correlation``, ``top5_jaccard`` and ``min_stability``;
        the others from :data:`DEFAULT_THRESHOLDS` (see :func:`check_thresholds`).
    lock : bool, default True
        Take run B's lock while writing (:func:`lime_spark.publish.acquire_run_lock`);
        False when the caller holds it (the explain job's ``--baseline``).
    report : bool, optional
        Write run B's report again afterwards: None (default) when it has one
        (``report/run_id=B/index.html``), True always, False never.
        Failures are logged, never raised.
    stale_after : float, default 3600
        With ``lock``: seconds after which another job's lock counts as stale
        (it is never broken here: stale or not, a held lock is an error).

    Returns
    -------
    dict
        ``run_id``, ``baseline``; ``images``: images ok in both runs;
        ``only_in_a`` / ``only_in_b``: images ok in one run only; ``rows``:
        rows of the table (image x label explained in both); ``drifted_rows``;
        ``drifted_images``: images with a drifted row or a changed top label;
        ``top_label_changed``: images whose top label changed;
        ``unstable_rows``: rows judged on the top label alone (an explanation
        below ``min_stability`` in a run); ``images_without_common_label``:
        images ok in both with no label explained in both (no row);
        ``thresholds``; ``table``: the partition's URI; ``seconds``.  Also
        stored as ``drift`` in B's ``summary.json``.

    Raises
    ------
    ConfigurationError
        For a bad run id, ``run_id == baseline``, a run without an ``images``
        partition under ``root``, or bad thresholds.
    RunLockedError
        With ``lock``, while another job writes run B.
    StorageError
        When the table cannot be swapped into place.
    """
    started = time.perf_counter()
    limits = check_thresholds(thresholds)
    check_runs(root, run_id, baseline)
    if lock:
        with acquire_run_lock(root, run_id, stale_after=stale_after):
            summary = _compare(spark, root, run_id, baseline, limits)
    else:
        summary = _compare(spark, root, run_id, baseline, limits)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    _store_summary(root, run_id, summary)
    _rewrite_report(root, run_id, report)
    logger.info("drift of run %s against %s: %d of %d images drifted (%d of %d rows), top "
                "label changed in %d; %s", run_id, baseline, summary["drifted_images"],
                summary["images"], summary["drifted_rows"], summary["rows"],
                summary["top_label_changed"], summary["table"])
    return summary


def _compare(spark: Any, root: str, run_id: str, baseline: str,
             limits: dict[str, float]) -> dict[str, Any]:
    staging = staging_uri(root, run_id, f"drift-{uuid.uuid4().hex}")
    target = join_uri(staging, _FOLDER, f"{PARTITION_COLUMN}={run_id}")
    rows = drift_rows(spark, root, run_id, baseline, thresholds=limits).persist()
    try:
        # one sorted file, written into the partition folder itself, so that a comparison
        # without rows still leaves an (empty) Parquet file with the schema
        (_declared(rows.select(*DRIFT_COLUMNS), "drift")
         .repartition(1).sortWithinPartitions("image_id", "label")
         .write.mode("overwrite").parquet(to_hadoop_uri(target)))
        _remove_marker(target)
        publish_run(root, run_id, staging, [_FOLDER])
        counts = _counts(spark, root, run_id, baseline, rows, limits["min_stability"])
    except BaseException:
        discard_staging(root, run_id, staging)
        raise
    finally:
        rows.unpersist()
    return {"run_id": run_id, "baseline": baseline,
            **{k: counts[k] for k in ("images", "only_in_a", "only_in_b", "rows",
                                      "drifted_rows", "drifted_images", "top_label_changed",
                                      "unstable_rows", "images_without_common_label")},
            "thresholds": dict(limits), "table": drift_uri(root, run_id)}


def _declared(frame: Any, name: str) -> Any:
    """``frame`` with table ``name``'s declared schema, every column nullable.

    Spark writes a column it knows is never null (a literal, ``a <=> b``) as a required
    Parquet field; the tables' files declare every field optional (``arrow_schema``).
    Each Arrow batch is relabelled, not copied.
    """
    target = arrow_schema(name)

    def relabel(batches: Any) -> Any:
        import pyarrow as pa

        for batch in batches:
            yield pa.RecordBatch.from_arrays(batch.columns, schema=target)

    return frame.mapInArrow(relabel, ddl(name))


def _remove_marker(folder: str) -> None:
    """Delete Spark's ``_SUCCESS`` file (and its checksum), so that the partition holds the
    Parquet files alone, as the job's partitions do."""
    for name in ("_SUCCESS", "._SUCCESS.crc"):
        fs, path = filesystem(join_uri(folder, name))
        try:
            fs.rm(path)
        except (FileNotFoundError, OSError):
            pass


def _store_summary(root: str, run_id: str, drift: dict[str, Any]) -> None:
    """Set ``drift`` in run B's summary.json (a new file with ``run_id`` alone if it has none)."""
    uri = join_uri(root, "runs", f"{PARTITION_COLUMN}={run_id}", "summary.json")
    summary: dict[str, Any] = {"run_id": run_id}
    if exists(uri):
        try:
            loaded = json.loads(read_bytes(uri, retries=1).decode("utf-8"))
        except (StorageError, ValueError) as exc:
            logger.warning("summary.json of run %s is unreadable (%s); writing a new one with "
                           "the drift alone", run_id, exc)
        else:
            if isinstance(loaded, dict):
                summary = loaded
    summary["drift"] = drift
    write_bytes(uri, json.dumps(summary, indent=2, default=str).encode("utf-8"))


def _rewrite_report(root: str, run_id: str, report: bool | None) -> None:
    if report is False:
        return
    if report is None and not exists(join_uri(root, "report", f"{PARTITION_COLUMN}={run_id}",
                                              "index.html")):
        return
    from ..report import write_report

    try:
        write_report(root, run_id)
    except Exception as exc:  # noqa: BLE001 - the report must not fail a finished comparison
        logger.warning("could not write the report of run %s again: %s: %s", run_id,
                       type(exc).__name__, exc)
