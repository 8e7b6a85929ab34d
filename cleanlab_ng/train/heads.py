"""Many linear heads on one feature matrix, trained at once: the one place that fits them.

Every cross-fitted model in the tool (the K folds of the out-of-fold run, the grid of L2
strengths it chooses from, the R x K models of repeated cross-validation) is a linear head
on the same features ``Z`` that differs from the others only in which samples it trains on
and how strongly it is regularised. Two families:

* softmax heads (:func:`fit_linear_heads`, :func:`cross_fit_softmax`): multinomial logistic
  regressions with their weights stacked into one ``(n_models, D, C)`` tensor, so each
  L-BFGS step is a single batched matmul instead of M Python-level fits;
* ridge heads (:func:`prepare_ridge`, :func:`ridge_cross_fit`): least squares on
  one-hot labels in closed form, sharing one Gram matrix, so that a repeat of K folds costs
  about one pass over the samples -- what makes thousands of repeats cheap (ReCoV).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# our choice: 2^28 bytes of logits per chunk keeps peak memory bounded (~1 GiB with autograd
# buffers) whatever the number of models, while big enough chunks keep the matmuls efficient.
_CHUNK_BYTES = 1 << 28
# rows per chunk when the ridge Gram matrix is accumulated: 16k x 512 float64 = 64 MiB
_GRAM_ROWS = 1 << 14
# our choice: about an L2 cache of gathered fold rows at a time, so that the second matmul
# reads them from cache rather than memory
_GROUP_BYTES = 1 << 21


@dataclass(frozen=True)
class LinearHeads:
    """Weights of ``n_models`` softmax-linear heads.

    Attributes
    ----------
    weight : Tensor of shape (n_models, n_features, n_classes)
    bias : Tensor of shape (n_models, n_classes)
    """

    weight: torch.Tensor
    bias: torch.Tensor

    @property
    def n_models(self) -> int:
        return self.weight.shape[0]

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        """Logits of every model on every row of ``X``: shape (n_models, n_samples, n_classes)."""
        return torch.einsum("nd,mdc->mnc", X, self.weight) + self.bias[:, None, :]


def fit_linear_heads(
    X: torch.Tensor,
    y: torch.Tensor,
    train_mask: torch.Tensor,
    l2: torch.Tensor,
    *,
    n_classes: int,
    max_iter: int = 200,
    tol: float = 1e-5,
) -> LinearHeads:
    """Fit one L2-regularised multinomial logistic regression per row of ``train_mask``.

    Model ``m`` minimises ``mean_{i in train_m} CE(x_i W_m + b_m, y_i) + l2[m]/2 ||W_m||^2``
    (bias unpenalised), i.e. scikit-learn's ``LogisticRegression(C)`` with
    ``C = 1 / (l2 * n_train)``. The objectives are independent, so their sum is minimised
    with one full-batch L-BFGS over the stacked weights, in chunks of models.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
    y : Tensor of shape (n_samples,) or (n_models, n_samples), int64
        The targets, shared by every model or one row per model.
    train_mask : Tensor of shape (n_models, n_samples), bool or float
        Which samples each model trains on; float entries weight them.
    l2 : Tensor of shape (n_models,)
        L2 strength of each model.
    n_classes : int
    max_iter : int, default=200
        L-BFGS iterations per chunk.
    tol : float, default=1e-5
        Stop when the largest gradient entry falls below this.

    Returns
    -------
    LinearHeads
    """
    n_models, n_samples = train_mask.shape
    per_model = n_samples * n_classes * X.element_size() * 4  # logits, probs, grads
    chunk = max(1, _CHUNK_BYTES // per_model)
    weights, biases = [], []
    for start in range(0, n_models, chunk):
        sl = slice(start, start + chunk)
        target = y.expand(n_models, -1)[sl]
        w, b = _fit_chunk(X, target, train_mask[sl], l2[sl], n_classes, max_iter, tol)
        weights.append(w)
        biases.append(b)
    return LinearHeads(torch.cat(weights), torch.cat(biases))


def _fit_chunk(X, target, mask, l2, n_classes, max_iter, tol):
    n_models = mask.shape[0]
    weight = torch.zeros(n_models, X.shape[1], n_classes, dtype=X.dtype, device=X.device)
    bias = torch.zeros(n_models, n_classes, dtype=X.dtype, device=X.device)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    w_mask = mask.to(X.dtype) / mask.sum(1, keepdim=True).clamp(min=1).to(X.dtype)
    opt = torch.optim.LBFGS(
        [weight, bias], lr=1, max_iter=max_iter, tolerance_grad=tol,
        tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        logits = torch.einsum("nd,mdc->mnc", X, weight) + bias[:, None, :]
        ce = torch.nn.functional.cross_entropy(
            logits.reshape(-1, n_classes), target.reshape(-1), reduction="none"
        ).view(n_models, -1)
        loss = (ce * w_mask).sum() + 0.5 * (l2[:, None, None] * weight.square()).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return weight.detach(), bias.detach()


def predict_proba(heads: LinearHeads, X: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities of every model: shape (n_models, n_samples, n_classes)."""
    with torch.no_grad():
        return torch.softmax(heads.logits(X), dim=-1)


def kfold_assignment(
    labels: np.ndarray, n_folds: int, rng: np.random.Generator
) -> np.ndarray:
    """Stratified random fold of every sample (n_samples,), so each class is in every fold.

    Samples of one class are shuffled and dealt round-robin, starting at a random fold per
    class so that small classes do not all land in fold 0.
    """
    folds = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        folds[idx] = (np.arange(len(idx)) + offset) % n_folds
        offset += len(idx)
    return folds


def repeated_fold_orders(
    labels: np.ndarray, n_folds: int, seed: int, repeats: range
) -> torch.Tensor:
    """The dealing order of each repeat's stratified K-fold split.

    The samples of each class are shuffled and the classes laid end to end; position ``p``
    of the order is dealt to fold ``p % n_folds``, so each class continues the round-robin
    where the previous one stopped and the folds' sizes, and each class's share of them,
    differ by at most one. Fold ``k`` of a repeat is ``order[k::n_folds]``, already grouped
    by class. Repeat ``r`` draws from its own generator, seeded by ``[seed, 2, r]``: the
    folds of a repeat do not depend on how the repeats are split into blocks, and a longer
    run extends a shorter one.

    Returns
    -------
    Tensor of shape (len(repeats), n_samples), int64
    """
    # numpy sorts 16-bit keys by radix, 10x faster than torch's comparison sort here
    keys = np.asarray(labels, dtype=np.int16 if np.max(labels) < 2**15 else np.int64)
    orders = []
    for r in repeats:
        gen = torch.Generator().manual_seed(
            int(np.random.SeedSequence([seed, 2, r]).generate_state(1)[0]))
        shuffled = torch.randperm(len(labels), generator=gen).numpy()
        # a stable sort by label keeps the shuffled order inside each class
        orders.append(shuffled[np.argsort(keys[shuffled], kind="stable")])
    return torch.from_numpy(np.stack(orders))


def repeated_folds(
    labels: np.ndarray, n_folds: int, seed: int, repeats: range
) -> torch.Tensor:
    """Fold of every sample in each of the given repeats (:func:`repeated_fold_orders`).

    Returns
    -------
    Tensor of shape (len(repeats), n_samples), int64
    """
    order = repeated_fold_orders(labels, n_folds, seed, repeats)
    dealt = (torch.arange(order.shape[1]) % n_folds).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, dealt)


def cross_fit_softmax(
    X: torch.Tensor,
    y: torch.Tensor,
    folds: np.ndarray,
    l2_grid: list[float],
    *,
    n_classes: int,
    max_iter: int = 200,
) -> np.ndarray:
    """Held-out probabilities of softmax-linear heads for every repeat and L2 strength at once.

    Trains ``len(l2_grid) * n_repeats * n_folds`` heads in one batched fit (chunked by
    :func:`fit_linear_heads`); sample ``i`` of repeat ``r`` gets the probabilities of the
    fold model of that repeat that did not see it.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
    y : Tensor of shape (n_samples,), int64
    folds : ndarray of shape (n_repeats, n_samples)
        Fold of every sample in every repeat, 0 .. n_folds - 1.
    l2_grid : list of float
    n_classes : int
    max_iter : int, default=200

    Returns
    -------
    ndarray of shape (len(l2_grid), n_repeats, n_samples, n_classes)
    """
    n_repeats, n_samples = folds.shape
    n_folds = int(folds.max()) + 1
    fold_t = torch.as_tensor(folds, device=X.device)
    # (R * K, N): row r * K + k holds out fold k of repeat r
    held_out = (fold_t[:, None, :] == torch.arange(n_folds, device=X.device)[None, :, None])
    held_out = held_out.reshape(n_repeats * n_folds, n_samples)
    mask = (~held_out).repeat(len(l2_grid), 1)
    l2 = torch.tensor(l2_grid, dtype=X.dtype, device=X.device)
    l2 = l2.repeat_interleave(n_repeats * n_folds)
    heads = fit_linear_heads(X, y, mask, l2, n_classes=n_classes, max_iter=max_iter)
    out = np.empty((len(l2_grid), n_repeats, n_samples, n_classes), dtype=np.float32)
    with torch.no_grad():
        for g in range(len(l2_grid)):
            for m in range(n_repeats * n_folds):
                rows = held_out[m]
                model = g * n_repeats * n_folds + m
                logits = X[rows] @ heads.weight[model] + heads.bias[model]
                out[g, m // n_folds, rows.cpu().numpy()] = torch.softmax(logits, -1).cpu().numpy()
    return out


@dataclass(frozen=True, eq=False)
class RidgeCrossFit:
    """What the ridge heads of every fold split share: features in the eigenbasis of their Gram.

    Model ``(r, k)`` -- repeat ``r`` trained without its fold ``k`` -- regresses the one-hot
    given labels on the features with an unpenalised intercept, minimising
    ``mean_i ||x_i W + b - onehot(y_i)||^2 + l2 ||W||^2`` over its training samples. Its
    exact Gram ``A_rk = X^T X - B_rk^T B_rk + l2 n_train I`` differs from the others' only by
    its held-out block ``B_rk``. Our choice, for speed: every model starts from the solution
    with the shared matrix ``A = (K-1)/K (X^T X + l2 N I)``, the Gram that a training set of
    ``(K-1)/K`` of the samples has in expectation (it uses the held-out features but never
    their labels, as standardising or a PCA over all samples does), and takes one Jacobi
    step ``W += A^-1 (X_rk^T Y_rk - A_rk W)`` towards its own. In the eigenbasis of
    ``X^T X`` (rotated features ``U = X V``) ``A^-1`` is diagonal, so one factorisation
    serves every L2 strength, and ``B_rk^T B_rk W = B_rk^T (B_rk W)`` is two matmuls over the
    held-out block: a repeat costs one gather of the samples and four batched matmuls over
    them, with no per-model Gram or solve. The shared matrix alone lost 0.1 (synthetic
    Gaussian) to 0.3 (CIFAR-10N embeddings) points of out-of-fold accuracy against the
    exact per-model ridge; by hand, on CIFAR-10N PCA-256 (20 repeats) the step took the
    heads from 64.11 % to 64.18 %, against 64.19 % after three steps. The exact model
    needs an ``N D^2`` Gram per repeat, ``D / 4C`` times the work (6 times at D = 256,
    C = 10).

    Attributes
    ----------
    rotated : Tensor of shape (n_samples + 1, n_features)
        The centred features in the eigenbasis of their Gram matrix, ``U = X V``, in the
        compute dtype, and a last row of zeros that pads the fold blocks.
    labels : Tensor of shape (n_samples + 1,), int64
        The given labels and, for the padding row, ``n_classes``.
    n_classes : int
    eigenvalues : Tensor of shape (n_features,), float64
        Of ``X^T X``.
    class_sums : Tensor of shape (n_classes, n_features), float32
        ``Y^T U`` over all samples.
    class_counts : Tensor of shape (n_classes,), float32
    """

    rotated: torch.Tensor
    labels: torch.Tensor
    n_classes: int
    eigenvalues: torch.Tensor
    class_sums: torch.Tensor
    class_counts: torch.Tensor

    @property
    def n_samples(self) -> int:
        return len(self.labels) - 1


def ridge_compute_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on a CPU with native bfloat16 matmuls (AVX512-BF16 or AMX), else float32.

    Our choice: the two matmuls and the gather of every repeat read N x D features, half as
    many bytes in bfloat16, and the CPU's bfloat16 matmul kernels accumulate in float32.
    The held-out accuracy of the heads in benchmarks/results/recov.md (speed) moved by
    under 0.1 points against the float32 run before it. A CPU
    without native support would emulate bfloat16 and run slower, so it keeps float32, as
    does CUDA, where the matmuls are not the bottleneck.
    """
    if torch.device(device).type != "cpu":
        return torch.float32
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return torch.bfloat16 if native else torch.float32


def prepare_ridge(
    X: torch.Tensor, y: torch.Tensor, *, n_classes: int, dtype: torch.dtype | None = None
) -> RidgeCrossFit:
    """Centre ``X`` and rotate it into the eigenbasis of its Gram matrix, once for all models.

    The Gram matrix is accumulated in float64 over row chunks, so memory stays at one copy
    of ``X`` in the compute ``dtype`` (default :func:`ridge_compute_dtype`) whatever the
    number of samples.
    """
    n_samples, n_features = X.shape
    dtype = dtype or ridge_compute_dtype(X.device)
    mean = X.sum(0, dtype=torch.float64) / n_samples
    gram = torch.zeros(n_features, n_features, dtype=torch.float64, device=X.device)
    # float64: collinear table columns give X^T X eigenvalues down to ~1e-10 of the largest
    for chunk in X.split(_GRAM_ROWS):
        centred = chunk.double() - mean
        gram += centred.T @ centred
    eigenvalues, vectors = torch.linalg.eigh(gram)
    rotated = torch.zeros(n_samples + 1, n_features, dtype=dtype, device=X.device)
    class_sums = torch.zeros(n_classes, n_features, dtype=torch.float64, device=X.device)
    vectors, mean = vectors.to(X.dtype), mean.to(X.dtype)
    for start in range(0, n_samples, _GRAM_ROWS):
        end = min(start + _GRAM_ROWS, n_samples)  # row n_samples stays zero: the padding
        chunk = (X[start:end] - mean) @ vectors
        class_sums.index_add_(0, y[start:end], chunk.double())
        rotated[start:end] = chunk.to(dtype)
    counts = torch.bincount(y, minlength=n_classes).to(torch.float32)
    padded = torch.cat([y, torch.tensor([n_classes], device=y.device)])
    return RidgeCrossFit(rotated, padded, n_classes, eigenvalues.clamp(min=0),
                         class_sums.float(), counts)


def ridge_cross_fit(
    fit: RidgeCrossFit,
    orders: torch.Tensor,
    n_folds: int,
    l2: float,
    *,
    readout: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out ridge scores of every sample in every repeat, fold by fold.

    Parameters
    ----------
    fit : RidgeCrossFit
    orders : Tensor of shape (n_repeats, n_samples), int64
        Dealing orders (:func:`repeated_fold_orders`): fold ``k`` is ``order[k::n_folds]``.
    n_folds : int
    l2 : float
    readout : (Tensor of shape (C, C), Tensor of shape (C, 1)), optional
        A linear map ``M s + b`` of every model's scores, folded into its weights and
        intercept: the models stay linear heads, and the map costs nothing per sample.

    Returns
    -------
    scores : Tensor of shape (n_classes, n_repeats, n_folds, n_slots), float32
        ``x_i W_rk + b_rk`` for each sample ``i`` of fold ``k``, by the model that held it
        out. Class-first: reductions over the classes (softmax, max) are then elementwise
        over contiguous rows of samples, 10-20x faster on CPU than over a last axis of 10,
        and each class's scores of a block of repeats are one contiguous row.
    slots : Tensor of shape (n_repeats, n_folds, n_slots), int64
        The sample in each slot; ``n_samples`` where a fold, one shorter than the longest,
        is padded (its score is then the intercept, and is to be ignored).
    """
    n_repeats, n_samples = orders.shape
    C, K, device = fit.n_classes, n_folds, orders.device
    dtype = fit.rotated.dtype
    n_slots = -(-n_samples // K)
    padded = torch.full((n_repeats, n_slots * K), n_samples, dtype=torch.int64, device=device)
    padded[:, :n_samples] = orders
    slots = padded.view(n_repeats, n_slots, K).transpose(1, 2).contiguous()
    n_models, width = n_repeats * K, fit.rotated.shape[1]
    # one-hot of the given labels, class-major, written straight in the compute dtype; the
    # padding's label n_classes lands in an extra row that is dropped. Filled through a
    # flat index: scatter_ of a scalar into bfloat16 copies the whole tensor twice on CPU
    slot_labels = fit.labels.take(slots).view(n_models, 1, n_slots)
    hot = ((torch.arange(n_models, device=device)[:, None] * (C + 1) + slot_labels[:, 0])
           * n_slots + torch.arange(n_slots, device=device))
    onehot = torch.zeros(n_models * (C + 1) * n_slots, dtype=dtype, device=device).index_fill_(
        0, hot.view(-1), 1).view(n_models, C + 1, n_slots)[:, :C]
    held_counts = torch.zeros(n_models, C + 1, device=device).scatter_add_(
        1, slot_labels[:, 0], torch.ones(1, device=device).expand(n_models, n_slots))
    train_counts = fit.class_counts - held_counts[:, :C]  # (R K, C)
    n_train = (K - 1) / K * n_samples
    intercepts = (train_counts / n_train)[:, :, None]
    mix = torch.eye(C, device=device)
    if readout is not None:
        mix = readout[0].float()
        intercepts = mix @ intercepts + readout[1].float()
    # A^-1 in the eigenbasis is a diagonal: (D,)
    inverse = (1 / (n_train / n_samples * (fit.eigenvalues + l2 * n_samples))).float()
    exact_diagonal = (fit.eigenvalues + l2 * n_train).float()
    scores = torch.empty(C, n_models, n_slots, dtype=torch.float32, device=device)
    # a few fold blocks at a time, so that the later matmuls read them from cache
    per_group = max(1, _GROUP_BYTES // (n_slots * width * fit.rotated.element_size()))
    for start in range(0, n_models, per_group):
        group = slice(start, start + per_group)
        blocks = fit.rotated.index_select(0, slots.view(n_models, n_slots)[group].reshape(-1))
        blocks = blocks.view(-1, n_slots, width)
        targets = fit.class_sums - torch.bmm(onehot[group], blocks).float()
        weights = inverse * targets  # (G, C, D): the shared-Gram solution
        # one Jacobi step towards each model's own normal equations, whose Gram lacks its
        # held-out block: (X^T X - B^T B + l2 n_train I) W = targets
        held = torch.bmm(weights.to(dtype), blocks.transpose(1, 2))
        residual = targets - exact_diagonal * weights + torch.bmm(held, blocks).float()
        weights = (mix @ (weights + inverse * residual)).to(dtype)
        # one batched matmul scores every held-out sample with its own fold's model only:
        # N D C work per repeat, not K N D C. The class axis comes first: MKL is 2-4x
        # slower with a 10-wide output than with a 10-high one.
        scores[:, group] = torch.bmm(weights, blocks.transpose(1, 2)).transpose(0, 1)
    scores += intercepts.transpose(0, 1)
    return scores.view(C, n_repeats, K, n_slots), slots


def in_sample_order(scores: torch.Tensor, slots: torch.Tensor, n_samples: int) -> torch.Tensor:
    """:func:`ridge_cross_fit`'s scores back in sample order: (n_repeats, n_classes, n_samples)."""
    C, n_repeats, K, n_slots = scores.shape
    out = torch.empty(n_repeats, C, n_samples + 1, dtype=scores.dtype, device=scores.device)
    out.scatter_(2, slots.view(n_repeats, 1, K * n_slots).expand(-1, C, -1),
                 scores.transpose(0, 1).reshape(n_repeats, C, K * n_slots))
    return out[..., :n_samples]  # every padding slot lands in column N
