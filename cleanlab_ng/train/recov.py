"""Stage ``recov``: many repeats of K-fold cross-fitting, for ReCoV (``detectors.md`` §2).

Every repeat draws a fresh stratified K-fold split, fits one ridge head per fold on the
other folds (:class:`~cleanlab_ng.train.heads.RidgeCrossFit`: all the repeats and folds of
a block in a few batched matmuls), scores its held-out fold, and records which fold did
worst. The sample counts of the worst folds make ReCoV's noise histogram; the held-out
probabilities, averaged over the first ``PROBA_RUNS`` repeats, feed ``predicted_label``, the
estimated number of wrong labels and the ``cl`` baseline.

Which fold is worst (``fold_metric``):

* ``accuracy`` -- the paper's: one worst fold per repeat, the one with the lowest accuracy
  on the given labels; every sample in it is counted.
* ``class_margin`` (default) -- ours: one worst fold per repeat *and class*, the one whose
  samples of that class have the lowest mean margin ``log p(given) - max_other log p``;
  the samples of that class in it are counted. Each sample then competes with the N/(K C)
  samples of its own class in its fold instead of all N/K, and with a margin instead of a
  0/1 hit, so one wrong label moves its fold's metric far more; a class's samples are
  judged against their own class, as confident learning's per-class thresholds do. Under
  "no effect" a sample is still in the worst fold of its class with probability 1/K (the
  folds are stratified), so the binomial null and the three rules are unchanged. On the
  synthetic sets of benchmarks/recov.py it raised recov's AUROC from 0.88-1.00 to
  0.93-1.00 at the same number of runs, and on CIFAR-10N from 0.77 to 0.86
  (benchmarks/results/recov.md).

Ridge scores are not probabilities: a softmax read-out ``softmax(s M + b)`` of the held-out
scores, fitted once on the first repeat by log-loss on the given labels, turns them into
probabilities. Our choice: the read-out is shared by all models, so each ``(r, k)`` is
still a linear head ``x (W_rk M) + b'`` (the read-out is folded into its weights); on
CIFAR-10N embeddings it raised the ridge heads' out-of-fold accuracy by 0.3 points and
lowered their log-loss from 1.23 to 1.18. With the Jacobi step of
:class:`~cleanlab_ng.train.heads.RidgeCrossFit` the heads stay 0.47 (PCA-256) to 0.97
(1280-d) points of accuracy below scikit-learn's tuned LogisticRegression on the same folds
(0.55 to 1.04 without it; benchmarks/results/recov.md, speed). Like the choice of L2, the
read-out reads the given labels of all samples, through C^2 + C parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..noise_count import estimate_noise_count
from ..ranks import spearman
from .heads import (
    in_sample_order,
    prepare_ridge,
    repeated_fold_orders,
    ridge_cross_fit,
)
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
# our choice: the held-out probabilities are averaged over at most this many repeats. The
# softmax and its scatter back to sample order were 0.6 s of a 1000-run stage; by hand, on
# the 20,000-sample speed cases of benchmarks/recov.py, the average over 128 repeats is
# within 0.0004 (mean) of the average over 1000, agrees on 99.8-99.9 % of the argmaxes, and
# moves the estimated number of wrong labels by under 0.4 %
PROBA_RUNS = 128
READOUT_L2 = 1e-4  # our choice: the read-out has C^2 + C parameters and N samples
# our choice: the L2 strength and the C^2 + C read-out parameters need no more samples than
# this (on all 200,000 samples with C = 100 choosing them took 30 s of a 45 s stage)
READOUT_SAMPLES = 20_000
# our choice: about this many bytes of held-out scores per block of repeats (the logits and
# probabilities take as much again each): ten repeats at N = 20k, C = 10 share each of the
# ~70 small tensor operations of a step, whose fixed cost would otherwise be paid per repeat
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
    fold_metric: str = "class_margin",
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
    fold_metric : {"class_margin", "accuracy"}, default="class_margin"
        Which fold is the worst (module docstring): per class by mean margin (ours), or
        per repeat by accuracy (the paper's).
    on_run : callable, default=None
        ``on_run(runs_done, runs_planned)`` after each block of repeats.

    Returns
    -------
    Recov
    """
    n_samples = len(labels)
    y = torch.as_tensor(labels, device=X.device)
    fit = prepare_ridge(X, y, n_classes=n_classes)
    first = repeated_fold_orders(labels, n_folds, seed, range(1)).to(X.device)
    # the strength and the read-out are fitted on at most READOUT_SAMPLES of the samples
    subset = torch.as_tensor(np.sort(np.random.default_rng([seed, 5]).permutation(n_samples)[
        :READOUT_SAMPLES]), device=X.device)

    def first_scores(l2: float) -> torch.Tensor:  # (C, len(subset))
        return in_sample_order(*ridge_cross_fit(fit, first, n_folds, l2), n_samples)[0][
            :, subset]

    candidates = [first_scores(l2) for l2 in l2_grid]
    log_loss = np.array([_temperature_log_loss(scores, y[subset]) for scores in candidates])
    best = int(np.argmin(log_loss))
    weight_t, bias = _fit_readout(candidates[best], y[subset], n_classes)
    del candidates

    planned = n_runs if n_runs is not None else max_runs
    block = max(1, _BLOCK_BYTES // (n_samples * n_classes * 4))
    checks = [] if n_runs is not None else _checkpoints(max_runs)
    by_class = fold_metric == "class_margin"
    # a class with fewer samples than folds leaves some folds without it (see _class_worst)
    class_counts = np.bincount(labels, minlength=n_classes)
    counts = torch.zeros(n_samples + 1, dtype=torch.int64, device=X.device)
    proba_sum = torch.zeros(n_classes, n_samples + 1, dtype=torch.float64, device=X.device)
    accuracies, metrics, worst_folds, snapshots = [], [], [], {}
    stop_reason, stability, done = "fixed" if n_runs is not None else "max_runs", math.nan, 0
    while done < planned:
        end = min(done + block, planned, *[c for c in checks if c > done])
        orders = repeated_fold_orders(labels, n_folds, seed, range(done, end)).to(X.device)
        logits, slots = ridge_cross_fit(fit, orders, n_folds, l2_grid[best],
                                        readout=(weight_t, bias))  # (C, R', K, M)
        slot_labels = fit.labels.take(slots)  # the padding's label is n_classes
        real = slot_labels < n_classes
        label_index = slot_labels.clamp(max=n_classes - 1)
        given = logits.gather(0, label_index[None])[0]
        top = logits.amax(0)
        # right when the given label's logit is the largest (argmax over the class axis is
        # slow on CPU; a max over the class rows is not)
        correct = (given >= top) & real
        accuracy = (correct.sum(2) / real.sum(2)).cpu().numpy()
        averaged = min(end, PROBA_RUNS) - done  # repeats of this block in the average
        if averaged > 0:
            proba = (logits[:, :averaged] - top[:averaged]).exp_()
            proba /= proba.sum(0)
            proba_sum += torch.zeros_like(proba_sum, dtype=proba.dtype).index_add_(
                1, slots[:averaged].reshape(-1), proba.reshape(n_classes, -1))
        if by_class:
            # the logits are not read again: mask the given class in place, no copy
            other = logits.scatter_(0, label_index[None], -torch.inf).amax(0)
            metric = _class_means(given - other, label_index, real, n_classes)  # (R', K, C)
            worst = _class_worst(metric, class_counts, seed, range(done, end))  # (R', C)
        else:
            metric = accuracy[:, :, None]
            worst = np.repeat(_worst_folds(accuracy, seed, range(done, end))[:, None],
                              n_classes, axis=1)
        # a slot is counted when its fold is the worst of its repeat for its class
        worst_t = torch.as_tensor(worst, device=X.device)
        fold_ids = torch.arange(n_folds, device=X.device)[None, :, None]
        in_worst = (worst_t.gather(1, label_index.flatten(1)).view_as(slots) == fold_ids) & real
        counts += torch.bincount(slots[in_worst], minlength=n_samples + 1)
        accuracies.append(accuracy)
        metrics.append(metric.astype(np.float32))
        worst_folds.append(worst)
        done = end
        if on_run:
            on_run(done, planned)
        if done in checks:
            snapshots[done] = counts[:n_samples].cpu().numpy().copy()
            if done // 2 in snapshots:
                stability = spearman(snapshots[done // 2], snapshots[done])
                if stability >= STABLE_SPEARMAN:
                    stop_reason = "stable"
                    break
    counts = counts[:n_samples].cpu().numpy()
    proba_sum = proba_sum[:, :n_samples]
    proba = (proba_sum / min(done, PROBA_RUNS)).T.to(torch.float32).cpu().numpy()
    return Recov(
        counts=counts, fold_accuracy=np.concatenate(accuracies),
        fold_metric=np.concatenate(metrics), worst_fold=np.concatenate(worst_folds).astype(
            np.int8), metric=fold_metric, proba=proba, l2_grid=np.asarray(l2_grid),
        log_loss=log_loss, l2=float(l2_grid[best]),
        noise_count=estimate_noise_count(labels, proba), n_runs=done, n_folds=n_folds,
        stop_reason=stop_reason, stability=stability,
    )


def _fit_readout(scores: torch.Tensor, y: torch.Tensor,
                 n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The softmax read-out ``softmax(s M + b)`` of class-major scores (C, N), by log-loss.

    Class-major like the scores: logits (C, N) = ``weight_t`` (C, C) @ scores + ``bias``
    (C, 1). Minimises ``mean_i CE + READOUT_L2 / 2 ||M||^2`` (bias unpenalised), scikit-learn's
    ``LogisticRegression`` objective, by L-BFGS to its tolerance (:func:`_lbfgs`): not
    through scikit-learn or scipy.optimize, which take about 1 s and 0.4 s to import, nor
    ``torch.optim``, which imports ``torch._dynamo`` on first use (2 s). One row of ``M`` per
    class present in ``y``.
    """
    S = scores.T.double().cpu().numpy()  # (N, C)
    classes, target = np.unique(y.cpu().numpy(), return_inverse=True)
    n, m = len(target), len(classes)
    rows = np.arange(n)
    # scikit-learn fits one logit for two classes; two rows, penalised twice as hard, are
    # the same model (the optimum has them opposite, each half the single row)
    l2 = READOUT_L2 * (2 if m == 2 else 1)

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weight, bias = theta[:-m].reshape(m, n_classes), theta[-m:]
        z = S @ weight.T + bias
        z -= z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        loss = (log_norm - z[rows, target]).mean() + 0.5 * l2 * (weight**2).sum()
        residual = np.exp(z - log_norm[:, None])
        residual[rows, target] -= 1
        residual /= n
        return loss, np.concatenate([(residual.T @ S + l2 * weight).ravel(),
                                     residual.sum(axis=0)])

    theta = _lbfgs(loss_and_gradient, np.zeros(m * (n_classes + 1)))
    weight = np.zeros((n_classes, n_classes))
    # a class missing from the read-out's samples: predicted with probability ~e^-30
    bias = np.full(n_classes, theta[-m:].min() - 30)
    weight[classes], bias[classes] = theta[:-m].reshape(m, n_classes), theta[-m:]
    return (torch.as_tensor(weight, dtype=scores.dtype, device=scores.device),
            torch.as_tensor(bias, dtype=scores.dtype, device=scores.device)[:, None])


def _lbfgs(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x: np.ndarray, *,
           tol: float = 1e-4, max_iter: int = 1000, history: int = 10) -> np.ndarray:
    """Minimise a smooth convex ``fun(x) -> (value, gradient)`` by L-BFGS.

    Two-loop recursion over the last ``history`` steps, backtracking (Armijo) line search
    from the full step. Stops when the largest gradient entry is below ``tol`` (scikit-learn's
    ``tol`` for lbfgs), when no step along the search direction lowers the value any more
    (float precision), or after ``max_iter`` steps.
    """
    value, grad = fun(x)
    steps: list[tuple[np.ndarray, np.ndarray, float]] = []  # (s, y, 1 / y.s)
    for _ in range(max_iter):
        if np.abs(grad).max() < tol:
            break
        direction = -grad
        alphas = []
        for s, y, rho in reversed(steps):
            alphas.append(rho * (s @ direction))
            direction = direction - alphas[-1] * y
        if steps:
            _, y, rho = steps[-1]
            direction = direction / (rho * (y @ y))
        else:  # first step: as long as the gradient, the largest entry at most 1
            direction = direction / max(1.0, np.abs(grad).max())
        for (s, y, rho), alpha in zip(steps, reversed(alphas)):
            direction = direction + (alpha - rho * (y @ direction)) * s
        slope, step = grad @ direction, 1.0
        while True:
            new_value, new_grad = fun(x + step * direction)
            if new_value <= value + 1e-4 * step * slope:
                break
            step /= 2
            if step < 1e-10:
                return x
        s, y = step * direction, new_grad - grad
        x, value, grad = x + s, new_value, new_grad
        if s @ y > 1e-12:  # curvature along the step: always, for a convex fun, up to rounding
            steps = [*steps[-(history - 1):], (s, y, 1 / (s @ y))]
    return x


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


def _class_means(values: torch.Tensor, label_index: torch.Tensor, real: torch.Tensor,
                 n_classes: int) -> np.ndarray:
    """Mean of ``values`` (R', K, slots) over each fold's samples of each class: (R', K, C);
    +inf where a fold holds no sample of the class, so that it is never the worst by value."""
    shape = (*values.shape[:2], n_classes)
    sums = torch.zeros(shape, dtype=torch.float64, device=values.device).scatter_add_(
        2, label_index, values.double().where(real, 0))
    sizes = torch.zeros(shape, dtype=torch.float64, device=values.device).scatter_add_(
        2, label_index, real.double())
    return (sums / sizes).where(sizes > 0, torch.inf).cpu().numpy()


def _class_worst(metric: np.ndarray, class_counts: np.ndarray, seed: int,
                 repeats: range) -> np.ndarray:
    """The worst fold of each repeat and class, (R', C): ties at random, and -1 (no sample
    counted) with probability (empty folds) / K for a class too small to reach every fold.

    A class of m < K samples is in only m folds; picking the worst of those alone would put
    each of its samples in the worst fold with probability 1/m. Picking an empty fold with
    probability (K - m) / K instead keeps the null at 1/K for every sample.
    """
    R, K, C = metric.shape
    worst = _worst_folds(metric.transpose(0, 2, 1).reshape(R * C, K), seed,
                         range(repeats.start * C, repeats.stop * C)).reshape(R, C)
    small = class_counts < K
    if small.any():
        empty_share = (K - class_counts[small]) / K
        for i, r in enumerate(repeats):
            draw = np.random.default_rng([seed, 4, r]).random(int(small.sum()))
            worst[i, np.flatnonzero(small)[draw < empty_share]] = -1
    return worst


def _worst_folds(metric: np.ndarray, seed: int, repeats: range) -> np.ndarray:
    """The fold with the lowest metric in each row, ties broken uniformly at random.

    Row ``i`` belongs to ``repeats[i]``, which seeds its tie-break.

    The authors' ``argmin`` takes the first index on ties, which favours fold 0 whenever
    accuracies tie (detectors.md §2, known failure modes).
    """
    lowest = metric == metric.min(axis=1, keepdims=True)
    worst = np.argmax(lowest, axis=1)
    for i in np.flatnonzero(lowest.sum(axis=1) > 1):  # a generator only where folds tie
        keys = np.random.default_rng([seed, 3, repeats[i]]).random(metric.shape[1])
        worst[i] = np.argmax(np.where(lowest[i], keys, -1))
    return worst
