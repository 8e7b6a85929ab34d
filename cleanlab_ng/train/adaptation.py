"""Stage ``adaptation``: test-time entropy minimisation of the fold heads on held-out samples.

The "wisdom of crowds" rule of Lee et al. (ICCV 2023) compares a source model with the same
model adapted, without labels, by entropy minimisation on a stream of unseen inputs:
samples in line with the crowd gain confidence, samples out of line lose it. Our transfer to
training labels keeps that setting exactly: each of the K out-of-fold heads is the source
model, its held-out fold is the unlabeled stream, and the class whose confidence is compared
is the sample's *given* label (detectors.md §4, "most faithful transfer"). The adaptation
follows the paper's loss as re-implemented in UniEnt (gaozhengqing/UniEnt @af7faa8c,
cifar/ostta.py): the mean entropy of the samples whose confidence in the source prediction
did not drop, minus 0.5 times the entropy of the batch-mean prediction (diversity); Adam
lr 1e-3, batch 100, one step per batch, one pass. A linear head has no BatchNorm, so its
weights are the adapted parameters (our choice; the paper adapts BN affine parameters).
"""

from __future__ import annotations

import numpy as np
import torch

from .heads import fit_linear_heads
from .record import Adaptation

DIVERSITY = 0.5  # UniEnt default alpha (grid {1, 0.5, 0.2, 0.1})
LR = 1e-3
BATCH = 100


def adapt_fold_heads(
    X: torch.Tensor, labels: np.ndarray, folds: np.ndarray, l2: float, *, n_classes: int,
    seed: int = 0,
) -> Adaptation:
    """Source and adapted probabilities of every sample, from the head that never saw it.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
    folds : ndarray of shape (n_samples,)
        The out-of-fold stage's fold of every sample.
    l2 : float
        The out-of-fold stage's chosen L2 strength.
    n_classes : int
    seed : int, default=0
        Order of the held-out stream.

    Returns
    -------
    Adaptation
    """
    n_folds = int(folds.max()) + 1
    fold_t = torch.as_tensor(folds, device=X.device)
    held_out = fold_t[None, :] == torch.arange(n_folds, device=X.device)[:, None]
    y = torch.as_tensor(labels, device=X.device)
    heads = fit_linear_heads(X, y, ~held_out, torch.full((n_folds,), l2, dtype=X.dtype,
                                                           device=X.device), n_classes=n_classes)
    source = np.empty((len(labels), n_classes), dtype=np.float32)
    adapted = np.empty_like(source)
    gen = torch.Generator().manual_seed(seed)
    for k in range(n_folds):
        rows = torch.nonzero(held_out[k])[:, 0]
        W = heads.weight[k].clone().requires_grad_(True)
        b = heads.bias[k].clone().requires_grad_(True)
        with torch.no_grad():
            p_src = torch.softmax(X[rows] @ W + b, -1)
        opt = torch.optim.Adam([W, b], lr=LR)
        order = torch.randperm(len(rows), generator=gen).to(X.device)
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            p = torch.softmax(X[rows[idx]] @ W + b, -1)
            src = p_src[idx]
            c_o = src.argmax(1)
            keep = p.gather(1, c_o[:, None])[:, 0] >= src.gather(1, c_o[:, None])[:, 0]
            ent = -(p * torch.log(p.clamp_min(1e-12))).sum(1)
            mean_p = p.mean(0)
            loss = (ent * keep).sum() / keep.sum().clamp(min=1)
            loss = loss + DIVERSITY * (mean_p * torch.log(mean_p.clamp_min(1e-12))).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            rows_np = rows.cpu().numpy()
            source[rows_np] = p_src.cpu().numpy()
            adapted[rows_np] = torch.softmax(X[rows] @ W + b, -1).cpu().numpy()
    return Adaptation(source=source, adapted=adapted)
