"""The LIME design matrix and per-image seeds."""

from __future__ import annotations

import hashlib

import numpy as np
from numpy.typing import NDArray

from ._validation import check_int, check_one_of

__all__ = ["derive_seed", "sample_design", "as_generator", "SAMPLINGS"]


def derive_seed(run_seed: int, image_id: str) -> int:
    """Derive an image's seed from the run seed and its id.

    The seed depends on nothing else (not the partition, the task attempt or
    the order of images), so results are reproducible under any partitioning
    and retries.

    Parameters
    ----------
    run_seed : int
    image_id : str

    Returns
    -------
    int in ``[0, 2**63)``
    """
    digest = hashlib.blake2b(f"{int(run_seed)}\x00{image_id}".encode("utf-8"),
                             digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def as_generator(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """Return a numpy Generator for an int seed, a Generator or None (fresh entropy)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


SAMPLINGS = ("paired", "independent")


def sample_design(n_samples: int, n_superpixels: int, *,
                  random_state: int | np.random.Generator | None = None,
                  sampling: str = "independent") -> NDArray[np.uint8]:
    """Draw the design: a binary matrix of superpixels kept (1) or hidden (0).

    Parameters
    ----------
    n_samples : int
        Number of rows, including row 0.
    n_superpixels : int
    random_state : int, Generator or None
    sampling : {"independent", "paired"}
        ``independent``: every row (after row 0) is fair coin flips, as in
        Python and R lime.  ``paired`` (antithetic): rows come in pairs
        ``z, 1 - z``, row 0 (all ones) paired with row 1 (all zeros), so any
        even-sized prefix holds whole pairs; each row is still uniform on
        {0, 1}^K, so the estimator's target does not change, only its
        variance (Covert & Lee 2021).  With an odd ``n_samples`` the last row
        is unpaired.

    Returns
    -------
    ndarray of shape (n_samples, n_superpixels), dtype uint8
        Row 0 is all ones (the original image).
    """
    n_samples = check_int("n_samples", n_samples, minimum=2)
    n_superpixels = check_int("n_superpixels", n_superpixels, minimum=1)
    sampling = check_one_of("sampling", sampling, SAMPLINGS)
    rng = as_generator(random_state)
    design = rng.integers(0, 2, size=(n_samples, n_superpixels), dtype=np.uint8)
    design[0, :] = 1
    if sampling == "paired":
        design[1::2] = 1 - design[0::2][:n_samples // 2]
    return design
