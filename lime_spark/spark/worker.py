"""The executor side of the job: the ``mapInArrow`` function and what it needs.

:func:`explain_partitions` turns Arrow batches of input rows (``image_id``,
``path``, ``expected_label``) into Arrow batches of result rows
(:data:`RESULT_SCHEMA`), one per input row, with
:func:`lime_spark.batch.explain_records` (the pipeline: stages around the
model in ``spark.task.cpus`` threads, model batches shared between images).
It pins the task's GPU, sizes the model's and numpy's threads to
``spark.task.cpus``, takes the model from the Python worker's cache
(:mod:`lime_spark.spark.model_cache`) and accounts the partition's time by
stage (:mod:`lime_spark.timings`): each row carries its image's stage seconds,
the last row of a partition the partition's worker seconds.
``LIME_SPARK_FAIL_ONCE=DIR`` is a fault injection switch for tests: the first
attempt of partition 1 exits its Python worker after its first output batch.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from ..batch import (BatchSettings, ImageRecord, RecordResult, base_row, error_row,
                     explain_records, explainer_key)
from ..exceptions import InvalidImageError
from ..explainer import ImageExplainer
from ..tables import ddl
from ..timings import STAGES, add_stages, busy_fraction, format_stages
from ..pipeline import resolve_device_batch
from .gpu import local_gpu, pin_task_gpus, task_cpus
from .model_cache import get_classifier

__all__ = ["explain_partitions", "RESULT_SCHEMA", "INPUT_COLUMNS", "FAIL_ONCE_ENV"]

logger = logging.getLogger(__name__)

INPUT_COLUMNS = ("image_id", "path", "expected_label")
"""The columns of the input rows the partition function receives."""

RESULT_SCHEMA = (
    f"{ddl('images')}, explanations ARRAY<STRUCT<{ddl('explanations')}>>, "
    f"features ARRAY<STRUCT<{ddl('features')}>>, "
    f"anchors ARRAY<STRUCT<{ddl('anchors')}>>, "
    "_worker_pid INT, _model_loaded BOOLEAN, _gpu STRING, _read_retries INT, _max_rss BIGINT, "
    "_segmentation_fallback BOOLEAN, "
    f"_stages STRUCT<{', '.join(f'{s} DOUBLE' for s in STAGES)}>, "
    "_worker_seconds DOUBLE, _model_load_seconds DOUBLE"
)
"""One row per input row; the three tables are projections of it."""


FAIL_ONCE_ENV = "LIME_SPARK_FAIL_ONCE"
"""Fault injection for tests: a folder; see :func:`_fail_once`."""

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
                       settings: BatchSettings, explainer: ImageExplainer,
                       arrow_schema: Any, log_level: str = "INFO",
                       runtime: str = "tensorflow", commit_to: str | None = None) -> Iterator[Any]:
    """``mapInArrow`` function: Arrow batches of input rows to batches of result rows.

    ``runtime`` is the payload's: with ``onnx`` the worker never imports
    TensorFlow for the model, and ONNX Runtime gets ``spark.task.cpus`` threads.
    ``commit_to``: a folder where the task attempt's result rows are committed
    as one Parquet file once its last row is out (:class:`_Commit`).
    """
    from pyspark import TaskContext

    _configure_worker_logging(log_level)
    gpu = pin_task_gpus()
    threads = task_cpus()
    if runtime == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:       # already set in this reused worker
            pass
    load_started = time.perf_counter()
    classifier, loaded = get_classifier(model_key, lambda: broadcast.value, threads=threads)
    on_gpu = gpu is not None or classifier.runtime == "tensorflow" and local_gpu()
    classifier.row_batch_size = resolve_device_batch(settings.device_batch_size,
                                                     classifier.runtime, on_gpu)
    if loaded:
        _warm_up(classifier)
    load_seconds = time.perf_counter() - load_started
    ctx = TaskContext.get()
    partition = ctx.partitionId() if ctx else -1
    attempt = ctx.attemptNumber() if ctx else 0
    started = time.perf_counter()
    counts = {"ok": 0, "error": 0}
    totals: dict[str, float] = {}
    pid = os.getpid()
    side: list[RecordResult] = []          # rows whose text is not UTF-8: no pipeline
    digest = explainer_key(explainer, settings, classifier)
    commit = _Commit(commit_to, arrow_schema, partition, attempt) if commit_to else None

    chunk = [OUTPUT_ROWS]                  # rows per output batch: the input's batch size

    def records() -> Iterator[ImageRecord]:
        for batch in batches:
            chunk[0] = max(1, min(chunk[0], batch.num_rows))
            for record, bad_text in _records(batch):
                if bad_text is None:
                    yield record
                else:
                    side.append(_bad_text_result(record, bad_text,
                                                 base_row(classifier, digest)))

    def row(result: RecordResult) -> dict[str, Any]:
        nonlocal loaded
        counts[result.image["status"]] += 1
        add_stages(totals, result.stages)
        out = {**result.image, "explanations": result.explanations,
               "features": result.features, "anchors": result.anchors, "_worker_pid": pid, "_model_loaded": loaded,
               "_gpu": gpu, "_read_retries": result.read_retries, "_max_rss": _peak_rss(),
               "_segmentation_fallback": result.segmentation_fallback,
               "_stages": {s: result.stages.get(s, 0.0) for s in STAGES},
               "_worker_seconds": None,
               "_model_load_seconds": load_seconds if loaded else None}
        loaded = False
        return out

    arrow_seconds = 0.0
    pending: list[dict[str, Any]] = []
    with _blas_threads(threads):
        results = explain_records(records(), classifier=classifier, explainer=explainer,
                                  settings=settings, threads=threads, gpu=on_gpu)
        for result in results:
            pending += [row(r) for r in side] + [row(result)]
            side.clear()
            if len(pending) > chunk[0]:          # one row stays for the partition's time
                batch, arrow_seconds = _to_arrow(pending[:chunk[0]], arrow_schema,
                                                 arrow_seconds)
                pending = pending[chunk[0]:]
                if commit is not None:
                    commit.write(batch)
                yield batch
                _fail_once(partition, attempt)
        pending += [row(r) for r in side]
    worker_seconds = time.perf_counter() - started
    if pending:
        pending[-1]["_worker_seconds"] = worker_seconds
        batch, arrow_seconds = _to_arrow(pending, arrow_schema, arrow_seconds)
        # the last batch carries its own conversion: converted again with the time in it
        pending[-1]["_stages"]["arrow"] += arrow_seconds
        batch, _ = _to_arrow(pending, arrow_schema, None)
        if commit is not None:
            commit.write(batch)
            commit.close()             # before the last batch leaves: the task ends after it
        yield batch
    total = counts["ok"] + counts["error"]
    totals["arrow"] = totals.get("arrow", 0.0) + arrow_seconds
    logger.info("partition %d (attempt %d, worker %d): %d images, %d ok, %d error in %.1fs "
                "(%.2f images/s); model busy %s; %s", partition, attempt, pid, total,
                counts["ok"], counts["error"], worker_seconds,
                total / worker_seconds if worker_seconds else 0.0,
                _percent(busy_fraction(totals.get("model", 0.0), worker_seconds)),
                format_stages(totals))


class _Commit:
    """A task attempt's result rows, committed as one Parquet file when the task's rows are done.

    The rows go to a local temporary file as they are yielded (memory stays
    bounded); :meth:`close` moves it to
    ``<folder>/part-<partition>-<attempt>-<random>.parquet`` in one atomic
    write (a rename on local disk, one PUT on object stores), so a reader of
    the folder sees whole task attempts only.  Two attempts of one task (a
    retry after the commit, speculation) commit the same images twice: the
    job keeps one row per image id.  See :mod:`lime_spark.spark.resume`.
    """

    def __init__(self, folder: str, schema: Any, partition: int, attempt: int):
        import tempfile
        import uuid

        import pyarrow.parquet as pq

        self.uri = f"{folder.rstrip('/')}/part-{partition:05d}-{attempt}-{uuid.uuid4().hex[:12]}.parquet"
        handle, self.local = tempfile.mkstemp(prefix="lime-spark-commit-", suffix=".parquet")
        os.close(handle)
        self.writer = pq.ParquetWriter(self.local, schema)
        self.rows = 0

    def write(self, batch: Any) -> None:
        self.writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        from ..storage import write_file

        self.writer.close()
        try:
            write_file(self.uri, self.local)
        finally:
            os.remove(self.local)
        logger.info("committed %d rows to %s", self.rows, self.uri)


OUTPUT_ROWS = 16
"""Most result rows per Arrow batch yielded to Spark (fewer when the input's batches are
smaller: ``spark.sql.execution.arrow.maxRecordsPerBatch``), so explained rows stream out."""


def _to_arrow(rows: list[dict[str, Any]], schema: Any,
              carried: float | None) -> tuple[Any, float]:
    """The rows as one Arrow batch, and the seconds the conversion took.

    ``carried``, the previous conversion's time, is shared out over these
    rows' ``arrow`` stage (a batch cannot carry its own conversion time; the
    partition's last batch is converted twice for that); None leaves it.
    """
    import pyarrow as pa

    if carried is not None:
        for r in rows:
            r["_stages"]["arrow"] = carried / len(rows)
    started = time.perf_counter()
    batch = pa.RecordBatch.from_pylist(rows, schema=schema)
    return batch, time.perf_counter() - started


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _blas_threads(threads: int) -> Any:
    """numpy's BLAS limited to the task's cores (small matrices thrash with more)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=max(1, threads), user_api="blas")


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
    segments = np.zeros((height, width), np.int32)
    design = np.ones((1, 1), np.float32)
    classifier.predict_design(image, image, segments, design)
    classifier.predict_rows(image[None], image[None], segments[None], np.zeros(1, np.int32),
                            design)
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
