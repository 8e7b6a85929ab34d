import numpy as np
import pytest
from scipy import stats

from cleanlab_ng.ranks import average_ranks, spearman


@pytest.mark.parametrize("seed", range(5))
def test_average_ranks_are_scipys_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    for values in (rng.normal(size=500), rng.integers(0, 7, 500), rng.integers(0, 7, 1)):
        np.testing.assert_array_equal(average_ranks(values), stats.rankdata(values))


def test_spearman_is_scipys_and_nan_for_a_constant_array():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 30, 400), rng.integers(0, 30, 400) + np.arange(400) // 20
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)
    assert spearman(a, a) == pytest.approx(1.0)
    assert np.isnan(spearman(a, np.ones(400)))
