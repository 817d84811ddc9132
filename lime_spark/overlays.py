"""Where an image's overlay PNGs live, writing them, and removing them after an error.

One folder per image: ``ROOT/overlays/run_id=R/<safe_key(image_id)>/`` holds
``segments.png`` (the superpixels) and ``<label>.png`` per explained label,
each with a caption strip below the picture unless the job's
``overlay_caption`` is off.
The per-image pipeline (:func:`lime_spark.batch.explain_record`) writes them
last and removes the folder when the image ends as an error row.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .render import (
    add_caption,
    caption_lines,
    draw_explanations,
    draw_mask,
    draw_superpixels,
    encode_png,
    explanation_caption,
    thumbnail,
    upsample_segments,
    visible_segments,
)
from .render.arguments import _check_bool
from .storage import join_uri, remove_tree, safe_key, write_bytes

if TYPE_CHECKING:
    from .anchors import AnchorExplanation
    from .explainer import ImageExplanation

ANCHOR_PREFIX = "anchor_"
"""An anchor's overlay is ``anchor_<label>.png`` beside the label's LIME overlay."""

ANCHOR_DIM = 0.35
"""Brightness kept outside an anchor in its overlay (the anchor itself unchanged)."""

__all__ = ["ANCHOR_PREFIX", "draw_anchor", "anchor_caption", "overlay_folder", "overlay_uris",
           "overlay_pictures", "encode_overlays", "write_overlays", "remove_overlays"]

logger = logging.getLogger(__name__)


def overlay_folder(root: str, run_id: str, image_id: str) -> str:
    """The overlay folder of one image under ``root``: one folder per id, never outside."""
    return join_uri(root, "overlays", f"run_id={run_id}", safe_key(image_id))


def overlay_uris(folder: str, labels: Iterable[int]) -> dict[int, str]:
    """The URI of each label's overlay PNG in ``folder``."""
    return {label: join_uri(folder, f"{label}.png") for label in labels}


def overlay_pictures(original: NDArray[np.uint8], explanation: ImageExplanation, *,
                     max_side: int, n_features: int, display: str,
                     caption: bool = True,
                     anchors: Sequence[AnchorExplanation] = ()) -> dict[str, NDArray[np.uint8]]:
    """Draw an image's overlays: the superpixels and one picture per explained label.

    The thumbnail, the sampling of the segments and (in block mode) the
    faded image are computed once and shared by all pictures.

    Parameters
    ----------
    original : ndarray of shape (H, W, 3), uint8
        The decoded image; drawn on a thumbnail of at most ``max_side``
        pixels (0: the original size).
    explanation : ImageExplanation
    max_side, n_features, display
        ``BatchSettings.overlay_max_side``, ``overlay_features`` (most
        positive superpixels drawn per label in the ``"outline"`` and
        ``"block"`` displays; ``"heatmap"`` tints every superpixel by its
        weight) and ``overlay_display``.
    caption : bool, default True
        Add a caption strip below every picture
        (:func:`~lime_spark.render.add_caption`): on a label's picture its
        name, probability, explanation fit and stability
        (:func:`~lime_spark.render.explanation_caption`), with the colour
        scale in heatmap mode; on the superpixels picture ``"K
        superpixels"``.  All the strips of an image have the same height,
        so all its PNGs have the same size.  The job passes its
        ``overlay_caption`` option; the default is on (the notebook
        functions of :mod:`lime_spark.render` default to no caption).
    anchors : sequence of AnchorExplanation, optional
        Anchors of the image (on ``explanation``'s segments): one picture
        each, ``anchor_<label>`` (:func:`draw_anchor`), captioned with the
        label, precision, coverage and size.

    Returns
    -------
    dict of str -> ndarray of shape (h, w, 3), uint8
        ``"segments"`` (:func:`~lime_spark.render.draw_superpixels`) first,
        then ``str(label)`` per label of ``explanation.labels``, in order:
        the label's ``n_features`` superpixels with the largest positive
        weights (:func:`~lime_spark.render.draw_explanations`, threshold 0),
        or with ``display="heatmap"`` all its weights.  With ``caption``,
        each picture is the uncaptioned one above its strip.
    """
    caption = _check_bool("caption", caption)
    canvas = original
    if max_side and max(original.shape[:2]) > max_side:
        canvas = thumbnail(original, max_side)
    segments = explanation.segments
    pictures = {"segments": draw_superpixels(canvas, segments)}
    # a canvas thinner than the model input (a 2 x 4000 strip) can miss superpixels
    visible = set(visible_segments(segments, canvas.shape[:2]).tolist())
    chosen = {}
    for label in explanation.labels:
        if display == "heatmap":
            chosen[str(label)] = [fw for fw in explanation.local_exp[label] if fw[0] in visible]
        else:
            chosen[str(label)] = sorted((fw for fw in explanation.local_exp[label]
                                         if fw[1] > 0 and fw[0] in visible),
                                        key=lambda fw: -fw[1])[:n_features]
    anchor_pictures = {f"{ANCHOR_PREFIX}{a.label}": draw_anchor(canvas, segments, a.anchor)
                       for a in anchors}
    if not caption:
        pictures.update(draw_explanations(canvas, segments, chosen, display=display,
                                          threshold=0.0))
        pictures.update(anchor_pictures)
        return pictures
    captions = {str(label): explanation_caption(explanation, label)
                for label in explanation.labels}
    anchor_captions = {f"{ANCHOR_PREFIX}{a.label}": anchor_caption(a) for a in anchors}
    count = int(np.unique(segments).size)
    captions_segments = f"{count} superpixel{'s' if count != 1 else ''}"
    lines = caption_lines([captions_segments, *captions.values(), *anchor_captions.values()],
                          canvas.shape[1], legend=display == "heatmap")
    pictures["segments"] = add_caption(pictures["segments"], captions_segments, lines=lines)
    pictures.update(draw_explanations(canvas, segments, chosen, display=display,
                                      threshold=0.0, captions=captions, caption_lines=lines))
    for name, picture in anchor_pictures.items():
        pictures[name] = add_caption(picture, anchor_captions[name], lines=lines)
    return pictures


def draw_anchor(canvas: NDArray[np.uint8], segments: NDArray[np.integer],
                anchor: Sequence[int]) -> NDArray[np.uint8]:
    """An anchor's picture: its superpixels as they are, outlined in yellow, the rest
    dimmed to :data:`ANCHOR_DIM` of its brightness (all of it for the empty anchor)."""
    if not len(anchor):
        return (canvas.astype(np.float32) * ANCHOR_DIM).astype(np.uint8)
    picture = draw_mask(canvas, segments, list(anchor))
    keep = np.zeros(int(segments.max()) + 1, bool)
    keep[list(anchor)] = True
    outside = ~keep[upsample_segments(segments, canvas.shape[:2])]
    picture[outside] = (picture[outside].astype(np.float32) * ANCHOR_DIM).astype(np.uint8)
    return picture


def anchor_caption(anchor: AnchorExplanation) -> tuple[str, ...]:
    """An anchor overlay's caption: label, precision, coverage, size."""
    size = len(anchor.anchor)
    return (f"anchor: {anchor.label_name()}", f"precision {anchor.precision:.2f}",
            f"coverage {anchor.coverage:.2f}" if anchor.coverage >= 0.01 or not anchor.coverage
            else f"coverage {anchor.coverage:.1e}",
            f"{size} superpixel{'s' if size != 1 else ''}" + ("" if anchor.success
                                                              else " (below threshold)"))


def encode_overlays(pictures: dict[str, NDArray[np.uint8]]) -> dict[str, bytes]:
    """Each picture of :func:`overlay_pictures` as PNG (:func:`~lime_spark.render.encode_png`).

    Parameters
    ----------
    pictures : dict of str -> ndarray of shape (h, w, 3), uint8

    Returns
    -------
    dict of str -> bytes
        The same keys, in the same order.
    """
    return {name: encode_png(picture) for name, picture in pictures.items()}


def write_overlays(folder: str, original: NDArray[np.uint8], explanation: ImageExplanation, *,
                   max_side: int, n_features: int, display: str, caption: bool = True) -> None:
    """Write ``segments.png`` and one PNG per explained label into ``folder``.

    :func:`overlay_pictures`, encoded by :func:`encode_overlays`, each
    written as ``<name>.png``.

    Parameters
    ----------
    folder : str
        :func:`overlay_folder` of the image (a staging area or the output).
    original : ndarray of shape (H, W, 3), uint8
        The decoded image; drawn on a thumbnail of at most ``max_side``
        pixels (0: the original size).
    explanation : ImageExplanation
    max_side, n_features, display, caption
        As for :func:`overlay_pictures`.
    """
    pictures = overlay_pictures(original, explanation, max_side=max_side,
                                n_features=n_features, display=display, caption=caption)
    for name, png in encode_overlays(pictures).items():
        write_bytes(join_uri(folder, f"{name}.png"), png)


def remove_overlays(folder: str) -> None:
    """Best effort: an error row must not leave a half-written overlay folder."""
    try:
        remove_tree(folder)
    except Exception as exc:  # noqa: BLE001 - the error row says what went wrong first
        logger.warning("could not remove overlays %s: %s: %s", folder, type(exc).__name__, exc)
