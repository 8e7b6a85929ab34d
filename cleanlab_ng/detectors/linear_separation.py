"""Linear separation of noisy samples in embedding space (LSA) -- Albert, Valmadre, Arazo,
Krishna, O'Connor, McGuinness, ECCV 2024, arXiv 2407.05528.

Flags:      samples on the "noisy" side of a hyperplane in the embedding, estimated from a
            small-loss split, alternating with the small-loss split itself.
Signal:     in a good unsupervised embedding, out-of-distribution and wrongly labelled
            samples are linearly separable from the clean ones; the hyperplane generalises
            where the loss alone misses (and the loss catches the clean-but-simple images
            the hyperplane misses -- the reason for alternating).
Fails when: label flips between valid classes are not linearly separable in the embedding
            (weak recall on symmetric flips); the loss GMM finds no trusted noisy set.
Reference:  PaulAlbert31/LSA @1b2ca0cd, trainers.py L377-380 (get_trusted), L382-457
            (detect_noise), L665-689 (alternation); detectors.md §5.

Per detection epoch the official code min-max normalises the losses, fits a 2-component GMM
(max_iter 10, tol 1e-2, reg_covar 5e-4), takes q = posterior of the high-mean component and
z = q > 0.95 as targets, and fits an unpenalised, class-balanced logistic regression on the
standardised, L2-normalised features of all samples; even epochs use its prediction, odd
epochs the loss flag. Ours reads the recorded proxy run at six evenly spaced epochs up to
``read_epoch`` (the official code detects after every training epoch), adds weak L2 when
N < 20 D as detectors.md §5 advises, and scores ``(mean p_LR + mean q) / 2`` over them.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from ..train.heads import fit_linear_heads
from ..train.record import TrainingRecord
from ._result import DetectorResult

REQUIRES = ("dynamics",)  # and record.features, which every record carries
TRUSTED = 0.95  # main.py --thresh
N_DETECTIONS = 6  # our choice: every epoch would cost one LR fit per epoch for little change


def detect(record: TrainingRecord, *, n_detections: int = N_DETECTIONS) -> DetectorResult:
    """Alternating linear-separation / small-loss score for every sample.

    Parameters
    ----------
    record : TrainingRecord
        Reads ``record.features`` (the standardised feature matrix) and
        ``record.dynamics.loss`` at up to ``n_detections`` epochs.
    n_detections : int, default=6

    Returns
    -------
    DetectorResult
        score = mean of the hyperplane posteriors and the small-loss posteriors, higher =
        more likely mislabeled; flag = the hyperplane's prediction at the last linear epoch.

    References
    ----------
    .. [1] P. Albert et al. "An accurate detection is not all you need to combat label noise
       in web-noisy datasets." ECCV 2024.
    """
    dyn = record.require("dynamics", "linear_separation")
    Z = normalise_features(record.features)
    epochs = np.unique(np.linspace(0, dyn.read_epoch, n_detections).round().astype(int))
    q = np.array([small_loss_posterior(dyn.loss[e].astype(np.float64)) for e in epochs])
    # even detections are "linear" epochs, odd ones use the loss flag itself; the
    # hyperplanes are independent fits, so they are fitted together
    p_lr = hyperplane_posteriors(Z, q[0::2] > TRUSTED)
    q_loss = q[1::2] if len(q) > 1 else p_lr
    flag = p_lr[-1] > 0.5
    score = 0.5 * (p_lr.mean(axis=0) + q_loss.mean(axis=0))
    return DetectorResult(
        "linear_separation", score=np.clip(score, 0, 1), flag=flag,
        evidence={"hyperplane": p_lr.mean(axis=0), "small_loss": q_loss.mean(axis=0)},
        diagnostics={"detection_epochs": len(epochs)},
    )


def normalise_features(Z: np.ndarray) -> np.ndarray:
    """L2-normalise every row, then z-score every column (trainers.py L400-405)."""
    Z = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
    return (Z - Z.mean(0)) / np.maximum(Z.std(0), 1e-12)


def small_loss_posterior(loss: np.ndarray) -> np.ndarray:
    """Posterior of the high-mean component of a 2-GMM on min-max normalised losses."""
    span = loss.max() - loss.min()
    if span <= 0:
        return np.zeros_like(loss)
    x = ((loss - loss.min()) / span)[:, None]
    gmm = GaussianMixture(2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=0).fit(x)
    return gmm.predict_proba(x)[:, int(np.argmax(gmm.means_[:, 0]))]


def hyperplane_posteriors(Z: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """In-sample P(noisy) of a class-balanced logistic regression on ``Z`` for each row of
    targets ``noisy`` (n_fits, n_samples), all fitted at once.

    With no trusted noisy (or no clean) sample in a row the official code divides by zero;
    that row gets zeros instead (no separable noise).
    """
    n, d = Z.shape
    out = np.zeros(noisy.shape)
    n_noisy = noisy.sum(axis=1)
    fit = np.flatnonzero((n_noisy > 0) & (n_noisy < n))
    if not len(fit):
        return out
    targets, n_noisy = noisy[fit], n_noisy[fit, None]
    X = torch.as_tensor(Z, dtype=torch.float32)
    # class_weight="balanced" is a sample weight n / (2 n_class); fit_linear_heads
    # normalises each model's weights to a mean, so they go in as its sample mask
    weight = np.where(targets, n / (2 * n_noisy), n / (2 * (n - n_noisy))) / n
    l2 = 1e-4 if n < 20 * d else 0.0  # detectors.md §5: weak L2 when N is not >> D
    heads = fit_linear_heads(X, torch.as_tensor(targets.astype(np.int64)),
                             torch.as_tensor(weight, dtype=torch.float32),
                             torch.full((len(fit),), l2), n_classes=2, max_iter=300)
    with torch.no_grad():
        out[fit] = torch.softmax(heads.logits(X), -1)[..., 1].numpy()
    return out
