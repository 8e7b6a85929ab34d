"""How many labels are wrong: one estimate, shared by the merge, the summary and the exit code.

The estimate is the off-diagonal mass of the calibrated confident joint (Northcutt et al.,
JAIR 2021, eq. 1-2) computed on out-of-fold probabilities: a sample counts as "confidently
another class" when that class's probability reaches the class's own average self-confidence.
"""

from __future__ import annotations

import numpy as np


def confident_joint(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Calibrated confident joint ``CJ[given, true]`` of shape (n_classes, n_classes).

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        Given labels.
    proba : ndarray of shape (n_samples, n_classes)
        Out-of-fold predicted probabilities.

    Returns
    -------
    ndarray of float, rows summing to the per-class label counts, total n_samples.
    """
    n_samples, n_classes = proba.shape
    counts = np.bincount(labels, minlength=n_classes)
    sums = np.zeros(n_classes)
    np.add.at(sums, labels, proba[np.arange(n_samples), labels])
    thresholds = np.maximum(sums / np.maximum(counts, 1), 2e-6)
    above = proba >= thresholds - 1e-6
    confident = above.any(axis=1)
    # among the classes above their threshold, the most probable is the guess
    guess = np.where(above, proba, -np.inf).argmax(axis=1)
    cj = np.zeros((n_classes, n_classes))
    np.add.at(cj, (labels[confident], guess[confident]), 1.0)
    np.fill_diagonal(cj, np.maximum(np.diag(cj), 1.0))
    row = cj.sum(axis=1, keepdims=True)
    return cj / row * counts[:, None]


def estimate_noise_count(labels: np.ndarray, proba: np.ndarray) -> int:
    """Estimated number of wrong labels: the off-diagonal sum of :func:`confident_joint`.

    Examples
    --------
    >>> labels = np.array([0, 0, 0, 1, 1, 1])
    >>> proba = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.1, .9], [.7, .3]])
    >>> estimate_noise_count(labels, proba)
    2
    """
    cj = confident_joint(labels, proba)
    return int(round(cj.sum() - np.trace(cj)))
