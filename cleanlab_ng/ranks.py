"""Average ranks and Spearman's correlation over numpy arrays.

The two statistics the detectors and the merge need from ``scipy.stats``, written out
because importing ``scipy.stats`` takes about a second, a tenth of a short ``recov``-only
run. The values are those of ``scipy.stats.rankdata`` (method ``"average"``) and
``scipy.stats.spearmanr`` for one-dimensional arrays without NaN.
"""

from __future__ import annotations

import numpy as np


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1 (smallest) to n; tied values share the mean of the ranks they span.

    Examples
    --------
    >>> average_ranks(np.array([10.0, 30.0, 20.0, 20.0]))
    array([1. , 4. , 2.5, 2.5])
    """
    values = np.asarray(values).ravel()
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    # the first position of each run of equal values, and one past the end
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1], True])
    run = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    ranks = np.empty(len(values), dtype=np.float64)
    # positions starts[j] .. starts[j + 1] - 1 hold ranks starts[j] + 1 .. starts[j + 1]
    ranks[order] = 0.5 * (starts[:-1] + 1 + starts[1:])[run]
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's correlation of the average ranks.

    NaN when either array is constant, as ``scipy.stats.spearmanr`` returns.

    Examples
    --------
    >>> spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 40, 30]))
    0.8
    """
    ra, rb = average_ranks(a), average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = np.sqrt((ra @ ra) * (rb @ rb))
    return float(ra @ rb / denominator) if denominator > 0 else float("nan")
