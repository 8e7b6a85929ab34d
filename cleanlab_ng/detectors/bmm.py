"""Beta-mixture loss modelling (BMM) -- Arazo et al., ICML 2019, arXiv 1904.11238.

Flags:      samples whose training loss belongs to the high-loss beta component.
Signal:     networks fit clean samples before they memorise wrong labels, so before
            memorisation the losses of wrong labels form a second, high mode.
Fails when: noise < ~10 % (no second mode), hard classes, or the epoch read is past
            memorisation (findings.md §2: AUROC .90 -> .64 on a memorising MLP head).
Reference:  PaulAlbert31/LabelNoiseCorrection @5e9a73ee, utils.py L79-127 (loss scaling),
            L657-751 (BetaMixture1D); detectors.md §1.

Differences from the official code: the loss is read at the record's ``read_epoch`` -- the
last epoch before the proxy head starts to memorise, not a fixed end of warm-up -- on the
deterministic features rather than augmented views; the label-switch, invalid-moment and
collapse guards of detectors.md §1 are added, and the look-up table is made non-decreasing
everywhere (which covers the low-loss-side guard).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..ranks import average_ranks
from ..train.record import TrainingRecord
from ._result import DetectorResult

REQUIRES = ("dynamics",)
_EPS_LO, _EPS_SCALE, _CLAMP = 1e-5, 1e-6, 1e-3  # utils.py L106-107: 10e-6, 1e-6, 10e-4
_N_BINS = 100  # utils.py L733: linspace(1e-12, 1 - 1e-12, 100)


def detect(record: TrainingRecord, *, n_iter: int = 10) -> DetectorResult:
    """Posterior of the high-loss beta component for every sample.

    Parameters
    ----------
    record : TrainingRecord
        Reads ``record.dynamics.loss`` at ``record.dynamics.read_epoch``.
    n_iter : int, default=10
        EM iterations; the official code runs exactly 10, with no convergence test.

    Returns
    -------
    DetectorResult
        score = P(noisy | loss) from the look-up table, higher = more likely mislabeled,
        ties (every loss above P95 shares the top bin) broken by the raw loss;
        flag = P(noisy | loss) > 0.5.

    References
    ----------
    .. [1] E. Arazo, D. Ortego, P. Albert, N. O'Connor, K. McGuinness. "Unsupervised Label
       Noise Modeling and Loss Correction." ICML 2019.
    """
    dyn = record.require("dynamics", "bmm")
    loss = dyn.loss[dyn.read_epoch].astype(np.float64)
    x, fit_set = unit_scale(loss)
    params = fit_beta_mixture(x[fit_set], n_iter=n_iter)
    collapsed = params is None
    posterior = np.zeros_like(x) if collapsed else lookup_posterior(x, *params)
    tie_break = 1e-6 * average_ranks(loss) / len(loss)
    score = np.clip(posterior * (1 - 1e-6) + tie_break, 0, 1)
    diagnostics = {"epoch": int(dyn.read_epoch), "collapsed": bool(collapsed)}
    if not collapsed:
        alpha, beta, weight = params
        diagnostics.update(noisy_weight=float(weight[1]), clean_mean=float(_mean(alpha, beta)[0]),
                           noisy_mean=float(_mean(alpha, beta)[1]))
    return DetectorResult(
        "bmm", score=score, flag=posterior > 0.5,
        evidence={"loss": loss, "posterior": posterior}, diagnostics=diagnostics,
    )


def unit_scale(loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map losses to (0, 1) by their P5..P95 range; also return the P5..P95 fit set."""
    p5, p95 = np.percentile(loss, 5), np.percentile(loss, 95)
    fit_set = (loss >= p5) & (loss <= p95)
    lo, hi = p5 + _EPS_LO, p95
    x = (loss - lo) / (hi - lo + _EPS_SCALE)
    x = np.where(x >= 1, 1 - _CLAMP, x)
    x = np.where(x <= 0, _CLAMP, x)
    return x, fit_set


def fit_beta_mixture(x: np.ndarray, *, n_iter: int = 10):
    """Weighted method-of-moments EM for two beta components.

    Returns ``(alpha, beta, weight)`` arrays of shape (2,), component 0 the clean (low-loss)
    one, or None when one component collapses (fewer than 1e-3 of the samples: no noise mode).
    """
    x = np.clip(x, 1e-4, 1 - 1e-4)
    alpha, beta = np.array([1.0, 2.0]), np.array([2.0, 1.0])
    weight = np.array([0.5, 0.5])
    for _ in range(n_iter):
        dens = np.maximum(weight[:, None] * stats.beta.pdf(x[None, :], alpha[:, None],
                                                           beta[:, None]), 1e-12)
        resp = dens / dens.sum(0, keepdims=True)
        mass = resp.sum(1)
        if mass.min() < 1e-3 * len(x):
            return None
        m = (resp * x).sum(1) / mass
        v = (resp * (x - m[:, None]) ** 2).sum(1) / mass
        valid = (v > 0) & (v < m * (1 - m))
        # invalid moments would give alpha <= 0: keep that component's previous parameters
        a_new = m * (m * (1 - m) / np.where(valid, v, 1) - 1)
        alpha = np.where(valid, a_new, alpha)
        beta = np.where(valid, a_new * (1 - m) / m, beta)
        weight = mass / len(x)
    if _mean(alpha, beta)[0] > _mean(alpha, beta)[1]:  # label switching
        alpha, beta, weight = alpha[::-1], beta[::-1], weight[::-1]
    return alpha, beta, weight


def lookup_posterior(x: np.ndarray, alpha, beta, weight) -> np.ndarray:
    """P(noisy | x) through the official 100-bin look-up table, made non-decreasing in x.

    The official code only flattens the table right of its peak (utils.py L737-740). Our
    guard also flattens it left of its minimum -- where the clean component dominates most;
    below it the noisy density can spike again near 0 (detectors.md §1) -- and takes the
    running maximum in between, so a higher loss never gets a lower noise probability.
    """
    grid = np.linspace(1e-12, 1 - 1e-12, _N_BINS)
    dens = weight[:, None] * stats.beta.pdf(grid[None, :], alpha[:, None], beta[:, None])
    table = dens[1] / (dens.sum(0) + 1e-12)
    low = int(np.argmin(table))
    table[:low] = table[low]
    table[low:] = np.maximum.accumulate(table[low:])
    idx = np.clip(np.floor(_N_BINS * x).astype(int), 0, _N_BINS - 1)
    return table[idx]


def _mean(alpha, beta):
    return alpha / (alpha + beta)
