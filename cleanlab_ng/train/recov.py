"""Stage ``recov``: many repeats of K-fold cross-fitting, for ReCoV (``detectors.md`` §2).

Every repeat draws a fresh stratified K-fold split, fits one ridge head per fold on the
other folds (:class:`~cleanlab_ng.train.heads.RidgeCrossFit`: all the repeats and folds of
a block in a few batched matmuls), scores its held-out fold, and records each fold's
accuracy on the given labels. The sample counts of the worst fold of each repeat make
ReCoV's noise histogram; the held-out probabilities, averaged over the repeats, feed
``predicted_label`` and the ``cl`` baseline.

Ridge scores are not probabilities: a softmax read-out ``softmax(s M + b)`` of the held-out
scores, fitted once on the first repeat by log-loss on the given labels, turns them into
probabilities, and its argmax is the prediction whose accuracy is the fold metric. Our
choice: the read-out is shared by all models, so each ``(r, k)`` is still a linear head
``x (W_rk M) + b'``; on CIFAR-10N embeddings it raised the ridge heads' out-of-fold accuracy
by 0.3 points and lowered their log-loss from 1.23 to 1.18, level with scikit-learn's tuned
LogisticRegression (benchmarks/results/recov.md). Like the choice of L2, it reads the
given labels of all samples, through C^2 + C parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy import stats

from ..noise_count import estimate_noise_count
from .heads import fit_linear_heads, prepare_ridge, repeated_folds, ridge_cross_fit_scores
from .record import Recov

# our choice: standardised features have X^T X / N ~ I, so these span no shrinkage to heavy
# shrinkage; on the benchmarks the choice ranged from 0.1 (CIFAR-10N) to 10.
RIDGE_L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
# our choice: a deterministic cap, so the same seed gives the same record on any machine.
MAX_RUNS = 8192
# adaptive stopping checks the counts at every doubling of the runs from here on
FIRST_CHECK = 256
# stop when the ranking by counts barely changes between R/2 and R runs (detectors.md §2)
STABLE_SPEARMAN = 0.99
READOUT_L2 = 1e-4  # our choice: the read-out has C^2 + C parameters and N samples
# our choice: the L2 strength and the C^2 + C read-out parameters need no more samples than
# this (on all 200,000 samples with C = 100 choosing them took 30 s of a 45 s stage)
READOUT_SAMPLES = 20_000
# our choice: at most this many bytes of gathered feature rows per block of repeats; more
# falls out of cache and runs slower per repeat
_BLOCK_BYTES = 1 << 23

Progress = Callable[[int, int], None]


def train_recov(
    X: torch.Tensor,
    labels: np.ndarray,
    *,
    n_classes: int,
    n_folds: int = 5,
    n_runs: int | None = None,
    max_runs: int = MAX_RUNS,
    seed: int = 0,
    l2_grid: tuple[float, ...] = RIDGE_L2_GRID,
    on_run: Progress | None = None,
) -> Recov:
    """Stage ``recov``: cross-fit ridge heads over many repeats and count worst-fold visits.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
    n_classes : int
    n_folds : int, default=5
        K; the paper uses 5 everywhere.
    n_runs : int or None, default=None
        Number of repeats R. None stops adaptively: at every doubling from
        ``FIRST_CHECK`` runs, once the Spearman correlation of the counts at R/2 and at R
        reaches ``STABLE_SPEARMAN``, or at ``max_runs``.
    max_runs : int, default=8192
    seed : int, default=0
        Seeds the folds of every repeat and the random tie-break between worst folds.
    l2_grid : tuple of float
        Ridge L2 strengths; the one with the lowest out-of-fold log-loss on the first
        repeat (after a temperature; on at most ``READOUT_SAMPLES`` samples) is used for all
        repeats.
    on_run : callable, default=None
        ``on_run(runs_done, runs_planned)`` after each block of repeats.

    Returns
    -------
    Recov
    """
    n_samples = len(labels)
    y = torch.as_tensor(labels, device=X.device)
    fit = prepare_ridge(X, y, n_classes=n_classes)
    first = repeated_folds(labels, n_folds, seed, range(1)).to(X.device)
    # the strength and the read-out are fitted on at most READOUT_SAMPLES of the samples
    subset = torch.as_tensor(np.sort(np.random.default_rng([seed, 5]).permutation(n_samples)[
        :READOUT_SAMPLES]), device=X.device)
    log_loss = np.array([_temperature_log_loss(ridge_cross_fit_scores(fit, first, l2)[0][
        :, subset], y[subset]) for l2 in l2_grid])
    best = int(np.argmin(log_loss))
    readout = fit_linear_heads(
        ridge_cross_fit_scores(fit, first, l2_grid[best])[0][:, subset].T.contiguous(),
        y[subset], torch.ones(1, len(subset), dtype=torch.bool, device=X.device),
        torch.tensor([READOUT_L2], dtype=X.dtype, device=X.device), n_classes=n_classes)
    # class-major like the scores: logits (C, N) = weight^T (C, C) @ scores (C, N) + bias
    weight_t, bias = readout.weight[0].T.contiguous(), readout.bias[0][:, None]

    planned = n_runs if n_runs is not None else max_runs
    block = max(1, _BLOCK_BYTES // (n_samples * X.shape[1] * X.element_size()))
    checks = [] if n_runs is not None else _checkpoints(max_runs)
    counts = np.zeros(n_samples, dtype=np.int64)
    proba_sum = torch.zeros(n_classes, n_samples, dtype=torch.float64, device=X.device)
    metrics, worst_folds, snapshots = [], [], {}
    stop_reason, stability, done = "fixed" if n_runs is not None else "max_runs", math.nan, 0
    while done < planned:
        end = min(done + block, planned, *[c for c in checks if c > done])
        folds = repeated_folds(labels, n_folds, seed, range(done, end)).to(X.device)
        logits = weight_t @ ridge_cross_fit_scores(fit, folds, l2_grid[best]) + bias
        # right when the given label's logit is the largest (argmax over a class axis of 10
        # is slow on CPU; a max over the class-major rows is not)
        correct = (logits.gather(1, y.expand(len(logits), 1, -1))[:, 0]
                   >= logits.amax(1)).to(X.dtype)
        proba_sum += torch.softmax(logits, dim=1).sum(0)
        metric = _fold_accuracy(correct, folds, n_folds)
        worst = _worst_folds(metric, seed, range(done, end))
        folds_np = folds.cpu().numpy()
        counts += (folds_np == worst[:, None]).sum(0)
        metrics.append(metric)
        worst_folds.append(worst)
        done = end
        if on_run:
            on_run(done, planned)
        if done in checks:
            snapshots[done] = counts.copy()
            if done // 2 in snapshots:
                stability = float(stats.spearmanr(snapshots[done // 2], counts)[0])
                if stability >= STABLE_SPEARMAN:
                    stop_reason = "stable"
                    break
    proba = (proba_sum / done).T.to(torch.float32).cpu().numpy()
    return Recov(
        counts=counts, fold_metric=np.concatenate(metrics), worst_fold=np.concatenate(
            worst_folds).astype(np.int8), proba=proba, l2_grid=np.asarray(l2_grid),
        log_loss=log_loss, l2=float(l2_grid[best]),
        noise_count=estimate_noise_count(labels, proba), n_runs=done, n_folds=n_folds,
        stop_reason=stop_reason, stability=stability,
    )


def _checkpoints(max_runs: int) -> list[int]:
    """FIRST_CHECK, 2 FIRST_CHECK, ... up to and including ``max_runs``."""
    checks, r = [], FIRST_CHECK
    while r < max_runs:
        checks.append(r)
        r *= 2
    return checks + [max_runs]


def _temperature_log_loss(scores: torch.Tensor, y: torch.Tensor) -> float:
    """Held-out log-loss of ``softmax(scores / T)`` (class-major) at the best temperature T."""
    temperatures = torch.logspace(-3, 1, 41, dtype=scores.dtype, device=scores.device)
    losses = [-torch.log_softmax(scores / t, dim=0).gather(0, y[None]).mean().item()
              for t in temperatures]
    return min(losses)


def _fold_accuracy(correct: torch.Tensor, folds: torch.Tensor, n_folds: int) -> np.ndarray:
    """Accuracy of each fold model on its held-out fold: (n_repeats, n_folds)."""
    hits = torch.zeros(folds.shape[0], n_folds, dtype=correct.dtype, device=folds.device)
    hits.scatter_add_(1, folds, correct)
    sizes = torch.zeros_like(hits).scatter_add_(1, folds, torch.ones_like(correct))
    return (hits / sizes).cpu().numpy()


def _worst_folds(metric: np.ndarray, seed: int, repeats: range) -> np.ndarray:
    """The fold with the lowest metric in each repeat, ties broken uniformly at random.

    The authors' ``argmin`` takes the first index on ties, which favours fold 0 whenever
    accuracies tie (detectors.md §2, known failure modes).
    """
    keys = np.stack([np.random.default_rng([seed, 3, r]).random(metric.shape[1])
                     for r in repeats])
    lowest = metric == metric.min(axis=1, keepdims=True)
    return np.argmax(np.where(lowest, keys, -1), axis=1)
