"""Combine the detectors' results into one noise score and one decision per sample.

The detectors' scores are calibrated differently (posteriors, rank percentiles, null CDFs:
detectors.md §7.3), so they are merged on ranks, never on raw values. By default (``jury``)
each detector's ranks are weighted by how much of what it would flag a referee would flag
too, and the referee's own ranks join them with an average detector's weight. The referee
is the share of each sample's nearest neighbours labelled otherwise
(:func:`cleanlab_ng.neighbours.label_disagreement`), a signal that needs no training. Four of
the five detectors read the same proxy trained on the given labels, so where the proxy
learns the noise (pair noise at 40 %) they agree with each other on the wrong samples, and a
rule that rewards agreement among them (``overlap``, ``agreement``) follows them; the
referee shares none of their training. Weighing alone (``referee``) can only choose among
the detectors' rankings; with its seat the referee also lifts the wrong labels that all of
them rank low. Chosen on the synthetic sets of ``benchmarks/merge_study.py``: mean F1 over
its 24 label sets 0.896, ``referee`` 0.888, ``overlap`` 0.876; at or above every single
detector on 12 sets, against 9 and 4; at most 0.060 below one, against 0.066 and 0.136.
Checked on its 7 real-noise sets: mean F1 0.500, ``referee`` 0.499, ``overlap`` 0.507
(higher on the five CIFAR and music sets, lower on 20 Newsgroups and MNIST test, where the
referee alone is weakest). The number flagged is one estimate of how many labels are wrong,
the same number the summary reports.
The out-of-fold probabilities feed ``predicted_label`` / ``suggested_label`` only: they are
not a detector, so the merged result is never confident learning under another name.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .choices import MERGE_RULES
from .detectors import DetectorResult, flag_top
from .errors import ConfigError
from .neighbours import label_support
from .noise_count import confident_guess
from .outliers import robust_outliers
from .ranks import average_ranks

# our choice, from 1, 2, 4, ... 64 in benchmarks/merge_study.py on the quick suites' label
# sets: mean F1 rises up to 8 and is flat beyond (synthetic 0.877 at 8, 0.876 at 32), where
# the weights come close to following the detector the others agree with most; 32 has the
# most synthetic sets at or above cleanlab (19 of 24, 16 at 8) and the smallest shortfall
# below it (0.016, 0.035 at 8), and is at or above cleanlab on the 7 real-noise sets too.
# Since linear_separation scores samples no class explains, it shares little of the others'
# top and gets no weight; the weak detectors of a dataset still kept some at 8.
OVERLAP_POWER = 32
# our choice, from 16, 32 and 64 in benchmarks/merge_study.py (its "referee" sweep): mean F1
# on the synthetic sets rises to 32 and is flat beyond, as for OVERLAP_POWER
REFEREE_POWER = 32
# the referee's seat in ``jury``, in average detector weights: one voice like any other. From
# 0.5, 1, 1.5 and 2 in benchmarks/merge_study.py (its "jury seat" sweep) mean F1 is flat on
# the synthetic sets (0.895-0.898) and on the real ones (0.498-0.500)
REFEREE_SEAT = 1.0
# A sample no class explains is flagged beyond the estimated count only when its separation
# score is OOD_ON_TOP_Z robust standard deviations out (linear_separation flags at 2) *and*
# above OOD_ON_TOP_MIN. Our choices: on CIFAR-10N aggre, which has no foreign images,
# confusable regions score like foreign ones (340 extra flags at z = 2, about ten at 3,
# benchmarks/detectors.py (b) and its runs table); on small clean-featured sets (breast
# cancer) the bulk of the scores is so narrow that a label flip, which scores about its
# region's noise rate, is 3 robust deviations out, so the score must also say that the
# neighbourhood is as if half noisy and half labelled otherwise (0.5 x 0.5): without that
# floor the quick suites got 7-28 extra flags per breast cancer set and 203 on MNIST test
OOD_ON_TOP_Z = 3.0
OOD_ON_TOP_MIN = 0.25
ISSUES = ("clean", "mislabeled", "out_of_distribution", "unreadable")


def rank_normalise(score: np.ndarray) -> np.ndarray:
    """Average ranks scaled to (0, 1]: the top score gets 1, ties share their mean rank."""
    return average_ranks(score) / len(score)


def merge_scores(
    results: list[DetectorResult], *, n_flag: int, rule: str = "jury",
    referee: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One noise score in [0, 1] (higher = more likely mislabeled) and one flag per sample.

    Parameters
    ----------
    results : list of DetectorResult
        At least one, all over the same samples.
    n_flag : int
        How many samples to flag (the estimated number of wrong labels).
    rule : {"jury", "referee", "overlap", "agreement", "rank_mean", "vote"}, default="jury"
        ``rank_mean``: mean of the rank-normalised scores, the ``n_flag`` highest flagged.
        ``vote``: a sample is flagged when more than half of the detectors flag it (each by
        its own rule); the score is the share of votes, ties broken by the rank mean.
        ``agreement``: as ``rank_mean``, but each detector weighted by how well its ranking
        agrees with the others' (:func:`agreement_weights`), so that a detector that ranks
        at odds with the rest on this dataset counts less; no ground truth is used.
        ``overlap``: as ``agreement``, but the agreement is measured where the decision is
        made, on the ``n_flag`` samples each detector ranks highest (:func:`overlap_weights`).
        ``referee``: as ``overlap``, but each detector's top is compared with the top of
        ``referee`` instead of the other detectors' (:func:`referee_weights`).
        ``jury``: as ``referee``, with the referee's own ranks among the detectors', weighing
        as much as an average detector (:func:`seat_referee`).
    referee : ndarray of shape (n_samples,), optional
        Higher = more likely mislabeled, from outside the detectors (the pipeline passes
        :func:`cleanlab_ng.neighbours.label_disagreement`). Required by ``referee`` and
        ``jury``.

    Returns
    -------
    noise_score : ndarray of float, shape (n_samples,)
    is_noisy : ndarray of bool, shape (n_samples,)
    """
    if rule not in MERGE_RULES:
        raise ConfigError(f"unknown merge rule '{rule}'. Use one of: {', '.join(MERGE_RULES)}.")
    all_ranks = np.array([rank_normalise(r.score) for r in results])
    ranks = all_ranks.mean(axis=0)
    if rule == "agreement":
        ranks = agreement_weights(all_ranks) @ all_ranks
    if rule == "overlap":
        ranks = overlap_weights(all_ranks, n_flag) @ all_ranks
    if rule in ("referee", "jury"):
        if referee is None:
            raise ValueError(f"the {rule} rule needs a referee score (label_disagreement)")
        weights = referee_weights(all_ranks, referee, n_flag)
        ranks = (seat_referee(weights, all_ranks, referee) if rule == "jury"
                 else weights @ all_ranks)
    if rule == "vote":
        votes = np.mean([r.flag for r in results], axis=0)
        # the rank mean only reorders samples with the same share of votes
        score = (votes * len(results) + ranks) / (len(results) + 1)
        return score, votes > 0.5
    return ranks, flag_top(ranks, n_flag)


def agreement_weights(ranks: np.ndarray) -> np.ndarray:
    """Weights summing to 1: the square of each detector's mean positive rank correlation
    with the others.

    ``ranks`` is (n_detectors, n_samples) of rank-normalised scores, so the Pearson
    correlation of two rows is their Spearman correlation. A detector's weight is the mean
    of its correlations with the others, each clipped at 0, squared: signals that find the
    same wrong labels reinforce each other (findings.md §4), one that ranks unlike the rest
    (a failure mode on this dataset, or no signal) counts little or not at all. The square
    sharpens the weights (exponent 2 of 1-4 and 10 tried in ``benchmarks/detectors.py``).
    With one detector, or when no pair agrees, the weights are equal.

    Examples
    --------
    >>> r = np.array([[.25, .5, .75, 1.], [.5, .25, .75, 1.], [1., .75, .25, .5]])
    >>> agreement_weights(r).round(3)
    array([0.5, 0.5, 0. ])
    """
    k = len(ranks)
    if k == 1:
        return np.ones(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.corrcoef(ranks))  # a constant score correlates with nothing
    agree = np.clip(corr, 0, None)  # disagreeing with a failing detector costs nothing
    return _normalise_or_equal(((agree.sum(axis=1) - np.diag(agree)) / (k - 1)) ** 2)


def overlap_weights(ranks: np.ndarray, n_top: int, power: float = OVERLAP_POWER) -> np.ndarray:
    """Weights summing to 1: how much of each detector's top ``n_top`` the others share.

    ``ranks`` is (n_detectors, n_samples). A detector's weight is the mean, over the other
    detectors, of the share of its ``n_top`` highest-ranked samples that they rank in their
    own top ``n_top``, raised to ``power``. Unlike :func:`agreement_weights`, the order of
    the bulk of (clean) samples, which is mostly noise, does not count: only the samples
    that would be flagged do. With one detector, ``n_top`` < 1, or no overlap at all, the
    weights are equal.

    Examples
    --------
    >>> r = np.array([[.25, .5, .75, 1.], [.5, .25, .75, 1.], [1., .75, .25, .5]])
    >>> overlap_weights(r, 2, power=1)
    array([0.5, 0.5, 0. ])
    """
    k, n = ranks.shape
    if k == 1 or n_top < 1:
        return np.full(k, 1 / k)
    m = min(int(n_top), n)
    top = _top(ranks, m)
    shared = (top[:, None, :] & top[None, :, :]).sum(axis=2) / m  # (k, k), diagonal 1
    return _normalise_or_equal(((shared.sum(axis=1) - 1) / (k - 1)) ** power)


def referee_weights(ranks: np.ndarray, referee: np.ndarray, n_top: int,
                    power: float = REFEREE_POWER) -> np.ndarray:
    """Weights summing to 1: how much of each detector's top ``n_top`` the referee shares.

    ``ranks`` is (n_detectors, n_samples), ``referee`` (n_samples,), higher = more likely
    mislabeled. A detector's weight is the share of its ``n_top`` highest-ranked samples
    that are among the referee's ``n_top`` highest, raised to ``power``. If the referee's
    mistakes are independent of the detectors', the share grows with the detector's own
    precision, whether or not the other detectors make its mistakes too. With one
    detector, ``n_top`` < 1, or no overlap at all, the weights are equal.

    Examples
    --------
    >>> r = np.array([[.25, .5, .75, 1.], [1., .75, .5, .25]])
    >>> referee_weights(r, np.array([0., .1, .8, .9]), 2, power=1)
    array([1., 0.])
    """
    k, n = ranks.shape
    if k == 1 or n_top < 1:
        return np.full(k, 1 / k)
    m = min(int(n_top), n)
    top = _top(ranks, m)
    judged = _top(np.asarray(referee, dtype=float)[None], m)[0]
    return _normalise_or_equal(((top & judged).sum(axis=1) / m) ** power)


def seat_referee(weights: np.ndarray, ranks: np.ndarray, referee: np.ndarray,
                 seat: float = REFEREE_SEAT) -> np.ndarray:
    """The weighted mean of the detectors' ranks with the referee's own ranks among them.

    ``weights`` (summing to 1) weigh the rows of ``ranks``, (n_detectors, n_samples); the
    referee's rank-normalised score joins them with ``seat`` times the weight of an average
    detector. Where the detectors share a blind spot, a sample the referee ranks high still
    climbs; where the referee is the weaker judge, its one seat among several costs little.

    Examples
    --------
    >>> r = np.array([[.25, .5, .75, 1.], [.5, .25, .75, 1.]])
    >>> seat_referee(np.array([.5, .5]), r, np.array([4., 3., 2., 1.]), seat=2).round(3)
    array([0.688, 0.562, 0.625, 0.625])
    """
    w = np.append(weights, seat / len(weights))
    return (w / w.sum()) @ np.vstack([ranks, rank_normalise(np.asarray(referee, dtype=float))])


def _normalise_or_equal(w: np.ndarray) -> np.ndarray:
    """``w`` scaled to sum to 1; equal weights when it is all zero (nothing to go by)."""
    if w.sum() <= 0:
        return np.full(len(w), 1 / len(w))
    return w / w.sum()


def _top(ranks: np.ndarray, m: int) -> np.ndarray:
    """(k, n) bool: each row's ``m`` highest entries, ties broken by position."""
    top = np.zeros(ranks.shape, dtype=bool)
    np.put_along_axis(top, np.argsort(-ranks, axis=1, kind="stable")[:, :m], True, axis=1)
    return top


def build_report(
    sample_ids: np.ndarray,
    labels: np.ndarray,
    class_names: list,
    readable: np.ndarray,
    oof_proba: np.ndarray,
    results: list[DetectorResult],
    *,
    n_flag: int,
    rule: str = "jury",
    referee: np.ndarray | None = None,
    neighbours: np.ndarray | None = None,
    baselines: list[DetectorResult] = (),
    ood_on_top: bool = True,
) -> pd.DataFrame:
    """The per-sample report: one row per sample, readable or not.

    ``oof_proba``, ``referee`` and the results cover the readable samples only; unreadable
    rows get ``issue = "unreadable"``, no scores, and are never ``is_noisy``. ``results``
    are merged into ``noise_score`` and ``is_noisy`` (weighed against ``referee``, which
    gets the column ``neighbour_disagreement``); ``baselines`` only get their columns, for
    comparison. The ``n_flag`` highest merged scores are flagged; the flagged samples that
    ``linear_separation`` flags and no class explains are ``out_of_distribution``, and with
    ``ood_on_top`` so are those it singles out more strongly (``OOD_ON_TOP_Z``,
    ``OOD_ON_TOP_MIN``), flagged besides; without it (the user fixed the number flagged)
    nothing is added. With ``neighbours`` (each readable sample's nearest readable samples,
    as indices among them), ``suggestion_support`` is the share of them labelled with the
    suggested label and ``suggestion_backed`` whether no other label is more common among
    them (:func:`cleanlab_ng.neighbours.label_support`), the check ``--fix relabel`` makes
    before it takes a suggestion.
    """
    n = len(sample_ids)
    names = np.asarray(class_names, dtype=object)
    score, flag = merge_scores(results, n_flag=n_flag, rule=rule, referee=referee)
    predicted = np.asarray(labels).copy()
    predicted[readable] = oof_proba.argmax(axis=1)

    noise_score = np.full(n, np.nan)
    noise_score[readable] = score
    ood = np.zeros(n, dtype=bool)
    separation = next((r for r in results if r.name == "linear_separation"), None)
    if separation is not None:
        p_sep = separation.evidence["separation"]
        strong = robust_outliers(p_sep, OOD_ON_TOP_Z) & (p_sep > OOD_ON_TOP_MIN)
        candidates = separation.flag & (flag | (strong & ood_on_top))
        ood[readable] = out_of_distribution(candidates, labels[readable], oof_proba)
    is_noisy = ood.copy()  # the count estimates wrong labels; foreign samples come on top
    is_noisy[readable] |= flag
    issue = np.where(readable, np.where(is_noisy, "mislabeled", "clean"), "unreadable")
    issue = np.where(ood, "out_of_distribution", issue)
    suggested = np.where(is_noisy & ~ood, predicted, labels)
    frame = pd.DataFrame({
        "sample_id": sample_ids,
        "given_label": names[labels],
        "predicted_label": np.where(readable, names[predicted], None),
        "suggested_label": names[suggested],
        "noise_score": noise_score,
        "is_noisy": is_noisy,
        "issue": pd.Categorical(issue, categories=ISSUES),
    })
    if neighbours is not None:
        share, backed = label_support(neighbours, labels[readable], suggested[readable])
        frame.insert(4, "suggestion_support", _spread(share, readable, np.nan))
        frame.insert(5, "suggestion_backed", _spread(backed, readable, False))
    if referee is not None:
        frame["neighbour_disagreement"] = _spread(referee, readable, np.nan)
    for r in [*results, *baselines]:
        frame[f"{r.name}_score"] = _spread(r.score, readable, np.nan)
        frame[f"{r.name}_flag"] = _spread(r.flag, readable, False)
        for key, value in r.evidence.items():
            fill = np.nan if np.issubdtype(np.asarray(value).dtype, np.floating) else -1
            frame[f"{r.name}_{key}"] = _spread(value, readable, fill)
    return _restore_label_dtypes(frame, class_names)


def out_of_distribution(candidates: np.ndarray, labels: np.ndarray,
                        proba: np.ndarray) -> np.ndarray:
    """Which candidates no class explains: they are to be removed, not relabelled.

    ``candidates`` are the samples ``linear_separation`` flags: in a region of the embedding
    that the small-loss split calls noisy, among neighbours labelled otherwise. LSA's own
    sub-typing (Trainer_PLS, PaulAlbert31/LSA @1b2ca0cd) splits its noisy set by a
    two-component GMM on the pseudo-loss ``-log max_c p(c|x)``; ours asks the same question
    of the out-of-fold probabilities through confident learning's per-class thresholds: a
    candidate is out of distribution when no class reaches its threshold (it is confidently
    *no* class, where a wrong label is confidently *another* class). Tried by hand on
    ``benchmarks/detectors.py`` (b), among all the samples ``linear_separation`` flags, the
    GMM typed 206 of the 424 foreign images as out of distribution, this rule 317.
    """
    return candidates & (confident_guess(labels, proba) < 0)


def _spread(values: np.ndarray, readable: np.ndarray, fill) -> np.ndarray:
    values = np.asarray(values)
    out = np.full(len(readable), fill, dtype=np.result_type(values.dtype, type(fill)))
    out[readable] = values
    return out


def _restore_label_dtypes(frame: pd.DataFrame, class_names: list) -> pd.DataFrame:
    # class names are kept as given: integer labels stay integers in every output
    if all(isinstance(c, (int, np.integer)) for c in class_names):
        for col in ("given_label", "suggested_label"):
            frame[col] = frame[col].astype(np.int64)
        frame["predicted_label"] = frame["predicted_label"].astype("Int64")
    return frame
