"""The output tables, declared once: names, columns, types, nulls and meaning.

Every other description of the tables derives from the declarations here:
the column tuples the batch code fills (:data:`IMAGE_COLUMNS`, ...), the
Spark DDL the job's result schema is built from (:func:`ddl`), the Arrow
schema of the Parquet files (:func:`arrow_schema`), the names the catalog
registers (:data:`TABLES`) and the README's table of the output
(:func:`readme_markdown`; regenerate it with
``python -m lime_spark.tables --write-readme README.md``).

Each table is written under ``ROOT/<name>/run_id=R/``; ``run_id`` is the
partition column (:data:`PARTITION_COLUMN`), a folder name rather than a
column of the Parquet files.  A column's ``nullable`` is what the rows hold
(False: never null in any row); Spark marks every Parquet column optional
whatever the rows hold, so the DDL and the Arrow schema declare every column
nullable.

Examples
--------
>>> from lime_spark.tables import FEATURE_COLUMNS, ddl
>>> FEATURE_COLUMNS[:3]
('image_id', 'label', 'feature')
>>> ddl("features")[:35]
'image_id STRING, label INT, feature'
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exceptions import ConfigurationError

__all__ = ["Column", "Table", "PARTITION_COLUMN", "TABLES", "ALL_TABLES", "IMAGES", "EXPLANATIONS",
           "FEATURES", "ANCHORS", "DRIFT", "IMAGE_COLUMNS", "EXPLANATION_COLUMNS", "FEATURE_COLUMNS",
           "DRIFT_COLUMNS", "ANCHOR_COLUMNS", "table", "column_names",
           "ddl", "arrow_schema", "readme_markdown", "update_readme", "README_BEGIN",
           "README_END"]

PARTITION_COLUMN = "run_id"
"""The partition column of every table: ``ROOT/<table>/run_id=R/``."""

_SCALAR_TYPES = ("STRING", "INT", "BIGINT", "DOUBLE", "BOOLEAN")
_ARRAY = re.compile(r"ARRAY<(.+)>")


def _check_sql_type(sql_type: str) -> None:
    match = _ARRAY.fullmatch(sql_type)
    if match:
        _check_sql_type(match.group(1))
    elif sql_type not in _SCALAR_TYPES:
        raise ConfigurationError(
            f"Expected a column type among {', '.join(_SCALAR_TYPES)} or ARRAY<type> (Spark DDL, "
            f"upper case). Received: sql_type={sql_type!r}")


@dataclass(frozen=True)
class Column:
    """One column of an output table.

    Parameters
    ----------
    name : str
    sql_type : str
        Spark DDL: ``STRING``, ``INT``, ``BIGINT``, ``DOUBLE``, ``BOOLEAN`` or
        ``ARRAY<type>``.
    nullable : bool
        Whether some rows hold null (the doc says which).
    doc : str
        One line: what a value means, its unit, and when it is null.
    """

    name: str
    sql_type: str
    nullable: bool
    doc: str

    def __post_init__(self) -> None:
        _check_sql_type(self.sql_type)


@dataclass(frozen=True)
class Table:
    """One output table: where it lies, what one row is, its columns in order."""

    name: str
    grain: str
    """What one row stands for (the README's "one row per")."""
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def path(self) -> str:
        """The folder of one run's partition, relative to the output root."""
        return f"{self.name}/{PARTITION_COLUMN}=R/"


_NO_ERROR = "null for error rows"

IMAGES = Table("images", "input row, errors included", (
    Column("image_id", "STRING", False,
           "the input's id; 16 hex digits of sha256(path) without one; `id@<digest of path>` "
           "when input rows share an id; `''` with neither id nor path"),
    Column("path", "STRING", True, "the image's URI as in the input (null where the input's is)"),
    Column("expected_label", "STRING", True, "the input's label column as text; null without one"),
    Column("status", "STRING", False, "`ok`, or `error` when the image could not be explained"),
    Column("error_class", "STRING", True,
           "the exception's class name (`StorageError`, `InvalidImageError`, ...); null when ok"),
    Column("error_message", "STRING", True,
           "what went wrong, credentials redacted, at most 2000 characters; null when ok"),
    Column("width", "INT", True,
           "the original image's width in pixels; null when it could not be decoded"),
    Column("height", "INT", True,
           "the original image's height in pixels; null when it could not be decoded"),
    Column("n_superpixels", "INT", True,
           f"superpixels the image was split into (at the model's input size); {_NO_ERROR}"),
    Column("n_samples", "INT", True,
           "perturbed images the explanation used, the original included (`--n-samples`; "
           f"with `auto` at most `--max-samples`); {_NO_ERROR}"),
    Column("top_label", "INT", True,
           f"the class the model gives the highest probability; {_NO_ERROR}"),
    Column("top_label_name", "STRING", True,
           f"its name (the class number as text without label names); {_NO_ERROR}"),
    Column("top_prob", "DOUBLE", True, f"the model's probability of `top_label`; {_NO_ERROR}"),
    Column("seconds", "DOUBLE", False,
           "wall time from the start of the image's read to its last overlay written, in "
           "seconds (until the error for error rows); it includes the time the image waited "
           "behind the images it shared the worker with (summary.json's `timings.stages` "
           "splits the workers' time by stage)"),
    Column("model_name", "STRING", False,
           "the `--model` keras.applications name, or the model file's name"),
    Column("model_digest", "STRING", False,
           "sha256 (hex) of the .keras or weights file; of the weight arrays for built-in "
           "(imagenet) weights"),
    Column("runtime", "STRING", False,
           "what ran the model: `onnx` (ONNX Runtime) or `tensorflow` (`--runtime`; "
           "`python` for a plain callable)"),
    Column("seed", "BIGINT", True,
           "the image's seed, from the run seed and `content_sha256`; null for a row that "
           "failed before its bytes were read"),
    Column("content_sha256", "STRING", True,
           "sha256 (hex) of the image file's bytes; null when they could not be read"),
    Column("explainer_digest", "STRING", False,
           "sha256 (hex) of every option that changes results (summary.json "
           "`keys.explainer_options`); with `content_sha256` and `model_digest` the key of "
           "an explanation"),
    Column("reused_from", "STRING", True,
           "the run whose explanation this row copies (the run that computed it, `--reuse`); "
           "null when explained by this run"),
))

EXPLANATIONS = Table("explanations", "ok image x explained label", (
    Column("image_id", "STRING", False, "the image (`images.image_id`)"),
    Column("label", "INT", False, "the explained class (`--top-labels` of them per image)"),
    Column("label_name", "STRING", False,
           "its name (the class number as text without label names)"),
    Column("label_rank", "INT", False, "1 for the most probable class, 2 for the next, ..."),
    Column("label_prob", "DOUBLE", False, "the model's probability of the label for the image"),
    Column("model_r2", "DOUBLE", False,
           "lime's explanation fit: the surrogate's weighted R squared on the samples"),
    Column("intercept", "DOUBLE", False, "the surrogate's intercept"),
    Column("local_pred", "DOUBLE", False,
           "the surrogate's prediction for the whole image (compare with `label_prob`)"),
    Column("deletion_auc", "DOUBLE", True,
           "area under the label's probability as superpixels are hidden, most positive "
           "weight first (low: faithful); the top label's (the `--metric-labels` most "
           "probable labels'), null for the others and with `--metrics false`"),
    Column("insertion_auc", "DOUBLE", True,
           "area under the label's probability as superpixels are revealed, most positive "
           "weight first (high: faithful); the top label's (the `--metric-labels` most "
           "probable labels'), null for the others and with `--metrics false`"),
    Column("overlay_uri", "STRING", True,
           "the label's overlay PNG under `overlays/`; null with `--overlays false`"),
    Column("stability", "DOUBLE", False,
           "estimated probability that the label's top superpixels (`--num-features` or 5, "
           "by weight) are the true ones; below 1 - `--delta` (0.95): unstable, more samples "
           "would change them"),
))

FEATURES = Table("features", "image x explained label x superpixel in its surrogate (all of "
                 "them unless `--num-features`)", (
    Column("image_id", "STRING", False, "the image (`images.image_id`)"),
    Column("label", "INT", False, "the explained class (`explanations.label`)"),
    Column("feature", "INT", False, "the superpixel's id, 0 .. `n_superpixels` - 1"),
    Column("feature_weight", "DOUBLE", False,
           "its weight in the surrogate: positive supports the label, negative speaks against"),
    Column("feature_rank", "INT", False,
           "1 for the label's largest absolute weight, 2 for the next, ..."),
    Column("pixel_count", "BIGINT", False,
           "the superpixel's area in the original image's pixels (0 when it covers none)"),
    Column("bbox_x0", "INT", False,
           "its bounding box in the original image's pixels: first column"),
    Column("bbox_y0", "INT", False, "first row of the bounding box"),
    Column("bbox_x1", "INT", False,
           "last column + 1 (half-open; all four 0 when `pixel_count` is 0)"),
    Column("bbox_y1", "INT", False, "last row + 1 (half-open)"),
))

ANCHORS = Table("anchors", "ok image x anchored label (`--methods lime,anchors`; the "
                "`--anchor-labels` most probable labels)", (
    Column("image_id", "STRING", False, "the image (`images.image_id`)"),
    Column("label", "INT", False, "the anchored class"),
    Column("label_name", "STRING", False, "its name"),
    Column("anchor", "ARRAY<INT>", False,
           "the anchor's superpixels (`features.feature` ids), in the order the search added "
           "them; empty when the label holds whatever is hidden"),
    Column("anchor_size", "INT", False, "superpixels in the anchor"),
    Column("precision", "DOUBLE", False,
           "estimated share of perturbations keeping the anchor (each other superpixel shown "
           "with probability 1/2) that the model still gives the label"),
    Column("precision_lower", "DOUBLE", False,
           "the KL lower confidence bound of `precision` (level `--anchor-delta`)"),
    Column("coverage", "DOUBLE", False,
           "share of random perturbations that contain the whole anchor (1 for the empty one)"),
    Column("success", "BOOLEAN", False,
           "whether the anchor met `--anchor-threshold`; false: the most precise candidate "
           "within `--anchor-max-size`"),
    Column("n_samples", "INT", False, "model rows the search evaluated"),
    Column("n_model_calls", "INT", False,
           "model requests of the search (each one or more batches shared with other images)"),
    Column("overlay_uri", "STRING", True,
           "the anchor's overlay PNG (anchor shown, the rest dimmed); null with "
           "`--overlays false`"),
    Column("seconds", "DOUBLE", False, "wall time of the search, in seconds"),
))

DRIFT = Table("drift", "image x label explained in both a run and its baseline (`lime-spark "
              "compare`, `--baseline`)", (
    Column("image_id", "STRING", False,
           "the image (`images.image_id`, the same in both runs), explained (`ok`) in both"),
    Column("label", "INT", False, "the explained class, among the explained labels of both runs"),
    Column("label_name", "STRING", False, "its name (in run B)"),
    Column("baseline_run_id", "STRING", False, "run A, the baseline (`run_id` is run B)"),
    Column("prob_a", "DOUBLE", False, "the label's probability in run A (`label_prob`)"),
    Column("prob_b", "DOUBLE", False, "the label's probability in run B"),
    Column("top_label_changed", "BOOLEAN", False,
           "whether the image's most probable class (`images.top_label`) differs between "
           "the runs"),
    Column("rank_correlation", "DOUBLE", True,
           "Spearman correlation of the label's superpixel weights in A and B, over the "
           "superpixels in both surrogates (tied weights share their mean rank); null with "
           "fewer than 3 in common or one side's weights all equal"),
    Column("top5_jaccard", "DOUBLE", False,
           "|A & B| / |A | B| of the label's superpixels with `feature_rank` <= 5 in each run "
           "(k / (10 - k) for k in common)"),
    Column("drifted", "BOOLEAN", False,
           "top label changed; or, where the label's `stability` is at least `min_stability` "
           "in both runs, rank_correlation and top5_jaccard both below their thresholds "
           "(summary.json `drift.thresholds`; defaults 0.95, 0.5, 0.2 chosen from run-to-run "
           "noise: docs/drift.md)"),
))

_TABLES = (IMAGES, EXPLANATIONS, FEATURES)
_ALL_TABLES = (*_TABLES, ANCHORS, DRIFT)

TABLES = tuple(t.name for t in _TABLES)
"""The tables every run writes, in order, each at ``ROOT/<name>/run_id=R/``."""

ALL_TABLES = tuple(t.name for t in _ALL_TABLES)
"""Every declared table: :data:`TABLES`, ``anchors`` (``--methods lime,anchors``), then
``drift`` (written by ``lime-spark compare``)."""

IMAGE_COLUMNS = IMAGES.column_names
EXPLANATION_COLUMNS = EXPLANATIONS.column_names
FEATURE_COLUMNS = FEATURES.column_names
DRIFT_COLUMNS = DRIFT.column_names
ANCHOR_COLUMNS = ANCHORS.column_names


def table(name: str) -> Table:
    """The declaration of the table ``name`` (``images``, ``explanations`` or ``features``)."""
    for t in _ALL_TABLES:
        if t.name == name:
            return t
    raise ConfigurationError(
        f"Expected a table name among {', '.join(ALL_TABLES)}. Received: table={name!r}")


def column_names(name: str) -> tuple[str, ...]:
    """The columns of the table ``name``, in the order of its Parquet files."""
    return table(name).column_names


def ddl(name: str) -> str:
    """The columns of the table ``name`` as Spark DDL: ``"image_id STRING, path STRING, ..."``.

    Without ``run_id`` (the partition column); every column nullable.
    """
    return ", ".join(f"{c.name} {c.sql_type}" for c in table(name).columns)


def _arrow_type(sql_type: str) -> Any:
    import pyarrow as pa

    match = _ARRAY.fullmatch(sql_type)
    if match:         # as pyspark's to_arrow_type: a list of nullable "element"
        return pa.list_(pa.field("element", _arrow_type(match.group(1)), nullable=True))
    return {"STRING": pa.string(), "INT": pa.int32(), "BIGINT": pa.int64(),
            "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_()}[sql_type]


def arrow_schema(name: str) -> Any:
    """The ``pyarrow.Schema`` of the table ``name``'s Parquet files (without ``run_id``).

    Equal to what Spark derives from :func:`ddl` (every field nullable).
    """
    import pyarrow as pa

    return pa.schema([pa.field(c.name, _arrow_type(c.sql_type), nullable=True)
                      for c in table(name).columns])


# --- the README --------------------------------------------------------------------------------

README_BEGIN = ("<!-- tables:begin: generated from lime_spark/tables.py by "
                "python -m lime_spark.tables --write-readme README.md -->")
README_END = "<!-- tables:end -->"


def _code_list(names: Sequence[str]) -> str:
    return "`" + ", ".join(names) + "`"


def readme_markdown() -> str:
    """The README's description of the tables, between :data:`README_BEGIN` and :data:`README_END`.

    A table of the tables (path, grain, columns), then one table of columns
    (type, null, meaning) per table in a collapsed block.
    """
    lines = [README_BEGIN, "| path | one row per | columns |", "|---|---|---|"]
    lines += [f"| `{t.path}` | {t.grain} | {_code_list(t.column_names)} |"
              for t in _ALL_TABLES]
    lines += ["", "<details><summary>The columns: types, nulls and meaning</summary>", ""]
    for t in _ALL_TABLES:
        lines += [f"`{t.name}`:", "", "| column | type | null | meaning |", "|---|---|---|---|"]
        lines += [f"| `{c.name}` | {c.sql_type} | {'yes' if c.nullable else 'no'} | {c.doc} |"
                  for c in t.columns]
        lines.append("")
    lines += ["</details>", README_END]
    return "\n".join(lines) + "\n"


def update_readme(text: str) -> str:
    """``text`` (a README) with the block between the markers replaced by :func:`readme_markdown`.

    Raises
    ------
    ConfigurationError
        When ``text`` lacks one of the markers, or has them out of order.
    """
    begin = text.find(README_BEGIN)
    end = text.find(README_END, begin + 1) if begin >= 0 else -1
    if begin < 0 or end < 0:
        raise ConfigurationError(
            f"Expected the markers {README_BEGIN!r} and {README_END!r}, in this order, in the "
            f"README. Received: begin marker {'found' if begin >= 0 else 'missing'}, end marker "
            f"{'found' if end >= 0 else 'missing'}")
    tail = end + len(README_END)
    if text[tail:tail + 1] == "\n":
        tail += 1
    return text[:begin] + readme_markdown() + text[tail:]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lime_spark.tables``: print or rewrite the README's tables block."""
    parser = argparse.ArgumentParser(prog="python -m lime_spark.tables", description=__doc__
                                     .split("\n", 1)[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--readme", action="store_true",
                        help="print the README block (markers included)")
    action.add_argument("--write-readme", metavar="PATH", type=Path,
                        help="replace the block between the markers in PATH")
    args = parser.parse_args(argv)
    if args.readme:
        sys.stdout.write(readme_markdown())
        return 0
    text = args.write_readme.read_text(encoding="utf-8")
    updated = update_readme(text)
    if updated != text:
        args.write_readme.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
