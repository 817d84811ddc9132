"""One local Spark session for tests/spark, and a small trained model with its images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def spark():
    from lime_spark.spark.session import build_session

    session = build_session(app_name="lime-spark-tests", master="local[2]",
                            conf={"spark.ui.enabled": "false",
                                  "spark.ui.showConsoleProgress": "false",
                                  "spark.driver.memory": "2g"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    """A small CNN trained on generated shapes, saved as .keras, and held-out images."""
    from lime_spark.shapes import make_shapes_dataset, train_shapes_classifier

    images, labels, _ = make_shapes_dataset(600, random_state=11)
    model = train_shapes_classifier(images, labels, epochs=4, random_state=0)
    folder = tmp_path_factory.mktemp("shapes-model")
    path = folder / "shapes.keras"
    model.save(path)
    held_out, held_labels, masks = make_shapes_dataset(12, random_state=12)
    return {"model_path": str(path), "images": held_out, "labels": held_labels, "masks": masks}


def write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())


def write_input(path: Path, rows: list[dict]) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)
