"""Linear separation of noisy samples in embedding space (LSA) -- Albert, Valmadre, Arazo,
Krishna, O'Connor, McGuinness, ECCV 2024, arXiv 2407.05528.

Flags:      samples that sit where the small-loss split puts the noise in the embedding, among
            neighbours whose labels are not theirs: the samples no class explains.
Signal:     in a good embedding, out-of-distribution samples gather in regions of their own
            that the small-loss split marks as noisy; a label flip sits among correctly
            labelled samples of its true class, whose losses are small.
Fails when: the embedding mixes the foreign samples into the classes' regions (near-OOD);
            label flips between valid classes are not its target (weak recall on synthetic
            flips); the loss GMM finds no noisy set.
Reference:  PaulAlbert31/LSA @1b2ca0cd, trainers.py L377-380 (get_trusted), L382-457
            (detect_noise), L665-689 (alternation); detectors.md §5.

From the paper: per detection epoch the official code min-max normalises the losses, fits a
2-component GMM (max_iter 10, tol 1e-2, reg_covar 5e-4) and takes q = posterior of its
high-mean component; on even ("linear") epochs it fits an unpenalised, class-balanced logistic
regression to z = q > 0.95 on the standardised, L2-normalised features of all samples and
uses its posterior, on odd epochs the loss flag itself. We read the recorded proxy run at
six evenly spaced epochs up to ``read_epoch`` (the official code detects after every epoch).

Our transfer, ``separation="neighbours"`` (the default): the paper's premise is a contrastive
embedding trained on the noisy data itself, where the noisy region is a half-space. A frozen
pretrained embedding gives no such half-space, and a hyperplane fitted to z also bends
towards the label flips, which lie inside every class: on the benchmark of
``benchmarks/detectors.py`` (two CIFAR-10 classes scattered into the other eight) the
hyperplane separates the foreign images with AUROC 0.885, below what a hyperplane
trained on the *true* foreign labels reaches (0.96). We carry z's posterior over the
embedding locally instead: p_sep = (mean q over the ``n_neighbours`` nearest neighbours,
cosine, same features) x (share of those neighbours with another label). The first factor
is LSA's "this region is noisy"; the second keeps flips out, since a flip's neighbours are
its true class, clean and all labelled alike. The score is p_sep averaged over the linear
epochs: mixing in the sample's own q as the paper's single-shot ``(p_LR + q) / 2`` does
would put the flips back in (the merge gets the small-loss signal from ``bmm``). The flag
is a robust outlier rule on that score, because p_sep has no natural 0.5: a foreign
sample's neighbourhood is never all foreign. ``separation="hyperplane"`` is the paper's rule
(score ``(p_LR + q) / 2``, flag ``p_LR > 0.5``, weak L2 when N < 20 D as detectors.md §5
advises). With ``--finetune`` the losses come from the fine-tuned network but the embedding
stays the frozen one: the network's own pooled features at its read epoch, the closest we
have to the paper's setting, separated the foreign images worse (AUROC 0.932 against 0.970
from the same run's losses, ``benchmarks/results/finetune_embedding.md``). The paper reads
an intermediate block of its self-supervised network; of a frozen ImageNet one the
intermediate blocks separate the foreign images worse than the last layer on every pair
measured (``benchmarks/results/ood_features.md``), so the last layer it is.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from ..neighbours import feature_neighbours, normalise_features
from ..outliers import robust_outliers
from ..train.heads import fit_linear_heads
from ..train.record import TrainingRecord
from ._result import DetectorResult

REQUIRES = ("dynamics",)  # and record.features, which every record carries
TRUSTED = 0.95  # main.py --thresh
N_DETECTIONS = 6  # our choice: every epoch would cost one LR fit per epoch for little change
N_NEIGHBOURS = 200  # our choice, from 50-400 in benchmarks/detectors.py (b)
# flag above median + OUTLIER_Z robust standard deviations (MAD): our choice; on
# benchmarks/detectors.py (b) a higher z leaves more foreign images unflagged, a lower one
# types more in-distribution samples out of distribution than it adds foreign ones
OUTLIER_Z = 2.0
SEPARATIONS = ("neighbours", "hyperplane")


def detect(record: TrainingRecord, *, n_detections: int = N_DETECTIONS,
           separation: str = "neighbours", n_neighbours: int = N_NEIGHBOURS) -> DetectorResult:
    """Alternating separation / small-loss score for every sample.

    Parameters
    ----------
    record : TrainingRecord
        Reads ``record.features`` (the standardised feature matrix), its neighbour search
        ``record.neighbours`` when it has one deep enough, and ``record.dynamics.loss`` at up
        to ``n_detections`` epochs.
    n_detections : int, default=6
    separation : {"neighbours", "hyperplane"}, default="neighbours"
        How the small-loss split is carried over the embedding: over each sample's
        ``n_neighbours`` nearest neighbours (ours), or by the paper's logistic-regression
        hyperplane.
    n_neighbours : int, default=200

    Returns
    -------
    DetectorResult
        score = p_sep (``neighbours``) or the mean of the hyperplane and small-loss
        posteriors (``hyperplane``), higher = more likely noise; flag = the separation's
        verdict. Evidence: ``separation`` (p_sep or the mean hyperplane posterior) and
        ``small_loss`` (the mean small-loss posterior of the loss epochs).

    References
    ----------
    .. [1] P. Albert et al. "An accurate detection is not all you need to combat label noise
       in web-noisy datasets." ECCV 2024.
    """
    dyn = record.require("dynamics", "linear_separation")
    epochs = np.unique(np.linspace(0, dyn.read_epoch, n_detections).round().astype(int))
    q = np.array([small_loss_posterior(dyn.loss[e].astype(np.float64)) for e in epochs])
    q_linear = q[0::2]  # even detections are the separation's, odd ones the loss flag's
    q_loss = q[1::2] if len(q) > 1 else q_linear
    if separation == "neighbours":
        near = feature_neighbours(record.features, n_neighbours, record.neighbours)
        other_label = (record.labels[near] != record.labels[:, None]).mean(axis=1)
        p_sep = q_linear.mean(axis=0)[near].mean(axis=1) * other_label
        score, flag = p_sep, robust_outliers(p_sep, OUTLIER_Z)
    elif separation == "hyperplane":
        # the hyperplanes are independent fits, so they are fitted together
        p_lr = hyperplane_posteriors(normalise_features(record.features), q_linear > TRUSTED)
        p_sep, flag = p_lr.mean(axis=0), p_lr[-1] > 0.5
        score = 0.5 * (p_sep + q_loss.mean(axis=0))
    else:
        raise ValueError(f"separation must be one of {SEPARATIONS}, got {separation!r}")
    return DetectorResult(
        "linear_separation", score=np.clip(score, 0, 1), flag=flag,
        evidence={"separation": p_sep, "small_loss": q_loss.mean(axis=0)},
        diagnostics={"detection_epochs": len(epochs), "separation": separation},
    )


def small_loss_posterior(loss: np.ndarray) -> np.ndarray:
    """Posterior of the high-mean component of a 2-GMM on min-max normalised losses."""
    span = loss.max() - loss.min()
    if span <= 0:
        return np.zeros_like(loss)
    x = ((loss - loss.min()) / span)[:, None]
    with warnings.catch_warnings():
        # ten iterations is the paper's setting, not a fault: sklearn's warning that they
        # stopped short would only put a source line on the user's terminal
        warnings.simplefilter("ignore", ConvergenceWarning)
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
