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
from html.parser import HTMLParser
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


def _photos():
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
        pil.thumbnail((320, 320))
        out.append(np.asarray(pil))
    return out


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def make_run(root: str, run_id: str, n: int, *, top_labels: int = 3, errors: int = 2,
             overlays: bool = True, originals: bool = True, photos: bool = False,
             hostile: bool = True, n_features: int = 12, seed: int = 0) -> dict:
    """Write a run of ``n`` images (``errors`` of them failed) under ``root`` (any URI).

    Returns the expected facts: ids, statuses, mismatches, top-label fits.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lime_spark.render import render_explanation, render_superpixels

    rng = np.random.default_rng(seed)
    pictures = _photos() if photos else None
    inputs = join_uri(root, "_inputs")
    part = f"run_id={run_id}"
    images, explanations, features = [], [], []
    facts = {"ids": [], "errors": [], "mismatches": [], "fits": {}, "ok": [], "unstable": []}
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
        order = rng.permutation(len(LABELS) - (0 if hostile else 1))[:top_labels]
        probs = np.sort(rng.dirichlet(np.ones(top_labels)))[::-1]
        top = int(order[0])
        if i == 0:
            top = 0               # image 0 is explained as expected
        order[0] = top
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
            fit = float(rng.uniform(0.05, 0.95))
            if rank == 1:
                facts["fits"][image_id] = fit
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
    schemas = {
        "images": pa.schema([("image_id", pa.string()), ("path", pa.string()),
                             ("expected_label", pa.string()), ("status", pa.string()),
                             ("error_class", pa.string()), ("error_message", pa.string()),
                             ("width", pa.int32()), ("height", pa.int32()),
                             ("n_superpixels", pa.int32()), ("n_samples", pa.int32()),
                             ("top_label", pa.int32()), ("top_label_name", pa.string()),
                             ("top_prob", pa.float64()), ("seconds", pa.float64()),
                             ("model_name", pa.string()), ("model_digest", pa.string()),
                             ("seed", pa.int64())]),
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
    for name, rows in (("images", images), ("explanations", explanations),
                       ("features", features)):
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
    write_bytes(join_uri(root, "runs", part, "summary.json"), json.dumps(summary).encode())
    return facts


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
