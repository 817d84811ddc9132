"""Spark glue: the only part of lime-spark that imports pyspark.

- :func:`explain_images`: explain the images of any DataFrame (lazy, one row per input row);
- :func:`run_job`: the batch job (Parquet list in; tables, overlays, summary, report out);
- :func:`distinct_image_ids`: rename rows that share an image id, as the job does.
"""

from .api import explain_images
from .job import distinct_image_ids, run_job

__all__ = ["explain_images", "run_job", "distinct_image_ids"]
