"""The report's ``index.html``: the static template filled with a run's summary and data.

The page is ``static/page.html`` with ``static/report.css`` and
``static/report.js`` inlined (read with :mod:`importlib.resources`, so they
ship in the wheel and are edited as what they are).  :func:`fill` replaces
each ``{{ name }}`` of the template in one pass, HTML-escaping every value
unless it is :class:`Html` (markup this module built from escaped parts, the
static style and script, the JSON of the data); text that came from the run is
never scanned for placeholders again.  The Content Security Policy allows the
inline script by its sha256, computed from ``report.js`` when the page is
rendered.

With a run's ``drift`` partition the page has two views, chosen by buttons
and by the address (``#view=changed``): the image cards, and "Changed since
A": one entry per image compared with the baseline run A.  The view's
buttons, filters and legend are markup built here (empty without drift);
the entries are made by the script from the ``drift`` part of the data.

With a run's ``anchors`` partition the summary has an anchors tile, the
legend a sentence on anchors and the sort menu two more orders (markup
built here, empty without anchors); each card's anchor panel is made by the
script from the image's ``anchor`` value and the ``anchors`` part of the data.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import json
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any
from urllib.parse import quote

from ..overlays import ANCHOR_PREFIX
from .records import (
    ANCHOR_FIELDS,
    ANCHOR_THUMB,
    DRIFT_FIELDS,
    IMAGE_FIELDS,
    LABEL_FIELDS,
    AnchorStats,
    DriftView,
    ImageRecord,
    drift_rows,
    page_rows,
)

__all__ = ["Html", "csp_hash", "escape", "fill", "json_for_script", "render_page",
           "static_text"]

_PLACEHOLDER = re.compile(r"\{#.*?#\}\n?|\{\{ ([a-z_]+) \}\}", re.S)


class Html(str):
    """Markup to insert as it is: built here from escaped parts, or a static file."""


def escape(value: Any) -> str:
    """``value`` as HTML text (``&``, ``<``, ``>``, ``"`` and ``'`` escaped); None is ``""``."""
    return html.escape("" if value is None else str(value), quote=True)


def static_text(name: str) -> str:
    """The text of ``lime_spark/report/static/NAME`` (installed with the package)."""
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def fill(template: str, values: Mapping[str, Any]) -> str:
    """Replace each ``{{ name }}`` of ``template`` with ``values[name]``, in one pass.

    Values are HTML-escaped unless they are :class:`Html`; ``{# ... #}``
    comments are removed.  A placeholder without a value, or a value without
    a placeholder, is an error (the template and this module drifted apart).

    Examples
    --------
    >>> fill("<b>{{ name }}</b>{# a comment #}", {"name": "<i>"})
    '<b>&lt;i&gt;</b>'
    """
    used = set()

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return ""
        if name not in values:
            raise KeyError(f"Expected a value for {{{{ {name} }}}} of the report's template. "
                           f"Received: values for {sorted(values)}")
        used.add(name)
        text = values[name]
        return text if isinstance(text, Html) else escape(text)

    out = _PLACEHOLDER.sub(value, template)
    if set(values) - used:
        raise KeyError(f"Expected a placeholder for each value in the report's template. "
                       f"Received: no {{{{ name }}}} for {sorted(set(values) - used)}")
    return out


def json_for_script(data: Any) -> Html:
    """JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Html(text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
                .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def csp_hash(script: str) -> str:
    """The CSP source that allows an inline script: ``sha256-`` and its base64 digest."""
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()


def _inline(name: str, closing: str) -> Html:
    """A static file to inline in an element that ``closing`` would end."""
    text = static_text(name)
    if closing in text.lower():
        raise ValueError(f"Expected static/{name} without {closing!r}, which would end its "
                         f"element early. Received: a file that contains it")
    return Html(text)


# --------------------------------------------------------------------------
# the summary
# --------------------------------------------------------------------------

def _median(values: Iterable[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return statistics.median(finite) if finite else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def _histogram_svg(values: Sequence[float], bins: int = 10) -> str:
    """An inline SVG bar chart of ``values`` in [0, 1] (clipped), ``bins`` bins."""
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    top = max(counts) or 1
    width, height, gap = 24, 64, 3
    bars = []
    for i, c in enumerate(counts):
        h = round(height * c / top) if c else 0
        x = i * (width + gap)
        hue = "#c0392b" if i < 2 else "#d68910" if i < 5 else "#1e8449"
        bars.append(f'<rect x="{x}" y="{height - h}" width="{width}" height="{h}" fill="{hue}">'
                    f"<title>fit {i / bins:.1f}-{(i + 1) / bins:.1f}: {c} images</title></rect>")
    total_w = bins * (width + gap) - gap
    return (f'<svg class="hist" role="img" aria-label="distribution of explanation fit" '
            f'width="{total_w}" height="{height + 14}" viewBox="0 0 {total_w} {height + 14}">'
            + "".join(bars)
            + f'<text x="0" y="{height + 12}">0</text>'
            + f'<text x="{total_w}" y="{height + 12}" text-anchor="end">1</text></svg>')


def _counts_table(rows: Sequence[tuple[Any, ...]], headers: Sequence[str], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return (f'<table class="counts {cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _tile(label: str, value: str, note: str = "", cls: str = "") -> str:
    """A summary tile; ``value`` and ``note`` are markup (escape what comes from the run)."""
    return (f'<div class="tile {cls}"><div class="tile-label">{escape(label)}</div>'
            f'<div class="tile-value">{value}</div>'
            f'<div class="tile-note">{note}</div></div>')


def _count(value: Any) -> int | None:
    """A count of ``summary.json`` (an int, not a bool), or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _threshold(summary: Mapping[str, Any]) -> float | None:
    """The run's ``anchor_threshold`` (``summary.json``'s config), or None."""
    value = (summary.get("config") or {}).get("anchor_threshold")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _anchor_tile(stats: AnchorStats, threshold: float | None) -> str:
    """The summary's anchors tile: how many, median size and precision, share that succeeded."""
    if not stats.anchors:
        return _tile("Anchors", "0", "no image was explained", "")
    size = stats.median_size
    size_text = "n/a" if size is None else f"{size:g}"
    share = stats.share_succeeded or 0.0
    at = f" {threshold:g}" if threshold is not None else ""
    unit = "superpixel" if size == 1 else "superpixels"
    note = (f"of {stats.images:,} images &middot; median size {size_text} {unit} &middot; "
            f"median precision {_fmt(stats.median_precision)} &middot; "
            f"{stats.succeeded:,} ({share:.0%}) met the threshold{escape(at)}")
    return _tile("Anchors", f"{stats.anchors:,}", note,
                 "good" if stats.succeeded == stats.anchors else "warn")


def _summary_html(records: Sequence[ImageRecord], summary: dict[str, Any],
                  drift: DriftView | None = None, anchors: AnchorStats | None = None) -> Html:
    """The tiles (counts, medians, time, reuse, anchors, drift) and panels (fit histogram,
    top counts)."""
    n = len(records)
    ok = [r for r in records if r.status == "ok"]
    errors = Counter(r.error_class or "unknown" for r in records if r.status == "error")
    with_expected = [r for r in ok if r.expected is not None]
    mismatches = [r for r in ok if r.mismatch]
    fits = [r.fit for r in ok if r.fit is not None]
    timings = summary.get("timings", {})
    total = timings.get("total_seconds")
    if total is None:
        total = sum(r.seconds or 0.0 for r in records) or None
    rate = timings.get("images_per_second")

    tiles = [
        _tile("Images", f"{n:,}", f"{len(ok):,} explained, {sum(errors.values()):,} errors"),
        _tile("Errors", f"{sum(errors.values()):,}",
              escape(", ".join(f"{k} {v}" for k, v in errors.most_common(3))) or "none",
              "bad" if errors else "good"),
        _tile("Mismatches", f"{len(mismatches):,}",
              f"of {len(with_expected):,} images with an expected label" if with_expected
              else "no expected labels in the input", "warn" if mismatches else ""),
        _tile("Median explanation fit", _fmt(_median(fits)),
              "weighted R\u00b2 of the top label's local model"),
        _tile("Median deletion AUC", _fmt(_median(r.deletion_auc for r in ok), 3),
              "top label; lower is more faithful"),
        _tile("Median insertion AUC", _fmt(_median(r.insertion_auc for r in ok), 3),
              "top label; higher is more faithful"),
        _tile("Time", escape(_fmt_seconds(total)),
              f"{rate:.2f} images/s" if isinstance(rate, (int, float)) else ""),
    ]
    counts = summary.get("images") if isinstance(summary.get("images"), dict) else {}
    reused, explained = _count(counts.get("reused")), _count(counts.get("explained"))
    resumed = _count(counts.get("resumed"))
    if reused is not None or explained is not None:     # older runs' summary.json: neither
        notes = [f"{explained:,} explained by this run" if explained is not None else None,
                 f"{resumed:,} resumed" if resumed else None]
        tiles.append(_tile("Reused", "n/a" if reused is None else f"{reused:,}",
                           escape(", ".join(n for n in notes if n))))
    if anchors is not None:
        tiles.append(_anchor_tile(anchors, _threshold(summary)))
    if drift is not None:
        unlisted = (f" (and {drift.unlisted:,} without a label in common)" if drift.unlisted
                    else "")
        tiles.append(_tile(
            f"Changed since run {drift.baseline_run_id}", f"{drift.drifted:,}",
            f"of {len(drift.records):,} images compared drifted{unlisted} &middot; "
            '<a href="#view=changed">show them</a>',
            "warn" if drift.drifted or drift.unlisted else "good"))
    parts = [f'<section class="tiles">{"".join(tiles)}</section>']

    details = []
    if fits:
        low = sum(f < 0.2 for f in fits)
        details.append('<div class="panel"><h3>Explanation fit (top label)</h3>'
                       + _histogram_svg(fits)
                       + f'<p class="muted">{low:,} images below 0.2</p></div>')
    if errors:
        details.append('<div class="panel"><h3>Errors by class</h3>'
                       + _counts_table(errors.most_common(), ("error class", "images"))
                       + "</div>")
    predicted = Counter(r.predicted for r in ok if r.predicted is not None)
    if predicted:
        details.append('<div class="panel"><h3>Most frequent predictions</h3>'
                       + _counts_table(predicted.most_common(6), ("top label", "images"))
                       + "</div>")
    confusions = Counter((r.expected, r.predicted) for r in mismatches)
    if confusions:
        details.append('<div class="panel"><h3>Most frequent mismatches</h3>'
                       + _counts_table([(x, t, c) for (x, t), c in confusions.most_common(6)],
                                       ("expected", "predicted", "images"))
                       + "</div>")
    parts.append(f'<section class="details">{"".join(details)}</section>')
    return Html("".join(parts))


def _anchor_fact(config: Mapping[str, Any]) -> str | None:
    """The run line's anchors settings, when ``methods`` asked for anchors.

    Examples
    --------
    >>> _anchor_fact({"methods": "lime,anchors", "anchor_labels": 1, "anchor_threshold": 0.95})
    'anchors of the top label (precision threshold 0.95)'
    >>> _anchor_fact({"methods": "lime"}) is None
    True
    """
    methods = config.get("methods")
    names = methods.split(",") if isinstance(methods, str) else methods
    if not isinstance(names, (list, tuple)) or "anchors" not in [str(m).strip() for m in names]:
        return None
    n = _count(config.get("anchor_labels"))
    labels = f"top {n} labels" if n and n > 1 else "top label"
    threshold = _threshold({"config": config})
    return f"anchors of the {labels}" + (
        f" (precision threshold {threshold:g})" if threshold is not None else "")


def _run_facts_html(summary: dict[str, Any], model_name: str | None, generated: str) -> Html:
    """One line under the title: model, settings, input, versions, time of writing."""
    model = summary.get("model") or {}
    config = summary.get("config") or {}
    n_samples = config.get("n_samples", config.get("num_samples"))   # num_samples: older runs
    digest = (model.get("digest") or "")[:12]
    name = model.get("name") or model_name
    runtime = (model.get("runtime") or {}).get("used")
    facts = [
        f"model {name}" + (f" ({digest})" if digest else "") if name else None,
        {"onnx": "on ONNX Runtime", "tensorflow": "on TensorFlow"}.get(runtime),
        (f"{config.get('min_samples')}-{config.get('max_samples')} samples per image "
         "(until stable)" if n_samples == "auto"
         else f"{n_samples} samples per image" if n_samples else None),
        f"{config['segmentation']}, ~{config.get('n_superpixels')} superpixels"
        if config.get("segmentation") else None,
        f"top {config['top_labels']} labels explained" if config.get("top_labels") else None,
        _anchor_fact(config),
        f"input {summary['input']}" if summary.get("input") else None,
        f"Spark {(summary.get('spark') or {}).get('master')}"
        if (summary.get("spark") or {}).get("master") else None,
        f"lime-spark {(summary.get('versions') or {}).get('lime-spark')}"
        if (summary.get("versions") or {}).get("lime-spark") else None,
        f"report written {generated}",
    ]
    return Html(" &middot; ".join(f"<span>{escape(f)}</span>" for f in facts if f))


def _drift_markup(drift: DriftView | None) -> dict[str, Html]:
    """The "Changed since A" view's buttons, filters and legend; empty markup without drift."""
    if drift is None:
        return {"views": Html(""), "drift_filters": Html(""), "drift_legend": Html("")}
    run_a = escape(drift.baseline_run_id)
    n, m = drift.drifted, len(drift.records)
    views = ('<nav class="views" aria-label="views">'
             '<button type="button" data-view="images" aria-pressed="true">All images</button>'
             '<button type="button" data-view="changed" aria-pressed="false">'
             f'Changed since run {run_a} <span class="n">({n:,} drifted)</span></button></nav>')
    filters = ('<div class="filters" role="group" aria-label="show compared images" '
               'data-show="changed" hidden>'
               f'<button type="button" data-drifted="0" aria-pressed="true">All compared '
               f'<span class="n">({m:,})</span></button>'
               f'<button type="button" data-drifted="1" aria-pressed="false">Drifted only '
               f'<span class="n">({n:,})</span></button></div>')
    legend = ('<p class="legend" data-show="changed" hidden>'
              f'<b id="drift-count">{n:,} of {m:,} images drifted</b> since run {run_a} '
              "(A; this run is B). Each entry compares the image's top label in B with the "
              "same label in A: its probability in A &rarr; B, the <b>rank correlation</b> of "
              "its superpixels' weights (Spearman, 1: same order), the <b>top-5 Jaccard</b> "
              "overlap of its 5 strongest superpixels (1: the same five), and the overlays of "
              "A and B side by side (click for full size). <b>drifted</b>: the top label "
              "changed, or a similarity fell below the thresholds of <code>lime-spark "
              "compare</code>; drifted images come first, then the lowest rank correlation."
              + (f" Not listed: {drift.unlisted:,} more images explained in both runs with no "
                 "label explained in both (their top label changed)." if drift.unlisted else "")
              + "</p>")
    return {"views": Html(views), "drift_filters": Html(filters), "drift_legend": Html(legend)}


def _anchor_markup(anchors: AnchorStats | None, threshold: float | None) -> dict[str, Html]:
    """The anchors' sort options and legend sentence; empty markup without anchors."""
    if anchors is None:
        return {"anchor_sorts": Html(""), "anchor_legend": Html("")}
    sorts = ('<option value="-anchor">largest anchor first</option>\n'
             '<option value="anchor">lowest anchor precision first</option>\n')
    at = f"at least {threshold:g}" if threshold is not None else "its threshold"
    legend = (" The <b>anchor</b> panel outlines the superpixels that suffice for the top "
              "label, the rest dimmed (click for full size): with them kept and every other "
              "superpixel hidden at random, the model still gives the label in a share "
              f"<b>precision</b> of the cases (the run asks for {escape(at)}; <b>below "
              "threshold</b>: the most precise anchor found missed it); <b>coverage</b> is "
              "the share of random perturbations that contain the whole anchor; an "
              "<b>empty</b> anchor: the label holds whatever is hidden.")
    return {"anchor_sorts": Html(sorts), "anchor_legend": Html(legend)}


# --------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------

def render_page(run_id: str, records: Sequence[ImageRecord], summary: dict[str, Any], *,
                page_size: int, overlay_features: int, model_name: str | None = None,
                drift: DriftView | None = None, anchors: AnchorStats | None = None) -> str:
    """The HTML of the report of run ``run_id``.

    Parameters
    ----------
    run_id : str
        The run (checked by :func:`lime_spark.config.check_run_id`).
    records : sequence of ImageRecord
        One per image, in input order, their ``thumbs`` set.
    summary : dict
        ``summary.json`` of the run, redacted (``{}`` if there was none).
    page_size : int
        Cards per page when the page opens.
    overlay_features : int
        Superpixels each overlay outlines (the legend says so).
    model_name : str, optional
        The model's name when ``summary`` has none.
    drift : DriftView, optional
        The images compared with a baseline run (the "Changed since A" view),
        in view order; their ``image`` is an index of ``records``.
    anchors : AnchorStats, optional
        The run's anchors summed up, when it has an ``anchors`` partition:
        the summary's tile, the cards' anchor panels (each record's
        ``anchor``), the anchor sorts.
    """
    run = quote(f"run_id={run_id}", safe="=")
    data = {"run_id": run_id, "overlays_base": f"../../overlays/{run}/",
            "thumbs_base": "thumbs/", "page_size": page_size,
            "overlay_features": overlay_features, "image_fields": IMAGE_FIELDS,
            "label_fields": LABEL_FIELDS, "images": page_rows(records), "drift": None,
            "anchors": None}
    threshold = _threshold(summary)
    if anchors is not None:
        data["anchors"] = {"fields": ANCHOR_FIELDS, "thumb": ANCHOR_THUMB.split("{", 1)[0],
                           "file": ANCHOR_PREFIX, "threshold": threshold}
    if drift is not None:
        base = quote(f"run_id={drift.baseline_run_id}", safe="=")
        data["drift"] = {"baseline_run_id": drift.baseline_run_id,
                         "overlays_base": f"../../overlays/{base}/", "fields": DRIFT_FIELDS,
                         "rows": drift_rows(drift.records), "drifted": drift.drifted}
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    script = _inline("report.js", "</script")
    csp = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
           f"script-src '{csp_hash(script)}'; base-uri 'none'; form-action 'none'")
    return fill(static_text("page.html"), {
        "csp": csp, "title": f"lime-spark audit: run {run_id}", "run_id": run_id,
        "run_facts": _run_facts_html(summary, model_name, generated),
        "summary": _summary_html(records, summary, drift, anchors),
        "overlay_features": overlay_features,
        **_drift_markup(drift), **_anchor_markup(anchors, threshold),
        "style": _inline("report.css", "</style"), "data": json_for_script(data),
        "script": script,
    })
