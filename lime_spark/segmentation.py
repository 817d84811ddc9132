"""Superpixel segmentation: an RGB image to a label image 0..K-1.

Every segmenter shares one signature, ``fn(image, *, n_superpixels,
random_state, **params) -> labels``, so they are interchangeable.  Whatever
the algorithm returns is relabelled to consecutive ids ``0..K-1`` in order of
first appearance in raster order, so a superpixel id is both a column of the
design matrix and a value in the label image.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._validation import check_int
from .adapters import check_image
from .exceptions import ConfigurationError, ImageTooSmallError, SegmentationError

__all__ = [
    "SEGMENTERS",
    "MIN_IMAGE_SIDE",
    "SegmenterFn",
    "segment_image",
    "check_segments",
    "relabel_segments",
]

logger = logging.getLogger(__name__)

SegmenterFn = Callable[..., NDArray[np.integer]]

MIN_IMAGE_SIDE = 8
"""Smallest height or width (pixels) that :func:`segment_image` accepts."""


def _slic(image: NDArray, *, n_superpixels: int, random_state: int | None,
          compactness: float = 20.0, max_num_iter: int = 10,
          sigma: float = 0.0, enforce_connectivity: bool = True) -> NDArray:
    """SLIC as in R lime: ``n_superpixels=50``, ``weight`` (compactness) 20, 10 iterations."""
    from skimage.segmentation import slic

    return slic(image, n_segments=n_superpixels, compactness=compactness,
                max_num_iter=max_num_iter, sigma=sigma, start_label=0,
                enforce_connectivity=enforce_connectivity, channel_axis=-1)


def _quickshift(image: NDArray, *, n_superpixels: int, random_state: int | None,
                kernel_size: float = 4, max_dist: float = 200,
                ratio: float = 0.2, sigma: float = 0.0) -> NDArray:
    """Quickshift with Python lime's parameters (``n_superpixels`` is not used)."""
    from skimage.segmentation import quickshift

    seed = 42 if random_state is None else int(random_state) % (2**31)
    return quickshift(image, kernel_size=kernel_size, max_dist=max_dist,
                      ratio=ratio, sigma=sigma, rng=seed, channel_axis=-1)


def _felzenszwalb(image: NDArray, *, n_superpixels: int, random_state: int | None,
                  scale: float = 100.0, sigma: float = 0.5,
                  min_size: int | None = None) -> NDArray:
    """Felzenszwalb's graph segmentation; ``min_size`` defaults to area / (2 n_superpixels)."""
    from skimage.segmentation import felzenszwalb

    if min_size is None:
        min_size = max(1, image.shape[0] * image.shape[1] // (2 * n_superpixels))
    return felzenszwalb(image, scale=scale, sigma=sigma, min_size=int(min_size),
                        channel_axis=-1)


def _grid(image: NDArray, *, n_superpixels: int, random_state: int | None) -> NDArray:
    """A regular grid of about ``n_superpixels`` near-square cells."""
    height, width = image.shape[:2]
    rows = max(1, int(round(np.sqrt(n_superpixels * height / width))))
    cols = max(1, int(round(n_superpixels / rows)))
    rows, cols = min(rows, height), min(cols, width)
    row_id = (np.arange(height) * rows) // height
    col_id = (np.arange(width) * cols) // width
    return row_id[:, None] * cols + col_id[None, :]


SEGMENTERS: dict[str, SegmenterFn] = {
    "slic": _slic,
    "quickshift": _quickshift,
    "felzenszwalb": _felzenszwalb,
    "grid": _grid,
}
"""The named segmenters; any callable with the same signature also works."""


def relabel_segments(labels: NDArray[np.integer]) -> NDArray[np.int32]:
    """Relabel an integer label image to consecutive ids ``0..K-1``.

    Ids are given in order of first appearance in raster order.

    Parameters
    ----------
    labels : ndarray of shape (H, W), integer dtype

    Returns
    -------
    ndarray of shape (H, W), dtype int32
    """
    flat = labels.ravel()
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].reshape(labels.shape).astype(np.int32)


def check_segments(segments: Any, image_shape: tuple[int, ...]) -> NDArray[np.int32]:
    """Validate a precomputed label image and return it with ids ``0..K-1``.

    Parameters
    ----------
    segments : array-like of shape (H, W), integer dtype
    image_shape : tuple
        Shape of the image the segments belong to; its first two entries are
        compared with ``segments.shape``.

    Returns
    -------
    ndarray of shape (H, W), dtype int32, with at least two distinct ids.

    Raises
    ------
    SegmentationError
        If ``segments`` is not a 2-D integer array of the image's size or has
        fewer than two superpixels.
    """
    arr = np.asarray(segments)
    if arr.ndim != 2 or arr.shape != tuple(image_shape[:2]):
        raise SegmentationError(
            f"Expected segments of shape {tuple(image_shape[:2])} (the image's "
            f"height and width). Received: segments.shape={arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise SegmentationError(
            f"Expected segments with an integer dtype. Received: dtype={arr.dtype}"
        )
    ids = np.unique(arr)
    if ids.size < 2:
        raise SegmentationError(
            "Expected at least 2 superpixels to explain the image. Received: "
            f"{ids.size} superpixel(s)"
        )
    if ids[0] == 0 and ids[-1] == ids.size - 1:
        return arr.astype(np.int32, copy=False)
    return relabel_segments(arr)


def _check_params(name: str, fn: SegmenterFn, params: dict[str, Any]) -> None:
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    allowed = [p for p in sig.parameters
               if p not in ("image", "n_superpixels", "random_state")]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigurationError(
            f"Unknown parameter(s) {unknown} for segmentation={name!r}. "
            f"Expected some of {allowed}."
        )


def _callable_name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _as_segmenter(fn: Callable, params: dict[str, Any]) -> SegmenterFn:
    """Adapt a user's segmenter to the shared signature, deciding its calling convention once.

    ``fn`` is called with the shared signature ``fn(image, *, n_superpixels,
    random_state, **params)`` when its signature accepts those arguments, else
    as lime's ``segmentation_fn``: ``fn(image)`` (then ``params`` must be
    empty).  The adapted function calls ``fn`` exactly once; a ``TypeError``
    raised inside ``fn`` propagates with a note naming the segmenter and the
    convention used, and is never retried with another signature.

    Raises
    ------
    ConfigurationError
        If ``fn`` accepts neither convention, or takes ``fn(image)`` only
        while ``params`` were given.
    """
    name = _callable_name(fn)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):   # some builtins and C extensions: lime's convention
        signature = None
    shared = signature is not None and _binds(signature, None, n_superpixels=2,
                                              random_state=None, **params)
    if not shared and params:
        raise ConfigurationError(
            f"Unknown parameter(s) {sorted(params)} for segmentation={name!r}: it does not "
            "accept fn(image, *, n_superpixels, random_state, **params). "
            f"Received: signature {signature}"
        )
    if not shared and signature is not None and not _binds(signature, None):
        raise ConfigurationError(
            f"Expected segmentation={name!r} to accept fn(image) (lime's segmentation_fn) "
            "or fn(image, *, n_superpixels, random_state, **params). "
            f"Received: signature {signature}"
        )
    convention = "fn(image, *, n_superpixels, random_state, **params)" if shared else "fn(image)"

    def segmenter(image: NDArray, *, n_superpixels: int, random_state: int | None,
                  **kwargs: Any) -> NDArray:
        try:
            if shared:
                return fn(image, n_superpixels=n_superpixels, random_state=random_state,
                          **kwargs)
            return fn(image)
        except TypeError as exc:
            exc.add_note(f"Raised inside segmentation={name!r}, called once as {convention}; "
                         "lime-spark does not retry it with another signature.")
            raise

    return segmenter


def _binds(signature: inspect.Signature, *args: Any, **kwargs: Any) -> bool:
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def segment_image(image: NDArray, *, method: str | SegmenterFn = "slic",
                  n_superpixels: int = 50, random_state: int | None = None,
                  **params: Any) -> NDArray[np.int32]:
    """Split an image into superpixels.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8 or float in 0..255
        Or anything else :func:`lime_spark.images.to_rgb_array` accepts
        (grayscale, RGBA); a float image keeps its values.
    method : {"slic", "quickshift", "felzenszwalb", "grid"} or callable
        A named segmenter or a callable ``fn(image) -> labels`` (lime's
        ``segmentation_fn``) or with the shared signature
        ``fn(image, *, n_superpixels, random_state, **params)``.
    n_superpixels : int, default 50
        Target number of superpixels (R lime's default); quickshift ignores it.
    random_state : int or None
        Seed for stochastic segmenters.
    **params
        Parameters of the chosen segmenter (e.g. ``compactness=20`` for slic).
        Unknown names raise :class:`ConfigurationError`.

    Returns
    -------
    ndarray of shape (H, W), dtype int32 with ids ``0..K-1``, K >= 2.

    Raises
    ------
    InvalidImageError
        If ``image`` is not an image array (see :func:`lime_spark.adapters.check_image`).
    ImageTooSmallError
        If a side of the image is below :data:`MIN_IMAGE_SIDE`.
    ConfigurationError, SegmentationError
    """
    n_superpixels = check_int("n_superpixels", n_superpixels, minimum=2)
    image = check_image(image)
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        raise ImageTooSmallError(
            f"Expected an image at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels "
            f"to segment. Received: {image.shape[1]}x{image.shape[0]} (width x height)"
        )
    if callable(method):
        fn = _as_segmenter(method, params)
        labels = fn(image, n_superpixels=n_superpixels, random_state=random_state, **params)
    else:
        if method not in SEGMENTERS:
            listed = ", ".join(f"`{m}`" for m in SEGMENTERS)
            raise ConfigurationError(
                f"Expected segmentation to be one of {listed} or a callable. "
                f"Received: segmentation={method!r}"
            )
        fn, name = SEGMENTERS[method], method
        _check_params(name, fn, params)
        labels = fn(image, n_superpixels=n_superpixels,
                    random_state=random_state, **params)
    return check_segments(labels, image.shape)
