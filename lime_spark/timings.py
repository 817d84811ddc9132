"""Where a worker's time goes: seconds per stage, per image and per worker.

The per-image pipeline (:mod:`lime_spark.pipeline`) times every stage of
every image with a :class:`StageClock` (one per image, filled in by whichever
thread runs the stage) and the model's batches, which hold rows of several
images, are shared out by rows.  The Spark worker adds the Arrow conversion
and reports the sums per partition; the job adds them up in ``summary.json``
(``timings.stages`` and ``timings.model_busy_fraction``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

__all__ = ["STAGES", "StageClock", "add_stages", "busy_fraction", "format_stages"]

STAGES = ("read", "decode", "segment", "model", "fit", "metrics", "anchors", "render",
          "encode", "write", "arrow")
"""The stages, in pipeline order.

read: the image's bytes from storage; decode: to RGB, and the resize to the
model's input; segment: superpixels and fill; model: forward passes (a
batch's time shared by its rows); fit: sampling, kernel, stability checks and
the surrogate; metrics: deletion/insertion curves outside the model;
anchors: the anchor search outside the model (``--methods lime,anchors``); render: the overlay thumbnail and pictures; encode: PNG encoding; write: the
overlay files; arrow: the result rows to Arrow (the Spark worker).
"""


class StageClock:
    """Seconds per stage for one image; several threads may add to it in turn."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` to ``stage`` (one of :data:`STAGES`)."""
        with self._lock:
            self.seconds[stage] += seconds

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        """Time the ``with`` block into ``stage``, also when it raises."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - started)

    def total(self) -> float:
        """Seconds over all stages so far."""
        with self._lock:
            return sum(self.seconds.values())

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            return dict(self.seconds)


def add_stages(total: dict[str, float], stages: Mapping[str, float | None] | None) -> None:
    """Add one image's (or partition's) stage seconds into ``total`` in place."""
    for stage in STAGES:
        value = (stages or {}).get(stage)
        if value:
            total[stage] = total.get(stage, 0.0) + float(value)


def busy_fraction(model_seconds: float, worker_seconds: float) -> float | None:
    """Model seconds over worker seconds (None when no worker time was measured)."""
    return round(model_seconds / worker_seconds, 4) if worker_seconds > 0 else None


def format_stages(stages: Mapping[str, float], order: Iterable[str] = STAGES) -> str:
    """``read 0.1s, decode 0.3s, ...`` for a log line (stages with time only)."""
    return ", ".join(f"{s} {stages[s]:.2f}s" for s in order if stages.get(s))
