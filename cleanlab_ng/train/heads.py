"""Many softmax-linear heads on one feature matrix, trained at once.

Every cross-fitted model in the tool (the K folds of the out-of-fold run, the grid of L2
strengths it chooses from) is a multinomial logistic regression on the same features ``Z``
that differs from the others only in which samples it trains on and how strongly it is
regularised. Stacking their weights into one ``(n_models, D, C)`` tensor turns M fits into
one tensor program: each L-BFGS step is a single batched matmul instead of M Python-level
fits, which is what makes cross-validation cheap enough to repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# our choice: 2^28 bytes of logits per chunk keeps peak memory bounded (~1 GiB with autograd
# buffers) whatever the number of models, while big enough chunks keep the matmuls efficient.
_CHUNK_BYTES = 1 << 28


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
    y : Tensor of shape (n_samples,), int64
    train_mask : Tensor of shape (n_models, n_samples), bool
        Which samples each model trains on.
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
        w, b = _fit_chunk(X, y, train_mask[sl], l2[sl], n_classes, max_iter, tol)
        weights.append(w)
        biases.append(b)
    return LinearHeads(torch.cat(weights), torch.cat(biases))


def _fit_chunk(X, y, mask, l2, n_classes, max_iter, tol):
    n_models = mask.shape[0]
    weight = torch.zeros(n_models, X.shape[1], n_classes, dtype=X.dtype, device=X.device)
    bias = torch.zeros(n_models, n_classes, dtype=X.dtype, device=X.device)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    w_mask = mask.to(X.dtype) / mask.sum(1, keepdim=True).clamp(min=1).to(X.dtype)
    target = y.expand(n_models, -1)
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


def out_of_fold_proba(
    X: torch.Tensor,
    y: torch.Tensor,
    folds: np.ndarray,
    l2_grid: list[float],
    *,
    n_classes: int,
    max_iter: int = 200,
) -> np.ndarray:
    """Out-of-fold probabilities for every L2 strength in one batched fit.

    Trains ``len(l2_grid) * n_folds`` heads at once; sample ``i`` gets the probabilities of
    the fold model that did not see it.

    Returns
    -------
    ndarray of shape (len(l2_grid), n_samples, n_classes)
    """
    n_folds = int(folds.max()) + 1
    fold_t = torch.as_tensor(folds, device=X.device)
    held_out = fold_t[None, :] == torch.arange(n_folds, device=X.device)[:, None]  # (K, N)
    mask = (~held_out).repeat(len(l2_grid), 1)
    l2 = torch.tensor(l2_grid, dtype=X.dtype, device=X.device).repeat_interleave(n_folds)
    heads = fit_linear_heads(X, y, mask, l2, n_classes=n_classes, max_iter=max_iter)
    out = np.empty((len(l2_grid), X.shape[0], n_classes), dtype=np.float32)
    with torch.no_grad():
        for g in range(len(l2_grid)):
            for k in range(n_folds):
                m = g * n_folds + k
                rows = held_out[k]
                logits = X[rows] @ heads.weight[m] + heads.bias[m]
                out[g, rows.cpu().numpy()] = torch.softmax(logits, -1).cpu().numpy()
    return out
