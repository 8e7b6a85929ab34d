"""ReCoV: repeated cross-validation noise histogram -- Chen, Ramanathan, Xu, Martel,
arXiv 2306.13990 (v1 2023: three identification approaches; v2 MICCAI 2024).

Flags:      samples that land in the worst-performing validation fold of a random K-fold
            split more often than the 1/K that chance gives, over many repeated splits.
Signal:     a wrong label lowers the metric of whichever fold holds it (the accuracy in
            the paper; here by default the mean margin of its class in the fold), so its
            fold is more often the worst one.
Fails when: the dataset is large (each sample moves its fold's accuracy by ~K/N, so the
            excess over 1/K shrinks like 1/sqrt(number of wrong labels) and needs many more
            runs), samples are clean but hard (they lower fold accuracy too), or the noise
            is so heavy that every fold is equally bad.
Reference:  GJiananChen/ReCoV @52f93fd4: mushroom/mushroom_recov.py L106/L175 (bound),
            L138-143 and L222 (binomial test, BH), HECKTOR/HECKTOR_recov_plotting.py L205-end
            (Gaussian-mixture null); detectors.md §2.

With ``--finetune`` the record holds fastReCoV instead (the ``fastrecov`` stage: ten
re-split runs of the fine-tuned network with a memory of each sample's held-out probability;
cifar10n/cifar_fastrecov.py @24de7f65): score ``clip(1 - memory, 0, 1)``, flag
``memory <= 0.3``, evidence ``memory``.

The histogram is built by the ``recov`` record stage (ridge heads on the features, all
repeats and folds at once). By default the worst fold is chosen per class, by the mean
margin of the fold's samples of that class (ours, :mod:`cleanlab_ng.train.recov`);
``--recov-metric accuracy`` is the paper's one worst fold per run by accuracy. Either way,
under "no effect" each sample is in the worst fold of a run with probability 1/K, so its
count is ``Binomial(R, 1/K)``: mean R/K, variance R (K-1)/K^2. Differences from the official
code: the per-class worst fold; worst-fold ties are broken at random instead of by the
first index; p-values are ``P(X >= c)`` where the code's ``1 - pbinom(c)`` is ``P(X > c)``,
one count anti-conservative; the GMM null is the component with the largest weight, not
component 0 (sklearn does not order components); and the ``structure``, ``count`` and
``joint`` rules below are ours.
"""

from __future__ import annotations

import math

import numpy as np

from ..choices import RECOV_RULES as RULES
from ..errors import ConfigError
from ..noise_count import confident_joint
from ..ranks import average_ranks
from ..train.record import TrainingRecord
from ._result import DetectorResult, flag_top

REQUIRES = ("recov",)
ALPHA = 0.05  # BH level of the binomial and GMM rules (mushroom_recov.py L138-143)
_MAX_COMPONENTS = 10  # HECKTOR_recov_plotting.py: GMMs with 1..10 components, min BIC
# our choice (auto rule): a count variance under twice the binomial one, with one mixture
# component, is read as "no detectable noise"
_NO_NOISE_DISPERSION = 2.0
# our choice (structure rule): the wrong labels count as concentrated in class pairs when the
# confident joint puts them more than half way from spread evenly over the other classes to
# all in one, by pair_concentration
_PAIR_CONCENTRATION = 0.5


def detect(record: TrainingRecord, *, rule: str = "structure", alpha: float = ALPHA,
           n_flag: int | None = None) -> DetectorResult:
    """How much more often than chance each sample was in the worst fold.

    Parameters
    ----------
    record : TrainingRecord
        Reads ``record.recov``: the worst-fold counts, the number of runs R and of folds K,
        the averaged out-of-fold probabilities; or, when only the ``fastrecov`` stage
        exists, its memory (``rule`` is then unused).
    rule : {"structure", "count", "joint", "bound", "binomial", "gmm", "auto"}, \
            default="structure"
        The flag. ``count`` (ours): the ``n_flag`` highest counts. ``joint`` (ours): the
        highest counts within each cell of the calibrated confident joint (:func:`joint_flags`),
        as many as the cell holds. ``structure`` (ours): ``joint`` when the confident joint
        puts the wrong labels of a class mostly in one other class (pair noise,
        :func:`pair_concentration` >= 0.5), else ``count``. ``bound`` (approach 1): count
        above the binomial mean plus 2 SD. ``binomial`` (approach 2): one-sided binomial
        test, Benjamini-Hochberg at ``alpha``. ``gmm`` (approach 3): the same test against
        an empirical null, the largest component of a 1-D Gaussian mixture fitted to the
        counts. ``auto``: the dispersion / BIC choice of detectors.md §2 (see
        :func:`choose_rule`). Our choice of default: the paper's rules test each sample
        against "no effect", so the more runs, the more clean-but-hard samples clear them;
        ``count`` flags as many samples as the estimated number of wrong labels and had a
        higher F1 than ``bound`` on all seven synthetic sets of benchmarks/recov.py; where
        the noise flips classes in pairs, a global cut lets the clean-but-hard samples of
        every class compete with the flips of the few noisy pairs, and the per-cell cut of
        confident learning keeps them apart (benchmarks/results/recov.md, quality).
    alpha : float, default=0.05
        False discovery rate of the ``binomial`` and ``gmm`` rules.
    n_flag : int, default=None
        How many samples ``count`` flags, and ``joint`` in all (its cells scaled to sum to
        it); None: the record's estimated number of wrong labels
        (:func:`cleanlab_ng.noise_count.estimate_noise_count`) for ``count``, the confident
        joint's own cells for ``joint``.

    Returns
    -------
    DetectorResult
        score = CDF of the null at the count (binomial, or the GMM null for ``gmm``),
        higher = more likely mislabeled, ties broken by the count; flag = the rule's.
        Evidence ``count``, ``runs``, ``p_value`` (of the rule's null).

    References
    ----------
    .. [1] J. Chen, V. Ramanathan, T. Xu, A. L. Martel. "Cross-Validation Is All You Need:
       A Statistical Approach To Label Noise Estimation." arXiv 2306.13990, 2023.
    .. [2] C. Northcutt, L. Jiang, I. Chuang. "Confident Learning: Estimating Uncertainty in
       Dataset Labels." JAIR 70, 2021 (the confident joint; pruning by noise rate).
    """
    if rule not in RULES:
        raise ConfigError(f"unknown ReCoV rule '{rule}'. Use one of: {', '.join(RULES)}.")
    if record.recov is None and record.fastrecov is not None:
        return _fast_recov(record.fastrecov)
    rec = record.require("recov", "recov")
    counts, R, K = rec.counts, rec.n_runs, rec.n_folds
    dispersion = float(np.var(counts) / (R * (K - 1) / K**2))
    # ten mixture fits: only for the rules that read them
    n_components, null = gmm_null(counts) if rule in ("gmm", "auto") else (0, None)
    joint = confident_joint(record.labels, rec.proba)
    concentration = pair_concentration(joint)
    if rule == "auto":
        chosen = choose_rule(dispersion, n_components)
    elif rule == "structure":
        chosen = "joint" if concentration >= _PAIR_CONCENTRATION else "count"
    else:
        chosen = rule
    cdf, p_value = normal_tails(counts, *null) if chosen == "gmm" else binomial_tails(counts, R, K)
    # the null CDF saturates at 1 for every clearly noisy sample; keep their order by count
    tie_break = 1e-6 * average_ranks(counts) / len(counts)
    score = np.clip(cdf * (1 - 1e-6) + tie_break, 0, 1)
    if chosen == "count":
        flag = flag_top(score, record.noise_count if n_flag is None else n_flag)
    elif chosen == "joint":
        flag = joint_flags(counts, record.labels, rec.proba, joint, n_flag)
    elif chosen == "bound":
        flag = counts > R / K + 2 * np.sqrt(R * (K - 1) / K**2)
    elif chosen == "none":
        flag = np.zeros(len(counts), dtype=bool)
    else:
        flag = benjamini_hochberg(p_value) <= alpha
    return DetectorResult(
        "recov", score=score, flag=flag,
        evidence={"count": counts.astype(np.int64), "runs": np.full(len(counts), R),
                  "p_value": p_value},
        diagnostics={"rule": chosen, "fold_metric": rec.metric, "runs": int(R), "folds": int(K),
                     "stop_reason": rec.stop_reason, "stability": rec.stability,
                     "dispersion": round(dispersion, 4),
                     "pair_concentration": round(concentration, 4),
                     **({"gmm_components": n_components} if null is not None else {})},
    )


def _fast_recov(fast) -> DetectorResult:
    """fastReCoV's own rule: identified when the memory is at or below the threshold."""
    memory = fast.memory.astype(np.float64)
    return DetectorResult(
        "recov", score=np.clip(1 - memory, 0, 1), flag=memory <= fast.threshold,
        evidence={"memory": memory},
        diagnostics={"mode": "fastrecov", "runs": int(fast.n_runs), "folds": int(fast.n_folds),
                     "threshold": float(fast.threshold)},
    )


def choose_rule(dispersion: float, n_components: int) -> str:
    """The ``auto`` rule (detectors.md §2, [INFERRED]).

    One mixture component and a count variance close to the binomial one: no detectable
    noise (``"none"``, nothing flagged). Two or more components: a noisy mode stands out
    of the binomial bulk, test against the binomial (``"binomial"``). One component but a
    much wider histogram than the binomial: test against the empirical null (``"gmm"``).

    Examples
    --------
    >>> choose_rule(1.1, 1), choose_rule(1.8, 3), choose_rule(6.0, 1)
    ('none', 'binomial', 'gmm')
    """
    if n_components >= 2:
        return "binomial"
    return "none" if dispersion < _NO_NOISE_DISPERSION else "gmm"


def pair_concentration(joint: np.ndarray) -> float:
    """How much the off-diagonal mass of a confident joint sits in one other class per row.

    0 when every class's wrong labels are spread evenly over the C - 1 other classes
    (symmetric noise), 1 when each class's all come from one (pair noise); the share of the
    mass in each row's largest off-diagonal cell, rescaled from [1 / (C - 1), 1]. With two
    classes every wrong label comes from the other one: 1. No off-diagonal mass: 0.

    Examples
    --------
    >>> pair_concentration(np.array([[8., 2., 0.], [0., 8., 2.], [2., 0., 8.]]))
    1.0
    >>> pair_concentration(np.array([[8., 1., 1.], [1., 8., 1.], [1., 1., 8.]]))
    0.0
    """
    n_classes = len(joint)
    off = joint * (1 - np.eye(n_classes))
    if n_classes == 2:
        return 1.0
    if off.sum() <= 0:
        return 0.0
    share = off.max(axis=1).sum() / off.sum()
    even = 1 / (n_classes - 1)
    return float((share - even) / (1 - even))


def joint_flags(counts: np.ndarray, labels: np.ndarray, proba: np.ndarray, joint: np.ndarray,
                n_flag: int | None = None) -> np.ndarray:
    """Confident learning's allocation with ReCoV's counts as the ranking.

    The calibrated confident joint ``joint[k, j]`` estimates how many samples given class
    ``k`` belong to class ``j``; as in pruning by noise rate [2]_, the samples given ``k``
    whose most probable other class is ``j`` form cell ``(k, j)``, and its ``joint[k, j]``
    samples (rounded; scaled so that all cells sum to ``n_flag`` when it is given) with the
    highest worst-fold counts are flagged. Ties in count go to the lower margin
    ``p(given) - p(j)`` of the averaged out-of-fold probabilities.

    Examples
    --------
    >>> labels = np.array([0, 0, 0, 1, 1, 1])
    >>> proba = np.full((6, 2), 0.5)
    >>> joint = np.array([[2., 1.], [0., 3.]])
    >>> joint_flags(np.array([5, 9, 1, 9, 9, 9]), labels, proba, joint)
    array([False,  True, False, False, False, False])
    """
    n_samples, n_classes = proba.shape
    rows = np.arange(n_samples)
    other = proba.copy()
    other[rows, labels] = -np.inf
    likely = other.argmax(axis=1)
    quota = joint * (1 - np.eye(n_classes))
    if n_flag is not None and quota.sum() > 0:
        quota = quota * n_flag / quota.sum()
    quota = np.rint(quota).astype(np.int64).ravel()
    cell = labels * n_classes + likely
    margin = proba[rows, labels] - other[rows, likely]
    # by cell, then highest count, then lowest margin, then index
    order = np.lexsort((rows, margin, -counts, cell))
    sorted_cells = cell[order]
    rank = np.arange(n_samples) - np.searchsorted(sorted_cells, sorted_cells)
    flag = np.zeros(n_samples, dtype=bool)
    flag[order] = rank < quota[sorted_cells]
    return flag


def gmm_null(counts: np.ndarray) -> tuple[int, tuple[float, float]]:
    """BIC-optimal number of 1-D Gaussian components and the null component's (mean, SD).

    As HECKTOR_recov_plotting.py: full covariance, ``max_iter=1000``, ``random_state=0``
    for the BIC search, refit with ``random_state=10``. The null is the component with the
    largest weight (our fix: the code takes component 0, which sklearn does not order).
    """
    # imported here: scikit-learn takes a second to load, and the default rule needs none
    from sklearn.mixture import GaussianMixture

    x = counts.astype(np.float64)[:, None]
    if np.ptp(x) == 0:
        return 1, (float(x[0, 0]), 1.0)
    bics = [GaussianMixture(g, covariance_type="full", max_iter=1000, random_state=0)
            .fit(x).bic(x) for g in range(1, min(_MAX_COMPONENTS, len(np.unique(x))) + 1)]
    n_components = int(np.argmin(bics)) + 1
    gmm = GaussianMixture(n_components, covariance_type="full", max_iter=1000,
                          random_state=10).fit(x)
    bulk = int(np.argmax(gmm.weights_))
    sd = float(np.sqrt(gmm.covariances_[bulk].ravel()[0]))
    return n_components, (float(gmm.means_[bulk, 0]), max(sd, 1e-6))


def binomial_tails(counts: np.ndarray, runs: int, folds: int) -> tuple[np.ndarray, np.ndarray]:
    """``P(X <= c)`` and ``P(X >= c)`` of each count ``c`` under ``X ~ Binomial(runs, 1/folds)``.

    Sums of the probability mass over ``0 .. runs`` (a few thousand terms at most), each
    tail summed from its own far end so that small p-values keep their relative precision.
    The mass comes from the ratio of neighbouring terms, ``(runs - k) / (k + 1) * p / (1 -
    p)``, normalised to sum to one: no difference of large log-factorials, whose rounding
    would cost four digits at ``runs = 8192``.

    Examples
    --------
    >>> cdf, sf = binomial_tails(np.array([0, 1, 2]), 2, 2)
    >>> cdf, sf
    (array([0.25, 0.75, 1.  ]), array([1.  , 0.75, 0.25]))
    """
    k = np.arange(runs)
    p = 1 / folds
    log_pmf = np.r_[0.0, np.cumsum(np.log((runs - k) / (k + 1)) + math.log(p / (1 - p)))]
    pmf = np.exp(log_pmf - log_pmf.max())
    pmf /= pmf.sum()
    cdf = np.minimum(np.cumsum(pmf), 1)
    sf = np.minimum(np.cumsum(pmf[::-1])[::-1], 1)
    return cdf[counts], sf[counts]


def normal_tails(counts: np.ndarray, mean: float, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """CDF and survival function of each count under ``Normal(mean, sd^2)``.

    Examples
    --------
    >>> cdf, sf = normal_tails(np.array([10, 12]), 10.0, 2.0)
    >>> cdf.round(4), sf.round(4)
    (array([0.5   , 0.8413]), array([0.5   , 0.1587]))
    """
    values, inverse = np.unique(counts, return_inverse=True)
    z = (values - mean) / (sd * math.sqrt(2))
    cdf = np.array([0.5 * math.erfc(-v) for v in z])
    sf = np.array([0.5 * math.erfc(v) for v in z])
    return cdf[inverse], sf[inverse]


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (step-up, monotone, capped at 1).

    Examples
    --------
    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5])).round(4)
    array([0.04  , 0.0533, 0.0533, 0.5   ])
    """
    n = len(p)
    order = np.argsort(p)
    adjusted = p[order] * n / np.arange(1, n + 1)
    adjusted = np.minimum.accumulate(adjusted[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(adjusted, 1)
    return out
