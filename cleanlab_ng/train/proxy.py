"""Proxy training on the features: the stages of the :class:`TrainingRecord`.

* :func:`train_out_of_fold` -- K-fold heads for a grid of L2 strengths, all at once; the
  strength with the lowest out-of-fold log-loss on the *given* labels wins. No truth is
  needed, and under noise it is the largest single lever on detection quality
  (findings.md §1: +0.05 to +0.16 AUROC over scikit-learn's default).
* :func:`train_dynamics` -- one full-data run of a small head at that strength, recording
  every epoch, and the epoch at which it starts to memorise (findings.md §2);
  :func:`train_dynamics_runs` repeats it from other seeds on small datasets.
* :func:`train_rounds` -- multi-round Late Stopping on the same head (detectors.md §3).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..noise_count import estimate_noise_count
from .heads import cross_fit_softmax, kfold_assignment
from .record import Dynamics, OutOfFold, Rounds

# our choice: log-spaced, wide enough to cover the C = 1 ... 0.001 that scikit-learn users try
# (findings.md §1 chose C = 0.001 on 10k CIFAR embeddings, i.e. L2 ~ 0.1 here).
L2_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
# our choice: the full-data head is read in-sample, where it can fit wrong labels that the
# out-of-fold heads never train on; 3x their L2 keeps it in the early-learning regime
# (+0.02 to +0.05 F1 on pair noise on digits, as pixels and as EfficientNet features).
DYNAMICS_L2_FACTOR = 3.0
# our choice: the per-epoch record is taken from an exponential moving average of the head's
# weights (as timm's ModelEma does for evaluation), which removes the minibatch jitter of the
# last steps; on pair-noise digits late_stopping's F1 rose from .79 to .82 (mean of 3 seeds).
EMA_DECAY = 0.9
# our choice: the constant-LR (pre-memorisation) phase is the first 60 % of the epochs
# (detectors.md §7.1).
WARMUP_FRACTION = 0.6
# our choice: on small datasets one proxy run is noisy -- on wine (178 samples) a change of
# seed alone moved the merged F1 by up to .08 (by hand) -- so the detectors that read the
# run are averaged over several runs from different seeds, as many as keep runs x samples
# within this budget: the runs are cheap, but linear_separation fits three logistic
# regressions per run (9 s each on MNIST-5k); benchmarks/results/synthetic.md measures it
DYNAMICS_SAMPLE_BUDGET = 10_000
MAX_DYNAMICS_RUNS = 5

Progress = Callable[[int, int], None]


def train_out_of_fold(
    X: torch.Tensor,
    labels: np.ndarray,
    *,
    n_classes: int,
    n_folds: int = 5,
    seed: int = 0,
    l2_grid: tuple[float, ...] = L2_GRID,
) -> OutOfFold:
    """Stage ``oof``: out-of-fold probabilities at the L2 strength chosen by log-loss."""
    rng = np.random.default_rng([seed, 1])
    folds = kfold_assignment(labels, n_folds, rng)
    y = torch.as_tensor(labels, device=X.device)
    proba = cross_fit_softmax(X, y, folds[None], list(l2_grid), n_classes=n_classes)[:, 0]
    p_given = proba[:, np.arange(len(labels)), labels]
    log_loss = -np.log(np.clip(p_given, 1e-12, 1)).mean(axis=1)
    best = int(np.argmin(log_loss))
    return OutOfFold(
        proba=proba[best], folds=folds, l2_grid=np.asarray(l2_grid), log_loss=log_loss,
        l2=float(l2_grid[best]), noise_count=estimate_noise_count(labels, proba[best]),
    )


def make_head(n_features: int, n_classes: int, kind: str, generator: torch.Generator):
    """A linear or one-hidden-layer MLP head, initialised from ``generator`` only."""
    if kind == "linear":
        head = torch.nn.Linear(n_features, n_classes)
        layers = [head]
    elif kind == "mlp":
        layers = [torch.nn.Linear(n_features, 256), torch.nn.Linear(256, n_classes)]
        head = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1])
    else:
        raise ValueError(f"unknown head {kind!r}")
    with torch.no_grad():
        for layer in layers:
            bound = 1 / math.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.zero_()
    return head


def dynamics_runs(n_samples: int) -> int:
    """How many proxy runs the ``dynamics`` stage averages over: 5 up to 2,000 samples,
    then fewer, down to one from 10,000 samples (``DYNAMICS_SAMPLE_BUDGET``)."""
    return int(np.clip(DYNAMICS_SAMPLE_BUDGET // max(n_samples, 1), 1, MAX_DYNAMICS_RUNS))


def train_dynamics_runs(
    X: torch.Tensor, labels: np.ndarray, *, n_runs: int, seed: int = 0,
    on_epoch: Progress | None = None, **options,
) -> tuple[Dynamics, ...]:
    """Stage ``dynamics``: ``n_runs`` runs of :func:`train_dynamics`, each from its own seed.

    Run 0 uses ``seed`` itself, so a one-run stage is exactly :func:`train_dynamics`'s
    run; run ``r`` > 0 is seeded by ``[seed, 6, r]``. ``options`` are passed on.
    """
    runs = []
    for r in range(n_runs):
        run_seed = seed if r == 0 else int(
            np.random.SeedSequence([seed, 6, r]).generate_state(1)[0])
        progress = None if on_epoch is None else (
            lambda done, total, r=r: on_epoch(r * total + done, n_runs * total))
        runs.append(train_dynamics(X, labels, seed=run_seed, on_epoch=progress, **options))
    return tuple(runs)


def train_dynamics(
    X: torch.Tensor,
    labels: np.ndarray,
    *,
    n_classes: int,
    l2: float,
    noise_rate: float,
    epochs: int = 40,
    head: str = "linear",
    lr: float = 3e-3,
    seed: int = 0,
    on_epoch: Progress | None = None,
) -> Dynamics:
    """One run of the ``dynamics`` stage: train one head on all samples, record every epoch.

    The head's L2 is ``DYNAMICS_L2_FACTOR`` times ``l2``. Adam at constant ``lr`` for the
    first 60 % of the epochs, then cosine decay to zero; after each epoch one pass of the
    weights' moving average (decay ``EMA_DECAY`` per step) over all samples records loss,
    prediction, probability of the given label, margin and entropy. The head is said to
    memorise from the first epoch whose accuracy on the given labels exceeds
    ``1 - noise_rate / 2``: it then fits more than half of the estimated wrong labels. (Our
    choice over findings.md's ``1 - noise_rate``: a regularised head on wide features
    settles just above that line without memorising, and reading it at epoch 0 lost 0.15
    AUROC on pair noise.) ``read_epoch`` is the epoch before that, or the end of the
    constant-LR phase.
    """
    gen = torch.Generator().manual_seed(seed)
    y = torch.as_tensor(labels, device=X.device)
    batch_size = batch_size_for(len(labels))
    model = make_head(X.shape[1], n_classes, head, gen).to(X.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    l2 = l2 * DYNAMICS_L2_FACTOR
    n_warm = max(1, round(WARMUP_FRACTION * epochs))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: _lr_factor(e, n_warm, epochs))

    n = len(labels)
    fields = {k: np.empty((epochs, n), dtype=np.float32)
              for k in ("loss", "p_given", "margin", "entropy")}
    pred = np.empty((epochs, n), dtype=np.int32)
    probas = []
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(EMA_DECAY))
    all_rows = torch.arange(n, device=X.device)
    for epoch in range(epochs):
        _train_epoch(model, opt, X, y, all_rows, l2=l2, batch_size=batch_size, generator=gen,
                     after_step=lambda: ema.update_parameters(model))
        sched.step()
        ema.eval()
        with torch.no_grad():
            proba = torch.softmax(ema(X), -1).cpu().numpy()
        _record_epoch(proba, labels, epoch, fields, pred)
        probas.append(proba.astype(np.float16))  # only three are kept below
        if on_epoch:
            on_epoch(epoch + 1, epochs)

    return summarise_run(fields, pred, probas, labels, noise_rate=noise_rate, n_warm=n_warm)


def summarise_run(fields: dict, pred: np.ndarray, probas: list, labels: np.ndarray, *,
                  noise_rate: float, n_warm: int) -> Dynamics:
    """Find the memorisation and read epochs of a recorded run and keep three snapshots."""
    train_acc = (pred == labels[None, :]).mean(axis=1)
    above = np.flatnonzero(train_acc > 1 - noise_rate / 2)
    memorization = int(above[0]) if len(above) else -1
    read = memorization - 1 if memorization >= 0 else n_warm - 1
    read = min(max(read, 0), n_warm - 1)
    t0 = read // 2
    snap = np.array([t0, min(t0 + 2, read), read])
    return Dynamics(
        **fields, pred=pred, train_accuracy=train_acc, snapshot_epochs=snap,
        snapshots=np.stack([probas[e].astype(np.float32) for e in snap]),
        memorization_epoch=memorization, read_epoch=int(read),
    )


def train_rounds(
    X: torch.Tensor,
    labels: np.ndarray,
    *,
    n_classes: int,
    l2: float,
    noise_rate: float,
    n_rounds: int = 12,
    max_epochs: int = 30,
    head: str = "linear",
    lr: float = 3e-3,
    seed: int = 0,
    on_round: Progress | None = None,
) -> Rounds:
    """Stage ``rounds``: multi-round Late Stopping (Yuan et al. 2023, detectors.md §3).

    Each round re-initialises the head, trains it on the samples still kept and stops as soon
    as ``N * rho**r`` of them have been predicted as their given label for ``k`` consecutive
    epochs (k = 1, 2, 3 over the thirds of the rounds, as in the official scripts); the others,
    the latest learners, are removed. ``rho`` is set so that ``rho**n_rounds = 1 - noise_rate``,
    the relation the authors' per-dataset constants follow. If a round reaches ``max_epochs``
    first, our choice is to keep the earliest learners anyway (FkL, then mean probability of
    the given label) so that every round removes its share.
    """
    from ..detectors.late_stopping import first_k_epoch_learning

    n = len(labels)
    y = torch.as_tensor(labels, device=X.device)
    batch_size = batch_size_for(n)
    l2 = l2 * DYNAMICS_L2_FACTOR
    keep_ratio = float(max(1 - noise_rate, 1e-3) ** (1 / n_rounds))
    kept = np.arange(n)
    removed_in = np.zeros(n, dtype=np.int64)
    last_fkl = np.full(n, np.inf)
    gen = torch.Generator().manual_seed(seed)
    for r in range(1, n_rounds + 1):
        k = 1 + min(2, 3 * (r - 1) // n_rounds)
        target = int(n * keep_ratio**r)
        model = make_head(X.shape[1], n_classes, head, gen).to(X.device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        idx_t = torch.as_tensor(kept, device=X.device)
        ok, p_sum = [], np.zeros(len(kept))
        for _ in range(max_epochs):
            _train_epoch(model, opt, X, y, idx_t, l2=l2, batch_size=batch_size, generator=gen)
            model.eval()
            with torch.no_grad():
                proba = torch.softmax(model(X[idx_t]), -1).cpu().numpy()
            ok.append(proba.argmax(1) == labels[kept])
            p_sum += proba[np.arange(len(kept)), labels[kept]]
            fkl = first_k_epoch_learning(np.array(ok), k)
            if np.isfinite(fkl).sum() >= target:
                break
        last_fkl[kept] = fkl
        order = np.lexsort((-p_sum, fkl))  # earliest learners first, ties by confidence
        removed = kept[order[target:]]
        removed_in[removed] = r
        kept = np.sort(kept[order[:target]])
        if on_round:
            on_round(r, n_rounds)
    return Rounds(removed_in=removed_in, last_fkl=last_fkl, n_rounds=n_rounds,
                  keep_ratio=keep_ratio)


def _train_epoch(model, opt, X, y, rows, *, l2, batch_size, generator, after_step=None):
    """One pass of minibatch Adam over ``rows`` in a random order, L2 on the weights."""
    model.train()
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    order = rows[torch.randperm(len(rows), generator=generator).to(X.device)]
    for start in range(0, len(rows), batch_size):
        idx = order[start:start + batch_size]
        loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
        loss = loss + 0.5 * l2 * sum(w.square().sum() for w in weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step()


def batch_size_for(n_samples: int) -> int:
    """Minibatch size giving about 20 steps an epoch, between 16 and 256.

    Our choice: the dynamics detectors read the run epoch by epoch, so an epoch must mean
    about the same amount of training whatever the dataset size -- with a fixed batch of
    256, a 600-sample table would get 3 steps an epoch and barely move in the warm-up.
    """
    return int(np.clip(n_samples // 20, 16, 256))


def _lr_factor(epoch: int, n_warm: int, epochs: int) -> float:
    if epoch < n_warm:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (epoch - n_warm) / max(1, epochs - n_warm)))


def _record_epoch(proba, labels, epoch, fields, pred) -> None:
    n = len(labels)
    rows = np.arange(n)
    p_given = proba[rows, labels]
    other = proba.copy()
    other[rows, labels] = -np.inf
    logp = np.log(np.clip(proba, 1e-12, 1))
    fields["loss"][epoch] = -logp[rows, labels]
    fields["p_given"][epoch] = p_given
    # margin on log-probabilities equals the logit margin (the log-normaliser cancels)
    fields["margin"][epoch] = logp[rows, labels] - np.log(np.clip(other.max(1), 1e-12, 1))
    fields["entropy"][epoch] = -(proba * logp).sum(1)
    pred[epoch] = proba.argmax(1)
