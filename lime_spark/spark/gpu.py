"""Pin a Python worker to the GPUs its Spark task holds, before TensorFlow starts.

With ``spark.task.resource.gpu.amount`` set, each task holds GPU addresses
(``TaskContext.get().resources()["gpu"].addresses``).  TensorFlow reads
``CUDA_VISIBLE_DEVICES`` once, when it initialises its devices, so the
variable is set before the first TensorFlow import in the worker; memory
growth is enabled so several workers can share a device.  Without GPU
resources nothing changes and TensorFlow runs on the CPU.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

__all__ = ["pin_task_gpus", "task_cpus", "executors_have_gpus"]

logger = logging.getLogger(__name__)


def pin_task_gpus() -> str | None:
    """Set ``CUDA_VISIBLE_DEVICES`` from the task's GPU addresses.

    Returns
    -------
    str or None
        The addresses (comma separated) the task holds, or None without GPUs.
    """
    from pyspark import TaskContext

    ctx = TaskContext.get()
    resources = ctx.resources() if ctx is not None else {}
    gpu = resources.get("gpu")
    if gpu is None or not gpu.addresses:
        return None
    addresses = ",".join(gpu.addresses)
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    if "tensorflow" in sys.modules and previous is not None and previous != addresses:
        logger.warning("task holds GPU %s but TensorFlow in this worker already started on %s",
                       addresses, previous)
        return addresses
    os.environ["CUDA_VISIBLE_DEVICES"] = addresses
    try:
        import tensorflow as tf

        for device in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(device, True)
            except RuntimeError:   # already initialised: growth was set earlier
                pass
    except ImportError:
        pass
    return addresses


def task_cpus() -> int:
    """CPUs of the running task (``spark.task.cpus``), 1 outside a task."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    try:
        return max(1, int(ctx.cpus())) if ctx is not None else 1
    except Exception:  # noqa: BLE001 - older TaskContexts lack cpus()
        return 1


def executors_have_gpus(spark: Any) -> bool:
    """Whether tasks of this session get GPUs (``spark.{task,executor}.resource.gpu.amount``).

    In local mode Spark schedules no GPUs, but the Python workers run on this
    machine and see its GPUs: then it is whether TensorFlow here sees one.
    """
    conf = spark.sparkContext.getConf()
    for key in ("spark.task.resource.gpu.amount", "spark.executor.resource.gpu.amount"):
        try:
            if float(conf.get(key, "0") or 0) > 0:
                return True
        except ValueError:
            continue
    if spark.sparkContext.master.startswith("local"):
        return local_gpu()
    return False


def local_gpu() -> bool:
    """Whether TensorFlow in this process sees a GPU (False without TensorFlow)."""
    try:
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # noqa: BLE001 - no TensorFlow devices, no GPU
        return False
