"""Whether the proxy learnt enough of the labels for its flags to mean anything.

Every detector reads a proxy trained on the given labels. When the features carry nothing
of what the labels say (the wrong columns, an unrelated embedding), the proxy falls back on
the class frequencies, its out-of-fold probabilities are the prior, and confident learning's
count still finds "wrong" labels in plenty: on 600 rows of random features the tool flagged
49-60 % of them. Users ask for exactly this check (users.md #6, cleanlab #66, #801).

A proxy that does beat the class frequencies can still tell too few classes apart: then the
count swells past what any benchmark set was estimated at, and the estimate is called
implausible. And how strong the proxy is decides whether its suggested labels are worth
taking (``--fix relabel``): see :func:`proxy_strength`.
"""

from __future__ import annotations

import math

import numpy as np

# our choice: a one-sided test at 1 %, so that a proxy that does learn the labels, however
# noisy, is never called weak by chance, and one that only echoes the class frequencies is
MAX_P_VALUE = 0.01
# benchmarks/results/fix.md: where the proxy's strength was 0.92-0.96 (the demo folder and the
# tables) the suggestions the neighbours back were right 96-99 % of the time; at 0.81-0.84
# (the music table, CIFAR-10N) 49-66 %, and `remove` left fewer wrong labels than `relabel`.
# Our threshold lies between the two groups.
RELABEL_MIN_STRENGTH = 0.88
# our choice: above the highest estimate on any benchmark set (0.49, wine with 40 % pair noise,
# benchmarks/results/synthetic.json), with a margin. A proxy that tells few classes apart
# inflates the estimate past it, as tests/test_pipeline.py shows on two pixel columns of
# digits with 20 % of the labels wrong
MAX_PLAUSIBLE_NOISE_RATE = 0.55


def weak_proxy(labels: np.ndarray, proba: np.ndarray) -> dict:
    """Compare the proxy's out-of-fold accuracy with always answering the commonest class.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        Given labels (class indices).
    proba : ndarray of shape (n_samples, n_classes)
        Out-of-fold probabilities.

    Returns
    -------
    dict
        ``accuracy``; ``majority_accuracy``, the share of the commonest label;
        ``p_value`` of a one-sided binomial test that the proxy does better; ``weak``, True
        when it does not at ``MAX_P_VALUE``.

    Examples
    --------
    >>> labels = np.array([0, 0, 0, 1] * 25)
    >>> weak_proxy(labels, np.tile([0.75, 0.25], (100, 1)))["weak"]
    True
    >>> weak_proxy(labels, np.eye(2)[labels])["weak"]
    False
    """
    labels = np.asarray(labels)
    n = len(labels)
    correct = int((proba.argmax(axis=1) == labels).sum())
    majority = float(np.bincount(labels).max() / n)
    p_value = binomial_tail(correct, n, majority)
    return {"accuracy": correct / n, "majority_accuracy": majority,
            "p_value": p_value, "weak": bool(p_value > MAX_P_VALUE)}


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), 0 < p < 1, summed exactly in log space.

    Not scipy.stats.binomtest: importing scipy.stats costs about a second, which a run that
    needs nothing else from it (``--detectors recov``) should not pay.

    Examples
    --------
    >>> round(binomial_tail(8, 10, 0.5), 4)  # (45 + 10 + 1) / 1024
    0.0547
    """
    if k <= 0:
        return 1.0
    j = np.arange(k, n + 1)
    log_choose = math.lgamma(n + 1) - np.vectorize(math.lgamma)(j + 1.0) - np.vectorize(
        math.lgamma)(n - j + 1.0)
    log_pmf = log_choose + j * math.log(p) + (n - j) * math.log1p(-p)
    top = log_pmf.max()
    return float(min(1.0, math.exp(top) * np.exp(log_pmf - top).sum()))


def proxy_strength(accuracy: float, noise_rate: float) -> float:
    """The proxy's out-of-fold accuracy on the given labels over the share of them estimated
    right: roughly its accuracy on the correctly labelled samples, what its suggestions for
    the others rest on. A proxy that learns the classes stays near 1 at any noise rate.

    Examples
    --------
    >>> round(proxy_strength(0.6, 0.25), 3)
    0.8
    """
    return accuracy / max(1.0 - noise_rate, 1e-12)


def run_warnings(check: dict, noise_rate: float, strength: float, *,
                 relabels: bool) -> list[str]:
    """The summary's ``warnings``: a proxy too weak to trust (:func:`weak_proxy`), or else an
    estimate above ``MAX_PLAUSIBLE_NOISE_RATE`` and, when ``relabels``, a proxy below
    ``RELABEL_MIN_STRENGTH``.

    Examples
    --------
    >>> strong = {"weak": False}
    >>> run_warnings(strong, 0.2, 0.95, relabels=True)
    []
    >>> [w.split(":")[0][:22] for w in run_warnings(strong, 0.7, 0.8, relabels=True)]
    ['the run estimates 70% ', '--fix relabel']
    """
    if check["weak"]:
        return [weak_proxy_message(check)]
    found = []
    if noise_rate > MAX_PLAUSIBLE_NOISE_RATE:
        found.append(implausible_noise_message(noise_rate))
    if relabels and strength < RELABEL_MIN_STRENGTH:
        found.append(weak_relabel_message(strength))
    return found


def weak_relabel_message(strength: float) -> str:
    """One line for ``warnings`` when ``--fix relabel`` meets a proxy below
    ``RELABEL_MIN_STRENGTH``."""
    return (f"--fix relabel: the proxy is right on about {strength:.0%} of the labels it counts "
            f"as right (strength below {RELABEL_MIN_STRENGTH}); on data like this its suggestions "
            "backed by the neighbours were right only about half the time in our benchmarks, "
            "and --fix remove left fewer wrong labels in cleaned/.")


def implausible_noise_message(noise_rate: float) -> str:
    """One line for ``warnings`` when the estimated noise rate is above
    ``MAX_PLAUSIBLE_NOISE_RATE``."""
    return (f"the run estimates {noise_rate:.0%} of the labels wrong, more than on any dataset "
            "of our benchmarks (at most 49 %, with 40 % wrong). A proxy that tells few of the "
            "classes apart inflates the estimate: check the features (the columns, "
            "--text-column or --backbone) before trusting the flags.")


def weak_proxy_message(check: dict) -> str:
    """One line for the terminal and the summary's ``warnings``."""
    return (f"the proxy does not predict the given labels clearly better than always "
            f"answering the commonest class (out-of-fold accuracy {check['accuracy']:.1%} "
            f"against {check['majority_accuracy']:.1%}): the features carry too little of the "
            "labels for the flags to be trusted. Check the feature columns, --text-column or "
            "--backbone.")
