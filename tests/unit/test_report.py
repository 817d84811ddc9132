"""The HTML audit report on synthetic runs written with pyarrow (no Spark, no browser).

:func:`make_run` writes a run exactly as the job lays it out (three tables
partitioned by ``run_id``, overlay PNGs, ``summary.json``); the browser test in
``tests/e2e/test_report_browser.py`` reuses it.
"""

from __future__ import annotations

import io
import json
import re
import time
import zlib
from html.parser import HTMLParser
from collections.abc import Collection, Mapping
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from lime_spark.exceptions import ConfigurationError, StorageError
from lime_spark.report import write_report
from lime_spark.storage import join_uri, safe_key, write_bytes

HOSTILE_ID = '<script>alert("id")</script>'
HOSTILE_LABEL = '</script><img src=x onerror=alert(1)> & "%SCRIPT%" {{ script }}'
LABELS = ["tabby", "tiger_cat", "espresso", "Egyptian_cat", "cup", "rocket", HOSTILE_LABEL]


# --------------------------------------------------------------------------
# a synthetic run
# --------------------------------------------------------------------------

def _gradient(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = rng.integers(0, 255, size=3)
    img = (base + np.stack([x * 200 // width, y * 200 // height, (x + y) % 64], -1)) % 256
    return img.astype(np.uint8)


def _photos(side: int = 320):
    import skimage.data

    names = ["chelsea", "coffee", "astronaut", "rocket", "horse", "camera", "cat"]
    out = []
    for name in names:
        img = getattr(skimage.data, name)()
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        pil = Image.fromarray(img[..., :3])
        pil.thumbnail((side, side))
        out.append(np.asarray(pil))
    return out


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


ANCHOR_KINDS = ("key1", "key2", "key1", "empty", "noisy")
"""What the toy model of image i (ok) needs for its top label: ANCHOR_KINDS[i % 5]."""


def _toy_classifier(picture: np.ndarray, segments: np.ndarray, key: list[int], top: int,
                    other: int, *, noisy: bool):
    """A classifier_fn for one picture: ``top`` while the ``key`` superpixels are intact.

    Otherwise ``other``.  ``noisy``: also ``other`` for about 3 in 10 perturbations
    (a hash of the perturbed picture), so that no anchor reaches precision 0.95.
    With no key the label holds whatever is hidden (the empty anchor).
    """
    masks = [segments == s for s in key]
    inside = [picture[m] for m in masks]
    probes = np.unique(segments.ravel(), return_index=True)[1]     # a pixel per superpixel

    def predict(batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        keeps = np.ones(len(batch), bool)
        for mask, pixels in zip(masks, inside):
            keeps &= (batch[:, mask] == pixels).all(axis=(1, 2))
        if noisy:
            probe = batch.reshape(len(batch), -1, 3)[:, probes]
            keeps &= np.array([zlib.crc32(p.tobytes()) % 10 < 7 for p in probe], bool)
        out = np.full((len(batch), len(LABELS)), 0.02)
        out[np.arange(len(batch)), np.where(keeps, top, other)] = 0.88
        return out

    return predict


def _anchor_rows(i: int, image_id: str, picture: np.ndarray, segments: np.ndarray,
                 order: np.ndarray, top_weights: np.ndarray, n_labels: int, folder: str | None,
                 seed: int) -> list[dict]:
    """The ``anchors`` rows of one ok image, searched by AnchorExplainer on its own segments.

    The toy model's key superpixels for the top label are its strongest LIME
    weights (1 or 2 of them, none or noisy by :data:`ANCHOR_KINDS`); the other
    labels are what it predicts when those are hidden.  Each anchor's overlay
    (:func:`lime_spark.overlays.draw_anchor`) is written into ``folder``.
    """
    from lime_spark.anchors import AnchorExplainer
    from lime_spark.overlays import ANCHOR_PREFIX, draw_anchor
    from lime_spark.render import encode_png
    from lime_spark.rows import anchor_rows

    kind = ANCHOR_KINDS[i % len(ANCHOR_KINDS)]
    size = {"key1": 1, "key2": 2, "empty": 0, "noisy": 1}[kind]
    key = [int(f) for f in np.argsort(-top_weights, kind="stable")[:size]]
    top = int(order[0])
    other = int(order[1]) if len(order) > 1 else (top + 1) % len(LABELS)
    predict = _toy_classifier(picture, segments, key, top, other, noisy=kind == "noisy")
    search = AnchorExplainer(random_state=seed, coverage_samples=1000, max_anchor_size=2)
    found = [search.explain(picture, predict, label=int(label), segments=segments)
             for label in order[:n_labels]]
    uris = {}
    if folder is not None:
        for anchor in found:
            uris[anchor.label] = join_uri(folder, f"{ANCHOR_PREFIX}{anchor.label}.png")
            write_bytes(uris[anchor.label],
                        encode_png(draw_anchor(picture, segments, anchor.anchor)))
    names = type("Names", (), {"label_name": staticmethod(lambda label: LABELS[label])})
    return anchor_rows(image_id, found, names, overlay_uris=uris)


def make_run(root: str, run_id: str, n: int, *, top_labels: int = 3, errors: int = 2,
             overlays: bool = True, originals: bool = True, photos: bool = False,
             hostile: bool = True, n_features: int = 12, seed: int = 0,
             shared_seed: int | None = None, changed: Collection[int] = (),
             reused: Mapping[int, str] | None = None, anchors: int = 0,
             photo_side: int = 320) -> dict:
    """Write a run of ``n`` images (``errors`` of them failed) under ``root`` (any URI).

    Two runs with the same ``shared_seed`` (photos: the same pictures and
    superpixels) explain each image's same labels with the same probabilities,
    and weights that differ by noise of 1/10 of their spread (from ``seed``),
    as two runs of one model would; the images of ``changed`` instead get their
    top two labels swapped and weights of their own.  With ``reused`` (image
    index -> run id) the images table has the columns ``content_sha256``,
    ``explainer_digest`` and ``reused_from`` (older runs lack them) and
    ``summary.json`` counts ``images.explained`` and ``images.reused``.  With
    ``anchors`` (labels per image, as ``--anchor-labels``) the run has an
    ``anchors`` table (``--methods lime,anchors``): real anchor searches of each
    ok image's ``anchors`` most probable labels against a toy model (see
    :func:`_anchor_rows`), and their overlays ``anchor_<label>.png``.
    ``photo_side`` is the photos' longest side.

    Returns the expected facts: ids, statuses, mismatches, top-label fits, and
    ``anchors`` (image id -> its anchors rows, most probable label first).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lime_spark.render import render_explanation, render_superpixels

    rng = np.random.default_rng(seed)
    pictures = _photos(photo_side) if photos else None
    inputs = join_uri(root, "_inputs")
    part = f"run_id={run_id}"
    images, explanations, features, anchor_table = [], [], [], []
    facts = {"ids": [], "errors": [], "mismatches": [], "fits": {}, "ok": [], "unstable": [],
             "anchors": {}}
    for i in range(n):
        image_id = f"img-{i:05d}"
        if hostile and i == 1:
            image_id = HOSTILE_ID
        elif hostile and i == 2:
            image_id = "dir/sub dir/%2F ü.jpg"
        status = "error" if i >= n - errors else "ok"
        if pictures is not None:
            picture = pictures[i % len(pictures)]
        else:
            picture = _gradient(36 + i % 5 * 4, 48, seed + i)
        height, width = picture.shape[:2]
        path = join_uri(inputs, f"{i}.png")
        if originals and status == "ok":
            write_bytes(path, _png(picture))
        expected = None if i % 4 == 3 else LABELS[i % 3]
        facts["ids"].append(image_id)
        row = {"image_id": image_id, "path": path, "expected_label": expected,
               "status": status, "error_class": None, "error_message": None,
               "width": width, "height": height, "n_superpixels": None, "n_samples": 300,
               "top_label": None, "top_label_name": None, "top_prob": None,
               "seconds": float(rng.uniform(0.2, 3.0)), "model_name": "mobilenet",
               "model_digest": "d" * 64, "seed": int(rng.integers(1 << 40))}
        if reused is not None:
            row.update(content_sha256=f"{i:064x}", explainer_digest="e" * 64,
                       reused_from=reused.get(i))
        if status == "error":
            row.update(error_class="InvalidImageError" if i % 2 else "StorageError",
                       error_message=f"Expected an image. Received: <b>{i}</b> & more")
            facts["errors"].append(image_id)
            images.append(row)
            continue
        facts["ok"].append(image_id)
        if pictures is not None:
            from lime_spark.segmentation import segment_image

            segments = segment_image(picture, n_superpixels=30, random_state=i)
        else:
            segments = (np.arange(height)[:, None] // 12 * 8 + np.arange(width)[None, :] // 6)
            segments = np.unique(segments, return_inverse=True)[1].reshape(height, width)
        k = int(segments.max()) + 1
        shared = None if shared_seed is None else np.random.default_rng([shared_seed, i])
        source = rng if shared is None else shared
        order = source.permutation(len(LABELS) - (0 if hostile else 1))[:top_labels]
        probs = np.sort(source.dirichlet(np.ones(top_labels)))[::-1]
        base = None if shared is None else shared.normal(0, 0.1, size=(len(LABELS), k))
        if i == 0 and 0 in order[1:]:       # image 0 is explained as expected
            order[np.flatnonzero(order == 0)[0]] = order[0]
        if i == 0:
            order[0] = 0
        if i in changed:
            order[[0, 1]] = order[[1, 0]]
        top = int(order[0])
        row.update(n_superpixels=k, top_label=top, top_label_name=LABELS[top],
                   top_prob=float(probs[0]))
        if expected is not None and LABELS[top] != expected:
            facts["mismatches"].append(image_id)
        images.append(row)
        if i % 5 == 4:                          # one label stopped at the cap, unstable
            facts["unstable"].append(image_id)
        key = safe_key(image_id)
        folder = join_uri(root, "overlays", part, key)
        if overlays:
            write_bytes(join_uri(folder, "segments.png"), render_superpixels(picture, segments))
        for rank, label in enumerate(order, start=1):
            weights = rng.normal(0, 0.1, size=k)
            if base is not None and i not in changed:
                weights = base[label] + weights / 10
            fit = float(rng.uniform(0.05, 0.95))
            if rank == 1:
                facts["fits"][image_id] = fit
                top_weights = weights
            uri = None
            if overlays:
                positive = sorted(((int(f), float(w)) for f, w in enumerate(weights) if w > 0),
                                  key=lambda fw: -fw[1])[:5]
                uri = join_uri(folder, f"{int(label)}.png")
                write_bytes(uri, render_explanation(picture, segments, positive, threshold=0.0))
            explanations.append({
                "image_id": image_id, "label": int(label), "label_name": LABELS[int(label)],
                "label_rank": rank, "label_prob": float(probs[rank - 1]), "model_r2": fit,
                "intercept": 0.1, "local_pred": 0.5,
                "deletion_auc": float(rng.uniform(0, 0.5)) if rank == 1 else None,
                "insertion_auc": float(rng.uniform(0.3, 1)) if rank == 1 else None,
                "overlay_uri": uri,
                "stability": 0.6 if (i % 5 == 4 and rank == 2) else 0.99})
            ranked = np.argsort(-np.abs(weights))[:n_features]
            counts = np.bincount(segments.ravel(), minlength=k)
            for frank, feature in enumerate(ranked, start=1):
                features.append({
                    "image_id": image_id, "label": int(label), "feature": int(feature),
                    "feature_weight": float(weights[feature]), "feature_rank": frank,
                    "pixel_count": int(counts[feature]), "bbox_x0": 0, "bbox_y0": 0,
                    "bbox_x1": width, "bbox_y1": height})
        if anchors:
            rows = _anchor_rows(i, image_id, picture, segments, order, top_weights, anchors,
                                folder if overlays else None, seed=seed + i)
            facts["anchors"][image_id] = rows
            anchor_table += rows
    reuse_columns = [] if reused is None else [
        ("content_sha256", pa.string()), ("explainer_digest", pa.string()),
        ("reused_from", pa.string())]
    schemas = {
        "images": pa.schema([("image_id", pa.string()), ("path", pa.string()),
                             ("expected_label", pa.string()), ("status", pa.string()),
                             ("error_class", pa.string()), ("error_message", pa.string()),
                             ("width", pa.int32()), ("height", pa.int32()),
                             ("n_superpixels", pa.int32()), ("n_samples", pa.int32()),
                             ("top_label", pa.int32()), ("top_label_name", pa.string()),
                             ("top_prob", pa.float64()), ("seconds", pa.float64()),
                             ("model_name", pa.string()), ("model_digest", pa.string()),
                             ("seed", pa.int64()), *reuse_columns]),
        "explanations": pa.schema([("image_id", pa.string()), ("label", pa.int32()),
                                   ("label_name", pa.string()), ("label_rank", pa.int32()),
                                   ("label_prob", pa.float64()), ("model_r2", pa.float64()),
                                   ("intercept", pa.float64()), ("local_pred", pa.float64()),
                                   ("deletion_auc", pa.float64()),
                                   ("insertion_auc", pa.float64()),
                                   ("overlay_uri", pa.string()), ("stability", pa.float64())]),
        "features": pa.schema([("image_id", pa.string()), ("label", pa.int32()),
                               ("feature", pa.int32()), ("feature_weight", pa.float64()),
                               ("feature_rank", pa.int32()), ("pixel_count", pa.int64()),
                               ("bbox_x0", pa.int32()), ("bbox_y0", pa.int32()),
                               ("bbox_x1", pa.int32()), ("bbox_y1", pa.int32())]),
    }
    tables = [("images", images), ("explanations", explanations), ("features", features)]
    if anchors:
        from lime_spark.tables import arrow_schema

        schemas["anchors"] = arrow_schema("anchors")
        tables.append(("anchors", anchor_table))
    for name, rows in tables:
        table = pa.Table.from_pylist(rows, schema=schemas[name])
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        write_bytes(join_uri(root, name, part, "part-00000.snappy.parquet"), buffer.getvalue())
    summary = {"run_id": run_id, "input": join_uri(inputs, "list.parquet"), "output": root,
               "images": {"rows": n, "ok": n - errors, "error": errors},
               "timings": {"total_seconds": 123.4, "images_per_second": n / 100},
               "model": {"name": "mobilenet", "digest": "d" * 64},
               "config": {"num_samples": 300, "top_labels": top_labels, "segmentation": "slic",
                          "n_superpixels": 50, "overlay_features": 5},
               "versions": {"lime-spark": "0.1.0"}}
    if anchors:
        summary["config"].update(methods="lime,anchors", anchor_labels=anchors,
                                 anchor_threshold=0.95, anchor_max_size=2,
                                 anchor_coverage_samples=1000)
        summary["table_rows"] = {"anchors": len(anchor_table)}
    if reused is not None:
        done = [i for i in reused if i < n - errors]
        summary["images"].update(explained=n - errors - len(done), reused=len(done))
    write_bytes(join_uri(root, "runs", part, "summary.json"), json.dumps(summary).encode())
    return facts


def _spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's correlation (Pearson's of the ranks; no ties here), None if undefined."""
    ra, rb = (np.argsort(np.argsort(np.asarray(v))).astype(float) for v in (a, b))
    if len(ra) < 3 or ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _top5(weights: dict[int, float]) -> set[int]:
    return set(sorted(weights, key=lambda f: (-abs(weights[f]), f))[:5])


def write_drift(root: str, run_a: str, run_b: str, *, min_correlation: float = 0.5,
                min_jaccard: float = 0.25, files: int = 2) -> dict:
    """Write run B's ``drift`` partition against run A, computed from both runs' tables.

    What ``lime-spark compare`` writes (``lime_spark.tables.DRIFT``): one row
    per image and label explained in both runs, in ``files`` Parquet files.
    The rank correlation is over the superpixels in both ``features`` rows,
    the Jaccard over each side's 5 of largest absolute weight; ``drifted``:
    the top label changed, or either below its threshold.

    Returns the expected view: ``rows``, ``order`` (compared ids, drifted
    first, then lowest rank correlation of the label compared, then input
    order), ``drifted`` (ids), ``compared`` (id -> the row of its label
    compared: B's top label).
    """
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from lime_spark.tables import arrow_schema

    def read(name: str, run: str) -> list[dict]:
        return ds.dataset(str(Path(root) / name / f"run_id={run}"), format="parquet").to_table(
            ).to_pylist()

    images = {run: {r["image_id"]: r for r in read("images", run) if r["status"] == "ok"}
              for run in (run_a, run_b)}
    explained = {run: {(r["image_id"], r["label"]): r for r in read("explanations", run)}
                 for run in (run_a, run_b)}
    weights: dict[str, dict] = {run_a: {}, run_b: {}}
    for run in (run_a, run_b):
        for r in read("features", run):
            weights[run].setdefault((r["image_id"], r["label"]), {})[r["feature"]] = (
                r["feature_weight"])
    rows = []
    for (image_id, label), eb in explained[run_b].items():
        ea = explained[run_a].get((image_id, label))
        if ea is None or image_id not in images[run_a] or image_id not in images[run_b]:
            continue
        wa, wb = weights[run_a][(image_id, label)], weights[run_b][(image_id, label)]
        common = sorted(set(wa) & set(wb))
        correlation = _spearman([wa[f] for f in common], [wb[f] for f in common])
        top_a, top_b = _top5(wa), _top5(wb)
        jaccard = len(top_a & top_b) / len(top_a | top_b)
        changed = images[run_a][image_id]["top_label"] != images[run_b][image_id]["top_label"]
        rows.append({"image_id": image_id, "label": label, "label_name": eb["label_name"],
                     "baseline_run_id": run_a, "prob_a": ea["label_prob"],
                     "prob_b": eb["label_prob"], "top_label_changed": changed,
                     "rank_correlation": correlation, "top5_jaccard": jaccard,
                     "drifted": bool(changed or jaccard < min_jaccard or (
                         correlation is not None and correlation < min_correlation))})
    folder = join_uri(root, "drift", f"run_id={run_b}")
    for f in range(files):
        table = pa.Table.from_pylist(rows[f::files], schema=arrow_schema("drift"))
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        write_bytes(join_uri(folder, f"part-{f:05d}.snappy.parquet"), buffer.getvalue())

    order_b = {r["image_id"]: i for i, r in enumerate(read("images", run_b))}
    compared = {}
    for row in rows:
        if row["label"] == images[run_b][row["image_id"]]["top_label"]:
            compared[row["image_id"]] = row
    drifted = {r["image_id"] for r in rows if r["drifted"]}
    assert set(compared) == {r["image_id"] for r in rows}     # B's top labels, explained in A
    # what lime-spark compare stores in B's summary.json
    summary_uri = join_uri(root, "runs", f"run_id={run_b}", "summary.json")
    summary = json.loads(Path(summary_uri).read_text())
    summary["drift"] = {"run_id": run_b, "baseline": run_a, "images": len(compared),
                        "rows": len(rows), "drifted_images": len(drifted),
                        "images_without_common_label": 0}
    write_bytes(summary_uri, json.dumps(summary).encode())
    order = sorted(compared, key=lambda i: (
        i not in drifted, compared[i]["rank_correlation"] is None,
        compared[i]["rank_correlation"] or 0.0, order_b[i]))
    return {"rows": rows, "order": order, "drifted": drifted, "compared": compared}


def make_drift_runs(root: str, *, n: int = 12, photos: bool = True) -> tuple[dict, dict]:
    """Runs ``monday`` (A) and ``tuesday`` (B) of ``n`` images and B's drift against A.

    The two runs explain each image alike (different seeds, the same shared
    seed) but images 1 (the hostile id) and 5, whose top label changes; B
    reused image 3's explanation from A; each run's last image failed.
    Returns B's facts and :func:`write_drift`'s expected view.
    """
    make_run(root, "monday", n, errors=1, photos=photos, seed=1, shared_seed=7)
    facts = make_run(root, "tuesday", n, errors=1, photos=photos, seed=2, shared_seed=7,
                     changed=(1, 5), reused={3: "monday"})
    drift = write_drift(root, "monday", "tuesday")
    assert {facts["ids"][1], facts["ids"][5]} <= drift["drifted"]
    assert 0 < len(drift["drifted"]) < len(drift["order"])
    return facts, drift


def page_data(html_text: str) -> dict:
    """The JSON the page renders its cards from, each image a dict as the page's script makes it.

    The page has one array per image, its values named once by ``image_fields``
    (each label's by ``label_fields``).
    """
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                      html_text, re.S)
    assert match, "no report-data script in the page"
    data = json.loads(match.group(1))
    images = []
    for row in data["images"]:
        image = dict(zip(data["image_fields"], row, strict=True))
        image["labels"] = [dict(zip(data["label_fields"], label, strict=True))
                           for label in image["labels"]]
        images.append(image)
    data["images"] = images
    if data.get("drift"):
        data["drift"]["rows"] = [dict(zip(data["drift"]["fields"], row, strict=True))
                                 for row in data["drift"]["rows"]]
    return data


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html_text: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(html_text)
    return parser.tags


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report") / "out"
    facts = make_run(str(root), "r1", 14, errors=3)
    uri = write_report(str(root), "r1")
    return root, facts, uri


def test_report_is_written_where_the_layout_says(small_run):
    root, facts, uri = small_run
    index = root / "report" / "run_id=r1" / "index.html"
    assert uri == str(index) and index.is_file()
    data = page_data(index.read_text("utf-8"))
    assert [r["id"] for r in sorted(data["images"], key=lambda r: r["order"])] == facts["ids"]
    by_id = {r["id"]: r for r in data["images"]}
    assert {i for i, r in by_id.items() if r["status"] == "error"} == set(facts["errors"])
    assert {i for i, r in by_id.items() if r["mismatch"]} == set(facts["mismatches"])
    for image_id, fit in facts["fits"].items():
        assert by_id[image_id]["fit"] == pytest.approx(fit, abs=1e-4)
        assert len(by_id[image_id]["labels"]) == 3
        assert 0 < by_id[image_id]["area"] <= 1
    assert by_id["img-00000"]["mismatch"] is False and by_id["img-00000"]["expected_rank"] == 1
    error = by_id[facts["errors"][0]]
    assert error["error_class"] in ("InvalidImageError", "StorageError")
    assert "<b>" in error["error_message"]


def test_thumbnails_are_small_and_links_are_relative(small_run):
    root, facts, _ = small_run
    folder = root / "report" / "run_id=r1"
    data = page_data((folder / "index.html").read_text("utf-8"))
    assert data["thumbs_base"] == "thumbs/"
    assert data["overlays_base"] == "../../overlays/run_id=r1/"
    for r in data["images"]:
        names = r["thumbs"]
        if r["status"] == "ok":
            assert set(names) == {"original", "segments",
                                  *(str(lab["label"]) for lab in r["labels"])}
            assert all(str(lab["label"]) in names for lab in r["labels"])
            # the page's relative links resolve to files, as a browser resolves them
            overlay = (folder / unquote(data["overlays_base"] + r["folder"]
                                        + "/segments.png")).resolve()
            assert overlay.is_file()
            assert overlay == root / "overlays" / "run_id=r1" / safe_key(r["id"]) / "segments.png"
            assert r["original_link"].startswith("file:///")
        else:
            assert names == []        # the failed images' originals were never written
        for name in names:
            thumb = folder / unquote(data["thumbs_base"] + r["folder"] + f"/{name}.jpg")
            with Image.open(thumb) as im:
                assert im.format == "JPEG" and max(im.size) <= 192
    # the hostile id became one folder of thumbnails, inside the report
    assert (folder / "thumbs" / safe_key(HOSTILE_ID)).is_dir()


def test_page_is_self_contained_and_escapes_hostile_text(small_run):
    root, _, _ = small_run
    text = (root / "report" / "run_id=r1" / "index.html").read_text("utf-8")
    tags = _tags(text)
    scripts = [attrs for tag, attrs in tags if tag == "script"]
    assert len(scripts) == 2 and "src" not in scripts[0] and "src" not in scripts[1]
    assert not [t for t, a in tags if t in ("link", "iframe", "object", "embed", "base")]
    assert not [t for t, a in tags if t == "img"]          # every image is made by the script
    assert not any(k.startswith("on") for _, attrs in tags for k in attrs)
    # no URL to anywhere: nothing is fetched from the network
    assert not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text.replace("file:///", ""))
    csp = next(a["content"] for t, a in tags
               if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp
    # hostile ids and labels only as escaped text or JSON escapes
    assert HOSTILE_ID not in text and "</script><img" not in text
    # the hostile label is a top label (seed 0), so it is in the summary's table, escaped
    assert HOSTILE_LABEL in {r["predicted"] for r in page_data(text)["images"]}
    assert ("&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &amp; &quot;%SCRIPT%&quot; "
            "{{ script }}") in text
    assert text.count("</script>") == 2
    data = page_data(text)
    assert HOSTILE_ID in {r["id"] for r in data["images"]}


def test_summary_shows_counts_median_fit_and_time(small_run):
    root, facts, _ = small_run
    text = (root / "report" / "run_id=r1" / "index.html").read_text("utf-8")
    summary = text[text.index('<section class="tiles">'):text.index('<div class="toolbar"')]
    median = float(np.median(list(facts["fits"].values())))
    assert f">{median:.2f}<" in summary
    assert ">14<" in summary and "11 explained, 3 errors" in summary
    assert "Errors by class" in summary and "InvalidImageError" in summary
    assert f">{len(facts['mismatches'])}<" in summary
    assert "2 min 03 s" in summary          # summary.json's total_seconds


def test_unstable_explanations_are_marked_and_can_be_filtered(small_run):
    root, facts, _ = small_run
    text = (root / "report" / "run_id=r1" / "index.html").read_text("utf-8")
    images = page_data(text)["images"]
    assert facts["unstable"]
    assert sorted(r["id"] for r in images if r["unstable"]) == sorted(facts["unstable"])
    for r in images:
        if r["status"] == "ok":
            assert r["n_samples"] == 300
            assert r["stability"] == (0.6 if r["id"] in facts["unstable"] else 0.99)
            assert [lab["stability"] for lab in r["labels"]][0] == 0.99
    assert 'data-filter="unstable"' in text and "Unstable only" in text
    assert '<option value="stab">least stable first</option>' in text


def test_rerun_replaces_thumbnails(tmp_path):
    root = tmp_path / "out"
    make_run(str(root), "r", 4, errors=0, hostile=False)
    write_report(str(root), "r")
    stale = root / "report" / "run_id=r" / "thumbs" / "gone" / "original.jpg"
    stale.parent.mkdir()
    stale.write_bytes(b"x")
    write_report(str(root), "r", thumbnail_side=64)
    assert not stale.exists()
    thumbs = list((root / "report" / "run_id=r" / "thumbs").rglob("*.jpg"))
    assert len(thumbs) == 4 * (2 + 3)
    for thumb in thumbs:
        with Image.open(thumb) as im:
            assert max(im.size) <= 64


def test_run_line_masks_secrets_of_the_input_uri(tmp_path):
    root = tmp_path / "out"
    make_run(str(root), "r", 2, errors=0, hostile=False)
    summary_path = root / "runs" / "run_id=r" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["input"] = ("https://alice:hunter2@host/list.parquet"
                        "?X-Amz-Signature=0123abcd&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE")
    summary["config"]["model_args"] = {"api_key": "sk-live-secret"}
    summary_path.write_text(json.dumps(summary))
    text = Path(write_report(str(root), "r")).read_text()
    assert "host/list.parquet" in text
    for secret in ("hunter2", "0123abcd", "AKIAIOSFODNN7EXAMPLE", "sk-live-secret"):
        assert secret not in text


def test_missing_pictures_become_placeholders_not_failures(tmp_path):
    root = tmp_path / "out"
    make_run(str(root), "r", 5, errors=1, overlays=False, originals=False)
    data = page_data(Path(write_report(str(root), "r")).read_text("utf-8"))
    assert len(data["images"]) == 5
    assert all(r["thumbs"] == [] for r in data["images"])


def test_links_to_originals_only_for_files_and_http():
    from lime_spark.report.records import original_link

    assert original_link("/data/a b#1.jpg") == "file:///data/a%20b%231.jpg"
    assert original_link("https://host/x.jpg") == "https://host/x.jpg"
    for path in ("javascript:alert(1)", "JaVaScRiPt:x", "data:text/html,x", "s3a://b/k.jpg",
                 "relative/x.jpg", "", None):
        assert original_link(path) is None


def test_missing_run_and_bad_arguments_raise(tmp_path):
    with pytest.raises(StorageError, match="run_id='nope'"):
        write_report(str(tmp_path), "nope")
    with pytest.raises(ConfigurationError, match="run_id"):
        write_report(str(tmp_path), "../x")
    with pytest.raises(ConfigurationError, match="thumbnail_side"):
        write_report(str(tmp_path), "r", thumbnail_side=0)


def test_any_fsspec_uri(tmp_path):
    import fsspec

    root = "memory://lime-report-test/out"
    try:
        facts = make_run(root, "m", 3, errors=1)
        uri = write_report(root, "m")
        assert uri == root + "/report/run_id=m/index.html"
        fs = fsspec.filesystem("memory")
        data = page_data(fs.cat(uri.split("://", 1)[1]).decode("utf-8"))
        assert [r["id"] for r in data["images"]] == facts["ids"]
        assert fs.exists("/lime-report-test/out/report/run_id=m/thumbs/img-00000/segments.jpg")
        assert data["images"][0]["original_link"] is None    # no link to a memory:// original
    finally:
        fsspec.filesystem("memory").rm("/lime-report-test", recursive=True)


def test_cli_report_command(tmp_path, capsys):
    from lime_spark.cli import main

    make_run(str(tmp_path / "out"), "c", 3, errors=0, hostile=False)
    assert main(["report", "--output", str(tmp_path / "out"), "--run-id", "c"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(tmp_path / "out" / "report" / "run_id=c" / "index.html")
    assert main(["report", "--output", str(tmp_path / "out"), "--run-id", "missing"]) == 2
    assert "run_id='missing'" in capsys.readouterr().err


def test_ten_thousand_images_stay_small(tmp_path):
    root = tmp_path / "out"
    make_run(str(root), "big", 10_000, top_labels=5, errors=100, overlays=False,
             originals=False, hostile=False, n_features=8)
    started = time.perf_counter()
    text = Path(write_report(str(root), "big")).read_text("utf-8")
    seconds = time.perf_counter() - started
    data = page_data(text)
    assert len(data["images"]) == 10_000
    per_image = len(text.encode("utf-8")) / 10_000
    assert per_image < 600, f"{per_image:.0f} bytes of HTML per image"
    assert seconds < 60, f"report of 10,000 images took {seconds:.1f}s"


def test_page_inlines_the_static_files_and_allows_the_script_by_its_hash(small_run):
    import base64
    import hashlib

    from lime_spark.report.page import static_text

    root, _, _ = small_run
    text = (root / "report" / "run_id=r1" / "index.html").read_text("utf-8")
    script = static_text("report.js")
    assert f"<script>{script}</script>" in text
    assert f"<style>{static_text('report.css')}</style>" in text
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    csp = next(a["content"] for t, a in _tags(text)
               if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert f"script-src 'sha256-{digest}'" in csp
    assert "{{" not in text.replace("{{ script }}", "") and "{#" not in text


def test_template_values_are_escaped_and_must_match_its_placeholders():
    from lime_spark.report.page import Html, fill

    template = "<p title=\"{{ a }}\">{{ b }}</p>{# gone #}\n{{ c }}"
    out = fill(template, {"a": '"><x>', "b": "{{ c }} & <y>", "c": Html("<i>kept</i>")})
    assert out == '<p title="&quot;&gt;&lt;x&gt;">{{ c }} &amp; &lt;y&gt;</p><i>kept</i>'
    with pytest.raises(KeyError, match="c"):
        fill(template, {"a": "", "b": ""})
    with pytest.raises(KeyError, match="d"):
        fill(template, {"a": "", "b": "", "c": "", "d": ""})


def test_run_line_says_how_many_samples_auto_allowed():
    from lime_spark.report.page import _run_facts_html

    auto = str(_run_facts_html({"config": {"n_samples": "auto", "min_samples": 256,
                                           "max_samples": 1000}}, "m", "now"))
    assert "256-1000 samples per image (until stable)" in auto
    assert "300 samples per image" in str(_run_facts_html({"config": {"n_samples": 300}},
                                                          "m", "now"))


# --------------------------------------------------------------------------
# "Changed since A" (a drift partition) and reused explanations
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def drift_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift") / "out"
    facts, drift = make_drift_runs(str(root))
    uri = write_report(str(root), "tuesday")
    return root, facts, drift, Path(uri)


def test_changed_view_data_follows_the_drift_table(drift_run):
    root, facts, drift, index = drift_run
    folder = index.parent
    data = page_data(index.read_text("utf-8"))
    view = data["drift"]
    assert view["baseline_run_id"] == "monday"
    assert view["overlays_base"] == "../../overlays/run_id=monday/"
    assert view["drifted"] == len(drift["drifted"]) == 2
    rows = view["rows"]
    assert [r["id"] for r in rows] == drift["order"]          # drifted first, then lowest rho
    assert [r["drifted"] for r in rows] == [True] * 2 + [False] * (len(rows) - 2)
    images = data["images"]
    for r in rows:
        expected = drift["compared"][r["id"]]
        image = images[r["image"]]
        assert image["id"] == r["id"] and image["folder"] == r["folder"]
        assert r["label"] == expected["label"] == image["labels"][0]["label"]  # B's top label
        assert r["name"] == expected["label_name"] == image["predicted"]
        assert r["prob_a"] == pytest.approx(expected["prob_a"], abs=1e-4)
        assert r["prob_b"] == pytest.approx(expected["prob_b"], abs=1e-4)
        assert r["top5_jaccard"] == pytest.approx(expected["top5_jaccard"], abs=1e-4)
        if expected["rank_correlation"] is None:
            assert r["rank_correlation"] is None
        else:
            assert r["rank_correlation"] == pytest.approx(expected["rank_correlation"], abs=1e-4)
        assert r["top_changed"] is expected["top_label_changed"]
        assert r["top_b"] == image["predicted"]
        # both overlays of the label compared have thumbnails; the links resolve to the PNGs
        assert {f"baseline-{r['label']}", str(r["label"])} <= set(image["thumbs"])
        for run, base in (("monday", view["overlays_base"]), ("tuesday", data["overlays_base"])):
            png = (folder / unquote(base + r["folder"] + f"/{r['label']}.png")).resolve()
            assert png == root / "overlays" / f"run_id={run}" / safe_key(r["id"]) / (
                f"{r['label']}.png")
            assert png.is_file()
        with Image.open(folder / "thumbs" / safe_key(r["id"]) / f"baseline-{r['label']}.jpg") as im:
            assert im.format == "JPEG" and max(im.size) <= 192
    changed = {r["id"]: r for r in rows if r["top_changed"]}
    assert set(changed) == {facts["ids"][1], facts["ids"][5]}
    for r in changed.values():
        assert r["top_a"] != r["top_b"] and r["top_a"] in r["also"]   # A's top drifted too
    # the image that failed in both runs is not compared
    assert facts["errors"][0] not in {r["id"] for r in rows}


def test_changed_view_markup_counts_and_escapes(drift_run):
    _, _, drift, index = drift_run
    text = index.read_text("utf-8")
    n, m = len(drift["drifted"]), len(drift["order"])
    assert f'<b id="drift-count">{n} of {m} images drifted</b> since run monday' in text
    assert 'data-view="changed"' in text and 'data-drifted="1"' in text
    summary = text[text.index('<section class="tiles">'):text.index('<div class="toolbar"')]
    assert "Changed since run monday" in summary and f">{n}<" in summary
    assert f"of {m} images compared drifted" in summary and 'href="#view=changed"' in summary
    # the hostile id and label (compared, drifted) stay JSON escapes and escaped text
    assert HOSTILE_ID not in text and "</script><img" not in text
    assert text.count("</script>") == 2
    tags = _tags(text)
    assert not [t for t, a in tags if t == "img"]
    assert not any(k.startswith("on") for _, attrs in tags for k in attrs)
    assert "{{" not in text.replace("{{ script }}", "")


def test_reused_images_are_marked_and_counted(drift_run):
    _, facts, _, index = drift_run
    text = index.read_text("utf-8")
    by_id = {r["id"]: r for r in page_data(text)["images"]}
    assert by_id[facts["ids"][3]]["reused_from"] == "monday"
    assert [i for i, r in by_id.items() if r["reused_from"]] == [facts["ids"][3]]
    summary = text[text.index('<section class="tiles">'):text.index('<div class="toolbar"')]
    assert "Reused" in summary and ">1<" in summary
    assert "10 explained by this run" in summary       # 11 ok images, 1 reused


def test_older_runs_without_drift_or_reuse_columns(small_run):
    from lime_spark.report.records import read_drift, read_run

    root, facts, _ = small_run
    tables = read_run(str(root), "r1", overlay_features=5)
    for column in ("content_sha256", "explainer_digest", "reused_from"):
        assert tables.images[column].isna().all()
    assert read_drift(str(root), "r1") is None
    text = (root / "report" / "run_id=r1" / "index.html").read_text("utf-8")
    data = page_data(text)
    assert data["drift"] is None
    assert all(r["reused_from"] is None for r in data["images"])
    markup = text[:text.index('<script type="application/json"')]
    assert "data-view" not in markup and "drift-count" not in markup
    assert "Changed since" not in markup and "Reused" not in markup


def _write_drift_rows(root: Path, run_id: str, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lime_spark.tables import arrow_schema

    folder = root / "drift" / f"run_id={run_id}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema("drift")),
                   folder / "part-00000.parquet")


def _drift_row(image_id: str, label: int, baseline: str, **kw) -> dict:
    row = {"image_id": image_id, "label": label, "label_name": f"class {label}",
           "baseline_run_id": baseline, "prob_a": 0.5, "prob_b": 0.4,
           "top_label_changed": False, "rank_correlation": 0.9, "top5_jaccard": 0.8,
           "drifted": False}
    row.update(kw)
    return row


def test_drift_partitions_that_cannot_be_shown_fully(tmp_path, caplog):
    from lime_spark.report.records import build_drift, build_images, read_drift, read_run

    root = tmp_path / "out"
    make_run(str(root), "b", 4, errors=0, hostile=False)
    tables = read_run(str(root), "b", overlay_features=5)
    top = {r["image_id"]: r["top_label"] for r in tables.images.to_dict("records")}

    # an empty partition: a view only when summary.json's drift names the baseline (what
    # lime-spark compare stores there), with the images it could not compare label by label
    _write_drift_rows(root, "b", [])
    assert read_drift(str(root), "b") is None
    assert read_drift(str(root), "b", {"drift": {"images": 4}}) is None
    empty = read_drift(str(root), "b", {"drift": {"baseline": "gone", "images": 4,
                                                  "images_without_common_label": 4}})
    assert empty.baseline_run_id == "gone" and empty.rows.empty and empty.unlisted == 4
    view = build_drift(empty, build_images(str(root), "b", tables))
    assert view.records == [] and view.drifted == 0 and view.unlisted == 4
    summary_path = root / "runs" / "run_id=b" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary_path.write_text(json.dumps({**summary, "drift": {
        "baseline": "gone", "images_without_common_label": 4}}))
    text = Path(write_report(str(root), "b")).read_text("utf-8")
    assert page_data(text)["drift"]["rows"] == []
    assert '<b id="drift-count">0 of 0 images drifted</b> since run gone' in text
    assert "Not listed: 4 more images explained in both runs" in text
    assert "(and 4 without a label in common)" in text
    summary_path.write_text(json.dumps(summary))
    # a baseline id that is no run id: no view, a warning
    _write_drift_rows(root, "b", [_drift_row("img-00000", top["img-00000"], "../x")])
    with caplog.at_level("WARNING", logger="lime_spark.report.records"):
        assert read_drift(str(root), "b") is None
    assert "run_id" in caplog.text
    # two baselines: the one with the most rows; the baseline run is gone: no overlays of A
    _write_drift_rows(root, "b", [
        _drift_row("img-00000", top["img-00000"], "gone", rank_correlation=None),
        _drift_row("img-00001", top["img-00001"], "gone", drifted=True, rank_correlation=0.2),
        _drift_row("img-00002", top["img-00002"], "other", drifted=True),
        _drift_row("img-00003", 99, "gone", prob_b=0.3),        # a label B did not explain
        _drift_row("img-00003", 98, "gone", prob_b=0.35, drifted=True),
        _drift_row("unknown", 1, "gone", drifted=True, rank_correlation=0.5)])
    caplog.clear()
    with caplog.at_level("WARNING", logger="lime_spark.report.records"):
        drift_tables = read_drift(str(root), "b")
    assert "2 baseline runs" in caplog.text
    assert drift_tables.baseline_run_id == "gone"
    entries = build_images(str(root), "b", tables)
    view = build_drift(drift_tables, entries)
    assert [r.id for r in view.records] == ["img-00001", "unknown", "img-00003", "img-00000"]
    assert view.drifted == 3
    unknown = view.records[1]
    assert unknown.image is None and unknown.top_b is None
    other = view.records[2]
    assert other.label == 98 and other.also == [] and other.top_a is None   # most probable in B
    assert not any(name.startswith("baseline-") for e in entries for name in e.sources)
    # the report is still written, the view without A's pictures
    data = page_data(Path(write_report(str(root), "b")).read_text("utf-8"))
    assert [r["id"] for r in data["drift"]["rows"]] == [r.id for r in view.records]
    assert not any(t.startswith("baseline-") for r in data["images"] for t in r["thumbs"])


def test_report_reads_the_declared_columns():
    from lime_spark.report import records
    from lime_spark.tables import column_names

    assert records._DRIFT_COLUMNS == column_names("drift")
    for name, columns in (("images", records._IMAGE_COLUMNS),
                          ("explanations", records._EXPLANATION_COLUMNS),
                          ("features", records._FEATURE_COLUMNS),
                          ("anchors", records._ANCHOR_COLUMNS)):
        assert set(columns) <= set(column_names(name)), name


# --------------------------------------------------------------------------
# anchors (--methods lime,anchors)
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def anchor_run(tmp_path_factory):
    """10 images (2 failed), two anchored labels per ok image: real searches, a toy model."""
    root = tmp_path_factory.mktemp("anchors") / "out"
    facts = make_run(str(root), "a1", 10, errors=2, anchors=2)
    return root, facts, Path(write_report(str(root), "a1"))


def _summary_section(text: str) -> str:
    return text[text.index('<section class="tiles">'):text.index('<div class="toolbar"')]


def test_anchor_records_follow_the_anchors_table(anchor_run):
    from lime_spark.report.records import anchor_stats, read_run

    root, facts, index = anchor_run
    folder = index.parent
    tables = read_run(str(root), "a1", overlay_features=5)
    assert len(tables.anchors) == 2 * len(facts["ok"]) == 16
    data = page_data(index.read_text("utf-8"))
    assert data["anchors"]["fields"] == ["label", "name", "size", "precision", "coverage",
                                         "success"]
    assert data["anchors"]["thumb"] == data["anchors"]["file"] == "anchor_"
    assert data["anchors"]["threshold"] == 0.95
    kinds = {"empty", "noisy", "key1", "key2"}
    seen = set()
    for r in data["images"]:
        if r["status"] == "error":
            assert r["anchor"] is None and r["thumbs"] == []
            continue
        top = facts["anchors"][r["id"]][0]              # the top label's row, not the second's
        assert top["label"] == r["labels"][0]["label"]
        anchor = dict(zip(data["anchors"]["fields"], r["anchor"], strict=True))
        assert anchor["label"] == top["label"] and anchor["name"] == top["label_name"]
        assert anchor["size"] == top["anchor_size"] == len(top["anchor"])
        assert anchor["precision"] == pytest.approx(top["precision"], abs=1e-4)
        assert anchor["coverage"] == pytest.approx(top["coverage"], abs=1e-6)
        assert anchor["success"] is top["success"]
        kind = ANCHOR_KINDS[facts["ids"].index(r["id"]) % len(ANCHOR_KINDS)]
        seen.add(kind)
        if kind == "empty":
            assert anchor["size"] == 0 and anchor["coverage"] == 1 and anchor["success"]
        elif kind == "noisy":
            assert not anchor["success"] and anchor["precision"] < 0.95
        else:
            assert anchor["success"] and anchor["size"] == int(kind[-1])
        # the top label's anchor overlay only has a thumbnail; its link resolves to the PNG
        name = f"anchor_{anchor['label']}"
        assert [t for t in r["thumbs"] if t.startswith("anchor_")] == [name]
        png = (folder / unquote(data["overlays_base"] + r["folder"] + f"/{name}.png")).resolve()
        assert png == root / "overlays" / "run_id=a1" / safe_key(r["id"]) / f"{name}.png"
        assert png.is_file()
        with Image.open(folder / "thumbs" / safe_key(r["id"]) / f"{name}.jpg") as im:
            assert im.format == "JPEG" and max(im.size) <= 192
    assert seen == kinds
    stats = anchor_stats(tables.anchors)
    rows = [row for rows in facts["anchors"].values() for row in rows]
    assert stats.anchors == 16 and stats.images == 8
    assert stats.succeeded == sum(row["success"] for row in rows)
    assert stats.median_size == pytest.approx(np.median([row["anchor_size"] for row in rows]))
    assert stats.median_precision == pytest.approx(
        np.median([row["precision"] for row in rows]), abs=1e-4)


def test_anchor_tile_sorts_and_legend(anchor_run):
    _, facts, index = anchor_run
    text = index.read_text("utf-8")
    rows = [row for rows in facts["anchors"].values() for row in rows]
    met = sum(row["success"] for row in rows)
    tile = _summary_section(text)
    tile = tile[tile.index(">Anchors<"):]
    tile = tile[:tile.index('<div class="tile ')] if '<div class="tile ' in tile else tile
    assert '<div class="tile-value">16</div>' in tile
    assert "of 8 images" in tile
    size = np.median([r["anchor_size"] for r in rows])
    assert f"median size {size:g} superpixel{'' if size == 1 else 's'}" in tile
    assert f"median precision {np.median([r['precision'] for r in rows]):.2f}" in tile
    assert f"{met} ({met / 16:.0%}) met the threshold 0.95" in tile
    assert '<option value="-anchor">largest anchor first</option>' in text
    assert '<option value="anchor">lowest anchor precision first</option>' in text
    assert "The <b>anchor</b> panel outlines the superpixels" in text
    assert "the run asks for at least 0.95" in text
    assert "anchors of the top 2 labels (precision threshold 0.95)" in text     # the run line
    # hostile ids and label names (anchored too) stay escaped
    assert HOSTILE_ID not in text and "</script><img" not in text
    assert text.count("</script>") == 2
    assert "{{" not in text.replace("{{ script }}", "")


def test_runs_without_anchors_have_no_anchor_markup(small_run):
    from lime_spark.report.records import anchor_stats, read_run

    root, _, _ = small_run
    tables = read_run(str(root), "r1", overlay_features=5)
    assert tables.anchors is None and anchor_stats(tables.anchors) is None
    text = (root / "report" / "run_id=r1" / "index.html").read_text("utf-8")
    data = page_data(text)
    assert data["anchors"] is None
    assert all(r["anchor"] is None for r in data["images"])
    assert not any(t.startswith("anchor_") for r in data["images"] for t in r["thumbs"])
    markup = text[text.index("<body>"):text.index('<script type="application/json"')]
    assert "anchor" not in markup.lower().replace("text-anchor=", "")
    assert 'perturbed images it took.</p>' in markup
    assert '<option value="stab">least stable first</option>\n<option value="id">' in markup


def test_older_or_partial_anchors_tables_are_read(tmp_path):
    """An anchors partition without some columns (an older layout) or without files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lime_spark.report.records import anchor_stats, build_images, read_run

    root = tmp_path / "out"
    facts = make_run(str(root), "old", 4, errors=1, hostile=False)
    folder = root / "anchors" / "run_id=old"
    folder.mkdir(parents=True)
    text = Path(write_report(str(root), "old")).read_text("utf-8")     # a folder, no files
    assert '<div class="tile-value">0</div><div class="tile-note">no image was explained' in (
        _summary_section(text))
    assert all(r["anchor"] is None for r in page_data(text)["images"])
    top = {r["image_id"]: r["top_label"] for r in read_run(
        str(root), "old", overlay_features=5).images.to_dict("records")}
    rows = [{"image_id": image_id, "label": top[image_id], "label_name": "x",
             "anchor": [1, 2], "anchor_size": 2, "precision": 0.5}
            for image_id in facts["ok"][:2]]
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-00000.parquet")
    tables = read_run(str(root), "old", overlay_features=5)
    assert tables.anchors["coverage"].isna().all() and tables.anchors["overlay_uri"].isna().all()
    stats = anchor_stats(tables.anchors)
    assert (stats.anchors, stats.images, stats.median_size, stats.succeeded) == (2, 2, 2.0, 0)
    entries = build_images(str(root), "old", tables)
    first = entries[0].record.anchor
    assert (first.label, first.size, first.precision, first.coverage, first.success) == (
        top[facts["ok"][0]], 2, 0.5, None, False)
    assert not any(name.startswith("anchor_") for e in entries for name in e.sources)
    data = page_data(Path(write_report(str(root), "old")).read_text("utf-8"))
    assert [r["anchor"] is not None for r in data["images"]] == [True, True, False, False]


def test_anchor_thumbnails_keep_the_yellow_outline(tmp_path):
    """Downscaled 8x, the anchor's outline stays yellow whatever the run's overlay display."""
    from lime_spark.overlays import draw_anchor
    from lime_spark.render import encode_png
    from lime_spark.report.records import ImageRecord, ReportImage
    from lime_spark.report.thumbnails import (
        Limits,
        anchor_outline_colours,
        write_thumbnails,
    )

    picture = _gradient(512, 512, 3) // 2
    segments = (np.arange(512)[:, None] // 128 * 4 + np.arange(512)[None, :] // 128)
    write_bytes(str(tmp_path / "anchor_3.png"), encode_png(draw_anchor(picture, segments, [5])))
    record = ImageRecord(order=0, id="a", folder="a", status="ok", path=None,
                         original_link=None, expected=None, predicted=None, top_prob=None,
                         mismatch=False, expected_rank=None, width=512, height=512,
                         n_superpixels=16, n_samples=None, stability=None, unstable=False,
                         seconds=None, fit=None, deletion_auc=None, insertion_auc=None,
                         area=None)
    image = ReportImage(record, "a", {"anchor_3": str(tmp_path / "anchor_3.png")})
    limits = Limits(max_pixels=1 << 24, max_bytes=1 << 26, max_decode_bytes=1 << 28,
                    budget=1 << 28)
    yellow = {}
    for kept in ((), anchor_outline_colours()):
        written, failed, _ = write_thumbnails(image, str(tmp_path / "thumbs"), 64, limits,
                                              outlines=(), anchor_outlines=kept)
        assert written == ["anchor_3"] and failed == 0
        with Image.open(tmp_path / "thumbs" / "a" / "anchor_3.jpg") as im:
            rgb = np.asarray(im.convert("RGB")).astype(int)
        # the picture is dark (< 128): only the outline is bright red and green
        yellow[bool(kept)] = int(((rgb[..., 0] > 200) & (rgb[..., 1] > 200)).sum())
    assert yellow[True] > 2 * yellow[False] and yellow[True] >= 20, yellow
