"""Perturbed images from (image, segments, design matrix, fill).

A hidden superpixel (a 0 in the design row) takes the fill's pixels, a kept
one (a 1) keeps the image's.  Two implementations share one definition:

* :func:`perturb_batch` / :func:`iter_perturbed`: numpy, chunked by batch, for
  any ``classifier_fn`` callable;
* :func:`perturb_tensor`: backend ops (``keras.ops``), traced into the
  classifier's compiled function, so on a GPU only the design rows travel.

The same for the rows of several images at once (a batch assembled from the
pending samples of many images: row b belongs to image ``row_image[b]``):
:func:`perturb_rows` (numpy) and :func:`perturb_rows_tensor` (backend ops),
with :func:`check_rows` validating their inputs.

Fills share one signature, ``fill_fn(image, segments, **params) -> fill``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .exceptions import ConfigurationError, InvalidImageError, SegmentationError

__all__ = [
    "FILLS",
    "FillSpec",
    "make_fill",
    "perturb_batch",
    "iter_perturbed",
    "perturb_tensor",
    "check_rows",
    "perturb_rows",
    "perturb_rows_tensor",
]

FillSpec = str | float | int | Sequence[float]


def _fill_mean(image: NDArray, segments: NDArray) -> NDArray:
    """Each superpixel's mean colour (Python lime's ``hide_color=None``)."""
    n = int(segments.max()) + 1
    flat = segments.ravel()
    counts = np.bincount(flat, minlength=n).astype(np.float64)
    pixels = image.reshape(-1, 3).astype(np.float64)
    means = np.stack([np.bincount(flat, weights=pixels[:, c], minlength=n)
                      for c in range(3)], axis=1) / np.maximum(counts, 1)[:, None]
    return means[segments]


def _fill_median(image: NDArray, segments: NDArray) -> NDArray:
    """The image's per-channel median colour everywhere (an estimate of the background)."""
    colour = np.median(image.reshape(-1, 3).astype(np.float64), axis=0)
    return np.broadcast_to(colour, image.shape)


def _fill_blur(image: NDArray, segments: NDArray, *, sigma: float | None = None) -> NDArray:
    """A Gaussian blur of the image; ``sigma`` defaults to 1/16 of the longer side."""
    from skimage.filters import gaussian

    if sigma is None:
        sigma = max(image.shape[:2]) / 16.0
    return gaussian(image.astype(np.float64), sigma=float(sigma), channel_axis=-1,
                    preserve_range=True, mode="reflect")


FILLS: dict[str, Callable[..., NDArray]] = {
    "mean": _fill_mean,
    "median": _fill_median,
    "blur": _fill_blur,
}
"""Named fills; any other string is read as a colour name (CSS names, e.g. ``"grey"``)."""


def _solid(fill: Any, shape: tuple[int, ...]) -> NDArray:
    if isinstance(fill, str):
        from PIL import ImageColor

        try:
            colour = ImageColor.getrgb(fill)[:3]
        except ValueError:
            listed = ", ".join(f"`{f}`" for f in FILLS)
            raise ConfigurationError(
                f"Expected fill to be one of {listed}, a colour name, a number or "
                f"an (r, g, b) triple in 0..255. Received: fill={fill!r}"
            ) from None
    else:
        colour = np.asarray(fill, dtype=np.float64)
        if colour.ndim == 0:
            colour = np.repeat(colour, 3)
        if colour.shape != (3,) or not np.all(np.isfinite(colour)) \
                or colour.min() < 0 or colour.max() > 255:
            raise ConfigurationError(
                "Expected fill to be a number or an (r, g, b) triple in 0..255. "
                f"Received: fill={fill!r}"
            )
    return np.broadcast_to(np.asarray(colour, dtype=np.float64), shape)


def make_fill(image: NDArray, segments: NDArray[np.integer], fill: FillSpec | Callable[..., NDArray],
              **params: Any) -> NDArray:
    """Build the image whose pixels replace hidden superpixels.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8 or float32/float64 in 0..255
    segments : ndarray of shape (H, W), int, ids 0..K-1
    fill : str, number, (r, g, b) or callable
        ``"mean"`` (each superpixel's mean colour, Python lime's default),
        ``"median"`` (the image's median colour), ``"blur"`` (Gaussian blur,
        parameter ``sigma``), a colour name such as ``"grey"``, a number
        (grey level) or an RGB triple, or ``fn(image, segments, **params)``.
    **params
        Parameters of a named or callable fill.

    Returns
    -------
    ndarray of shape (H, W, 3), same dtype as ``image``
        For a uint8 image the fill is truncated to uint8, as Python lime does
        when it writes the means into a copy of the image.
    """
    if callable(fill):
        out = fill(image, segments, **params)
    elif isinstance(fill, str) and fill in FILLS:
        out = FILLS[fill](image, segments, **params)
    else:
        if params:
            raise ConfigurationError(
                f"A solid fill takes no parameters. Received: {sorted(params)}"
            )
        out = _solid(fill, image.shape)
    out = np.asarray(out)
    if out.shape != image.shape:
        raise ConfigurationError(
            f"Expected the fill to have the image's shape {image.shape}. "
            f"Received: shape={out.shape}"
        )
    if image.dtype == np.uint8:
        return np.clip(out, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out, dtype=image.dtype)


def perturb_batch(image: NDArray, fill_image: NDArray, segments: NDArray[np.integer],
                  design: NDArray) -> NDArray:
    """Perturbed images for a block of design rows.

    Parameters
    ----------
    image, fill_image : ndarray of shape (H, W, 3), same dtype
    segments : ndarray of shape (H, W), int, ids 0..K-1
    design : ndarray of shape (B, K), 0/1

    Returns
    -------
    ndarray of shape (B, H, W, 3), dtype of ``image``
    """
    design = np.asarray(design, dtype=bool)
    if image.dtype == np.uint8 and fill_image.dtype == np.uint8:
        # One 32-bit select per pixel instead of three 8-bit ones, then unpacked;
        # large batches are split over two threads (numpy releases the GIL here).
        out = np.empty((design.shape[0], *image.shape), np.uint8)
        packed_image, packed_fill = _pack_rgb(image), _pack_rgb(fill_image)

        def fill_rows(start: int, stop: int) -> None:
            packed = np.where(design[start:stop][:, segments], packed_image, packed_fill)
            out[start:stop] = packed[..., None].view(np.uint8)[..., :3]

        n = design.shape[0]
        if n >= 16 and _threads() > 1:
            half = n // 2
            list(_pool().map(lambda bounds: fill_rows(*bounds), [(0, half), (half, n)]))
        else:
            fill_rows(0, n)
        return out
    return np.where(design[:, segments][..., None], image[None], fill_image[None])


_POOL = None


def _threads() -> int:
    return min(2, os.cpu_count() or 1)


def _pool():
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lime-spark-perturb")
    return _POOL


def _pack_rgb(image: NDArray[np.uint8]) -> NDArray[np.uint32]:
    """(H, W, 3) uint8 -> (H, W) uint32 holding the three bytes (and a zero)."""
    padded = np.zeros(image.shape[:2] + (4,), dtype=np.uint8)
    padded[..., :3] = image
    return padded.view(np.uint32)[..., 0]


def iter_perturbed(image: NDArray, fill_image: NDArray, segments: NDArray[np.integer],
                   design: NDArray, batch_size: int) -> Iterator[NDArray]:
    """Yield perturbed batches of at most ``batch_size`` images, in design order.

    Peak memory is one batch, ``batch_size * H * W * 3`` values, whatever the
    number of design rows.
    """
    for start in range(0, design.shape[0], batch_size):
        yield perturb_batch(image, fill_image, segments, design[start:start + batch_size])


def perturb_tensor(design: Any, segments: Any, image: Any, fill_image: Any) -> Any:
    """:func:`perturb_batch` in backend ops, for use inside a compiled function.

    Parameters
    ----------
    design : tensor of shape (B, K), float32 0/1
    segments : tensor of shape (H, W), int32
    image, fill_image : tensors of shape (H, W, C), float32

    Returns
    -------
    tensor of shape (B, H, W, C), float32
    """
    from keras import ops

    keep = ops.take(design, segments, axis=1)[..., None] > 0.5
    return ops.where(keep, image[None], fill_image[None])


def check_rows(images: Any, fills: Any, segments: Any, row_image: Any,
               design: Any) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray]:
    """Validate the inputs of a multi-image batch of design rows; return them as arrays.

    Parameters
    ----------
    images, fills : array-like of shape (M, H, W, 3)
    segments : array-like of shape (M, H, W), int, each image's ids 0..K_m-1
    row_image : array-like of shape (B,), int in 0..M-1
        The image of each design row.
    design : array-like of shape (B, Kmax), 0/1
        Each row padded with zeros beyond its image's K_m (Kmax >= every K_m
        of an image with rows).

    Returns
    -------
    (images, fills, segments, row_image, design) as ndarrays, dtypes kept.

    Raises
    ------
    InvalidImageError
        ``images`` not (M, H, W, 3), or ``fills`` of another shape.
    SegmentationError
        ``segments`` not (M, H, W) integers, or a negative id.
    ConfigurationError
        ``design`` not 2-D, ``row_image`` not one integer per design row or
        outside 0..M-1, or ``design`` narrower than an image's largest id + 1.
    """
    images, fills = np.asarray(images), np.asarray(fills)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InvalidImageError(
            f"Expected images of shape (M, H, W, 3). Received: shape={images.shape}")
    n_images = images.shape[0]
    if fills.shape != images.shape:
        raise InvalidImageError(
            f"Expected fills of the images' shape {images.shape} (one fill per image). "
            f"Received: shape={fills.shape}")
    segments = np.asarray(segments)
    if segments.shape != images.shape[:3]:
        raise SegmentationError(
            f"Expected segments of shape (M, H, W) = {images.shape[:3]} (one label image "
            f"per image). Received: shape={segments.shape}")
    if segments.dtype.kind not in "iu":
        raise SegmentationError(
            f"Expected integer superpixel ids. Received: segments dtype={segments.dtype}")
    design = np.asarray(design)
    if design.ndim != 2:
        raise ConfigurationError(
            f"Expected design of shape (B, Kmax). Received: shape={design.shape}")
    row_image = np.asarray(row_image)
    if row_image.shape != (design.shape[0],) or (row_image.size and
                                                 row_image.dtype.kind not in "iu"):
        raise ConfigurationError(
            f"Expected row_image of shape ({design.shape[0]},): one integer image index per "
            f"design row. Received: shape={row_image.shape}, dtype={row_image.dtype}")
    if not row_image.size:
        return images, fills, segments, row_image, design
    low, high = int(row_image.min()), int(row_image.max())
    if low < 0 or high >= n_images:
        raise ConfigurationError(
            f"Expected row_image in 0..{n_images - 1} (indices of the {n_images} images). "
            f"Received: values in {low}..{high}")
    flat = segments.reshape(n_images, -1)
    if flat.shape[1] == 0:
        return images, fills, segments, row_image, design
    if int(flat.min()) < 0:
        raise SegmentationError(
            f"Expected superpixel ids >= 0. Received: min id {int(flat.min())}")
    used = np.unique(row_image)
    largest = flat.max(axis=1)[used]
    worst = int(np.argmax(largest))
    if int(largest[worst]) >= design.shape[1]:
        raise ConfigurationError(
            f"Expected design with at least {int(largest[worst]) + 1} columns (image "
            f"{int(used[worst])} has superpixel ids up to {int(largest[worst])}). Received: "
            f"design shape={design.shape}")
    return images, fills, segments, row_image, design


def perturb_rows(images: NDArray, fills: NDArray, segments: NDArray[np.integer],
                 row_image: NDArray[np.integer], design: NDArray) -> NDArray:
    """:func:`perturb_batch` for rows of several images (inputs as :func:`check_rows` takes).

    Row b is image ``row_image[b]`` with its fill's pixels where
    ``design[b, segments[row_image[b]]]`` is 0.  Each image's rows are built
    by :func:`perturb_batch`, so a row is what it would be alone.

    Returns
    -------
    ndarray of shape (B, H, W, 3), the images' dtype (as :func:`perturb_batch`)
    """
    n = design.shape[0]
    dtype = np.result_type(images.dtype, fills.dtype)
    out = np.empty((n, *images.shape[1:]), dtype)
    for m in np.unique(row_image):
        rows = np.flatnonzero(row_image == m)
        out[rows] = perturb_batch(images[m], fills[m], segments[m], design[rows])
    return out


def perturb_rows_tensor(design: Any, segments: Any, images: Any, fills: Any,
                        row_image: Any) -> Any:
    """:func:`perturb_rows` in backend ops, for use inside a compiled function.

    Every input is any per-pixel transform of the images' (a preprocessed
    image keeps its pixels where they were), so the caller may prepare the M
    images and fills first and select pixels for the B rows after.

    Parameters
    ----------
    design : tensor of shape (B, K), float32 0/1
    segments : tensor of shape (M, H, W), int32
    images, fills : tensors of shape (M, H, W, C), float32
    row_image : tensor of shape (B,), int32

    Returns
    -------
    tensor of shape (B, H, W, C), float32: each pixel exactly the image's or
    the fill's (a select, no arithmetic)
    """
    from keras import ops

    rows, columns = ops.shape(design)[0], ops.shape(design)[1]
    # one flat gather: row b's ids offset by b * K index its own design row
    index = ops.take(segments, row_image, axis=0) + (ops.arange(rows) * columns)[:, None, None]
    keep = ops.take(ops.reshape(design, (-1,)), index, axis=0)[..., None] > 0.5
    return ops.where(keep, ops.take(images, row_image, axis=0),
                     ops.take(fills, row_image, axis=0))
