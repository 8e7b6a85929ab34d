"""Confidence drop under label-free adaptation ("wisdom of crowds") -- Lee, Das, Choo, Choi,
ICCV 2023, arXiv 2308.06879, transferred from test-time adaptation to training labels.

Flags:      samples whose given label loses confidence when a model that never saw them is
            adapted to them by entropy minimisation.
Signal:     entropy minimisation raises the confidence of predictions that agree with the
            "crowd" of similar samples and lowers it for samples out of line with it; a
            wrong label is out of line with the crowd of its true class.
Fails when: near-duplicate clusters of wrong labels form their own crowd; the source model
            is too weak for its predictions to carry a crowd at all.
Reference:  no official code; the rule is the paper's (abstract, Fig. 6 caption), the loss
            as re-implemented in gaozhengqing/UniEnt @af7faa8c cifar/ostta.py; detectors.md §4.

Taken from the paper: the comparison of the adapted with the original model's confidence
as a per-sample dynamic threshold, the selection of samples whose confidence in the
original prediction did not drop, the entropy loss with the diversity term, one pass over
an unlabeled stream, and the optional entropy gate ``H > 0.4 ln C`` (EATA's, unverified for
this paper). Our transfer: the original model is an out-of-fold head, the stream is its
held-out fold (so, as in TTA, the model has never trained on the samples it adapts to),
and the confidence compared is that of the *given* label (rule D1) -- or, rule D2, of the
source prediction when it disagrees with the given label. The literal transfer between two
snapshots of the training run is at chance (findings.md §3: AUROC .46-.55), because there
nothing is adapted without labels; ``snapshot_drop`` keeps it measurable beside ours.
"""

from __future__ import annotations

import numpy as np

from ..train.record import TrainingRecord
from ._result import DetectorResult

REQUIRES = ("adaptation",)
RULES = ("d1", "d2")


def detect(record: TrainingRecord, *, rule: str = "d1", gate: bool = False,
           drift_correction: bool = False) -> DetectorResult:
    """Drop of the given label's confidence from the source to the adapted head.

    Parameters
    ----------
    record : TrainingRecord
        Reads ``record.adaptation.source`` and ``.adapted`` (out-of-fold probabilities).
    rule : {"d1", "d2"}, default="d1"
        ``d1``: flag ``delta > 0``, where ``delta = p_source(y) - p_adapted(y)``.
        ``d2``: flag when the source predicts another class and adaptation did not lower
        the confidence in it (the crowd sustains the contradiction).
    gate : bool, default=False
        Do not flag samples whose adapted entropy exceeds ``0.4 ln C`` (unreliable).
    drift_correction : bool, default=False
        Subtract the median ``delta`` of each given class (a global confidence drift).

    Returns
    -------
    DetectorResult
        score = (1 + delta) / 2, higher = more likely mislabeled (0.5 = unchanged).

    References
    ----------
    .. [1] J. Lee, D. Das, J. Choo, S. Choi. "Towards Open-Set Test-Time Adaptation
       Utilizing the Wisdom of Crowds in Entropy Minimization." ICCV 2023.
    """
    if rule not in RULES:
        raise ValueError(f"unknown confidence_drop rule {rule!r}; use one of {RULES}")
    ad = record.require("adaptation", "confidence_drop")
    labels = record.labels
    delta = given_label_drop(ad.source, ad.adapted, labels)
    if drift_correction:
        delta = delta - _class_medians(delta, labels, record.n_classes)
    if rule == "d1":
        flag = delta > 0
    else:
        rows = np.arange(len(labels))
        c_o = ad.source.argmax(1)
        flag = (c_o != labels) & (ad.adapted[rows, c_o] >= ad.source[rows, c_o])
    entropy = -(ad.adapted * np.log(np.clip(ad.adapted, 1e-12, 1))).sum(1)
    uncertain = entropy > 0.4 * np.log(record.n_classes)
    if gate:
        flag = flag & ~uncertain
    rows = np.arange(len(labels))
    return DetectorResult(
        "confidence_drop", score=np.clip((1 + delta) / 2, 0, 1), flag=flag,
        evidence={"p_source": ad.source[rows, labels], "p_adapted": ad.adapted[rows, labels],
                  "delta": delta, "uncertain": uncertain},
        diagnostics={"rule": rule, "gate": gate, "uncertain": int(uncertain.sum())},
    )


def given_label_drop(before: np.ndarray, after: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``p_before(y) - p_after(y)`` for every sample: positive = the given label lost.

    Examples
    --------
    >>> before = np.array([[0.6, 0.4], [0.3, 0.7]])
    >>> after = np.array([[0.8, 0.2], [0.5, 0.5]])
    >>> given_label_drop(before, after, np.array([0, 1]))
    array([-0.2,  0.2])
    """
    rows = np.arange(len(labels))
    return before[rows, labels] - after[rows, labels]


def snapshot_drop(record: TrainingRecord) -> np.ndarray:
    """The literal D1 of detectors.md §4 between the proxy run's snapshots t0 and t1."""
    dyn = record.require("dynamics", "confidence_drop")
    return given_label_drop(dyn.snapshots[0], dyn.snapshots[1], record.labels)


def _class_medians(delta: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    medians = np.zeros(n_classes)
    for c in range(n_classes):
        if (labels == c).any():
            medians[c] = np.median(delta[labels == c])
    return medians[labels]
