"""The static HTML audit report of a run (``ROOT/report/run_id=R/index.html``).

:func:`write_report` reads a finished run's three tables (``images``,
``explanations``, ``features``; ``anchors`` too when it has one) and
``runs/run_id=R/summary.json`` through fsspec (any URI the job writes to),
writes small JPEG thumbnails of each image's original, superpixels and label
(and anchor) overlays under
``report/run_id=R/thumbs/`` and one self-contained ``index.html`` beside
them.  Thumbnails are decoded by :func:`lime_spark.images.decode_image`, the
job's own decoder (the same allowed formats, memory budget and EXIF and
transparency rules); the original of an image the job could not explain is
never read again.  The page has:

* a summary: images, errors by class, median explanation fit, time, the
  distribution of fits, the most frequent predictions and confusions;
* one card per image: original, superpixels and one overlay per explained
  label (R lime's ``plot_image_explanation`` panels), label probabilities,
  explanation fit (``model_r2``), deletion/insertion AUC, expected against
  predicted label, or the error of a failed image;
* sorting (lowest fit first, ...), filters (mismatches only, errors only)
  and a search box, 50 cards per page;
* when the run computed anchors (``--methods lime,anchors``: an ``anchors``
  partition), an anchor panel on each card for its top label (the anchor's
  overlay, its size, precision and coverage, "below threshold" when it
  missed the run's threshold), an anchors tile in the summary (anchors
  computed, median size and precision, share that met the threshold) and
  two sorts (largest anchor, lowest anchor precision); runs without the
  partition look as before;
* "reused from run X" on an image whose explanation was copied from an
  earlier run (``images.reused_from``), and ``summary.json``'s counts of
  explained and reused images when it has them;
* when ``lime-spark compare`` wrote the run's ``drift`` partition against a
  baseline run A, a "Changed since A" view (``#view=changed``): per compared
  image, the image's top label, its probability in A and B, rank correlation,
  top-5 Jaccard, the overlays of A and B side by side; drifted images first,
  a "drifted only" filter and the count of drifted images.

The page has no external resource (inline CSS and JS, a Content Security
Policy that forbids any network request); the per-image data is one inline
JSON array rendered page by page, images are thumbnails loaded lazily and
linked to the full-size overlays by relative paths, so the ``report`` folder
works opened from disk next to ``overlays/`` and from a served bucket.  The
page stays usable for tens of thousands of images (per image about 0.3 kB of
HTML plus twice its path, and 15-40 kB of thumbnails).

The package follows the data flow:

* :mod:`.records`: the run's tables and summary, read into one record per
  image (the page's per-image data, its field names);
* :mod:`.thumbnails`: the JPEG thumbnails, their threads and memory budget;
* :mod:`.page`: ``index.html`` from the static template, escaped, with the
  summary and the script's CSP hash;
* ``static/``: ``page.html``, ``report.css`` and ``report.js``, the page's
  template, style and script (package data, read with :mod:`importlib.resources`);
* :mod:`.write`: :func:`write_report` and the ``lime-spark report`` command.

No pyspark here: the job calls :func:`write_report` after ``summary.json``
and ``lime-spark report --output ROOT --run-id R`` calls it for a past run.
"""

from .thumbnails import DEFAULT_MEMORY_BUDGET, THREAD_BUDGET
from .write import PAGE_SIZE, THUMBNAIL_SIDE, add_arguments, run, write_report

__all__ = ["add_arguments", "run", "write_report", "THUMBNAIL_SIDE", "PAGE_SIZE",
           "DEFAULT_MEMORY_BUDGET", "THREAD_BUDGET"]
