"""The audit report in a real browser: Debian's headless Chromium, driven over DevTools.

Chromium talks the DevTools protocol over a pipe (``--remote-debugging-pipe``:
NUL-terminated JSON on file descriptors 3 and 4), so no websocket client, no
port and no new dependency are needed.  ``scripts/test.sh`` installs
``chromium`` when it runs as root; elsewhere these tests skip with a message
(and fail under ``CI=true``, where the browser must be there).

The screenshot lands in ``tmp_path`` and, when ``LIME_SPARK_ARTIFACTS`` is
set, is copied into that folder too.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from lime_spark.report import write_report
from tests.unit.test_report import ANCHOR_KINDS, HOSTILE_ID, make_drift_runs, make_run

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
    "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
)


def chromium_binary() -> str:
    """Path of Chromium, or skip (fail on CI) with what to do."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    message = ("chromium is not installed: scripts/test.sh installs it when run as root "
               "(apt-get install -y chromium)")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _high_fd(fd: int) -> int:
    import fcntl

    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    """A headless Chromium and one page, over the DevTools protocol on a pipe."""

    def __init__(self, binary: str, *, width: int = 1440, height: int = 1500):
        self._profile = tempfile.mkdtemp(prefix="lime-spark-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child's ends above fd 9, so that moving them to 3 and 4 cannot clobber one
        to_browser_r, from_browser_w = (_high_fd(to_browser_r), _high_fd(from_browser_w))
        self.log_path = Path(self._profile) / "chromium.log"
        command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}",
                   "--remote-debugging-pipe", "about:blank"]
        # the browser reads commands on fd 3 and writes replies and events on fd 4
        self._proc = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w}', "bash", *command],
            pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self.log_path.open("wb"))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.page(f"{domain}.enable")
        self.page("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as stream:
            while True:
                chunk = stream.read(1 << 16)
                if not chunk:
                    return
                buffer += chunk
                while b"\0" in buffer:
                    raw, buffer = buffer.split(b"\0", 1)
                    message = json.loads(raw)
                    if "id" in message:
                        with self._lock:
                            box = self._replies.get(message["id"])
                        if box is not None:
                            box.put(message)
                    else:
                        self.events.append(message)

    def call(self, method: str, params: dict | None = None, *, session: str | None = None,
             timeout: float = 60) -> dict:
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            box = self._replies[ident] = queue.Queue()
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        try:
            reply = box.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no reply to {method} in {timeout}s; log: "
                               f"{self.log_path.read_text(errors='replace')[-2000:]}") from None
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def page(self, method: str, params: dict | None = None, **kw) -> dict:
        return self.call(method, params, session=self.session, **kw)

    def wait_event(self, method: str, *, after: int = 0, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events[after:]:
                if event.get("method") == method:
                    return event
            time.sleep(0.02)
        raise TimeoutError(f"no {method} event in {timeout}s")

    def open(self, url: str) -> None:
        """Load ``url`` afresh (a new document even when only the #fragment differs)."""
        for target in ("about:blank", url):
            mark = len(self.events)
            self.page("Page.navigate", {"url": target})
            self.wait_event("Page.loadEventFired", after=mark)

    def js(self, expression: str, *, timeout: float = 60):
        """Evaluate ``expression`` in the page (promises awaited) and return its value."""
        result = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        data = self.page("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def problems(self, after: int = 0) -> list[str]:
        """Console errors and warnings, uncaught exceptions, failed loads, CSP reports, dialogs."""
        out = []
        for event in self.events[after:]:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(f"exception: {params['exceptionDetails']}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in (
                    "error", "warning", "assert"):
                out.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                entry = params["entry"]
                out.append(f"log {entry['level']} ({entry.get('source')}): {entry.get('text')} "
                           f"{entry.get('url', '')}")
            elif method == "Page.javascriptDialogOpening":
                out.append(f"dialog: {params.get('message')}")
        return out

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - the browser may already be gone
            pass
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_browser)
        shutil.rmtree(self._profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    b = Browser(chromium_binary())
    yield b
    b.close()


# The page's own view of itself, read back by the tests.
CARDS = "document.querySelectorAll('#cards article.card').length"
LOAD_ALL_IMAGES = """
Promise.all(Array.from(document.querySelectorAll('#cards img')).map(function (img) {
  img.loading = 'eager';
  return img.decode().then(function () { return null; },
                           function () { return img.getAttribute('src'); });
})).then(function (r) { return r.filter(Boolean); })
"""


def save_artifact(path: Path) -> None:
    folder = os.environ.get("LIME_SPARK_ARTIFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser") / "out"
    facts = make_run(str(root), "nightly", 62, errors=4, photos=True, top_labels=3)
    return root, facts, Path(write_report(str(root), "nightly"))


def test_report_loads_from_disk_and_filters(browser, photo_run, tmp_path):
    root, facts, index = photo_run
    mark = len(browser.events)
    browser.open(index.as_uri())
    n = len(facts["ids"])
    assert browser.js(CARDS) == 50                       # first page
    assert browser.js("document.getElementById('count').textContent") == f"{n} images"
    assert browser.js("document.querySelectorAll('#cards img[loading=lazy]').length") > 100

    # every card of the images table, page by page; hostile ids shown as text
    seen = []
    for _ in range(5):
        seen += browser.js("Array.from(document.querySelectorAll('#cards article.card'))"
                           ".map(function (c) { return c.getAttribute('data-image-id'); })")
        if browser.js("document.getElementById('next').disabled"):
            break
        browser.js("document.getElementById('next').click()")
    assert sorted(seen) == sorted(facts["ids"])
    assert HOSTILE_ID in seen
    browser.js("document.getElementById('search').value = 'alert(\"id';"
               "document.getElementById('search').dispatchEvent(new Event('input'))")
    time.sleep(0.4)
    assert browser.js("Array.from(document.querySelectorAll('#cards h2'))"
                      ".map(function (h) { return h.textContent; })") == [HOSTILE_ID]
    browser.js("document.getElementById('search').value = '';"
               "document.getElementById('search').dispatchEvent(new Event('input'))")
    time.sleep(0.4)

    # lowest fit first: the first card is the image with the smallest fit
    browser.js("document.querySelector('[data-filter=all]').click()")
    first = browser.js("document.querySelector('#cards article.card').getAttribute('data-image-id')")
    assert first == min(facts["fits"], key=facts["fits"].get)

    browser.js("document.querySelector('[data-filter=error]').click()")
    assert browser.js(CARDS) == len(facts["errors"])
    assert browser.js("Array.from(document.querySelectorAll('#cards article.card'))"
                      ".every(function (c) { return c.classList.contains('error'); })")
    browser.js("document.querySelector('[data-filter=mismatch]').click()")
    assert browser.js(CARDS) == len(facts["mismatches"]) > 0
    assert browser.js("location.hash").startswith("#filter=mismatch")
    browser.js("document.querySelector('[data-filter=all]').click()")
    assert browser.js(CARDS) == 50

    # every thumbnail loads from its relative link (hostile ids' folders too)
    browser.js("var s = document.getElementById('size'); s.value = '200';"
               "s.dispatchEvent(new Event('change'))")
    assert browser.js(CARDS) == n
    assert browser.js("document.querySelectorAll('#cards img').length") == 2 * (n - 4) + 3 * (n - 4)
    assert browser.js(LOAD_ALL_IMAGES) == []
    browser.js("var s = document.getElementById('size'); s.value = '50';"
               "s.dispatchEvent(new Event('change')); window.scrollTo(0, 0)")
    shot = browser.screenshot(tmp_path / "report-browser.png")
    save_artifact(shot)
    assert shot.stat().st_size > 50_000
    assert browser.problems(mark) == []


def test_report_view_of_errors_is_linkable(browser, photo_run, tmp_path):
    _, facts, index = photo_run
    mark = len(browser.events)
    browser.open(index.as_uri() + "#filter=error&sort=id")
    assert browser.js(CARDS) == len(facts["errors"])
    ids = browser.js("Array.from(document.querySelectorAll('#cards h2'))"
                     ".map(function (h) { return h.textContent; })")
    assert ids == sorted(facts["errors"])
    assert browser.js("document.querySelector('#cards .errbox .cls').textContent") in (
        "InvalidImageError", "StorageError")
    browser.js("document.querySelector('.toolbar').scrollIntoView()")
    save_artifact(browser.screenshot(tmp_path / "report-browser-errors.png"))
    assert browser.problems(mark) == []


def test_ten_thousand_images_page_quickly(browser, tmp_path):
    root = tmp_path / "out"
    make_run(str(root), "big", 10_000, top_labels=5, errors=100, overlays=False,
             originals=False, hostile=False, n_features=4)
    index = Path(write_report(str(root), "big"))
    mark = len(browser.events)
    started = time.perf_counter()
    browser.open(index.as_uri())
    assert browser.js(CARDS) == 50
    loaded = time.perf_counter() - started
    assert browser.js("document.getElementById('count').textContent") == "10000 images"
    timing = browser.js("""(function () {
        var t = performance.now();
        document.querySelector('[data-filter=error]').click();
        var errors = document.querySelectorAll('#cards article.card').length;
        document.getElementById('sort').value = '-sec';
        document.getElementById('sort').dispatchEvent(new Event('change'));
        document.querySelector('[data-filter=all]').click();
        return [errors, performance.now() - t];
    })()""")
    assert timing[0] == 50 and timing[1] < 2000, timing
    assert loaded < 20, f"10,000-image report took {loaded:.1f}s to load"
    new = browser.events[mark:]
    assert not [e for e in new if e.get("method") == "Runtime.exceptionThrown"]


def _click(browser: Browser, selector: str) -> None:
    """A trusted left click (user activation, as a person's) in the middle of ``selector``."""
    x, y = browser.js(f"""(function () {{
        var node = document.querySelector({json.dumps(selector)});
        node.scrollIntoView({{block: 'center'}});
        var r = node.getBoundingClientRect();
        return [r.x + r.width / 2, r.y + r.height / 2];
    }})()""")
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        browser.page("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y,
                                                  "button": "left", "clickCount": 1})


def test_overlay_panels_link_to_the_full_size_pngs(browser, photo_run):
    from urllib.parse import unquote, urlparse

    from lime_spark.storage import safe_key

    root, facts, index = photo_run
    browser.open(index.as_uri() + "#filter=all&sort=input")
    first = facts["ids"][0]
    card = f"#cards article.card[data-image-id={json.dumps(first)}]"
    hrefs = browser.js(f"Array.from(document.querySelectorAll({json.dumps(card + ' .panels a')}))"
                       ".map(function (a) { return a.getAttribute('href'); })")
    overlays = f"../../overlays/run_id=nightly/{safe_key(first)}/"
    assert hrefs[1:] == [overlays + "segments.png"] + [
        overlays + f"{label}.png" for label in browser.js(
            f"window.limeSparkReport.view()[0].labels.map(function (l) {{ return l.label; }})")]
    assert hrefs[0].startswith("file:///")                          # the original

    # a click on the superpixels panel opens the overlay PNG in a new tab
    browser.call("Target.setDiscoverTargets", {"discover": True})
    mark = len(browser.events)
    try:
        _click(browser, card + " .panels figure:nth-child(2) a")
        expected = root / "overlays" / "run_id=nightly" / safe_key(first) / "segments.png"
        deadline = time.monotonic() + 20
        opened = None
        while opened is None and time.monotonic() < deadline:
            for event in browser.events[mark:]:
                info = event.get("params", {}).get("targetInfo", {})
                if (event.get("method", "").startswith("Target.") and info.get("type") == "page"
                        and info.get("url", "").startswith("file:")
                        and unquote(urlparse(info["url"]).path) == str(expected)):
                    opened = info
            time.sleep(0.05)
        assert opened is not None, [e for e in browser.events[mark:]
                                    if e.get("method", "").startswith("Target.")]
        browser.call("Target.closeTarget", {"targetId": opened["targetId"]})
    finally:
        browser.call("Target.setDiscoverTargets", {"discover": False})


def test_page_links_only_to_files_web_and_relative_urls(browser, photo_run):
    import re

    from lime_spark.report.page import static_text

    _, _, index = photo_run
    browser.open(index.as_uri())
    source = re.search(r"function safeHref\(url\) \{.*?\n  \}", static_text("report.js"),
                       re.S).group(0)
    kept = ["../../overlays/run_id=r/k/1.png", "thumbs/a%2F/original.jpg", "a b.png",
            "file:///data/a%20b.png", "https://host/x.jpg", "HTTP://host/x.jpg"]
    refused = ["javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)",
               "java\tscript:alert(1)", "\x01javascript:alert(1)", "data:text/html,x",
               "vbscript:x", "blob:file:///x", "//evil.example/x", "\\\\evil.example/x",
               "/\\evil.example/x", "s3a://bucket/k.jpg", "", None]
    # DevTools evaluates the page's own function outside its Content Security Policy
    result = browser.js(f"{json.dumps(kept + refused)}.map({source})")
    assert result == kept + [None] * len(refused)


# -- "Changed since A": run tuesday (B) against monday (A) ------------------------------

ENTRIES = "#cards article.card.change"
ENTRY_IDS = ("Array.from(document.querySelectorAll('#cards article.card.change'))"
             ".map(function (c) { return c.getAttribute('data-image-id'); })")


@pytest.fixture(scope="module")
def drift_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-drift") / "out"
    facts, drift = make_drift_runs(str(root))
    return root, facts, drift, Path(write_report(str(root), "tuesday"))


def test_changed_view_shows_both_overlays_drifted_first(browser, drift_run, tmp_path):
    from lime_spark.storage import safe_key

    _, facts, drift, index = drift_run
    mark = len(browser.events)
    browser.open(index.as_uri())
    n, m = len(drift["drifted"]), len(drift["order"])
    assert browser.js("document.querySelector('[data-view=changed]').getAttribute("
                      "'aria-pressed')") == "false"
    assert browser.js(CARDS) == len(facts["ids"])                    # the image cards first
    browser.js("document.querySelector('[data-view=changed]').click()")
    assert browser.js("location.hash").startswith("#view=changed&page=1")
    assert browser.js(ENTRY_IDS) == drift["order"]                   # drifted first, then rho
    assert browser.js("document.getElementById('drift-count').textContent") == (
        f"{n} of {m} images drifted")
    assert browser.js("document.getElementById('count').textContent") == f"{m} compared images"
    assert browser.js("Array.from(document.querySelectorAll('#cards article.card.change'))"
                      ".map(function (c) { return c.classList.contains('drifted'); })") == (
        [True] * n + [False] * (m - n))
    assert browser.js(f"Array.from(document.querySelectorAll('{ENTRIES} .badge.drifted'))"
                      ".length") == n
    # the image cards' toolbar and legend are hidden; the view's filters and legend shown
    assert browser.js("document.querySelector('.filters[data-show=images]').offsetParent") is None
    assert browser.js("document.getElementById('sort').offsetParent") is None
    assert browser.js("document.getElementById('drift-count').offsetParent !== null")

    # the hostile id: its top label changed, shown as text
    hostile = f"{ENTRIES}[data-image-id={json.dumps(HOSTILE_ID)}]"
    assert browser.js(f"document.querySelector({json.dumps(hostile + ' h2')}).textContent") == (
        HOSTILE_ID)
    row = drift["compared"][HOSTILE_ID]
    facts_text = browser.js(f"document.querySelector({json.dumps(hostile + ' dl')}).textContent")
    page = browser.js(f"window.limeSparkReport.view()[{drift['order'].index(HOSTILE_ID)}]")
    assert page["id"] == HOSTILE_ID
    assert f"A: {page['top_a']} \u2192 B: {page['top_b']}" in facts_text
    assert f"{row['prob_a']:.2f} \u2192 {row['prob_b']:.2f}" in facts_text

    # two overlays per entry, side by side, A left; each links to its full-size PNG
    assert browser.js(f"document.querySelectorAll('{ENTRIES} img').length") == 2 * m
    assert browser.js(LOAD_ALL_IMAGES) == []
    assert browser.js(f"Array.from(document.querySelectorAll('{ENTRIES} img'))"
                      ".every(function (i) { return i.naturalWidth > 0; })")
    for image_id in drift["order"]:
        entry = f"{ENTRIES}[data-image-id={json.dumps(image_id, ensure_ascii=False)}]"
        boxes = browser.js(f"""Array.from(document.querySelectorAll({json.dumps(entry + ' img')}))
            .map(function (i) {{
              var r = i.getBoundingClientRect(); return [r.x, r.y, r.width];
            }})""")
        assert boxes[0][0] + boxes[0][2] <= boxes[1][0] and abs(boxes[0][1] - boxes[1][1]) < 60
        label = drift["compared"][image_id]["label"]
        key = safe_key(image_id)
        hrefs = browser.js(f"Array.from(document.querySelectorAll({json.dumps(entry + ' a')}))"
                           ".map(function (a) {"
                           "  return decodeURIComponent(a.getAttribute('href')); })")
        assert hrefs == [f"../../overlays/run_id=monday/{key}/{label}.png",
                         f"../../overlays/run_id=tuesday/{key}/{label}.png"]

    # reuse is said on the entry
    reused = f"{ENTRIES}[data-image-id={json.dumps(facts['ids'][3])}] .reused"
    assert browser.js(f"document.querySelector({json.dumps(reused)}).textContent") == (
        "reused from run monday")

    # drifted only
    browser.js("document.querySelector('[data-drifted=\"1\"]').click()")
    assert browser.js(ENTRY_IDS) == drift["order"][:n]
    assert browser.js("location.hash").startswith("#view=changed&drifted=1")
    assert browser.js("document.getElementById('count').textContent") == (
        f"{n} of {m} compared images")
    browser.js("document.querySelector('[data-drifted=\"0\"]').click()")
    assert browser.js(ENTRY_IDS) == drift["order"]
    browser.js("document.querySelector('nav.views').scrollIntoView()")
    shot = browser.screenshot(tmp_path / "report-browser-drift.png")
    save_artifact(shot)
    assert shot.stat().st_size > 50_000
    assert browser.problems(mark) == []


def test_changed_view_is_linkable(browser, drift_run):
    _, facts, drift, index = drift_run
    mark = len(browser.events)
    n = len(drift["drifted"])
    browser.open(index.as_uri() + "#view=changed&drifted=1")
    assert browser.js(ENTRY_IDS) == drift["order"][:n]
    assert browser.js("document.querySelector('[data-view=changed]').getAttribute("
                      "'aria-pressed')") == "true"
    assert browser.js("document.querySelector('[data-drifted=\"1\"]').getAttribute("
                      "'aria-pressed')") == "true"
    # back to the image cards, then the summary's link opens the view again
    browser.js("document.querySelector('[data-view=images]').click()")
    assert browser.js(CARDS) == len(facts["ids"])
    assert browser.js("location.hash").startswith("#filter=all")
    reused = f"#cards article.card[data-image-id={json.dumps(facts['ids'][3])}] .reused"
    assert browser.js(f"document.querySelector({json.dumps(reused)}).textContent") == (
        "reused from run monday")
    _click(browser, '.tile a[href="#view=changed"]')
    deadline = time.monotonic() + 10
    while browser.js("document.querySelectorAll('#cards article.card.change').length") == 0:
        assert time.monotonic() < deadline, "the summary's link did not open the view"
        time.sleep(0.05)
    assert browser.js(ENTRY_IDS) == drift["order"]
    assert browser.problems(mark) == []


def test_changed_view_in_an_address_without_drift_shows_the_cards(browser, photo_run):
    """A report without a drift table ignores the view in its address."""
    _, facts, index = photo_run
    browser.open(index.as_uri() + "#view=changed&drifted=1")
    assert browser.js(CARDS) == 50
    assert browser.js("document.querySelectorAll('[data-view], [data-drifted]').length") == 0
    assert browser.js("location.hash").startswith("#filter=all")


# -- anchors (--methods lime,anchors) ---------------------------------------------------

ANCHOR_PANELS = "#cards article.card figure.anchor"


@pytest.fixture(scope="module")
def anchor_run(tmp_path_factory):
    """8 photos (160 px, the last failed), 2 labels explained, the top one anchored."""
    root = tmp_path_factory.mktemp("browser-anchors") / "out"
    facts = make_run(str(root), "anchored", 8, errors=1, photos=True, photo_side=160,
                     top_labels=2, anchors=1)
    return root, facts, Path(write_report(str(root), "anchored"))


def test_anchor_panels_load_link_and_sort(browser, anchor_run, tmp_path):
    from urllib.parse import unquote

    from lime_spark.storage import safe_key

    root, facts, index = anchor_run
    mark = len(browser.events)
    browser.open(index.as_uri() + "#filter=all&sort=input")
    ok = facts["ok"]
    anchors = {image_id: rows[0] for image_id, rows in facts["anchors"].items()}
    assert browser.js(CARDS) == len(facts["ids"])
    assert browser.js(f"document.querySelectorAll('{ANCHOR_PANELS}').length") == len(ok)
    # each ok card: original, superpixels, 2 overlays, then the anchor panel; all load
    assert browser.js(LOAD_ALL_IMAGES) == []
    assert browser.js(f"Array.from(document.querySelectorAll('{ANCHOR_PANELS} img'))"
                      ".map(function (i) { return i.naturalWidth > 0; })") == [True] * len(ok)
    below = 0
    for image_id in ok:
        row = anchors[image_id]
        card = f"#cards article.card[data-image-id={json.dumps(image_id, ensure_ascii=False)}]"
        panel = json.dumps(card + " .panels > figure:last-child")
        assert browser.js(f"document.querySelector({panel}).classList.contains('anchor')")
        href = browser.js(f"document.querySelector({panel}).querySelector('a')"
                          ".getAttribute('href')")
        name = f"anchor_{row['label']}.png"
        assert unquote(href) == f"../../overlays/run_id=anchored/{safe_key(image_id)}/{name}"
        assert (index.parent / unquote(href)).resolve() == (
            root / "overlays" / "run_id=anchored" / safe_key(image_id) / name)
        caption = browser.js(f"Array.from(document.querySelector({panel})"
                             ".querySelectorAll('figcaption > *'))"
                             ".map(function (n) { return n.textContent; })")
        size = row["anchor_size"]
        assert caption[:3] == [
            f"anchor: {row['label_name']}",
            "empty: the label holds whatever is hidden" if size == 0
            else f"{size} superpixel{'s' if size != 1 else ''}",
            f"precision {row['precision']:.2f} \u00b7 coverage {row['coverage']:.2f}"]
        assert caption[3:] == ([] if row["success"] else ["below threshold"])
        below += not row["success"]
        kind = ANCHOR_KINDS[facts["ids"].index(image_id) % len(ANCHOR_KINDS)]
        assert (kind == "noisy") is (not row["success"])
    assert below == browser.js(f"document.querySelectorAll('{ANCHOR_PANELS} .badge').length") > 0
    # the summary's tile
    tile = browser.js("""(function () {
        var t = Array.from(document.querySelectorAll('.tile')).filter(function (t) {
          return t.querySelector('.tile-label').textContent === 'Anchors'; })[0];
        return [t.querySelector('.tile-value').textContent,
                t.querySelector('.tile-note').textContent];
    })()""")
    met = len(ok) - below
    assert tile[0] == str(len(ok))
    assert f"of {len(ok)} images" in tile[1]
    assert f"{met} ({met / len(ok):.0%}) met the threshold 0.95" in tile[1]

    # largest anchor first (ties in input order, the failed image last), then lowest precision
    order = {image_id: i for i, image_id in enumerate(facts["ids"])}
    browser.js("var s = document.getElementById('sort'); s.value = '-anchor';"
               "s.dispatchEvent(new Event('change'))")
    assert browser.js("location.hash").startswith("#filter=all&sort=-anchor")
    ids = browser.js("Array.from(document.querySelectorAll('#cards article.card'))"
                     ".map(function (c) { return c.getAttribute('data-image-id'); })")
    assert ids == sorted(ok, key=lambda i: (-anchors[i]["anchor_size"], order[i])) + (
        facts["errors"])
    browser.js("var s = document.getElementById('sort'); s.value = 'anchor';"
               "s.dispatchEvent(new Event('change'))")
    first = browser.js("document.querySelector('#cards article.card').getAttribute("
                       "'data-image-id')")
    assert first == min(ok, key=lambda i: (round(anchors[i]["precision"], 4), order[i]))
    # a card whose anchor missed the threshold and the next, below the sticky toolbar
    box = browser.js("""(function () {
        var cards = document.querySelectorAll('#cards article.card');
        var bar = document.querySelector('.toolbar').getBoundingClientRect().height;
        window.scrollTo(0, cards[0].getBoundingClientRect().top + window.scrollY - bar - 12);
        var a = cards[0].getBoundingClientRect(), b = cards[1].getBoundingClientRect();
        return [a.x, a.y + window.scrollY, a.width, b.bottom - a.top];
    })()""")
    shot = tmp_path / "report-browser-anchors.png"
    data = browser.page("Page.captureScreenshot", {"format": "png", "clip": {
        "x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 1}})["data"]
    shot.write_bytes(base64.b64decode(data))
    save_artifact(shot)
    assert shot.stat().st_size > 20_000
    assert browser.problems(mark) == []


def test_anchor_sort_in_an_address_without_anchors_is_ignored(browser, photo_run):
    _, _, index = photo_run
    browser.open(index.as_uri() + "#sort=-anchor")
    assert browser.js("document.getElementById('sort').value") == "fit"
    assert browser.js("document.querySelectorAll('#cards figure.anchor').length") == 0
    assert browser.js("document.querySelectorAll('#sort option[value*=anchor]').length") == 0
