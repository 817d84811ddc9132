"""Caption strips: one to three lines of text added below a picture.

:func:`add_caption` returns the picture, unchanged, on top of a dark strip
with light text: for an explanation the label's name, its probability, the
explanation fit and the stability (:func:`explanation_caption`), and for
``display="heatmap"`` a colour-scale legend.  The text size follows the
picture's width (:func:`caption_font_size`): about 2.2% of it, between
:data:`MIN_FONT_SIZE` and :data:`MAX_FONT_SIZE` pixels, so that a 128 px
thumbnail and a 1024 px overlay are both readable.

A caption is a string or a sequence of parts (``("Norfolk terrier", "p =
0.873", "fit R² = 0.41")``).  Parts are placed whole, left to right, and
wrap onto the next line; when they do not fit in the strip's lines the
legend is left out, then the font shrinks (down to :data:`MIN_FONT_SIZE`),
then the first part (the name) is shortened with "…".  Nothing is ever
drawn outside the strip.

The font is Pillow's own (``ImageFont.load_default(size=...)``, FreeType,
nothing downloaded).  It has no superscript digits and few accented
letters: superscript digits are drawn as small raised digits, and letters
the font lacks by their unaccented form (``"é"`` as ``"e"``), else ``"?"``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from numpy.typing import NDArray

from .._validation import check_int
from ..exceptions import ConfigurationError
from .arguments import _check_image

if TYPE_CHECKING:
    from ..explainer import ImageExplanation

Caption = Union[str, Sequence[str]]
"""A caption: one text, or its parts (the first, a label's name, is shortened first)."""

CAPTION_BACKGROUND: tuple[int, int, int] = (28, 28, 28)
"""Colour of the caption strip (near black)."""

CAPTION_TEXT: tuple[int, int, int] = (240, 240, 240)
"""Colour of the caption's text (near white): contrast ratio about 15:1 on the strip."""

MIN_FONT_SIZE = 10
"""Smallest text size in pixels: the text shrinks to it before the name is shortened."""

MAX_FONT_SIZE = 28
"""Largest text size in pixels (pictures wider than about 1270 px)."""

MAX_CAPTION_LINES = 3
"""Most lines of text in a strip."""

_FONT_PER_WIDTH = 0.022
"""Text size as a share of the picture's width: 23 px on a 1024 px overlay."""

_ELLIPSIS = "\u2026"
_SUPERSCRIPTS = dict(zip("\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207a\u207b",
                         "0123456789+-"))
"""Superscript characters, drawn as small raised characters (the font has no glyphs for them)."""


def caption_font_size(width: int) -> int:
    """Text size in pixels of a caption on a picture ``width`` pixels wide.

    Parameters
    ----------
    width : int
        The picture's width in pixels, >= 1.

    Returns
    -------
    int
        ``round(0.022 * width)`` within [:data:`MIN_FONT_SIZE`, :data:`MAX_FONT_SIZE`].

    Examples
    --------
    >>> caption_font_size(128), caption_font_size(1024)
    (10, 23)
    """
    width = check_int("width", width, minimum=1)
    return int(min(MAX_FONT_SIZE, max(MIN_FONT_SIZE, round(_FONT_PER_WIDTH * width))))


def explanation_caption(explanation: ImageExplanation, label: int) -> tuple[str, ...]:
    """The caption of one label's overlay: name, probability, fit and stability.

    Parameters
    ----------
    explanation : ImageExplanation
    label : int
        An explained label (a key of ``explanation.local_exp``).

    Returns
    -------
    tuple of str
        The label's name (``explanation.label_name(label)``, or ``"label
        N"`` without names), ``"p = 0.873"`` (the classifier's probability,
        ``explanation.predictions[label]``; below 0.001 as ``"p = 2.3e-05"``),
        ``"fit R² = 0.41"`` (the surrogate's weighted R²,
        ``explanation.score[label]``) and, when the explanation has one for
        the label, ``"stability 0.97"`` (``explanation.stability[label]``).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> exp = SimpleNamespace(label_names=None, predictions=np.array([0.2, 0.8]),
    ...                       score={1: 0.412}, stability={})
    >>> explanation_caption(exp, 1)
    ('label 1', 'p = 0.800', 'fit R² = 0.41')
    """
    names = getattr(explanation, "label_names", None)
    name = f"label {int(label)}" if names is None else str(names[int(label)])
    parts = [name, f"p = {_probability_text(float(explanation.predictions[int(label)]))}",
             f"fit R\u00b2 = {float(explanation.score[label]):.2f}"]
    stability = (getattr(explanation, "stability", None) or {}).get(label)
    if stability is not None:
        parts.append(f"stability {float(stability):.2f}")
    return tuple(parts)


def _probability_text(p: float) -> str:
    """3 decimals; a small probability with 2 significant digits instead of ``0.000``."""
    return f"{p:.3f}" if p >= 0.001 or p == 0 else f"{p:.1e}"


def caption_lines(captions: Sequence[Caption], width: int, *, legend: bool = False) -> int:
    """Lines of text the longest of ``captions`` needs on a picture ``width`` pixels wide.

    At :func:`caption_font_size`, with the parts wrapped whole, at most
    :data:`MAX_CAPTION_LINES`.  Pass the result to :func:`add_caption` (or
    ``draw_explanations(caption_lines=...)``) for strips of one height.

    Parameters
    ----------
    captions : sequence of str or sequence of str
    width : int
        The pictures' width in pixels.
    legend : bool, default False
        Leave room for the colour scale of ``display="heatmap"``.

    Returns
    -------
    int
        1 to :data:`MAX_CAPTION_LINES` (1 for no captions).
    """
    width = check_int("width", width, minimum=1)
    size = caption_font_size(width)
    room = width - 2 * _margin(size)
    extra = _legend_width(size) if legend else None
    needed = 1
    for caption in captions:
        parts = _check_caption(caption)
        needed = max(needed, len(_wrap(parts, size, room, extra)))
    return min(needed, MAX_CAPTION_LINES)


def add_caption(picture: NDArray[np.uint8], caption: Caption, *,
                lines: int | None = None) -> NDArray[np.uint8]:
    """The picture on top of a caption strip: a new array, taller by the strip.

    Parameters
    ----------
    picture : ndarray of shape (H, W, 3), dtype uint8
    caption : str or sequence of str
        The text, or its parts (see the module's description).
    lines : int, optional
        Lines of text in the strip, 1 to :data:`MAX_CAPTION_LINES`; default
        :func:`caption_lines` of this caption.

    Returns
    -------
    ndarray of shape (H + h, W, 3), dtype uint8
        Rows ``:H`` are ``picture``; the strip below is ``h =``
        :func:`caption_height` ``(W, lines)`` rows.

    Raises
    ------
    InvalidImageError
        If ``picture`` is not an (H, W, 3) uint8 array.
    ConfigurationError
        If ``caption`` is not a string or a sequence of strings, or ``lines``
        is out of range.

    Examples
    --------
    >>> picture = np.zeros((100, 200, 3), dtype=np.uint8)
    >>> add_caption(picture, ("tabby", "p = 0.91")).shape
    (121, 200, 3)
    """
    return _add_caption(_check_image(picture), caption, lines=lines)


def caption_height(width: int, lines: int = 1) -> int:
    """Height in pixels of a caption strip of ``lines`` lines on a picture ``width`` pixels wide.

    Examples
    --------
    >>> caption_height(128), caption_height(1024), caption_height(128, 3)
    (21, 46, 47)
    """
    size = caption_font_size(width)
    lines = check_int("lines", lines, minimum=1, maximum=MAX_CAPTION_LINES)
    return 2 * _padding(size) + lines * _line_height(size)


@dataclass(frozen=True)
class _Legend:
    """A heatmap's colour scale: ``-scale`` (``negative`` at ``alpha``) ... 0 ... ``+scale``."""

    negative: tuple[float, float, float]
    positive: tuple[float, float, float]
    alpha: float
    scale: float


_LEGEND_GREY = 128.0
"""What the legend's colour bar is blended over: a weight's tint as it shows on a mid-grey."""


def _add_caption(picture: NDArray[np.uint8], caption: Caption, *, lines: int | None = None,
                 legend: _Legend | None = None) -> NDArray[np.uint8]:
    """:func:`add_caption` of a checked picture, with the heatmap's ``legend`` if it fits."""
    parts = _check_caption(caption)
    height, width = picture.shape[:2]
    size = caption_font_size(width)
    if lines is None:
        lines = caption_lines([parts], width, legend=legend is not None)
    lines = check_int("lines", lines, minimum=1, maximum=MAX_CAPTION_LINES)
    strip = _strip(parts, width, size, lines, legend)
    out = np.empty((height + strip.shape[0], width, 3), dtype=np.uint8)
    out[:height] = picture
    out[height:] = strip
    return out


def _check_caption(caption: Any) -> tuple[str, ...]:
    if isinstance(caption, str):
        return (caption,)
    if (isinstance(caption, Sequence) and not isinstance(caption, (bytes, bytearray))
            and all(isinstance(part, str) for part in caption)):
        return tuple(caption)
    raise ConfigurationError(
        "Expected caption to be a string or a sequence of strings. "
        f"Received: caption={caption!r}")


# --------------------------------------------------------------------------
# Measures
# --------------------------------------------------------------------------

def _padding(size: int) -> int:
    """Empty rows above and below the text."""
    return max(2, round(0.35 * size))


def _margin(size: int) -> int:
    """Empty columns left and right of the text."""
    return max(3, round(0.5 * size))


def _line_height(size: int) -> int:
    return round(1.3 * size)


def _gap(size: int) -> int:
    """Space between two parts on a line."""
    return max(4, round(1.0 * size))


def _legend_bar(size: int) -> int:
    return 5 * size


_WIDEST_WEIGHT = "-8.8e-05"
"""The widest number :func:`_legend_texts` writes, for room kept before the scale is known."""


def _legend_texts(scale: float | None) -> tuple[str, str]:
    """The numbers at the ends of the colour bar: ``-scale`` and ``+scale``, 2 digits."""
    if scale is None:
        return _WIDEST_WEIGHT, _WIDEST_WEIGHT
    return f"-{scale:.2g}", f"+{scale:.2g}"


def _legend_width(size: int, scale: float | None = None) -> int:
    """Room the legend takes: its bar and a number each side (the widest when ``scale`` is None)."""
    low, high = _legend_texts(scale)
    return (_measure(low, size) + _measure(high, size) + _legend_bar(size)
            + 2 * _small_gap(size))


def _small_gap(size: int) -> int:
    return max(2, round(0.3 * size))


@lru_cache(maxsize=64)
def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _superscript_size(size: int) -> int:
    return max(7, round(0.65 * size))


@lru_cache(maxsize=1024)
def _has_glyph(char: str) -> bool:
    """Whether the font draws ``char`` as itself (not as its "missing glyph" box)."""
    if not char.isprintable():
        return False
    if char.isspace():
        return char == " "
    font = _font(20)
    mask = font.getmask(char)
    missing = font.getmask("\uffff")
    return not (mask.size == missing.size and bytes(mask) == bytes(missing))


@lru_cache(maxsize=1024)
def _printable(text: str) -> str:
    """``text`` with what the font cannot draw replaced: one line, no missing-glyph boxes.

    Whitespace becomes a space; a missing letter its unaccented form
    (NFKD without combining marks), else ``"?"``.  Superscripts are kept
    (:func:`_runs` draws them).
    """
    out = []
    for char in " ".join(text.split()):
        if char in _SUPERSCRIPTS or _has_glyph(char):
            out.append(char)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", char)
                       if not unicodedata.combining(c) and _has_glyph(c))
        out.append(base or "?")
    return "".join(out)


def _runs(text: str) -> list[tuple[str, bool]]:
    """``text`` as runs of (characters, superscript), superscripts as plain characters."""
    runs: list[tuple[str, bool]] = []
    for char in text:
        sup = char in _SUPERSCRIPTS
        char = _SUPERSCRIPTS.get(char, char)
        if runs and runs[-1][1] == sup:
            runs[-1] = (runs[-1][0] + char, sup)
        else:
            runs.append((char, sup))
    return runs


@lru_cache(maxsize=4096)
def _measure(text: str, size: int) -> int:
    """Width in pixels of ``text`` (already :func:`_printable`) drawn at ``size``."""
    width = 0.0
    for run, sup in _runs(text):
        width += _font(_superscript_size(size) if sup else size).getlength(run)
    return int(np.ceil(width))


# --------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------

def _wrap(parts: Sequence[str], size: int, room: int,
          legend: int | None = None) -> list[list[str]]:
    """Greedy wrap of whole ``parts`` (and a last one ``legend`` px wide) into ``room`` px lines.

    A part wider than ``room`` gets a line of its own (and does not fit).
    The legend is the entry ``None`` of the last line.
    """
    gap = _gap(size)
    rows: list[list[Any]] = []
    used = 0
    items: list[tuple[Any, int]] = [(p, _measure(_printable(p), size)) for p in parts if p]
    if legend is not None:
        items.append((None, legend))
    for item, width in items:
        if rows and used + gap + width <= room:
            rows[-1].append(item)
            used += gap + width
        else:
            rows.append([item])
            used = width
    return rows or [[]]


def _fits(rows: list[list[Any]], size: int, room: int, lines: int, legend: int | None) -> bool:
    if len(rows) > lines:
        return False
    gap = _gap(size)
    for row in rows:
        widths = [legend if item is None else _measure(_printable(item), size) for item in row]
        if sum(widths) + gap * (len(widths) - 1) > room:
            return False
    return True


def _layout(parts: tuple[str, ...], width: int, size: int, lines: int,
            legend: _Legend | None) -> tuple[int, list[list[Any]]]:
    """(font size, rows) of a caption in ``lines`` lines; ``None`` in a row is the legend.

    Tries, in turn: the nominal ``size`` with the legend; without it; smaller
    sizes down to :data:`MIN_FONT_SIZE`; the first part shortened with "…";
    without the first part; each line cut at its end.
    """
    parts = tuple(_printable(p) for p in parts)
    options = ([True] if legend is not None else []) + [False]
    for size_now in range(size, MIN_FONT_SIZE - 1, -1):
        room = width - 2 * _margin(size_now)
        for with_legend in options if size_now == size else [False]:
            extra = _legend_width(size_now, legend.scale) if with_legend and legend else None
            rows = _wrap(parts, size_now, room, extra)
            if _fits(rows, size_now, room, lines, extra):
                return size_now, rows
    size = min(size, MIN_FONT_SIZE)
    room = width - 2 * _margin(size)
    if parts and parts[0]:
        title = parts[0]
        lo, hi = 0, len(title) - 1    # longest prefix that fits, with the ellipsis
        best = None
        while lo <= hi:
            mid = (lo + hi) // 2
            candidate = (title[:mid].rstrip() + _ELLIPSIS,) + parts[1:]
            rows = _wrap(candidate, size, room)
            if _fits(rows, size, room, lines, None):
                best, lo = rows, mid + 1
            else:
                hi = mid - 1
        if best is not None:
            return size, best
        parts = parts[1:]
    rows = _wrap(parts, size, room)
    if len(rows) > lines:
        rows = rows[:lines - 1] + [[" ".join(p for row in rows[lines - 1:] for p in row)]]
    return size, [[_cut(" ".join(row), size, room)] for row in rows]


def _cut(text: str, size: int, room: int) -> str:
    """``text``, or its longest beginning with "…" that is at most ``room`` px wide."""
    if _measure(text, size) <= room:
        return text
    for end in range(len(text) - 1, -1, -1):
        candidate = text[:end].rstrip() + _ELLIPSIS
        if _measure(candidate, size) <= room:
            return candidate
    return ""


# --------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------

def _strip(parts: tuple[str, ...], width: int, size: int, lines: int,
           legend: _Legend | None) -> NDArray[np.uint8]:
    """The caption strip: (caption_height(width, lines), width, 3) uint8."""
    from PIL import Image, ImageDraw

    nominal = size
    height = 2 * _padding(nominal) + lines * _line_height(nominal)
    size, rows = _layout(parts, width, nominal, lines, legend)
    image = Image.new("RGB", (width, height), CAPTION_BACKGROUND)
    draw = ImageDraw.Draw(image)
    gap, margin = _gap(size), _margin(size)
    bars: list[tuple[int, int]] = []
    # lines share the strip's height evenly, text centred on each
    line_height = (height - 2 * _padding(nominal)) / lines
    ascent, descent = _font(size).getmetrics()
    for i, row in enumerate(rows):
        top = _padding(nominal) + i * line_height
        baseline = int(round(top + (line_height + ascent - descent) / 2))
        x = margin
        for item in row:
            if item is None:
                assert legend is not None
                x_legend = width - margin - _legend_width(size, legend.scale)
                bars.append(_draw_legend(draw, x_legend, baseline, size, legend))
                continue
            _draw_text(draw, x, baseline, item, size)
            x += _measure(item, size) + gap
    out = np.asarray(image, dtype=np.uint8).copy()
    for x0, baseline in bars:
        _paint_bar(out, x0, baseline, size, legend)
    return out


def _draw_text(draw: Any, x: float, baseline: int, text: str, size: int) -> None:
    small = _superscript_size(size)
    for run, sup in _runs(text):
        font = _font(small if sup else size)
        y = baseline - round(0.38 * size) if sup else baseline
        draw.text((x, y), run, font=font, fill=CAPTION_TEXT, anchor="ls")
        x += font.getlength(run)


def _draw_legend(draw: Any, x: int, baseline: int, size: int,
                 legend: _Legend) -> tuple[int, int]:
    """The legend's numbers from ``x`` on; returns where its bar goes (left x, baseline)."""
    low, high = _legend_texts(legend.scale)
    font = _font(size)
    draw.text((x, baseline), low, font=font, fill=CAPTION_TEXT, anchor="ls")
    bar_x = x + _measure(low, size) + _small_gap(size)
    draw.text((bar_x + _legend_bar(size) + _small_gap(size), baseline), high,
              font=font, fill=CAPTION_TEXT, anchor="ls")
    return bar_x, baseline


def _paint_bar(out: NDArray[np.uint8], x0: int, baseline: int, size: int,
               legend: _Legend | None) -> None:
    """The colour bar: a weight from -scale to +scale as its tint shows over mid-grey."""
    assert legend is not None
    bar = _legend_bar(size)
    tall = max(4, round(0.7 * size))
    y1 = min(out.shape[0], baseline + 1)
    y0 = max(0, y1 - tall)
    t = (np.arange(bar) + 0.5) / bar * 2.0 - 1.0                       # -1 .. 1
    colour = np.where(t[:, None] < 0, np.asarray(legend.negative), np.asarray(legend.positive))
    alpha = (np.abs(t) * legend.alpha)[:, None]
    row = np.clip(np.rint((1.0 - alpha) * _LEGEND_GREY + alpha * colour), 0, 255)
    out[y0:y1, x0:x0 + bar] = row.astype(np.uint8)[None, :, :]
    # a tick at 0 across the bar, in the text colour
    middle = x0 + bar // 2
    out[max(0, y0 - 2):min(out.shape[0], y1 + 2), middle:middle + max(1, size // 12)] = CAPTION_TEXT
