"""Nearest neighbours in the feature space, and what the labels around a sample say.

``linear_separation`` carries its small-loss split over each sample's neighbours; the
merge weighs the detectors against the plainest label-noise signal there is, the share of
a sample's nearest neighbours labelled otherwise (:func:`label_disagreement`), which needs
no training and so does not share the proxy's mistakes.
"""

from __future__ import annotations

import numpy as np
import torch

# our choice: the neighbour search costs n x references x features, so beyond 20,000 samples
# it grows linearly in n instead of quadratically
MAX_REFERENCE = 20_000
# the referee's neighbourhood: the plainest reading of "what do the nearest samples say"
REFEREE_NEIGHBOURS = 10


def normalise_features(Z: np.ndarray) -> np.ndarray:
    """L2-normalise every row, then z-score every column (LSA, trainers.py L400-405)."""
    Z = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
    return (Z - Z.mean(0)) / np.maximum(Z.std(0), 1e-12)


def reference_subset(n: int, k: int) -> tuple[int, np.ndarray | None]:
    """Above MAX_REFERENCE samples, neighbours are looked up in a fixed random subset, with
    k scaled down (to no fewer than 10) so that a neighbourhood keeps its radius (a share
    k / n of the data)."""
    if n <= MAX_REFERENCE:
        return k, None
    subset = np.sort(np.random.default_rng(0).choice(n, MAX_REFERENCE, replace=False))
    return max(min(k, 10), round(k * MAX_REFERENCE / n)), subset


def nearest_neighbours(Z: np.ndarray, k: int, reference: np.ndarray | None = None,
                       block: int = 2048) -> np.ndarray:
    """Indices (n_samples, k) of each row's ``k`` nearest other rows by cosine similarity,
    nearest first, looked up among the rows ``reference`` (sorted indices; default all).

    ``k`` is capped at the number of candidates. Computed a block of rows at a time, so
    memory stays ``block * len(reference)`` however large n is; the time is
    O(n * len(reference) * n_features).
    """
    X = torch.as_tensor(Z, dtype=torch.float32)
    X = X / X.norm(dim=1, keepdim=True).clamp_min(1e-12)
    n = len(X)
    ref = np.arange(n) if reference is None else np.asarray(reference)
    position = np.full(n, -1)
    position[ref] = np.arange(len(ref))
    k = max(min(int(k), len(ref) - 1), 1)
    out = np.empty((n, k), dtype=np.int64)
    with torch.no_grad():
        R = X[torch.as_tensor(ref)]
        for start in range(0, n, block):
            sim = X[start:start + block] @ R.T
            pos = torch.as_tensor(position[start:start + len(sim)])
            rows = torch.nonzero(pos >= 0).flatten()
            sim[rows, pos[rows]] = -torch.inf  # a sample is not its own neighbour
            out[start:start + len(sim)] = ref[sim.topk(k, dim=1).indices.numpy()]
    return out


def feature_neighbours(features: np.ndarray, k: int,
                       searched: np.ndarray | None = None) -> np.ndarray:
    """Each row's ``k`` nearest other rows by cosine on :func:`normalise_features`, looked up
    in :func:`reference_subset` (so ``k`` shrinks above MAX_REFERENCE samples).

    ``searched``: the result of an earlier call on the same features with a ``k`` at least
    as large, whose first columns are the answer (the reference subset depends on n only);
    linear_separation and the merge's referee share one search that way.
    """
    k, reference = reference_subset(len(features), k)
    n_candidates = len(features) if reference is None else len(reference)
    if searched is None or searched.shape[1] < min(k, n_candidates - 1):
        searched = nearest_neighbours(normalise_features(features), k, reference)
    return searched[:, :k]


def label_disagreement(features: np.ndarray, labels: np.ndarray, k: int = REFEREE_NEIGHBOURS,
                       searched: np.ndarray | None = None) -> np.ndarray:
    """Share of each sample's ``k`` nearest neighbours (:func:`feature_neighbours`, which
    reuses ``searched``) whose label is not the sample's own, in [0, 1].

    Examples
    --------
    >>> Z = np.array([[0., 1.], [.1, 1.], [.2, 1.], [1., 0.], [1., .1], [1., .2]])
    >>> label_disagreement(Z, np.array([0, 0, 1, 1, 1, 1]), k=2)
    array([0.5, 0.5, 1. , 0. , 0. , 0. ])
    """
    labels = np.asarray(labels)
    near = feature_neighbours(features, k, searched)
    return (labels[near] != labels[:, None]).mean(axis=1)


def label_support(near: np.ndarray, labels: np.ndarray,
                  candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far each sample's neighbours back a ``candidate`` label for it.

    ``near`` is (n_samples, k) neighbour indices, ``labels`` the given labels they index,
    ``candidate`` one label per sample. Returns the share of the neighbours labelled
    ``candidate``, in [0, 1], and whether no other label is more common among them (a tie
    backs it). A plurality rather than a majority, so that the test does not fail merely
    because the neighbours' own labels are noisy: at 40 % noise a correct candidate is
    rarely carried by half of them, yet still by more of them than any other label.

    Examples
    --------
    >>> near = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
    >>> share, backed = label_support(near, np.array([0, 0, 1, 2]), np.array([1, 0, 0, 2]))
    >>> share.round(2), backed
    (array([0.33, 0.33, 0.67, 0.  ]), array([ True,  True,  True, False]))
    """
    around = np.asarray(labels)[near]
    count = (around == np.asarray(candidate)[:, None]).sum(axis=1)
    # the most common label's count: for each neighbour, how many share its label
    most = (around[:, :, None] == around[:, None, :]).sum(axis=2).max(axis=1)
    return count / near.shape[1], (count > 0) & (count >= most)
