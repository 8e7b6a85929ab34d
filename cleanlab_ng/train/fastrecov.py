"""Stage ``fastrecov``: fastReCoV on the timm backbone trained end to end (``--finetune``).

ReCoV needs thousands of cross-validation runs, affordable with heads on frozen features but
not when the proxy is the fine-tuned network. fastReCoV (v2 of the paper) makes ten runs
count: each run trains K fold models (dropping from their training part a random 80 % of the
samples identified so far), reads every sample's held-out probability of its given label,
folds it into an exponential moving average ("memory"), and draws the next split by
weighted sampling on that memory, so that the lowest-memory samples share the "worst" fold
and the highest the "best" one. Samples whose memory ends at or below 0.3 are identified.

Reference: GJiananChen/ReCoV @24de7f65, cifar10n/cifar_fastrecov.py (constants, memory,
identification) and @647bbfb2 utils/sample.py (re-split); detectors.md §2. The held-out
probabilities, averaged over the runs, stand in for the out-of-fold probabilities of the
record (detectors.md §7.1: with a deep proxy, fastReCoV replaces stage C). The first split
is a random, unstratified K-fold as in the code. Each fold model is the ``--finetune``
proxy (backbone and a new linear classifier, :mod:`cleanlab_ng.train.finetune`) trained for
``epochs`` epochs at constant learning rate where the authors fit a logistic regression.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..backbones import Backbone
from ..noise_count import estimate_noise_count
from .finetune import Schedule, predict_proba, proxy_model, train_epoch
from .record import FastRecov

N_RUNS = 10  # cifar_fastrecov.py: N_RUNS
TAU = 0.1  # TAU: temperature of the weighted re-split
THRESHOLD = 0.3  # MEMORY_NOISE_THRES
DROP = 0.8  # NOISY_DROP: share of the identified samples left out of each fold's training
DECAY = 0.7  # rank_weights: memory = 0.3 * weights + 0.7 * memory

Progress = Callable[[int, int], None]


def train_fastrecov(
    images: np.ndarray,
    labels: np.ndarray,
    backbone: Backbone,
    *,
    n_classes: int,
    n_folds: int = 5,
    n_runs: int = N_RUNS,
    schedule: Schedule = Schedule(),
    seed: int = 0,
    device: str = "cpu",
    on_run: Progress | None = None,
) -> FastRecov:
    """Stage ``fastrecov``: ``n_runs`` runs of K fine-tuned fold models with a memory.

    Parameters
    ----------
    images : ndarray of uint8, shape (n_samples, S, S, 3)
    labels : ndarray of shape (n_samples,)
    backbone : Backbone
    n_classes : int
    n_folds : int, default=5
    n_runs : int, default=10
        The authors' N_RUNS.
    schedule : Schedule
        How every fold model trains.
    seed : int, default=0
        Seeds the first split, the drops, the re-splits and every fold model.
    device : str, default="cpu"
    on_run : callable, default=None
        ``on_run(runs_done, n_runs)``.

    Returns
    -------
    FastRecov
    """
    n = len(labels)
    rng = np.random.default_rng([seed, 4])
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2)
    y = torch.as_tensor(labels)
    folds = rng.permutation(n) % n_folds
    memory = np.zeros(n)
    identified = np.zeros(0, dtype=np.int64)
    proba_sum = np.zeros((n, n_classes))
    for run in range(n_runs):
        p_given = np.empty(n)
        for k in range(n_folds):
            held = folds == k
            train = ~held
            train[rng.permutation(identified)[:int(DROP * len(identified))]] = False
            model, normalise = proxy_model(backbone, n_classes, seed * 10_007 + run * n_folds + k,
                                           device)
            opt = schedule.optimizer(model)
            train_rows = torch.as_tensor(np.flatnonzero(train))
            for _ in range(schedule.epochs):
                train_epoch(model, opt, normalise, pixels, y, train_rows,
                            batch_size=schedule.batch_size, gen=gen)
            rows = np.flatnonzero(held)
            proba = predict_proba(model, normalise, pixels, torch.as_tensor(rows),
                                  batch_size=schedule.batch_size)
            proba_sum[rows] += proba
            p_given[rows] = proba[np.arange(len(rows)), labels[rows]]
        memory = (1 - DECAY) * (1 - (p_given.max() - p_given)) + DECAY * memory
        folds = resplit(memory, n_folds, TAU, rng)
        identified = np.flatnonzero(memory <= THRESHOLD)
        if on_run:
            on_run(run + 1, n_runs)
    proba = (proba_sum / n_runs).astype(np.float32)
    return FastRecov(memory=memory, proba=proba, noise_count=estimate_noise_count(labels, proba),
                     n_runs=n_runs, n_folds=n_folds, threshold=THRESHOLD)


def resplit(memory: np.ndarray, n_folds: int, tau: float,
            rng: np.random.Generator) -> np.ndarray:
    """The next split: weighted sampling without replacement with ``softmax(memory / tau)``.

    The first ``N // K`` samples drawn form the "best" fold (0), the last ones the "worst"
    fold (K - 1), the rest are cut into K - 2 folds in drawing order (utils/sample.py).
    Sampling uses Gumbel keys, which draws the same ordering distribution as the code's
    ``np.random.choice(replace=False, p=...)``.

    Examples
    --------
    >>> folds = resplit(np.array([0.9, 0.1, 0.5, 0.8, 0.2]), 5, 1e-6, np.random.default_rng(0))
    >>> folds.tolist()  # tau ~ 0: sorted by memory, highest first
    [0, 4, 2, 1, 3]
    """
    n = len(memory)
    keys = memory / tau + rng.gumbel(size=n)
    ordering = np.argsort(-keys, kind="stable")
    size = n // n_folds
    folds = np.empty(n, dtype=np.int64)
    folds[ordering[:size]] = 0
    rest = ordering[size:(n_folds - 1) * size]
    chunk = int(np.ceil(len(rest) / (n_folds - 2))) if n_folds > 2 else len(rest)
    folds[rest] = 1 + np.arange(len(rest)) // max(chunk, 1)
    folds[ordering[(n_folds - 1) * size:]] = n_folds - 1
    return folds
