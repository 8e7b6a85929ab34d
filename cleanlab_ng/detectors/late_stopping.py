"""Late Stopping: first-time k-epoch learning (FkL) -- Yuan, Feng, Liu, ICCV 2023.

Flags:      the samples that are last to be predicted as their given label for k
            consecutive epochs.
Signal:     mislabeled examples take longer to be fitted consistently than clean ones,
            even clean-but-hard ones.
Fails when: whole classes are learned late (they are removed disproportionately), or the
            run memorises so fast that every sample meets FkL in the first epochs.
Reference:  tmllab/2023_ICCV_LateStopping @dc460a1f, main_cifar10_noise_ratio=20.py
            L430-478 (FkL), the round loop; detectors.md §3.

Two modes. *Single run* (default, no extra training): FkL with k = 2 counted from the
first epoch whose training accuracy beats always answering the most common label, up to
the proxy run's ``read_epoch``. The paper's 7-epoch warm-up is not applied because a head
on frozen features memorises within that many epochs (findings.md §2: FkL falls to chance
with it); but the first epochs of a small dataset come from a head that has not learned
anything yet, and a wrong label that its arbitrary prediction happens to match counts as
learned at once. On wine (178 samples, 3 classes, 20 % noise) skipping those epochs raised
the AUROC from 0.67-0.71 (benchmarks/results/detectors.md at 0332e29) to 0.90-0.95 (at
7c76a03) and left digits, where the first epoch already beats the majority rate, at 0.963
and 0.989 in both. *Multi-round* (when the record has the ``rounds`` stage): the paper's
iterated procedure, the head re-initialised every round and the latest learners removed.
Samples never learned tie in FkL; our choice is to break the tie by the mean margin of the
given label over the same epochs (how far from being learned a sample stayed), which
separates pair-flipped labels better than the probability of the given label does.
"""

from __future__ import annotations

import numpy as np

from ..ranks import average_ranks
from ..train.record import TrainingRecord
from ._result import DetectorResult, flag_top

REQUIRES = ("dynamics", "oof")


def detect(record: TrainingRecord, *, k: int = 2) -> DetectorResult:
    """Rank samples by how late they are first learned for ``k`` consecutive epochs.

    Parameters
    ----------
    record : TrainingRecord
        Reads ``record.dynamics.pred`` and ``margin`` up to ``read_epoch``; the
        ``rounds`` stage when present; ``record.oof.noise_count`` for the flag.
    k : int, default=2
        Consecutive epochs (single-run mode); detectors.md §3 picks 2 as the compromise
        between jittery k = 1 and slow k = 3.

    Returns
    -------
    DetectorResult
        Single run: score = rank percentile of (FkL, then lower margin), higher = more
        likely mislabeled; flag = the ``noise_count`` latest learners. Multi-round: score =
        (R - r + 1) / R for a sample removed in round r, and below 1 / (2R) for kept ones;
        flag = removed in any round.

    References
    ----------
    .. [1] S. Yuan, L. Feng, T. Liu. "Late Stopping: Avoiding Confidently Learning from
       Mislabeled Examples." ICCV 2023.
    """
    dyn = record.require("dynamics", "late_stopping")
    ok = dyn.pred[:dyn.read_epoch + 1] == record.labels[None, :]
    majority = np.bincount(record.labels).max() / record.n_samples
    first = int(np.argmax(ok.mean(axis=1) > majority))  # 0 when no epoch beats it
    window = slice(first, dyn.read_epoch + 1)
    ok = ok[window]
    fkl = first_k_epoch_learning(ok, k)
    confidence = dyn.margin[window].mean(axis=0)
    if record.rounds is not None:
        return _multi_round(record, fkl)
    score = late_learner_rank(fkl, confidence)
    n_flag = record.require("oof", "late_stopping").noise_count
    return DetectorResult(
        "late_stopping", score=score, flag=flag_top(score, n_flag),
        evidence={"fkl_epoch": np.where(np.isfinite(fkl), fkl, -1).astype(np.int64)},
        diagnostics={"mode": "single_run", "k": k, "first_epoch": first,
                     "epochs": int(dyn.read_epoch + 1 - first),
                     "never_learned": int((~np.isfinite(fkl)).sum())},
    )


def first_k_epoch_learning(ok: np.ndarray, k: int) -> np.ndarray:
    """First epoch ending a run of ``k`` consecutive correct predictions (inf if none).

    Parameters
    ----------
    ok : ndarray of bool, shape (n_epochs, n_samples)
        Whether each epoch predicted the given label.
    k : int

    Returns
    -------
    ndarray of float, shape (n_samples,)

    Examples
    --------
    >>> ok = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=bool)
    >>> first_k_epoch_learning(ok, 2)
    array([ 1.,  2., inf])
    """
    run = np.zeros(ok.shape[1], dtype=np.int64)
    fkl = np.full(ok.shape[1], np.inf)
    for epoch, row in enumerate(ok):
        run = np.where(row, run + 1, 0)
        fkl = np.where((run >= k) & np.isinf(fkl), epoch, fkl)
    return fkl


def late_learner_rank(fkl: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Rank percentile in (0, 1] by FkL, ties broken by lower confidence (latest = 1)."""
    order = np.lexsort((-confidence, fkl))
    rank = np.empty(len(fkl))
    rank[order] = np.arange(1, len(fkl) + 1)
    return rank / len(fkl)


def _multi_round(record: TrainingRecord, fkl: np.ndarray) -> DetectorResult:
    rounds = record.rounds
    R = rounds.n_rounds
    removed = rounds.removed_in > 0
    kept_rank = average_ranks(np.where(np.isfinite(rounds.last_fkl), rounds.last_fkl,
                                       np.nanmax(np.where(np.isfinite(rounds.last_fkl),
                                                          rounds.last_fkl, 0)) + 1))
    kept_rank = kept_rank / len(kept_rank)
    score = np.where(removed, (R - rounds.removed_in + 1) / R, kept_rank / (2 * R))
    return DetectorResult(
        "late_stopping", score=score, flag=removed,
        evidence={"removed_in_round": rounds.removed_in.astype(np.int64),
                  "fkl_epoch": np.where(np.isfinite(fkl), fkl, -1).astype(np.int64)},
        diagnostics={"mode": "multi_round", "rounds": R, "keep_ratio": rounds.keep_ratio},
    )
