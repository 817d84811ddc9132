// The audit report's script, inlined into index.html by lime_spark/report/page.py; the
// page's Content Security Policy allows this script only (its sha256, computed from this
// file when a report is written). It renders the cards of the JSON in #report-data
// page by page, with sorting, filters and search kept in the address (#filter=...);
// with a drift table, the "Changed since A" view (#view=changed&drifted=1...): one entry
// per image compared with the baseline run A, its overlays of A and B side by side;
// with an anchors table, each card's anchor panel (DATA.anchors, each image's anchor).
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  // One array per image, its values named once by DATA.image_fields (each label's by
  // DATA.label_fields; see lime_spark/report/records.py): made into objects here.
  function records(rows, names) {
    return rows.map(function (row) {
      var r = {};
      for (var i = 0; i < names.length; i++) { r[names[i]] = row[i]; }
      return r;
    });
  }
  var IMAGES = records(DATA.images, DATA.image_fields);
  IMAGES.forEach(function (r) {
    r.labels = records(r.labels, DATA.label_fields);
    // the top label's anchor (an array named by DATA.anchors.fields), or null
    r.anchor = (DATA.anchors && r.anchor) ? records([r.anchor], DATA.anchors.fields)[0] : null;
  });
  // The compared images, drifted first (ordered by lime_spark/report/records.py build_drift).
  var DRIFT = DATA.drift ? records(DATA.drift.rows, DATA.drift.fields) : [];
  var SIZES = [25, 50, 100, 200];
  var DEFAULTS = {view: "images", filter: "all", sort: "fit", q: "", page: 1, drifted: false};
  var state = {view: "images", filter: "all", sort: "fit", q: "", page: 1, drifted: false,
               size: SIZES.indexOf(DATA.page_size) >= 0 ? DATA.page_size : 50};
  var view = [];

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function fmt(v, d) { return (v === null || v === undefined) ? "n/a" : v.toFixed(d); }
  function pct(v) { return (v === null || v === undefined) ? "n/a" : Math.round(v * 100) + "%"; }
  function fitClass(v) {
    if (v === null || v === undefined) { return ""; }
    return v < 0.2 ? "fit-low" : (v < 0.5 ? "fit-mid" : "fit-high");
  }
  // Links of the page: file:, http(s): and relative URLs (the overlays, ../../overlays/...);
  // never javascript:, data: or another scheme, nor a protocol-relative //host/ URL.
  function safeHref(url) {
    if (typeof url !== "string" || !url) { return null; }
    var bare = url.replace(/[\t\n\r]/g, "").replace(/^[\u0000-\u0020]+/, "");
    if (/^[\\/]{2}/.test(bare)) { return null; }
    try {
      return /^(file|https?):$/.test(new URL(bare, document.baseURI).protocol) ? url : null;
    } catch (e) {
      return null;
    }
  }
  function has(img, name) { return img.thumbs.indexOf(name) >= 0; }

  // -- sorting and filtering -------------------------------------------------
  var KEYS = {
    fit: function (r) { return r.fit; },
    "-fit": function (r) { return r.fit === null ? null : -r.fit; },
    prob: function (r) { return r.top_prob; },
    "-del": function (r) { return r.deletion_auc === null ? null : -r.deletion_auc; },
    ins: function (r) { return r.insertion_auc; },
    "-sec": function (r) { return r.seconds === null ? null : -r.seconds; },
    stab: function (r) { return r.stability; },
    "-anchor": function (r) {
      return (r.anchor && r.anchor.size !== null) ? -r.anchor.size : null;
    },
    anchor: function (r) { return r.anchor ? r.anchor.precision : null; },
    input: function (r) { return r.order; }
  };
  var ANCHOR_SORTS = ["-anchor", "anchor"];
  function compare(key) {
    if (key === "id") {
      return function (a, b) { return a.id < b.id ? -1 : (a.id > b.id ? 1 : a.order - b.order); };
    }
    var f = KEYS[key] || KEYS.fit;
    return function (a, b) {
      var x = f(a), y = f(b);
      if (x === null || x === undefined) { return (y === null || y === undefined) ? a.order - b.order : 1; }
      if (y === null || y === undefined) { return -1; }
      return x - y || a.order - b.order;
    };
  }
  function matches(r, q) {
    if (!q) { return true; }
    var hay = [r.id, r.expected, r.predicted, r.error_class, r.error_message, r.path]
      .concat(r.labels.map(function (l) { return l.name; }));
    for (var i = 0; i < hay.length; i++) {
      if (hay[i] && String(hay[i]).toLowerCase().indexOf(q) >= 0) { return true; }
    }
    return false;
  }
  function matchesChange(d, q) {
    if (!q) { return true; }
    var hay = [d.id, d.name, d.top_a, d.top_b].concat(d.also);
    for (var i = 0; i < hay.length; i++) {
      if (hay[i] && String(hay[i]).toLowerCase().indexOf(q) >= 0) { return true; }
    }
    return false;
  }
  function select() {
    var q = state.q.trim().toLowerCase();
    if (state.view === "changed") {
      view = DRIFT.filter(function (d) { return (!state.drifted || d.drifted) && matchesChange(d, q); });
      return;
    }
    view = IMAGES.filter(function (r) {
      if (state.filter === "error" && r.status !== "error") { return false; }
      if (state.filter === "mismatch" && !r.mismatch) { return false; }
      if (state.filter === "unstable" && !r.unstable) { return false; }
      return matches(r, q);
    });
    view.sort(compare(state.sort));
  }

  // -- cards -----------------------------------------------------------------
  function panel(img, name, full, caption, cls) {
    var fig = el("figure", cls || "");
    var frame = el("div", "frame");
    if (has(img, name)) {
      var pic = el("img");
      pic.loading = "lazy";
      pic.decoding = "async";
      pic.alt = caption[0] + " of " + img.id;
      pic.src = DATA.thumbs_base + img.folder + "/" + name + ".jpg";
      var href = safeHref(full);
      if (href) {
        var a = el("a");
        a.href = href; a.target = "_blank"; a.rel = "noopener";
        a.title = "open full size";
        a.appendChild(pic); frame.appendChild(a);
      } else {
        frame.appendChild(pic);
      }
    } else {
      frame.appendChild(el("div", "none", "no preview"));
    }
    fig.appendChild(frame);
    var cap = el("figcaption");
    cap.appendChild(el("div", "name", caption[0]));
    if (caption[1]) { cap.appendChild(el("div", "num", caption[1])); }
    fig.appendChild(cap);
    return fig;
  }
  // The anchor of the top label: its overlay (anchor outlined, the rest dimmed), its size,
  // precision and coverage, and "below threshold" when the search missed the threshold.
  function coverageText(v) {
    if (v === null || v === undefined) { return "n/a"; }
    return (v > 0 && v < 0.01) ? v.toExponential(1) : v.toFixed(2);
  }
  function anchorPanel(r, base) {
    var a = r.anchor;
    var name = a.name === null ? String(a.label) : a.name;
    var size = a.size === null ? "size n/a"
      : (a.size === 0 ? "empty: the label holds whatever is hidden"
                      : a.size + (a.size === 1 ? " superpixel" : " superpixels"));
    var fig = panel(r, DATA.anchors.thumb + a.label, base + DATA.anchors.file + a.label + ".png",
                    ["anchor: " + name, size], "anchor" + (a.success ? "" : " below"));
    var cap = fig.querySelector("figcaption");
    cap.appendChild(el("div", "num", "precision " + fmt(a.precision, 2) +
                       " \u00b7 coverage " + coverageText(a.coverage)));
    if (!a.success) {
      var badge = el("span", "badge mismatch", "below threshold");
      if (DATA.anchors.threshold !== null) {
        badge.title = "precision below the run's threshold " + DATA.anchors.threshold;
      }
      cap.appendChild(badge);
    }
    return fig;
  }
  function fact(dl, term, value, cls) {
    dl.appendChild(el("dt", "", term));
    dl.appendChild(el("dd", cls || "", value));
  }
  function card(r) {
    var art = el("article", "card" + (r.status === "error" ? " error" : (r.mismatch ? " mismatch" : "")));
    art.setAttribute("data-image-id", r.id);
    var meta = el("div", "meta");
    meta.appendChild(el("h2", "", r.id));
    if (r.status === "error") {
      meta.appendChild(el("span", "badge error", "error"));
    } else if (r.mismatch) {
      meta.appendChild(el("span", "badge mismatch", "mismatch"));
      if (r.unstable) { meta.appendChild(el("span", "badge unstable", "unstable")); }
    } else if (r.unstable) {
      meta.appendChild(el("span", "badge unstable", "unstable"));
    } else if (r.expected !== null) {
      meta.appendChild(el("span", "badge", "match"));
    } else {
      meta.appendChild(el("span", "badge neutral", "no expected label"));
    }
    if (r.reused_from !== null && r.reused_from !== undefined) {
      meta.appendChild(el("div", "reused", "reused from run " + r.reused_from));
    }
    var dl = el("dl", "facts");
    fact(dl, "expected", r.expected === null ? "\u2014" : r.expected);
    if (r.status === "ok") {
      fact(dl, "predicted", r.predicted + " (" + fmt(r.top_prob, 2) + ")", r.mismatch ? "fit-mid" : "");
      if (r.mismatch && r.expected_rank) { fact(dl, "expected label", "explained as #" + r.expected_rank); }
      fact(dl, "explanation fit", fmt(r.fit, 2), fitClass(r.fit));
      fact(dl, "deletion AUC", fmt(r.deletion_auc, 3));
      fact(dl, "insertion AUC", fmt(r.insertion_auc, 3));
      fact(dl, "area", pct(r.area));
      fact(dl, "superpixels", r.n_superpixels === null ? "n/a" : r.n_superpixels);
      fact(dl, "samples", r.n_samples === null ? "n/a" : r.n_samples);
      fact(dl, "stability", r.stability === null ? "n/a" : fmt(r.stability, 2),
           r.unstable ? "fit-low" : "");
    }
    if (r.width) { fact(dl, "size", r.width + " \u00d7 " + r.height); }
    if (r.seconds !== null) { fact(dl, "seconds", fmt(r.seconds, 2)); }
    meta.appendChild(dl);
    var path = el("div", "path");
    var href = safeHref(r.original_link);
    if (href) {
      var a = el("a", "", r.path); a.href = href; a.target = "_blank"; a.rel = "noopener";
      path.appendChild(a);
    } else {
      path.textContent = r.path || "";
    }
    meta.appendChild(path);
    art.appendChild(meta);

    var right = el("div");
    if (r.status === "error") {
      var box = el("div", "errbox");
      box.appendChild(el("div", "cls", r.error_class || "error"));
      box.appendChild(el("pre", "", r.error_message || ""));
      right.appendChild(box);
    }
    var panels = el("div", "panels");
    if (r.status === "ok" || has(r, "original")) {
      panels.appendChild(panel(r, "original", r.original_link,
                               ["original", r.width ? r.width + "\u00d7" + r.height : ""]));
    }
    if (r.status === "ok") {
      var base = DATA.overlays_base + r.folder + "/";
      panels.appendChild(panel(r, "segments", base + "segments.png",
                               ["superpixels", r.n_superpixels ? r.n_superpixels + " superpixels" : ""]));
      r.labels.forEach(function (l, i) {
        var isExpected = r.expected !== null && r.expected_rank === i + 1;
        panels.appendChild(panel(r, String(l.label), base + l.label + ".png",
          ["#" + (i + 1) + " " + (l.name === null ? l.label : l.name),
           "p " + fmt(l.prob, 2) + " \u00b7 fit " + fmt(l.fit, 2) +
           (l.stability === null || l.stability === undefined ? "" : " \u00b7 stable " + fmt(l.stability, 2)) +
           (isExpected ? " \u00b7 expected" : "")],
          isExpected ? "expected" : ""));
      });
      if (r.anchor) { panels.appendChild(anchorPanel(r, base)); }
    }
    right.appendChild(panels);
    art.appendChild(right);
    return art;
  }

  // -- the "Changed since A" view --------------------------------------------
  function change(d) {
    // the image of this run the entry compares (its thumbnails: "L" of B, "baseline-L" of A)
    var img = (d.image !== null && IMAGES[d.image]) ? IMAGES[d.image]
      : {id: d.id, folder: d.folder, thumbs: [], reused_from: null};
    var art = el("article", "card change" + (d.drifted ? " drifted" : ""));
    art.setAttribute("data-image-id", d.id);
    var meta = el("div", "meta");
    meta.appendChild(el("h2", "", d.id));
    meta.appendChild(d.drifted ? el("span", "badge drifted", "drifted")
                               : el("span", "badge neutral", "not drifted"));
    if (d.top_changed) { meta.appendChild(el("span", "badge mismatch", "top label changed")); }
    if (img.reused_from !== null && img.reused_from !== undefined) {
      meta.appendChild(el("div", "reused", "reused from run " + img.reused_from));
    }
    var name = d.name === null ? String(d.label) : d.name;
    var dl = el("dl", "facts");
    fact(dl, "label", name);
    fact(dl, "top label", d.top_changed
      ? "A: " + (d.top_a === null ? "n/a" : d.top_a) + " \u2192 B: " + (d.top_b === null ? "n/a" : d.top_b)
      : "same in A and B", d.top_changed ? "fit-low" : "");
    fact(dl, "probability", fmt(d.prob_a, 2) + " \u2192 " + fmt(d.prob_b, 2));
    fact(dl, "rank correlation", fmt(d.rank_correlation, 2));
    fact(dl, "top-5 Jaccard", fmt(d.top5_jaccard, 2));
    if (d.also.length) { fact(dl, "also drifted", d.also.join(", ")); }
    meta.appendChild(dl);
    art.appendChild(meta);

    var pair = el("div", "panels pair");
    var label = d.label === null ? "" : String(d.label);
    var file = d.folder + "/" + label + ".png";
    pair.appendChild(panel(img, "baseline-" + label, label ? DATA.drift.overlays_base + file : null,
                           ["A \u00b7 run " + DATA.drift.baseline_run_id,
                            "p " + fmt(d.prob_a, 2)], "run-a"));
    pair.appendChild(panel(img, label, label ? DATA.overlays_base + file : null,
                           ["B \u00b7 run " + DATA.run_id,
                            "p " + fmt(d.prob_b, 2)], "run-b"));
    art.appendChild(pair);
    return art;
  }

  // -- page ------------------------------------------------------------------
  function pages() { return Math.max(1, Math.ceil(view.length / state.size)); }
  function render() {
    state.page = Math.min(Math.max(1, state.page), pages());
    var start = (state.page - 1) * state.size;
    var slice = view.slice(start, start + state.size);
    var box = document.getElementById("cards");
    var frag = document.createDocumentFragment();
    var changed = state.view === "changed";
    slice.forEach(function (r) { frag.appendChild(changed ? change(r) : card(r)); });
    if (!slice.length) { frag.appendChild(el("div", "empty", "No image matches.")); }
    box.replaceChildren(frag);
    var parts = document.querySelectorAll("[data-show]");
    for (var p = 0; p < parts.length; p++) {
      parts[p].hidden = parts[p].getAttribute("data-show") !== state.view;
    }
    var tabs = document.querySelectorAll("[data-view]");
    for (var t = 0; t < tabs.length; t++) {
      tabs[t].setAttribute("aria-pressed", String(tabs[t].getAttribute("data-view") === state.view));
    }
    var shown = document.querySelectorAll("[data-drifted]");
    for (var s = 0; s < shown.length; s++) {
      shown[s].setAttribute("aria-pressed", String((shown[s].getAttribute("data-drifted") === "1") === state.drifted));
    }
    var label = "page " + state.page + " of " + pages();
    document.getElementById("page").textContent = label;
    document.getElementById("page2").textContent = label;
    var all = changed ? DRIFT.length : IMAGES.length;
    var noun = changed ? " compared images" : " images";
    document.getElementById("count").textContent = view.length === all
      ? all + noun : view.length + " of " + all + noun;
    ["prev", "prev2"].forEach(function (id) { document.getElementById(id).disabled = state.page <= 1; });
    ["next", "next2"].forEach(function (id) { document.getElementById(id).disabled = state.page >= pages(); });
    var buttons = document.querySelectorAll("[data-filter]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].setAttribute("aria-pressed", String(buttons[i].getAttribute("data-filter") === state.filter));
    }
    document.getElementById("sort").value = state.sort;
    document.getElementById("size").value = String(state.size);
    if (document.getElementById("search").value !== state.q) {
      document.getElementById("search").value = state.q;
    }
    var hash = (changed ? "view=changed" + (state.drifted ? "&drifted=1" : "")
                        : "filter=" + state.filter + "&sort=" + encodeURIComponent(state.sort)) +
      "&page=" + state.page + "&size=" + state.size + (state.q ? "&q=" + encodeURIComponent(state.q) : "");
    if (location.hash.slice(1) !== hash) { history.replaceState(null, "", "#" + hash); }
  }
  function update(changes, keepPage) {
    for (var k in changes) { if (Object.prototype.hasOwnProperty.call(changes, k)) { state[k] = changes[k]; } }
    if (!keepPage) { state.page = 1; }
    select();
    render();
  }
  // The state the address names; what it does not name is the default (the size is kept).
  function readHash() {
    for (var k in DEFAULTS) { if (Object.prototype.hasOwnProperty.call(DEFAULTS, k)) { state[k] = DEFAULTS[k]; } }
    var params = {};
    location.hash.slice(1).split("&").forEach(function (part) {
      var i = part.indexOf("=");
      if (i > 0) {
        try { params[part.slice(0, i)] = decodeURIComponent(part.slice(i + 1)); } catch (e) { /* ignore */ }
      }
    });
    if (params.view === "changed" && DATA.drift) { state.view = "changed"; }
    state.drifted = params.drifted === "1";
    if (["all", "mismatch", "unstable", "error"].indexOf(params.filter) >= 0) { state.filter = params.filter; }
    if (params.sort && (KEYS[params.sort] || params.sort === "id") &&
        (DATA.anchors || ANCHOR_SORTS.indexOf(params.sort) < 0)) { state.sort = params.sort; }
    if (params.q) { state.q = params.q; }
    var size = parseInt(params.size, 10);
    if (SIZES.indexOf(size) >= 0) { state.size = size; }
    var page = parseInt(params.page, 10);
    if (page > 0) { state.page = page; }
  }

  var buttons = document.querySelectorAll("[data-filter]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener("click", function (ev) {
      update({filter: ev.currentTarget.getAttribute("data-filter")});
    });
  }
  var tabs = document.querySelectorAll("[data-view]");
  for (var v = 0; v < tabs.length; v++) {
    tabs[v].addEventListener("click", function (ev) {
      update({view: ev.currentTarget.getAttribute("data-view")});
    });
  }
  var driftButtons = document.querySelectorAll("[data-drifted]");
  for (var d = 0; d < driftButtons.length; d++) {
    driftButtons[d].addEventListener("click", function (ev) {
      update({drifted: ev.currentTarget.getAttribute("data-drifted") === "1"});
    });
  }
  document.getElementById("sort").addEventListener("change", function (ev) { update({sort: ev.target.value}); });
  document.getElementById("size").addEventListener("change", function (ev) {
    update({size: parseInt(ev.target.value, 10)});
  });
  var timer = null;
  document.getElementById("search").addEventListener("input", function (ev) {
    clearTimeout(timer);
    var value = ev.target.value;
    timer = setTimeout(function () { update({q: value}); }, 150);
  });
  function go(delta) {
    return function () {
      update({page: state.page + delta}, true);
      var top = document.getElementById("cards").getBoundingClientRect().top + window.scrollY - 60;
      if (window.scrollY > top) { window.scrollTo(0, top); }
    };
  }
  document.getElementById("prev").addEventListener("click", go(-1));
  document.getElementById("next").addEventListener("click", go(1));
  document.getElementById("prev2").addEventListener("click", go(-1));
  document.getElementById("next2").addEventListener("click", go(1));

  var counts = {all: IMAGES.length, mismatch: 0, unstable: 0, error: 0};
  IMAGES.forEach(function (r) {
    if (r.mismatch) { counts.mismatch++; }
    if (r.unstable) { counts.unstable++; }
    if (r.status === "error") { counts.error++; }
  });
  for (var j = 0; j < buttons.length; j++) {
    var b = buttons[j];
    b.appendChild(el("span", "n", " (" + counts[b.getAttribute("data-filter")] + ")"));
  }

  readHash();
  select();
  render();
  // a link to a view (the summary's "show them", an edited address) opens it
  window.addEventListener("hashchange", function () {
    readHash();
    select();
    render();
  });
  window.limeSparkReport = {state: state, view: function () { return view; }, update: update};
})();
