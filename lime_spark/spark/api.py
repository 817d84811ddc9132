"""Explain the images of any DataFrame, in the style of pyspark's ``predict_batch_udf``.

:func:`explain_images` is the Spark API of lime-spark: a DataFrame of image
URIs in (from a Parquet list, a Delta table, a join with labels, ...), a lazy
DataFrame of explanations out, one row per input row.  It hides the model
broadcast and its per-worker cache, the Arrow schema, the partition function
and the GPU pinning.  The batch job (:func:`lime_spark.spark.job.run_job`) is
this function plus reading the list, distinct ids, writing the tables and the
report.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ..batch import BatchSettings
from ..run_ids import check_run_id
from ..exceptions import ConfigurationError
from ..explainer import ExplainerConfig, ImageExplainer
from ..models import Classifier

__all__ = ["explain_images", "input_rows"]

logger = logging.getLogger(__name__)


def input_rows(df: Any, *, path_col: str = "path", id_col: str | None = "image_id",
               label_col: str | None = None) -> Any:
    """The columns the partition function reads: ``image_id``, ``path``, ``expected_label``.

    ``path`` is ``path_col`` as text; ``image_id`` is ``id_col`` as text where the
    column exists and the value is not null, else the first 16 hex digits of
    sha256(path) (:func:`lime_spark.batch.image_id_for_path`), and ``""`` for a
    row with neither; ``expected_label`` is ``label_col`` as text, or null.

    Raises
    ------
    ConfigurationError
        ``path_col`` (or a named ``label_col``) is not a column of ``df``.
    """
    from pyspark.sql import functions as F

    columns = df.columns
    for what, name in (("path_col", path_col), ("label_col", label_col)):
        if name is not None and name not in columns:
            raise ConfigurationError(
                f"Expected a column {name!r} ({what}) in the DataFrame. Received columns: "
                f"{columns}")
    path = F.col(path_col).cast("string")
    path_id = F.substring(F.sha2(path, 256), 1, 16)
    image_id = F.coalesce(F.col(id_col).cast("string") if id_col in columns else path_id,
                          path_id, F.lit(""))
    label = (F.col(label_col).cast("string") if label_col is not None
             else F.lit(None).cast("string"))
    return df.select(image_id.alias("image_id"), path.alias("path"),
                     label.alias("expected_label"))


def explain_images(df: Any, model: Classifier | str, *,
                   explainer: ImageExplainer | ExplainerConfig | None = None,
                   path_col: str = "path", id_col: str | None = "image_id",
                   label_col: str | None = None, top_labels: int = 5,
                   overlays_to: str | None = None, run_id: str | None = None, seed: int = 0,
                   settings: BatchSettings | None = None, log_level: str = "INFO",
                   commit_to: str | None = None) -> Any:
    """Explain every image of ``df`` with LIME; a lazily evaluated DataFrame.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        One row per image, with its URI in ``path_col`` (local, ``s3a://``,
        ``gs://``, ... as the executors see it).
    model : Classifier or str
        A :class:`~lime_spark.models.Classifier`, or what
        :func:`~lime_spark.models.load_classifier` takes (a ``.keras`` file at any
        URI or a ``keras.applications`` name with ImageNet weights).  It is
        loaded here, on the driver, and broadcast as ``.keras`` bytes; every
        Python worker builds it once and keeps it (keyed by its digest).
    explainer : ImageExplainer or ExplainerConfig, optional
        The LIME settings (default ``ImageExplainer()``).
    path_col, id_col, label_col : str
        Input columns: the image URI; its id (absent or null: a hash of the
        path); an expected label kept for audits (optional).  Ids should be
        distinct: rows sharing an id share an overlay folder and cannot be told
        apart (:func:`lime_spark.spark.distinct_image_ids` renames them).
    top_labels : int, default 5
        Explain this many most probable labels per image.
    overlays_to : str, optional
        An output root: overlays are written to
        ``ROOT/overlays/run_id=R/<key of id>/<label>.png`` and named in the
        rows' ``overlay_uri``.  None: no overlays.
    run_id : str, optional
        Names the overlay folder (default ``"adhoc"``).
    seed : int, default 0
        Run seed: an image's seed derives from (seed, image id), so its rows
        do not depend on the partitioning, the order or retries.
    settings : BatchSettings, optional
        Every per-image setting (limits, metrics, overlay style); the
        arguments above override its fields.
    log_level : str, default "INFO"
        Level of lime-spark's loggers in the Python workers.
    commit_to : str, optional
        A folder (any URI) where every task attempt commits its result rows as
        one Parquet file once its rows are out (the batch job's resume:
        :mod:`lime_spark.spark.resume`).  None: nothing committed.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per input row, nothing computed until an action: the
        ``images`` table's columns (``status`` ``ok`` or ``error``, with
        ``error_class`` and ``error_message``: a bad image never fails the
        query), ``explanations`` and ``features`` as arrays of structs (the
        rows of those tables), and diagnostics columns starting with ``_``.

    Notes
    -----
    Executor preconditions: the executors' Python has lime-spark and its
    dependencies (TensorFlow, Keras, scikit-image, Pillow, pyarrow, fsspec;
    s3fs for S3); the image URIs and ``overlays_to`` are readable and writable
    from the executors with their own credentials; on GPU executors
    (``spark.executor.resource.gpu.amount``) each task's GPU is taken from its
    ``TaskContext`` resources and TensorFlow sees only that one.

    Examples
    --------
    >>> rows = spark.createDataFrame([("s3a://b/cat.jpg", "cat-1")], "path string, image_id string")
    >>> explained = explain_images(rows, "mobilenet", top_labels=3)       # doctest: +SKIP
    >>> explained.select("image_id", "top_label_name", "top_prob").show()  # doctest: +SKIP
    """
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import _parse_datatype_string

    from ..models import load_classifier
    from .worker import RESULT_SCHEMA, explain_partitions
    from .gpu import executors_have_gpus
    from .model_cache import ModelPayload

    classifier = (model if isinstance(model, Classifier)
                  else load_classifier(model, gpu=executors_have_gpus(df.sparkSession)))
    if explainer is None:
        explainer = ImageExplainer()
    elif isinstance(explainer, ExplainerConfig):
        explainer = ImageExplainer(**{f.name: getattr(explainer, f.name)
                                      for f in dataclasses.fields(explainer)})
    elif not isinstance(explainer, ImageExplainer):
        raise ConfigurationError(
            "Expected explainer to be an ImageExplainer or an ExplainerConfig. Received: "
            f"{type(explainer).__name__}")
    run_id = check_run_id(run_id if run_id is not None
                          else settings.run_id if settings is not None else "adhoc")
    base = settings if settings is not None else BatchSettings(run_id=run_id, run_seed=seed,
                                                               output_root="")
    settings = dataclasses.replace(
        base, run_id=run_id, run_seed=seed, top_labels=top_labels,
        output_root=overlays_to if overlays_to is not None else base.output_root,
        overlays=overlays_to is not None)
    rows = input_rows(df, path_col=path_col, id_col=id_col, label_col=label_col)

    payload = ModelPayload.from_classifier(classifier)
    broadcast = df.sparkSession.sparkContext.broadcast(payload)
    logger.info("model %s (%.1f MB as %s, digest %s) broadcast to executors", payload.name,
                payload.size / 2**20, "ONNX" if payload.runtime == "onnx" else ".keras",
                payload.digest[:12])
    schema = _parse_datatype_string(RESULT_SCHEMA)
    arrow_schema = to_arrow_schema(schema)
    model_key, runtime = payload.key, payload.runtime

    def explain(batches):
        return explain_partitions(batches, broadcast=broadcast, model_key=model_key,
                                  settings=settings, explainer=explainer,
                                  arrow_schema=arrow_schema, log_level=log_level,
                                  runtime=runtime, commit_to=commit_to)

    return rows.mapInArrow(explain, schema)
