"""Overlay PNGs of image explanations, drawn on the original image.

The counterparts of R lime's ``plot_image_explanation`` and
``plot_superpixels``.  Superpixels are usually computed on a resized copy of
the image (the model input, e.g. 224 x 224); every function here takes the
*original* image and a label image (the segments) of any size, upsamples it with
nearest neighbour to the original's height and width
(:func:`upsample_segments`) and draws at full resolution.  Line widths scale
with the image so that outlines stay visible on a 128 px thumbnail and on a
4000 px photo.

Selection follows R lime: a superpixel *supports* the label when its weight
is ``> threshold`` and *contradicts* it when its weight is ``< -threshold``
(shown only with ``show_negative=True``).

Differences from R lime, on purpose:

* both kinds of superpixel go into one picture (R draws a "Supports" and a
  "Contradicts" panel);
* ``display="outline"`` leaves the inside of the highlighted superpixels
  untouched (R also tints it with ``fill_alpha``);
* ``display="block"`` tints the highlighted superpixels with their colour at
  ``fill_alpha`` and fades the rest towards grey, where R replaces the rest
  by opaque grey.  :func:`render_mask` with ``hide_rest=True`` gives R's
  opaque-grey look;
* ``display="heatmap"`` (not in R lime) tints every weighted superpixel on a
  diverging scale (warm positive, cool negative, opacity growing with
  ``|weight|``);
* the label, probability and explanation fit that R prints above each panel
  go into an optional caption strip below the picture (``caption=``).

All public functions validate their arguments once and raise the typed errors
of :mod:`lime_spark.exceptions`.

The package:

* :mod:`.arguments`: the checks every public function runs once on its
  arguments (image, segments, colours, coefficients);
* :mod:`.masks`: label images and masks at the image's resolution
  (:func:`upsample_segments`, :func:`visible_segments`), outlines and the
  pixel arithmetic of tints, vectorised with numpy;
* :mod:`.overlays`: the pictures as RGB arrays (:func:`draw_explanation`,
  :func:`draw_explanations` for several labels of one image,
  :func:`draw_superpixels`, :func:`draw_mask`) and as PNG bytes
  (:func:`render_explanation`, :func:`render_superpixels`,
  :func:`render_mask`);
* :mod:`.captions`: caption strips below a picture (:func:`add_caption`;
  :func:`explanation_caption` for a label's name, probability, fit and
  stability);
* :mod:`.png`: :func:`encode_png` (fast, zlib level
  :data:`PNG_COMPRESS_LEVEL`) and :func:`thumbnail`.
"""

from .arguments import Colour, Coefficients
from .captions import (
    CAPTION_BACKGROUND,
    CAPTION_TEXT,
    MAX_CAPTION_LINES,
    MIN_FONT_SIZE,
    Caption,
    add_caption,
    caption_font_size,
    caption_height,
    caption_lines,
    explanation_caption,
)
from .masks import HIDE_COLOUR, upsample_segments, visible_segments
from .overlays import (
    BLOCK_ALPHA,
    BLOCK_COLOURS,
    DISPLAYS,
    HEATMAP_ALPHA,
    HEATMAP_COLOURS,
    OUTLINE_COLOURS,
    draw_explanation,
    draw_explanations,
    draw_mask,
    draw_superpixels,
    render_explanation,
    render_mask,
    render_superpixels,
)
from .png import PNG_COMPRESS_LEVEL, encode_png, thumbnail

__all__ = [
    "DISPLAYS",
    "OUTLINE_COLOURS",
    "BLOCK_COLOURS",
    "BLOCK_ALPHA",
    "HEATMAP_COLOURS",
    "HEATMAP_ALPHA",
    "HIDE_COLOUR",
    "CAPTION_BACKGROUND",
    "CAPTION_TEXT",
    "MIN_FONT_SIZE",
    "MAX_CAPTION_LINES",
    "Colour",
    "Coefficients",
    "Caption",
    "PNG_COMPRESS_LEVEL",
    "upsample_segments",
    "visible_segments",
    "draw_explanation",
    "draw_explanations",
    "draw_superpixels",
    "draw_mask",
    "render_explanation",
    "render_superpixels",
    "render_mask",
    "add_caption",
    "caption_font_size",
    "caption_height",
    "caption_lines",
    "explanation_caption",
    "encode_png",
    "thumbnail",
]
