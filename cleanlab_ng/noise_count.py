"""How many labels are wrong: one estimate, shared by the merge, the summary and the exit code.

Two counts come from the confident joint of Northcutt et al. (JAIR 2021, eq. 1-2) on
out-of-fold probabilities, where a sample is "confidently another class" when that class's
probability reaches the class's own average self-confidence:

* the calibrated off-diagonal mass over-counts when the proxy is weak: clean samples that
  the proxy confuses with another class land off the diagonal (+7 to +54 % on CIFAR-10N
  with EfficientNet-Lite0 features, benchmarks/results/merge_study.md; cleanlab's own
  count is of this kind);
* the strict count -- confidently another class *and* not predicted as the given label,
  cleanlab's ``num_label_issues`` -- under-counts: the noisy samples that the proxy has
  partly learned are missed (-28 to -1 % on the synthetic suite at 40 % noise).

The truth lies between them, nearer the strict count the more the proxy confuses classes.
How much it confuses them shows in the samples predicted as another class without being
confidently that class: the share ``gap = (argmax count - calibrated count) / n``. Our
estimate is ``strict + w (calibrated - strict)`` with ``w = clip(W0 + W1 gap, 0, 1)``; the
two constants were fitted on the synthetic suite only (``python -m benchmarks.merge_study``,
section "count"; 4 datasets x symmetric/pair x 10/20/40 % noise), never on the real-noise
sets it is scored on. There it misses by 5.8 % on average against 8.6 % for the mean of
the two counts used before (at most 16.7 % for both).
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
    return _joint_from_guess(labels, confident_guess(labels, proba), proba.shape[1])


def _joint_from_guess(labels: np.ndarray, guess: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=n_classes)
    confident = guess >= 0
    cj = np.zeros((n_classes, n_classes))
    np.add.at(cj, (labels[confident], guess[confident]), 1.0)
    np.fill_diagonal(cj, np.maximum(np.diag(cj), 1.0))
    row = cj.sum(axis=1, keepdims=True)
    return cj / row * counts[:, None]


# fitted on the synthetic suite (module docstring): w = clip(W0 + W1 gap, 0, 1)
W0, W1 = 1.047, -9.397


def estimate_noise_count(labels: np.ndarray, proba: np.ndarray) -> int:
    """Estimated number of wrong labels: between the strict and the calibrated count,
    weighted by how much the proxy confuses classes (module docstring).

    Examples
    --------
    >>> labels = np.array([0, 0, 0, 1, 1, 1])
    >>> proba = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.1, .9], [.7, .3]])
    >>> estimate_noise_count(labels, proba)
    2
    """
    calibrated, strict, argmax = count_components(labels, proba)
    return int(round(blend(calibrated, strict, argmax, len(labels))))


def count_components(labels: np.ndarray, proba: np.ndarray) -> tuple[float, int, int]:
    """The three counts the estimate is made of (module docstring).

    Returns
    -------
    calibrated : float
        Off-diagonal mass of the calibrated confident joint.
    strict : int
        Confidently another class and not predicted as the given label.
    argmax : int
        Predicted as another class than the given one.
    """
    guess = confident_guess(labels, proba)
    cj = _joint_from_guess(labels, guess, proba.shape[1])
    disagree = proba.argmax(axis=1) != labels
    strict = int(np.sum((guess >= 0) & (guess != labels) & disagree))
    return float(cj.sum() - np.trace(cj)), strict, int(disagree.sum())


def blend(calibrated, strict, argmax, n, w0: float = W0, w1: float = W1):
    """``strict + w (calibrated - strict)``, ``w = clip(w0 + w1 (argmax - calibrated) / n, 0,
    1)``; scalars or arrays (the fit in ``benchmarks/count.py`` passes arrays)."""
    w = np.clip(w0 + w1 * (argmax - calibrated) / n, 0, 1)
    return strict + w * (calibrated - strict)


def confident_guess(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """The class each sample confidently belongs to, or -1 when none reaches its threshold."""
    n_samples, n_classes = proba.shape
    counts = np.bincount(labels, minlength=n_classes)
    sums = np.zeros(n_classes)
    np.add.at(sums, labels, proba[np.arange(n_samples), labels])
    thresholds = np.maximum(sums / np.maximum(counts, 1), 2e-6)
    above = proba >= thresholds - 1e-6
    # among the classes above their threshold, the most probable is the guess
    guess = np.where(above, proba, -np.inf).argmax(axis=1)
    return np.where(above.any(axis=1), guess, -1)
