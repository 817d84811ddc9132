from __future__ import annotations

import numpy as np
import pytest

from lime_spark.exceptions import ConfigurationError
from lime_spark.sampling import derive_seed, sample_design


def test_design_matrix_shape_row_zero_and_balance():
    z = sample_design(4000, 50, random_state=1)
    assert z.shape == (4000, 50) and z.dtype == np.uint8
    assert z[0].tolist() == [1] * 50
    assert set(np.unique(z[1:])) == {0, 1}
    assert abs(z[1:].mean() - 0.5) < 0.01


def test_same_seed_same_design_other_seed_other_design():
    assert np.array_equal(sample_design(100, 20, random_state=3), sample_design(100, 20, random_state=3))
    assert not np.array_equal(sample_design(100, 20, random_state=3),
                              sample_design(100, 20, random_state=4))


def test_derived_seed_depends_only_on_run_seed_and_image_id():
    a = derive_seed(42, "images/cat.jpg")
    assert a == derive_seed(42, "images/cat.jpg")
    assert a != derive_seed(43, "images/cat.jpg")
    assert a != derive_seed(42, "images/dog.jpg")
    assert 0 <= a < 2**63
    seeds = {derive_seed(0, str(i)) for i in range(10000)}
    assert len(seeds) == 10000


def test_bad_sizes():
    with pytest.raises(ConfigurationError, match="n_samples"):
        sample_design(1, 5)
    with pytest.raises(ConfigurationError, match="n_superpixels"):
        sample_design(10, 0)
