"""The worker's pipeline: CPU stages around the model, model batches across images.

:func:`run_pipeline` takes the images of a partition through three stages:

1. **prepare** (read, decode, resize, segment, fill), in a small thread pool,
   at most ``prefetch`` images ahead of the model;
2. **model**: up to ``in_flight`` prepared images are explained at once.
   Each explanation is a step generator (:mod:`lime_spark.steps`); the
   pending rows of their requests are packed, oldest image first, into
   batches of ``device_batch`` rows that may hold rows of several images
   (``predict_rows``), and every image gets back exactly its own rows'
   probabilities.  Its design rows depend only on its seed, and a row's
   probabilities do not depend on its batch mates, so an image's results are
   the same however it was batched;
3. **finish** (table rows, overlay pictures, PNG encoding, writing), in the
   same pool, behind the model.

The model runs in the calling thread only (a classifier is not thread-safe).
One image's failure (a bad file, a non-finite probability, its time limit)
ends that image alone as an error result; a batch that raises is re-run one
image at a time to find whose rows failed.

Memory: besides the images being decoded (``threads`` at a time, each within
``max_decode_bytes``), at most ``prefetch + in_flight + threads + 1`` images
are held, each as its overlay canvas (at most ``overlay_max_side`` pixels on
a side) and its model-size arrays; finished results wait for the caller only
as table rows.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from .models import check_probabilities
from .steps import ModelRequest, Steps
from .timings import StageClock

__all__ = ["ImageTask", "run_pipeline", "resolve_device_batch", "resolve_in_flight",
           "DEVICE_BATCH"]

logger = logging.getLogger(__name__)

R = TypeVar("R")
"""A finished image's result (the batch job's ``RecordResult``)."""

DEVICE_BATCH = {"onnx": 32, "tensorflow": 128, "gpu": 1024, "python": 128}
"""``device_batch_size="auto"`` by where the model runs: ONNX Runtime and TensorFlow on
CPU (their measured best, ``docs/benchmarks.md``), any runtime on a GPU, a plain
callable."""


def resolve_device_batch(value: int | str, runtime: str, gpu: bool) -> int:
    """The rows per model call: ``value``, or :data:`DEVICE_BATCH` for ``"auto"``."""
    if value != "auto":
        return int(value)
    return DEVICE_BATCH["gpu" if gpu else runtime if runtime in DEVICE_BATCH else "python"]


def resolve_in_flight(value: int | str, device_batch: int, block: int) -> int:
    """Images explained at once: ``value``, or for ``"auto"`` enough blocks of ``block``
    rows to fill two device batches (at least 2, at most 32)."""
    if value != "auto":
        return int(value)
    return max(2, min(32, -(-2 * device_batch // max(block, 1))))


class ImageTask(Protocol[R]):
    """One prepared image, as the pipeline drives it."""

    clock: StageClock
    stage: str
    """The stage the step generator's own time counts as (``fit``, then ``metrics``)."""

    def steps(self) -> Steps[Any]:
        """The image's step generator (explanation, then metrics)."""

    def check(self, stage: str) -> None:
        """Raise (the image's time limit) before ``stage``."""

    def finish(self, value: Any) -> R:
        """The result of an image whose steps returned ``value`` (runs in the pool)."""

    def fail(self, exc: Exception) -> R:
        """The result of an image that failed with ``exc``."""


class _Done(Generic[R]):
    """A result that is already there, with ``Future``'s ``done``/``result``."""

    def __init__(self, value: R):
        self.value = value

    def done(self) -> bool:
        return True

    def result(self) -> R:
        return self.value


class _Job:
    """An image in the model stage: its generator and its current request's rows."""

    def __init__(self, task: ImageTask):
        self.task = task
        self.gen = task.steps()
        self.request: ModelRequest | None = None
        self.sent = 0
        self.chunks: list[NDArray] = []
        self.arrays: tuple[Any, NDArray, NDArray, NDArray] | None = None

    def advance(self, probs: NDArray | None) -> Any:
        """Send ``probs`` (None to start); True when a new request is pending, else
        the generator's return value wrapped in a 1-tuple."""
        started, stage = time.perf_counter(), self.task.stage   # the stage this send ends
        try:
            self.request = self.gen.send(probs)
            while not self.request.design.shape[0]:          # nothing to predict
                self.request = self.gen.send(np.zeros((0, 0), np.float32))
        except StopIteration as stop:
            self.request = None
            return (stop.value,)
        finally:
            self.task.clock.add(stage, time.perf_counter() - started)
        self.sent = 0
        self.chunks = []
        if self.arrays is None or self.arrays[0] is not self.request.image:
            self.arrays = (self.request.image,
                           np.ascontiguousarray(self.request.image, np.float32),
                           np.ascontiguousarray(self.request.fill_image, np.float32),
                           np.ascontiguousarray(self.request.segments, np.int32))
        return True

    @property
    def pending(self) -> int:
        return 0 if self.request is None else self.request.design.shape[0] - self.sent

    @property
    def received(self) -> int:
        return sum(c.shape[0] for c in self.chunks)


class _Batch:
    """Rows of one model call: (job, first row, row count) slices, oldest image first."""

    def __init__(self, slices: list[tuple[_Job, int, int]]):
        self.slices = slices

    @property
    def rows(self) -> int:
        return sum(n for _, _, n in self.slices)

    def arrays(self) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray]:
        """``predict_rows``' inputs: images, fills, segments, row_image, design."""
        jobs: list[_Job] = []
        for job, _, _ in self.slices:
            if job not in jobs:
                jobs.append(job)
        images = np.stack([j.arrays[1] for j in jobs])
        fills = np.stack([j.arrays[2] for j in jobs])
        segments = np.stack([j.arrays[3] for j in jobs])
        width = max(j.request.design.shape[1] for j in jobs)
        design = np.zeros((self.rows, width), np.float32)
        row_image = np.empty(self.rows, np.int32)
        at = 0
        for job, start, n in self.slices:
            rows = job.request.design[start:start + n]
            design[at:at + n, :rows.shape[1]] = rows
            row_image[at:at + n] = jobs.index(job)
            at += n
        return images, fills, segments, row_image, design


def run_pipeline(items: Iterable[Any], *, prepare: Callable[[Any], ImageTask[R] | R],
                 is_task: Callable[[Any], bool], predictor: Any, device_batch: int,
                 in_flight: int, prefetch: int, threads: int,
                 n_classes: int | None = None, single_image: bool = False) -> Iterator[R]:
    """Explain ``items``; yields one result per item, in the order they finish.

    Parameters
    ----------
    items : iterable
        Read lazily, in order, from the calling thread.
    prepare : callable
        ``item -> ImageTask`` (or a finished result, e.g. an error row); runs
        in the pool.
    is_task : callable
        Tells an :class:`ImageTask` from a finished result.
    predictor : object with ``predict_rows``
        A :class:`~lime_spark.models.Classifier` or
        :class:`~lime_spark.adapters.FunctionClassifier`.
    device_batch : int
        Rows per model call (the last calls of a partition may have fewer).
    in_flight : int
        Images whose requests may share batches; 1: every batch holds the
        rows of one image.
    prefetch : int
        Images prepared ahead of the model.
    threads : int
        Pool threads for the prepare and finish stages; 0 runs them inline.
    n_classes : int, optional
        Checked on every image's probabilities.
    single_image : bool, default False
        Run a batch that holds one image's rows through ``predict_design``
        (ONNX Runtime's single-image graph is about 10% faster than the
        multi-image one, with bitwise the same probabilities).
    """
    pool = ThreadPoolExecutor(threads, thread_name_prefix="lime-spark") if threads else None

    def submit(fn: Callable[..., Any], *args: Any) -> Future | _Done:
        if pool is None:
            return _Done(fn(*args))
        return pool.submit(fn, *args)

    source = iter(items)
    exhausted = False
    preparing: deque[Future | _Done] = deque()
    jobs: list[_Job] = []
    finishing: deque[Future | _Done] = deque()

    def finish(job: _Job, value: Any) -> None:
        jobs.remove(job)
        finishing.append(submit(job.task.finish, value))

    def fail(job: _Job, exc: Exception) -> None:
        job.gen.close()
        jobs.remove(job)
        finishing.append(_Done(job.task.fail(exc)))

    def advance(job: _Job, probs: NDArray | None) -> None:
        """Send the job its answer: a new request, its result (finish) or its failure."""
        try:
            outcome = job.advance(probs)
        except Exception as exc:  # noqa: BLE001 - the image's own failure
            fail(job, exc)
            return
        if outcome is not True:
            finish(job, outcome[0])

    def start(task: ImageTask) -> None:
        job = _Job(task)
        jobs.append(job)
        advance(job, None)

    def deliver(job: _Job, probs: NDArray) -> None:
        job.chunks.append(probs)
        if job.received < job.request.design.shape[0]:
            return
        advance(job, np.concatenate(job.chunks) if len(job.chunks) > 1 else job.chunks[0])

    def run_model(batch: _Batch) -> NDArray:
        images, fills, segments, row_image, design = batch.arrays()
        if single_image and images.shape[0] == 1:
            return np.asarray(predictor.predict_design(images[0], fills[0], segments[0],
                                                       design))
        return np.asarray(predictor.predict_rows(images, fills, segments, row_image, design))

    def predict(batch: _Batch) -> None:
        started = time.perf_counter()
        try:
            probs = run_model(batch)
        except Exception as exc:  # noqa: BLE001 - whose rows failed is found below
            if len({id(job) for job, _, _ in batch.slices}) == 1:
                job = batch.slices[0][0]
                job.task.clock.add("model", time.perf_counter() - started)
                fail(job, exc)
                return
            logger.warning("a model batch of %d images failed (%s: %s); re-running them "
                           "one image at a time", len(batch.slices), type(exc).__name__, exc)
            for piece in batch.slices:
                predict(_Batch([piece]))
            return
        seconds = time.perf_counter() - started
        at = 0
        for job, _, n in batch.slices:
            job.task.clock.add("model", seconds * n / probs.shape[0] if probs.shape else 0.0)
            try:
                part = check_probabilities(probs[at:at + n], n, n_classes)
            except Exception as exc:  # noqa: BLE001 - non-finite rows fail their image only
                fail(job, exc)
            else:
                deliver(job, part)
            at += n

    def next_batch() -> _Batch | None:
        slices: list[tuple[_Job, int, int]] = []
        room = device_batch
        for job in list(jobs):
            if room == 0:
                break
            if not job.pending:
                continue
            try:
                job.task.check("model batch")
            except Exception as exc:  # noqa: BLE001 - the image's time limit
                fail(job, exc)
                continue
            n = min(job.pending, room)
            slices.append((job, job.sent, n))
            job.sent += n
            room -= n
        return _Batch(slices) if slices else None

    try:
        while True:
            while finishing and finishing[0].done():
                yield finishing.popleft().result()
            while not exhausted and len(preparing) < max(prefetch, 1):
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                else:
                    preparing.append(submit(prepare, item))
            # admit prepared images in order; wait for one only when the model is idle
            while preparing and len(jobs) < in_flight and (preparing[0].done() or not jobs):
                prepared = preparing.popleft().result()
                if is_task(prepared):
                    start(prepared)
                else:
                    finishing.append(_Done(prepared))
            if not jobs:
                if exhausted and not preparing:
                    break
                continue
            batch = next_batch()
            if batch is not None:
                predict(batch)
            while len(finishing) > max(threads, 1) + 1:
                yield finishing.popleft().result()
        while finishing:
            yield finishing.popleft().result()
    finally:
        for job in jobs:
            job.gen.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
