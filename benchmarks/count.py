"""Candidate estimates of how many labels are wrong, from the out-of-fold probabilities.

The suite records every candidate for every label set, so that the estimator can be chosen
(and its constants fitted) on the synthetic suite alone and then checked, untouched, on the
real-noise suites.
"""

from __future__ import annotations

import numpy as np

from cleanlab_ng.noise_count import blend, count_components


def count_estimates(given: np.ndarray, proba: np.ndarray) -> dict[str, int]:
    """Every candidate count for one label set.

    * ``calibrated``: the calibrated confident joint's off-diagonal mass;
    * ``strict``: confidently another class and not predicted as the given label;
    * ``argmax``: predicted label differs from the given one;
    * ``expected``: the sum of ``1 - p(given label)``;
    * ``mean``: the mean of ``calibrated`` and ``strict`` (the estimator before the suite);
    * ``shipped``: what ``cleanlab_ng.noise_count.estimate_noise_count`` returns.
    """
    calibrated, strict, argmax = count_components(given, proba)
    return {
        "calibrated": int(round(calibrated)),
        "strict": strict,
        "mean": int(round((calibrated + strict) / 2)),
        "argmax": argmax,
        "expected": int(round(float(np.sum(1 - proba[np.arange(len(given)), given])))),
        "shipped": int(round(blend(calibrated, strict, argmax, len(given)))),
    }


def fit_weight(rows: list[dict]) -> tuple[float, float]:
    """``(W0, W1)`` of ``cleanlab_ng.noise_count`` fitted on ``rows`` (synthetic sets only).

    Each row needs ``n``, ``true_count`` and the ``calibrated``, ``strict``, ``argmax``
    candidates; the loss is the sum of ``sqrt(n) |log(estimate / truth)|``, so that a set of
    178 samples, where one sample is half a percent, weighs less than one of 5,000.
    """
    from scipy.optimize import minimize

    n = np.array([r["n"] for r in rows], float)
    true = np.array([r["true_count"] for r in rows], float)
    cal, strict, argmax = (np.array([r[k] for r in rows], float)
                           for k in ("calibrated", "strict", "argmax"))

    def loss(theta):
        estimate = blend(cal, strict, argmax, n, *theta)
        return np.sum(np.sqrt(n) * np.abs(np.log(np.maximum(estimate, 1) / true)))

    fits = [minimize(loss, start, method="Nelder-Mead") for start in
            ([1.0, -5.0], [1.5, -10.0], [2.0, -1.0], [3.0, -2.0])]
    best = min(fits, key=lambda f: f.fun)
    return float(best.x[0]), float(best.x[1])
