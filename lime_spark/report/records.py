"""A finished run's tables and ``summary.json``, read into one record per image.

:func:`read_run` reads the ``images``, ``explanations`` and ``features``
partitions of a run (pyarrow over fsspec, any URI the job writes to) and its
summary; :func:`build_images` turns them into :class:`ReportImage` objects:
what a card shows (:class:`ImageRecord`) and where its thumbnails come from.
Columns a run lacks (older runs: ``content_sha256``, ``explainer_digest``,
``reused_from``) read as nulls.

When the run computed anchors (``--methods lime,anchors``), :func:`read_run`
reads its ``anchors`` partition too: each ok image's record gets the anchor of
its top label (:class:`AnchorRecord`, the card's anchor panel) and the anchor's
overlay ``anchor_<label>.png`` as a thumbnail source (:data:`ANCHOR_THUMB`);
:func:`anchor_stats` sums up every anchor of the run (the summary's tile).  A
run without the partition (older runs, LIME only) has neither.

When ``lime-spark compare`` wrote the run's ``drift`` partition,
:func:`read_drift` reads it with the baseline run's (A's) top labels and
overlays, and :func:`build_drift` makes one :class:`DriftRecord` per compared
image (the "Changed since A" view) and adds A's overlay of the compared label
to the image's thumbnail sources (``baseline-L``).

The page's per-image data is :func:`page_rows` of these records: one JSON
array per image, its values in the order of :data:`IMAGE_FIELDS` (the
``labels`` value: arrays in the order of :data:`LABEL_FIELDS`; the ``anchor``
value: null or an array in the order of :data:`ANCHOR_FIELDS`).  The names are
written once in the page, not once per image: 10,000 images stay under 6 MB.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import quote

from ..exceptions import ConfigurationError, StorageError
from ..run_ids import check_run_id
from ..storage import filesystem, join_uri, read_bytes, safe_key

__all__ = ["ANCHOR_FIELDS", "ANCHOR_THUMB", "BASELINE_THUMB", "DRIFT_FIELDS", "IMAGE_FIELDS",
           "LABEL_FIELDS", "AnchorRecord", "AnchorStats", "DriftRecord", "DriftTables",
           "DriftView", "ImageRecord", "LabelRecord", "ReportImage", "RunTables", "anchor_stats",
           "build_drift", "build_images", "drift_rows", "original_link", "page_rows",
           "read_drift", "read_run", "read_summary"]

logger = logging.getLogger(__name__)

_MAX_MESSAGE = 600        # characters of an error message kept in the page
_MAX_PATH = 400           # characters of an image path kept in the page
_IMAGE_COLUMNS = ("image_id", "path", "expected_label", "status", "error_class",
                  "error_message", "width", "height", "n_superpixels", "n_samples",
                  "top_label", "top_label_name", "top_prob", "seconds", "model_name",
                  "model_digest", "seed", "content_sha256", "explainer_digest", "reused_from")
_EXPLANATION_COLUMNS = ("image_id", "label", "label_name", "label_rank", "label_prob",
                        "model_r2", "deletion_auc", "insertion_auc", "overlay_uri", "stability")
_FEATURE_COLUMNS = ("image_id", "label", "feature_weight", "pixel_count")
_DRIFT_COLUMNS = ("image_id", "label", "label_name", "baseline_run_id", "prob_a", "prob_b",
                  "top_label_changed", "rank_correlation", "top5_jaccard", "drifted")
_ANCHOR_COLUMNS = ("image_id", "label", "label_name", "anchor_size", "precision", "coverage",
                   "success", "overlay_uri")

ANCHOR_THUMB = "anchor_{label}"
"""Name of the thumbnail of a label's anchor overlay (the job's ``anchor_<label>.png``)."""

BASELINE_THUMB = "baseline-{label}"
"""Name of the thumbnail of the baseline run's (A's) overlay of a compared label."""


# --------------------------------------------------------------------------
# what the page shows of an image
# --------------------------------------------------------------------------

@dataclass
class LabelRecord:
    """One explained label of an image, as its overlay panel shows it."""

    label: int | None           # the class index (the overlay is ``{label}.png``)
    name: str | None            # the class name
    prob: float | None          # the model's probability of the label
    fit: float | None           # explanation fit: the local model's weighted R^2 (model_r2)
    stability: float | None = None   # estimated probability its top superpixels are the true ones


@dataclass
class AnchorRecord:
    """The anchor of an image's top label, as its anchor panel shows it."""

    label: int | None           # the anchored class (the overlay is ``anchor_{label}.png``)
    name: str | None            # its name
    size: int | None            # superpixels in the anchor (0: the label holds whatever is hidden)
    precision: float | None     # share of perturbations keeping the anchor that keep the label
    coverage: float | None      # share of random perturbations that contain the whole anchor
    success: bool               # the precision met the run's threshold


@dataclass
class ImageRecord:
    """One image's card: the values of the ``images`` row and of its top label.

    Numbers are rounded (4 decimals, seconds 2, area 3) and ``None`` where the
    run has no finite value; ``labels`` are ordered by rank (top label first).
    """

    order: int                      # position in the input (the "input order" sort)
    id: str                         # image_id
    folder: str                     # safe_key(id), URL-quoted: its folder in thumbs/, overlays/
    status: str                     # "ok" or "error"
    path: str | None                # the original's path, cut to 400 characters
    original_link: str | None       # a file:/http(s): link to the original, or None
    expected: str | None            # expected_label of the input
    predicted: str | None           # top_label_name
    top_prob: float | None          # probability of the top label
    mismatch: bool                  # expected given and not the top label
    expected_rank: int | None       # rank of the expected label among the explained ones
    width: int | None
    height: int | None
    n_superpixels: int | None
    n_samples: int | None           # perturbed images the explanation used
    stability: float | None         # the least stable explained label's stability
    unstable: bool                  # some label's stability is below 1 - delta
    seconds: float | None           # time the job spent on the image
    fit: float | None               # explanation fit of the top label
    deletion_auc: float | None      # of the top label
    insertion_auc: float | None     # of the top label
    area: float | None              # share of the image the top label's overlay outlines
    labels: list[LabelRecord] = field(default_factory=list)
    error_class: str | None = None
    error_message: str | None = None    # cut to 600 characters
    thumbs: list[str] = field(default_factory=list)   # thumbnails written: "original", ...
    reused_from: str | None = None      # the run that computed the explanation, if not this one
    anchor: AnchorRecord | None = None  # the top label's anchor, when the run computed anchors


IMAGE_FIELDS = tuple(f.name for f in fields(ImageRecord))
"""Names of the values of each image's JSON array in the page, in order."""

LABEL_FIELDS = tuple(f.name for f in fields(LabelRecord))
"""Names of the values of each explained label's JSON array in the page, in order."""

ANCHOR_FIELDS = tuple(f.name for f in fields(AnchorRecord))
"""Names of the values of an image's anchor array in the page, in order."""

_LABELS_AT = IMAGE_FIELDS.index("labels")
_ANCHOR_AT = IMAGE_FIELDS.index("anchor")


@dataclass
class DriftRecord:
    """One compared image of the "Changed since A" view: its label compared in runs A and B.

    The label compared is the image's top label in B (this run) when A
    explained it too, else the label of the image's ``drift`` rows most
    probable in B.  Numbers are rounded to 4 decimals, ``None`` where not finite.
    """

    image: int | None               # the image's ``order`` in this run's records (None: absent)
    id: str                         # image_id
    folder: str                     # safe_key(id), URL-quoted (as ImageRecord.folder)
    label: int | None               # the class compared (its overlays are ``{label}.png``)
    name: str | None                # its name
    top_a: str | None               # the image's top label name in A
    top_b: str | None               # the image's top label name in B
    top_changed: bool               # the image's top label differs between the runs
    prob_a: float | None            # the label's probability in A
    prob_b: float | None            # the label's probability in B
    rank_correlation: float | None  # Spearman correlation of its superpixel weights
    top5_jaccard: float | None      # overlap of its 5 strongest superpixels
    drifted: bool                   # any of the image's compared labels drifted
    also: list[str] = field(default_factory=list)   # other labels of the image that drifted


DRIFT_FIELDS = tuple(f.name for f in fields(DriftRecord))
"""Names of the values of each compared image's JSON array in the page, in order."""


@dataclass
class DriftView:
    """The "Changed since A" view: the baseline run and its compared images, in view order."""

    baseline_run_id: str
    records: list[DriftRecord]
    unlisted: int = 0     # images ok in both runs without a label explained in both: no row

    @property
    def drifted(self) -> int:
        """How many compared images drifted."""
        return sum(r.drifted for r in self.records)


@dataclass
class ReportImage:
    """An image's record, its folder key and the sources of its thumbnails."""

    record: ImageRecord
    key: str                                                  # safe_key(image_id)
    sources: dict[str, str] = field(default_factory=dict)    # thumbnail name -> source URI


def page_rows(records: Sequence[ImageRecord]) -> list[list[Any]]:
    """The page's per-image data: one list per record, in :data:`IMAGE_FIELDS` order."""
    rows = []
    for record in records:
        row = [getattr(record, name) for name in IMAGE_FIELDS]
        row[_LABELS_AT] = [[getattr(lab, name) for name in LABEL_FIELDS]
                           for lab in record.labels]
        if record.anchor is not None:
            row[_ANCHOR_AT] = [getattr(record.anchor, name) for name in ANCHOR_FIELDS]
        rows.append(row)
    return rows


def drift_rows(records: Sequence[DriftRecord]) -> list[list[Any]]:
    """The page's compared images: one list per record, in :data:`DRIFT_FIELDS` order."""
    return [[getattr(record, name) for name in DRIFT_FIELDS] for record in records]


# --------------------------------------------------------------------------
# reading a run
# --------------------------------------------------------------------------

def _read_table(root: str, name: str, run_id: str, columns: Sequence[str], *,
                required: bool = False, filter_expr: Any = None) -> Any:
    """One run's partition of a table as a pandas DataFrame with ``columns``.

    Columns absent from the files (older runs) come back as nulls; a missing
    partition is an empty frame, or an error when ``required``.
    """
    import pandas as pd
    import pyarrow.dataset as ds

    uri = join_uri(root, name, f"run_id={run_id}")
    fs, path = filesystem(uri)
    if not fs.exists(path):
        if required:
            raise StorageError(
                f"Expected the run's {name} table at {uri!r}. Received: no such folder "
                f"(is run_id={run_id!r} a finished run under {root!r}?)")
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    dataset = ds.dataset(path, filesystem=fs, format="parquet",
                         ignore_prefixes=[".", "_"])
    if not dataset.schema.names:            # a folder without files: no rows, nothing to filter
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    present = [c for c in columns if c in dataset.schema.names]
    table = dataset.to_table(columns=present, filter=filter_expr)
    frame = table.to_pandas()
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    return frame[list(columns)]


def read_summary(root: str, run_id: str) -> dict[str, Any]:
    """``runs/run_id=R/summary.json`` as a dict; ``{}`` (and a warning) if unreadable."""
    uri = join_uri(root, "runs", f"run_id={run_id}", "summary.json")
    try:
        return json.loads(read_bytes(uri, retries=1).decode("utf-8"))
    except (StorageError, ValueError) as exc:
        logger.warning("report of run %s without summary.json: %s", run_id, exc)
        return {}


@dataclass
class RunTables:
    """What the report reads of a run's tables (pandas DataFrames)."""

    images: Any
    explanations: Any
    areas: dict[str, float]      # image_id -> share of pixels its top overlay outlines
    anchors: Any = None          # the anchors rows (``_ANCHOR_COLUMNS``); None: no partition


def read_run(root: str, run_id: str, *, overlay_features: int) -> RunTables:
    """Read the run's ``images`` (required), ``explanations`` and ``features`` partitions.

    Its ``anchors`` partition too when it has one (``--methods lime,anchors``);
    ``RunTables.anchors`` is None when it has none.

    Raises
    ------
    StorageError
        If ``images/run_id=R/`` does not exist under ``root``.
    """
    import pyarrow.dataset as ds

    images = _read_table(root, "images", run_id, _IMAGE_COLUMNS, required=True)
    explanations = _read_table(root, "explanations", run_id, _EXPLANATION_COLUMNS)
    features = _read_table(root, "features", run_id, _FEATURE_COLUMNS,
                           filter_expr=ds.field("feature_weight") > 0)
    areas = _top_area(features, explanations, images, overlay_features)
    anchors = None
    fs, path = filesystem(join_uri(root, "anchors", f"run_id={run_id}"))
    if fs.exists(path):
        anchors = _read_table(root, "anchors", run_id, _ANCHOR_COLUMNS)
    return RunTables(images, explanations, areas, anchors)


@dataclass
class AnchorStats:
    """The summary's anchors tile: every anchor of the run (all anchored labels)."""

    anchors: int                 # rows of the anchors partition
    images: int                  # images with at least one anchor
    median_size: float | None    # median superpixels per anchor (the empty anchor counts 0)
    median_precision: float | None
    succeeded: int               # anchors whose precision met the threshold

    @property
    def share_succeeded(self) -> float | None:
        """Share of the anchors that met the threshold; None without anchors."""
        return self.succeeded / self.anchors if self.anchors else None


def anchor_stats(anchors: Any) -> AnchorStats | None:
    """The run's anchors summed up; None when the run has no anchors partition.

    Examples
    --------
    >>> import pandas as pd
    >>> anchor_stats(pd.DataFrame({"image_id": ["a", "b", "b"], "anchor_size": [0, 2, 3],
    ...                            "precision": [1.0, 0.97, 0.8],
    ...                            "success": [True, True, False]}))
    AnchorStats(anchors=3, images=2, median_size=2.0, median_precision=0.97, succeeded=2)
    >>> anchor_stats(None) is None
    True
    """
    import pandas as pd

    if anchors is None:
        return None
    sizes = pd.to_numeric(anchors["anchor_size"], errors="coerce").dropna()
    precisions = pd.to_numeric(anchors["precision"], errors="coerce").dropna()
    return AnchorStats(
        anchors=len(anchors), images=int(anchors["image_id"].dropna().nunique()),
        median_size=_num(sizes.median(), 1) if len(sizes) else None,
        median_precision=_num(precisions.median()) if len(precisions) else None,
        succeeded=sum(_flag(v) for v in anchors["success"]))


@dataclass
class DriftTables:
    """What the report reads of a run's ``drift`` partition and of its baseline run A."""

    baseline_run_id: str
    rows: Any                    # the drift rows against A (DataFrame, ``_DRIFT_COLUMNS``)
    baseline_images: Any         # A's images of those ids: image_id, top_label_name
    baseline_explanations: Any   # A's explanations of those ids: image_id, label, overlay_uri
    unlisted: int = 0            # summary.json drift.images_without_common_label (no rows)


def read_drift(root: str, run_id: str,
               summary: Mapping[str, Any] | None = None) -> DriftTables | None:
    """The run's ``drift`` partition (``lime-spark compare``), its baseline's labels and overlays.

    ``summary`` is the run's ``summary.json``: its ``drift`` (what ``lime-spark
    compare`` stored there) names the baseline of a partition without rows
    and counts the images it could not compare label by label
    (``images_without_common_label``).

    Returns None when ``drift/run_id=R/`` does not exist, when it has no rows
    and ``summary`` names no baseline, or when the baseline is not a run id (a
    warning): the page then has no "Changed since A" view.  Rows against
    several baselines (two compares into one partition) keep the baseline with
    the most rows (ties: the largest id), with a warning.  A's tables may be
    gone: the view then lacks A's top labels and overlays, not its numbers.
    """
    import pyarrow.dataset as ds

    uri = join_uri(root, "drift", f"run_id={run_id}")
    fs, path = filesystem(uri)
    if not fs.exists(path):
        return None
    drift = _read_table(root, "drift", run_id, _DRIFT_COLUMNS)
    stored = (summary or {}).get("drift")
    stored = stored if isinstance(stored, Mapping) else {}
    counts = drift["baseline_run_id"].dropna().astype(str).value_counts().to_dict()
    if not counts:
        if drift.empty and isinstance(stored.get("baseline"), str):
            counts = {stored["baseline"]: 0}
        else:
            logger.warning("report of run %s: its drift table names no baseline run; no "
                           "\"Changed since\" view", run_id)
            return None
    baseline = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
    if len(counts) > 1:
        logger.warning("report of run %s: drift rows against %d baseline runs (%s); showing "
                       "run %s, the one with the most rows", run_id, len(counts),
                       ", ".join(sorted(counts)[:5]), baseline)
    try:
        check_run_id(baseline)
    except ConfigurationError as exc:
        logger.warning("report of run %s: no \"Changed since\" view: %s", run_id, exc)
        return None
    rows = drift[drift["baseline_run_id"].astype(str) == baseline]
    ids = ds.field("image_id").isin(sorted(rows["image_id"].dropna().astype(str).unique()))
    images = _read_table(root, "images", baseline, ("image_id", "top_label_name"),
                         filter_expr=ids)
    explanations = _read_table(root, "explanations", baseline,
                               ("image_id", "label", "overlay_uri"), filter_expr=ids)
    unlisted = stored.get("images_without_common_label")
    unlisted = (unlisted if stored.get("baseline") == baseline and isinstance(unlisted, int)
                and not isinstance(unlisted, bool) and unlisted > 0 else 0)
    return DriftTables(baseline, rows, images, explanations, unlisted)


# --------------------------------------------------------------------------
# per-image records
# --------------------------------------------------------------------------

def _num(value: Any, digits: int = 4) -> float | None:
    """A finite float rounded to ``digits`` decimals, or None."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return round(number, digits)


def _int(value: Any) -> int | None:
    number = _num(value, 0)
    return None if number is None else int(number)


def _text(value: Any, limit: int | None = None) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit - 1] + "\u2026"
    return text


def _flag(value: Any) -> bool:
    """A boolean column's value; null is False."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return bool(value)


def _same_label(expected: str | None, predicted: str | None) -> bool:
    """Whether an expected label names the predicted class (case, '_' and ' ' ignored)."""
    def norm(s: str) -> str:
        return " ".join(s.replace("_", " ").split()).casefold()
    return expected is not None and predicted is not None and norm(expected) == norm(predicted)


def original_link(path: str | None) -> str | None:
    """A link to the original image for the page: local files and http(s) only.

    Examples
    --------
    >>> original_link("/data/a b.jpg")
    'file:///data/a%20b.jpg'
    >>> original_link("s3a://bucket/a.jpg") is None
    True
    """
    if not path:
        return None
    if path.startswith("/"):
        return "file://" + quote(path)
    lowered = path.lower()
    if lowered.startswith(("file:///", "http://", "https://")):
        return path
    return None


def _top_area(features: Any, explanations: Any, images: Any, k: int) -> dict[str, float]:
    """Share of each image's pixels in the ``k`` strongest supporting superpixels of its top label.

    These are the superpixels the top label's overlay outlines.
    """
    import numpy as np
    import pandas as pd

    if features.empty or explanations.empty:
        return {}
    top = explanations.loc[explanations["label_rank"] == 1, ["image_id", "label"]]
    chosen = features.merge(top, on=["image_id", "label"])
    if chosen.empty:
        return {}
    chosen = chosen.sort_values(["image_id", "feature_weight"], ascending=[True, False])
    pixels = chosen.groupby("image_id", sort=False).head(k).groupby("image_id")["pixel_count"].sum()
    sizes = images.set_index("image_id")
    area = (pd.to_numeric(sizes["width"], errors="coerce")
            * pd.to_numeric(sizes["height"], errors="coerce"))
    area = area[~area.index.duplicated()]
    share = pixels / area.reindex(pixels.index)
    return {str(i): float(v) for i, v in share.items() if np.isfinite(v)}


def _record(order: int, row: dict[str, Any], image_id: str, key: str,
            labels: list[dict[str, Any]], areas: dict[str, float],
            stable_at: float) -> ImageRecord:
    """The card of one ``images`` row (its id and safe key) and its explanations (rank order)."""
    status = "ok" if row["status"] == "ok" else "error"
    expected = _text(row["expected_label"])
    predicted = _text(row["top_label_name"])
    top = labels[0] if labels else {}
    expected_rank = None
    if expected is not None:
        for lab in labels:
            if _same_label(expected, _text(lab["label_name"])):
                expected_rank = _int(lab["label_rank"])
                break
    stabilities = [v for v in (_num(lab.get("stability")) for lab in labels) if v is not None]
    least = min(stabilities) if stabilities else None
    record = ImageRecord(
        order=order, id=image_id, folder=quote(key, safe=""), status=status,
        path=_text(row["path"], _MAX_PATH), original_link=original_link(_text(row["path"])),
        expected=expected, predicted=predicted, top_prob=_num(row["top_prob"]),
        mismatch=bool(status == "ok" and expected is not None
                      and not _same_label(expected, predicted)),
        expected_rank=expected_rank, width=_int(row["width"]), height=_int(row["height"]),
        n_superpixels=_int(row["n_superpixels"]), n_samples=_int(row["n_samples"]),
        stability=least, unstable=bool(least is not None and least < stable_at),
        seconds=_num(row["seconds"], 2),
        fit=_num(top.get("model_r2")), deletion_auc=_num(top.get("deletion_auc")),
        insertion_auc=_num(top.get("insertion_auc")), area=_num(areas.get(image_id), 3),
        labels=[LabelRecord(_int(lab["label"]), _text(lab["label_name"]),
                            _num(lab["label_prob"]), _num(lab["model_r2"]),
                            _num(lab.get("stability"))) for lab in labels])
    if status == "error":
        record.error_class = _text(row["error_class"])
        record.error_message = _text(row["error_message"], _MAX_MESSAGE)
    record.reused_from = _text(row.get("reused_from"), 64)
    return record


def _top_anchor(rows: list[dict[str, Any]], top_label: int | None,
                labels: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The anchors row of an image's top label; without one, of its best-ranked label."""
    if not rows:
        return None
    rank = {_int(lab["label"]): _int(lab["label_rank"]) for lab in labels}
    if top_label is not None:
        rank[top_label] = 0
    return min(rows, key=lambda r: (rank.get(_int(r["label"])) is None,
                                    rank.get(_int(r["label"])) or 0, _int(r["label"]) or 0))


def _anchor_record(row: dict[str, Any]) -> AnchorRecord:
    return AnchorRecord(label=_int(row["label"]), name=_text(row["label_name"]),
                        size=_int(row["anchor_size"]), precision=_num(row["precision"]),
                        coverage=_num(row["coverage"], 6), success=_flag(row["success"]))


def build_images(root: str, run_id: str, tables: RunTables, *,
                 stable_at: float = 0.95) -> list[ReportImage]:
    """One :class:`ReportImage` per row of the ``images`` table, in input order.

    An ok image's thumbnail sources are its original, its superpixels
    (``overlays/run_id=R/KEY/segments.png``), each label's overlay and, when
    the run has anchors, its top label's anchor overlay (:data:`ANCHOR_THUMB`);
    a failed image has none: its original is never read again (decoding may
    be what refused it).  ``stable_at`` is the run's ``1 - delta``: an image
    with a label below it is marked unstable.
    """
    run = f"run_id={run_id}"
    by_image: dict[str, list[dict[str, Any]]] = {}
    if not tables.explanations.empty:
        ordered = tables.explanations.sort_values(["image_id", "label_rank"])
        for row in ordered.to_dict("records"):
            by_image.setdefault(str(row["image_id"]), []).append(row)
    anchors: dict[str, list[dict[str, Any]]] = {}
    if tables.anchors is not None:
        for row in tables.anchors.to_dict("records"):
            anchors.setdefault(str(row["image_id"]), []).append(row)
    out = []
    for order, row in enumerate(tables.images.to_dict("records")):
        image_id = _text(row["image_id"]) or ""
        ok = row["status"] == "ok"
        labels = by_image.get(image_id, []) if ok else []
        key = safe_key(image_id)
        image = ReportImage(_record(order, row, image_id, key, labels, tables.areas,
                                    stable_at), key)
        path = _text(row["path"])
        if ok:
            if path:
                image.sources["original"] = path
            overlays = join_uri(root, "overlays", run, image.key)
            if any(_text(lab["overlay_uri"]) for lab in labels):
                image.sources["segments"] = join_uri(overlays, "segments.png")
            for lab in labels:
                if _text(lab["overlay_uri"]):
                    image.sources[str(_int(lab["label"]))] = str(lab["overlay_uri"])
            anchor = _top_anchor(anchors.get(image_id, []), _int(row["top_label"]), labels)
            if anchor is not None:
                image.record.anchor = _anchor_record(anchor)
                if _text(anchor["overlay_uri"]) and image.record.anchor.label is not None:
                    name = ANCHOR_THUMB.format(label=image.record.anchor.label)
                    image.sources[name] = str(anchor["overlay_uri"])
        out.append(image)
    return out


def build_drift(tables: DriftTables, entries: Sequence[ReportImage]) -> DriftView:
    """One :class:`DriftRecord` per image of the drift rows; A's overlays as thumbnail sources.

    Each image's label compared is its top label in this run when A
    explained it too, else its drift row most probable in this run; the
    image has drifted if any of its rows has.  Records are in view order:
    drifted images first, then lowest rank correlation (none last), then
    input order.  An ok image of ``entries`` gets the source
    :data:`BASELINE_THUMB` (A's ``overlay_uri`` of the label compared), made
    into a thumbnail with the others.
    """
    by_id: dict[str, ReportImage] = {}
    for entry in entries:
        by_id.setdefault(entry.record.id, entry)
    top_a: dict[str, str | None] = {}
    for image_id, name in zip(tables.baseline_images["image_id"],
                              tables.baseline_images["top_label_name"]):
        top_a.setdefault(str(image_id), _text(name))
    overlays_a: dict[tuple[str, int | None], str | None] = {}
    for image_id, label, uri in zip(tables.baseline_explanations["image_id"],
                                    tables.baseline_explanations["label"],
                                    tables.baseline_explanations["overlay_uri"]):
        overlays_a.setdefault((str(image_id), _int(label)), _text(uri))
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in tables.rows.to_dict("records"):
        image_id = _text(row["image_id"])
        if image_id is not None:
            groups.setdefault(image_id, []).append(row)

    records = []
    for image_id, rows in groups.items():
        entry = by_id.get(image_id)
        record = entry.record if entry is not None else None
        top_b = record.labels[0].label if record is not None and record.labels else None
        chosen = next((r for r in rows if top_b is not None and _int(r["label"]) == top_b),
                      None)
        if chosen is None:
            chosen = max(rows, key=lambda r: _num(r["prob_b"]) or -1.0)
        label = _int(chosen["label"])
        name = _text(chosen["label_name"])
        if name is None and record is not None:
            name = next((lab.name for lab in record.labels if lab.label == label), None)
        records.append(DriftRecord(
            image=record.order if record is not None else None, id=image_id,
            folder=quote(safe_key(image_id), safe=""), label=label, name=name,
            top_a=top_a.get(image_id), top_b=record.predicted if record is not None else None,
            top_changed=any(_flag(r["top_label_changed"]) for r in rows),
            prob_a=_num(chosen["prob_a"]), prob_b=_num(chosen["prob_b"]),
            rank_correlation=_num(chosen["rank_correlation"]),
            top5_jaccard=_num(chosen["top5_jaccard"]),
            drifted=any(_flag(r["drifted"]) for r in rows),
            also=[_text(r["label_name"]) or str(_int(r["label"])) for r in rows
                  if r is not chosen and _flag(r["drifted"])]))
        uri = overlays_a.get((image_id, label))
        if entry is not None and entry.record.status == "ok" and label is not None and uri:
            entry.sources[BASELINE_THUMB.format(label=label)] = uri
    records.sort(key=lambda r: (not r.drifted, r.rank_correlation is None,
                                r.rank_correlation or 0.0,
                                r.image if r.image is not None else math.inf, r.id))
    return DriftView(tables.baseline_run_id, records, tables.unlisted)
