"""A robust outlier rule: the samples whose score stands out from the bulk of the dataset."""

from __future__ import annotations

import numpy as np


def robust_outliers(x: np.ndarray, z: float) -> np.ndarray:
    """``x`` above its median by more than ``z`` robust standard deviations (1.4826 MAD).

    The median and the MAD ignore a minority of extreme values, so the outliers do not hide
    themselves by inflating the spread as they would a mean and a standard deviation.

    Examples
    --------
    >>> robust_outliers(np.array([1.0, 1.1, 0.9, 1.0, 5.0]), 3.0)
    array([False, False, False, False,  True])
    """
    median = np.median(x)
    spread = 1.4826 * np.median(np.abs(x - median))
    return x > median + z * max(spread, 1e-12)
