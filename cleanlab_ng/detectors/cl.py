"""Confident learning, as cleanlab computes it -- a baseline, never merged.

Flags:      cleanlab 2.9's ``find_label_issues`` with its default rule
            (``prune_by_noise_rate``) on the out-of-fold probabilities.
Signal:     a sample whose held-out prediction is confidently another class, counted per
            class pair through the confident joint.
Fails when: the probabilities are not out-of-sample, or the proxy confuses whole classes.
Reference:  cleanlab/cleanlab @75062574, cleanlab/filter.py, count.py, rank.py;
            Northcutt, Jiang, Chuang, JAIR 2021; detectors.md §6.1.

This is cleanlab itself (Apache-2.0 since 2.9, the optional ``baseline`` extra), not a
re-implementation, so every report can show the method users already know, computed
exactly, beside our detectors. The pipeline keeps it out of the merged ``noise_score``
(``BASELINES`` in the registry): merging it would make the verdict confident learning
under another name.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings

import numpy as np

from ..train.record import TrainingRecord
from ._result import DetectorResult

REQUIRES: tuple[str, ...] = ()  # record.proba: the recov stage's if present, else oof's
log = logging.getLogger(__name__)


def available() -> bool:
    """Whether cleanlab is installed."""
    return importlib.util.find_spec("cleanlab") is not None


def detect(record: TrainingRecord) -> DetectorResult:
    """cleanlab's label issues and label-quality scores on the out-of-fold probabilities.

    Parameters
    ----------
    record : TrainingRecord
        Reads ``record.proba``: the out-of-fold probabilities averaged over the ``recov``
        repeats when that stage exists, else the ``oof`` stage's.

    Returns
    -------
    DetectorResult
        score = 1 - cleanlab's label quality (``self_confidence``, the probability of the
        given label), higher = more likely mislabeled; flag = ``find_label_issues``.
        Evidence ``quality``: cleanlab's own score, where higher means cleaner.

    References
    ----------
    .. [1] C. G. Northcutt, L. Jiang, I. L. Chuang. "Confident Learning: Estimating
       Uncertainty in Dataset Labels." JAIR 70, 2021.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels, proba = record.labels, record.proba.astype(np.float64)
    proba = proba / proba.sum(axis=1, keepdims=True)  # float32 rows can miss 1 by 1e-7
    # cleanlab warns through the warnings module (a class too small to flag in, say); that
    # goes to our log, one line, instead of a source line and a path on the user's terminal
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # n_jobs=1: cleanlab would otherwise start a process pool for every call
        flag = find_label_issues(labels, proba, n_jobs=1)
        quality = get_label_quality_scores(labels, proba)
    for message in dict.fromkeys(str(w.message) for w in caught):
        log.info("cl baseline (cleanlab): %s", message)
    return DetectorResult(
        "cl", score=np.clip(1 - quality, 0, 1), flag=np.asarray(flag, dtype=bool),
        evidence={"quality": quality},
        diagnostics={"filter_by": "prune_by_noise_rate", "rank_by": "self_confidence"},
    )
