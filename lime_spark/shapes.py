"""The shapes data set: generated images whose evidence is known, and a metric on them.

Each image of :func:`make_shapes_dataset` shows one class-deciding object
(a plus, a ring or a triangle) at a random place among distractors (filled
squares and discs) painted with the same colours on a light background, so
neither position nor colour can decide the class: only the object's shape
can.  :func:`train_shapes_classifier` fits a small CNN to it in seconds on a
CPU, :func:`erase_object` checks that the object really is the classifier's
evidence, and :func:`pointing_game_hit` scores an explanation by whether its
most positive superpixel lies on the object (the "pointing game", Zhang et
al., 2016).  Used by the tests, ``scripts/measure_fills.py`` and demos.

Examples
--------
>>> from lime_spark import Classifier, ImageExplainer
>>> train_x, train_y, _ = make_shapes_dataset(1000, random_state=0)  # doctest: +SKIP
>>> images, labels, masks = make_shapes_dataset(10, include_empty=False,
...                                             random_state=1)     # doctest: +SKIP
>>> classifier = Classifier(train_shapes_classifier(train_x, train_y,
...                                                 random_state=0))  # doctest: +SKIP
>>> exp = ImageExplainer(random_state=0).explain(images[0], classifier)  # doctest: +SKIP
>>> pointing_game_hit(exp, exp.top_labels[0], masks[0])     # doctest: +SKIP
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._validation import check_int, check_real
from .exceptions import ConfigurationError
from .sampling import as_generator

__all__ = [
    "SHAPE_CLASSES",
    "NO_OBJECT",
    "DISTRACTOR_SHAPES",
    "FOREGROUND_COLOURS",
    "make_shapes_dataset",
    "build_shapes_model",
    "train_shapes_classifier",
    "erase_object",
    "superpixel_overlap",
    "pointing_game_hit",
]

SHAPE_CLASSES: tuple[str, ...] = ("plus", "ring", "triangle", "none")
"""Class names of :func:`make_shapes_dataset`: label ``i`` is ``SHAPE_CLASSES[i]``.

Labels 0..2 name the object's shape; label 3, ``"none"``, an image with
distractors only.
"""

NO_OBJECT: int = SHAPE_CLASSES.index("none")
"""The label of images without an object."""

DISTRACTOR_SHAPES: tuple[str, ...] = ("square", "disc")
"""Shapes of the distractors; no class is decided by them."""

FOREGROUND_COLOURS: tuple[tuple[int, int, int], ...] = (
    (200, 40, 40),    # red
    (40, 70, 200),    # blue
    (30, 140, 60),    # green
    (130, 50, 160),   # purple
    (225, 120, 20),   # orange
    (60, 60, 60),     # dark grey
)
"""RGB colours of objects and distractors (each image uses two of them for all its shapes)."""

_GAP = 3          # smallest free margin (px) between the boxes of two shapes
_MAX_TRIES = 200  # placement attempts per shape before the image is drawn again


# --------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------

def _shape_mask(kind: str, size: int) -> NDArray[np.bool_]:
    """A ``size x size`` boolean stamp of one shape."""
    from skimage.draw import disk, polygon

    stamp = np.zeros((size, size), dtype=bool)
    centre = (size - 1) / 2.0
    if kind == "plus":
        arm = max(3, int(round(size / 3)))
        lo = (size - arm) // 2
        stamp[lo:lo + arm, :] = True
        stamp[:, lo:lo + arm] = True
    elif kind == "ring":
        thickness = max(3, int(round(size / 4)))
        rr, cc = disk((centre, centre), size / 2.0, shape=stamp.shape)
        stamp[rr, cc] = True
        rr, cc = disk((centre, centre), size / 2.0 - thickness, shape=stamp.shape)
        stamp[rr, cc] = False
    elif kind == "triangle":
        rr, cc = polygon([0, size - 1, size - 1], [centre, 0, size - 1], shape=stamp.shape)
        stamp[rr, cc] = True
    elif kind == "square":
        side = max(3, int(round(size * 0.8)))  # about the area of the other shapes
        lo = (size - side) // 2
        stamp[lo:lo + side, lo:lo + side] = True
    elif kind == "disc":
        rr, cc = disk((centre, centre), size / 2.0, shape=stamp.shape)
        stamp[rr, cc] = True
    else:  # pragma: no cover - internal names only
        raise ValueError(f"unknown shape {kind!r}")
    return stamp


def _place(rng: np.random.Generator, sizes: list[int], side: int
           ) -> list[tuple[int, int]] | None:
    """Top-left corners for boxes of ``sizes`` that keep ``_GAP`` px apart, or None."""
    corners: list[tuple[int, int]] = []
    for size in sizes:
        for _ in range(_MAX_TRIES):
            r, c = (int(v) for v in rng.integers(1, side - size, size=2))
            if all(r + size + _GAP <= r2 or r2 + s2 + _GAP <= r
                   or c + size + _GAP <= c2 or c2 + s2 + _GAP <= c
                   for (r2, c2), s2 in zip(corners, sizes)):
                corners.append((r, c))
                break
        else:
            return None
    return corners


def make_shapes_dataset(n_images: int, *, size: int = 64, n_distractors: int = 4,
                        include_empty: bool = True,
                        object_size: tuple[int, int] = (14, 18),
                        distractor_size: tuple[int, int] = (12, 18),
                        noise: float = 4.0, random_state: int | np.random.Generator | None
                        ) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.bool_]]:
    """Images whose class is decided by one object among same-coloured distractors.

    Every image has a light background (each channel drawn in 185..235, so it
    varies a little per image, plus pixel noise), one object whose shape is
    the class (``SHAPE_CLASSES``: plus, ring, triangle) and ``n_distractors``
    filled squares and discs.  With ``include_empty`` a quarter of the
    images instead show ``n_distractors + 1`` distractors and no object
    (label ``NO_OBJECT``): without them a classifier can learn one shape as
    "neither of the others" and then its evidence for that class is not the
    object at all.  All shapes of an image are painted with
    colours from the same pair of ``FOREGROUND_COLOURS`` and at least one
    distractor has the object's colour, so colour alone cannot tell the
    object from a distractor.  Shapes never overlap (their
    boxes keep 3 px apart) and lie wholly inside the image.

    Parameters
    ----------
    n_images : int
    size : int, default 64
        Height and width of the images.
    n_distractors : int, default 4
    include_empty : bool, default True
        Draw labels uniformly from all four classes, ``"none"`` included, rather
        than from the three shapes.  Use True for training sets and False for
        the images explained in a pointing game.
    object_size, distractor_size : (int, int)
        Inclusive ranges of the side (px) of the box of the object and of the
        distractors.  At ``size=64`` with 50 SLIC superpixels (about 9 x 9 px
        each) an object covers several superpixels.
    noise : float, default 4.0
        Standard deviation of Gaussian pixel noise (on background and shapes).
    random_state : int, Generator or None
        Seed; the same seed gives the same images.

    Returns
    -------
    images : ndarray of shape (n_images, size, size, 3), uint8
    labels : ndarray of shape (n_images,), int64, values in 0..3 (0..2 without
        ``include_empty``)
        Index into ``SHAPE_CLASSES``; classes are drawn uniformly.
    object_masks : ndarray of shape (n_images, size, size), bool
        The pixels painted by the class-deciding object (for a ring, the ring
        itself, not its hole); all False for ``"none"`` images.

    Raises
    ------
    ConfigurationError
        On invalid sizes or when the shapes cannot fit in the image.
    """
    n_images = check_int("n_images", n_images, minimum=0)
    size = check_int("size", size, minimum=16)
    n_distractors = check_int("n_distractors", n_distractors, minimum=0)
    noise = check_real("noise", noise, minimum=0)
    for name, (lo, hi) in (("object_size", object_size), ("distractor_size", distractor_size)):
        check_int(f"{name}[0]", lo, minimum=5)
        check_int(f"{name}[1]", hi, minimum=lo, maximum=size - 2)
    rng = as_generator(random_state)
    n_classes = len(SHAPE_CLASSES) if include_empty else NO_OBJECT
    images = np.empty((n_images, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, n_classes, size=n_images).astype(np.int64)
    masks = np.zeros((n_images, size, size), dtype=bool)
    for i in range(n_images):
        sizes, corners = _layout(rng, size, n_distractors, object_size, distractor_size)
        images[i], masks[i] = _draw(rng, int(labels[i]), sizes, corners, size=size, noise=noise)
    return images, labels, masks


def _layout(rng: np.random.Generator, size: int, n_distractors: int,
            object_size: tuple[int, int], distractor_size: tuple[int, int]
            ) -> tuple[list[int], list[tuple[int, int]]]:
    """Sides and top-left corners of the object (first) and the distractors of one image."""
    for _ in range(_MAX_TRIES):
        sizes = [int(rng.integers(object_size[0], object_size[1] + 1))]
        sizes += [int(v) for v in rng.integers(distractor_size[0], distractor_size[1] + 1,
                                               size=n_distractors)]
        corners = _place(rng, sizes, size)
        if corners is not None:
            return sizes, corners
    raise ConfigurationError(
        f"Expected room for one object and {n_distractors} distractors in a "
        f"{size}x{size} image. Received: object_size={object_size}, "
        f"distractor_size={distractor_size} (shapes did not fit)"
    )


def _draw(rng: np.random.Generator, label: int, sizes: list[int],
          corners: list[tuple[int, int]], *, size: int, noise: float
          ) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """Paint one image: (image (size, size, 3) uint8, object mask (size, size) bool)."""
    n_distractors = len(sizes) - 1
    palette = np.asarray(FOREGROUND_COLOURS, dtype=np.float64)
    mask = np.zeros((size, size), dtype=bool)
    canvas = np.empty((size, size, 3), dtype=np.float64)
    canvas[:] = rng.uniform(185, 235, size=3)
    colours = palette[rng.choice(len(palette), size=2, replace=False)]
    distractors = [DISTRACTOR_SHAPES[k] for k in rng.integers(
        0, len(DISTRACTOR_SHAPES), size=n_distractors + 1)]
    has_object = label != NO_OBJECT
    kinds = [SHAPE_CLASSES[label] if has_object else distractors[0], *distractors[1:]]
    # the object (first shape) takes one colour of the pair, the first
    # distractor the same one, the other distractors either
    paint = rng.integers(0, 2, size=1 + n_distractors)
    paint[1:2] = paint[0]
    for j, (kind, side, (r, c)) in enumerate(zip(kinds, sizes, corners)):
        stamp = _shape_mask(kind, side)
        window = canvas[r:r + side, c:c + side]
        window[stamp] = colours[paint[j]]
        if j == 0 and has_object:
            mask[r:r + side, c:c + side] = stamp
    if noise:
        canvas += rng.normal(0.0, noise, size=canvas.shape)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), mask


# --------------------------------------------------------------------------
# the classifier
# --------------------------------------------------------------------------

def build_shapes_model(*, size: int = 64, n_classes: int = len(SHAPE_CLASSES)) -> Any:
    """The small CNN of :func:`train_shapes_classifier`, untrained.

    ``Rescaling(1/255)`` - Conv(16, 5x5) - MaxPool - Conv(32, 5x5) - MaxPool -
    GlobalMaxPool - Dense softmax; input (N, size, size, 3) RGB in 0..255,
    output (N, n_classes) probabilities.  Global max pooling lets the
    network detect a shape wherever it is.
    """
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((size, size, 3)),
        layers.Rescaling(1.0 / 255),
        layers.Conv2D(16, 5, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(32, 5, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.GlobalMaxPooling2D(),
        layers.Dense(n_classes, activation="softmax"),
    ], name="shapes_cnn")


def train_shapes_classifier(images: NDArray, labels: NDArray, *, epochs: int = 6,
                            batch_size: int = 32, learning_rate: float = 3e-3,
                            random_state: int) -> Any:
    """Train the small CNN of :func:`build_shapes_model` on a shapes data set.

    Parameters
    ----------
    images : ndarray of shape (N, H, W, 3), uint8 or float in 0..255
    labels : ndarray of shape (N,), int, values in 0..3 (``SHAPE_CLASSES``)
    epochs : int, default 6
        10-25 s for 1000 images of 64 x 64 on two CPU cores, with
        held-out accuracy near 100%.
    batch_size : int, default 32
    learning_rate : float, default 3e-3
        Adam's step size.
    random_state : int
        Passed to ``keras.utils.set_random_seed`` (Python, numpy and backend
        seeds) before the model is built, so training is repeatable on one
        machine.

    Returns
    -------
    keras.Model
        Input (N, H, W, 3) RGB in 0..255, output softmax probabilities over
        the four ``SHAPE_CLASSES`` (more if ``labels`` has more); wrap it in
        :class:`lime_spark.Classifier` to explain it.
    """
    import keras

    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ConfigurationError(
            f"Expected square images of shape (N, H, H, 3). Received: shape={images.shape}"
        )
    if labels.shape != images.shape[:1]:
        raise ConfigurationError(
            f"Expected one label per image, shape ({images.shape[0]},). "
            f"Received: shape={labels.shape}"
        )
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    learning_rate = check_real("learning_rate", learning_rate, minimum=0, exclusive_minimum=True)
    random_state = check_int("random_state", random_state, minimum=0)
    keras.utils.set_random_seed(random_state)
    n_classes = max(len(SHAPE_CLASSES), int(labels.max()) + 1)
    model = build_shapes_model(size=images.shape[1], n_classes=n_classes)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images.astype(np.float32), labels.astype(np.int64), epochs=epochs,
              batch_size=batch_size, shuffle=True, verbose=0)
    return model


# --------------------------------------------------------------------------
# the pointing game
# --------------------------------------------------------------------------

def erase_object(image: NDArray, object_mask: NDArray[np.bool_], *, margin: int = 2
                 ) -> NDArray:
    """The image with its object painted over in the background colour.

    A check of the ground truth, not a LIME perturbation: if the object is
    the classifier's evidence, the predicted class changes once it is erased.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3)
    object_mask : ndarray of shape (H, W), bool
    margin : int, default 2
        The mask is grown by this many pixels first, so no antialiased or
        noisy edge of the object is left.

    Returns
    -------
    ndarray of shape (H, W, 3), dtype of ``image``
        Object pixels (and the margin) take the per-channel median of the
        pixels outside the grown mask, which on these images is background.
    """
    from scipy.ndimage import binary_dilation

    image = np.asarray(image)
    object_mask = np.asarray(object_mask, dtype=bool)
    if object_mask.shape != image.shape[:2]:
        raise ConfigurationError(
            f"Expected object_mask of the image's height and width {image.shape[:2]}. "
            f"Received: shape={object_mask.shape}"
        )
    margin = check_int("margin", margin, minimum=0)
    grown = binary_dilation(object_mask, iterations=margin) if margin else object_mask
    out = image.copy()
    if grown.any() and not grown.all():
        colour = np.median(image[~grown].reshape(-1, image.shape[-1]), axis=0)
        out[grown] = np.rint(colour).astype(image.dtype) if image.dtype == np.uint8 else colour
    return out


def superpixel_overlap(segments: NDArray[np.integer], object_mask: NDArray[np.bool_]
                       ) -> NDArray[np.float64]:
    """Fraction of each superpixel's pixels that are object pixels.

    Parameters
    ----------
    segments : ndarray of shape (H, W), int, ids 0..K-1
    object_mask : ndarray of shape (H, W), bool

    Returns
    -------
    ndarray of shape (K,), float64 in [0, 1]
    """
    segments = np.asarray(segments)
    object_mask = np.asarray(object_mask, dtype=bool)
    if segments.shape != object_mask.shape:
        raise ConfigurationError(
            f"Expected object_mask of the segments' shape {segments.shape}. "
            f"Received: shape={object_mask.shape}"
        )
    flat = segments.ravel().astype(np.int64)
    n = int(flat.max()) + 1 if flat.size else 0
    counts = np.bincount(flat, minlength=n).astype(np.float64)
    on = np.bincount(flat, weights=object_mask.ravel().astype(np.float64), minlength=n)
    return on / np.maximum(counts, 1.0)


def pointing_game_hit(explanation: Any, label: int, object_mask: NDArray[np.bool_], *,
                      min_overlap: float = 0.5) -> bool:
    """Whether the explanation's top positive superpixel for ``label`` lies on the object.

    The top positive superpixel is the one with the largest weight in
    ``explanation.local_exp[label]``, if that weight is > 0.  It *lies on the
    object* when at least ``min_overlap`` (default half) of its pixels are
    object pixels (``object_mask``).  A superpixel that merely touches the
    object, or straddles its edge with mostly background, is a miss; so is
    an explanation with no positive weight.

    On :func:`make_shapes_dataset` images (64 px, 50 SLIC superpixels) SLIC
    follows the shapes' edges, so nearly every object has one or two
    superpixels that pass this test, and about 3% of all superpixels do: a
    superpixel picked at random hits about 3% of the time.

    Parameters
    ----------
    explanation : ImageExplanation
        Or anything with ``segments`` (H, W) and ``local_exp`` (label ->
        list of (superpixel, weight)), such as Python lime's ``ImageExplanation``.
    label : int
    object_mask : ndarray of shape (H, W), bool
        The object's pixels, as returned by :func:`make_shapes_dataset`.
    min_overlap : float, default 0.5
        Smallest fraction of the superpixel's pixels on the object; in (0, 1].

    Returns
    -------
    bool
    """
    min_overlap = check_real("min_overlap", min_overlap, minimum=0, exclusive_minimum=True)
    if min_overlap > 1:
        raise ConfigurationError(
            f"Expected min_overlap <= 1. Received: min_overlap={min_overlap!r}"
        )
    if label not in explanation.local_exp:
        raise ConfigurationError(
            f"Expected label to be one of the explained labels {list(explanation.local_exp)}. "
            f"Received: label={label!r}"
        )
    weights = explanation.local_exp[label]
    if not weights:
        return False
    superpixel, weight = max(weights, key=lambda fw: fw[1])
    if not weight > 0:
        return False
    overlap = superpixel_overlap(explanation.segments, object_mask)
    return bool(overlap[int(superpixel)] >= min_overlap)
