"""The :class:`TrainingRecord`: everything the detectors read, and how it is saved.

A record is built in stages (``detectors.md`` §7), each trained only when a selected
detector needs it and the saved record lacks it:

* ``oof``      -- K-fold out-of-fold probabilities from linear heads, the L2 strength chosen
  by their log-loss on the given labels, and the estimated number of wrong labels.
* ``dynamics`` -- full-data proxy runs (several, from different seeds, on small datasets):
  per epoch and per sample loss, prediction, probability of the given label, margin and
  entropy; probability snapshots; the epoch at which the head starts to memorise.
* ``rounds``   -- multi-round Late Stopping: the round at which each sample was removed.
* ``recov``    -- repeated K-fold cross-fitting of ridge heads: per-fold accuracies, how often
  each sample was in the worst fold, and out-of-fold probabilities averaged over the repeats.
* ``fastrecov`` -- fastReCoV with the fine-tuned backbone (``--finetune``): each sample's
  memory of its held-out probability over ten re-split cross-validation runs.
* ``adaptation`` -- the out-of-fold heads before and after label-free entropy minimisation
  on their held-out folds (confidence_drop).

Each stage is saved as its own ``.npz`` beside a JSON key of the settings that produced it,
so a second run reuses whatever still matches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

import numpy as np

from ..export import atomic_write

STAGES = ("oof", "dynamics", "rounds", "adaptation", "recov", "fastrecov")


@cache
def code_fingerprint() -> str:
    """A hash of the training code's sources (this package and the feature encoders).

    Part of every stage's key: a record saved by other training code is trained again,
    even under the same version number, as in a development checkout between releases.
    """
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("*.py"), root.parent / "features.py"]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class OutOfFold:
    """Stage ``oof``: cross-fitted linear heads on the features."""

    proba: np.ndarray  # (N, C) out-of-fold probabilities at the chosen L2
    folds: np.ndarray  # (N,) fold of every sample
    l2_grid: np.ndarray  # (G,) L2 strengths tried
    log_loss: np.ndarray  # (G,) out-of-fold log-loss on the given labels, per strength
    l2: float  # the chosen strength
    noise_count: int  # estimated number of wrong labels


@dataclass(frozen=True, eq=False)
class Dynamics:
    """Stage ``dynamics``: the full-data proxy run, one eval-mode pass per epoch."""

    loss: np.ndarray  # (E, N) cross-entropy on the given label
    pred: np.ndarray  # (E, N) argmax prediction
    p_given: np.ndarray  # (E, N) probability of the given label
    margin: np.ndarray  # (E, N) logit of the given label minus the largest other logit
    entropy: np.ndarray  # (E, N) entropy of the predicted distribution
    train_accuracy: np.ndarray  # (E,) accuracy on the given labels
    snapshot_epochs: np.ndarray  # (3,) epochs t0, t1 and read_epoch
    snapshots: np.ndarray  # (3, N, C) probabilities at those epochs
    memorization_epoch: int  # first epoch that fits more than 1 - noise rate; -1 if none
    read_epoch: int  # last epoch before memorisation (or the end of the constant-LR phase)

    @property
    def n_epochs(self) -> int:
        return self.loss.shape[0]


@dataclass(frozen=True, eq=False)
class Rounds:
    """Stage ``rounds``: multi-round Late Stopping (``detectors.md`` §3)."""

    removed_in: np.ndarray  # (N,) round (1..n_rounds) a sample was removed in; 0 = kept
    last_fkl: np.ndarray  # (N,) FkL epoch in the last round a sample took part in (inf = never)
    n_rounds: int
    keep_ratio: float


@dataclass(frozen=True, eq=False)
class Adaptation:
    """Stage ``adaptation``: out-of-fold probabilities before and after adaptation."""

    source: np.ndarray  # (N, C) the fold head that never saw the sample
    adapted: np.ndarray  # (N, C) the same head after entropy minimisation on its fold


@dataclass(frozen=True, eq=False)
class Recov:
    """Stage ``recov``: R repeats of K-fold cross-fitting (``detectors.md`` §2, §7.1 stage C).

    The folds of repeat ``r`` are :func:`cleanlab_ng.train.heads.repeated_folds` of the seed,
    so they are not stored.
    """

    counts: np.ndarray  # (N,) repeats in which the sample was in the worst fold (of its class)
    fold_accuracy: np.ndarray  # (R, K) accuracy of each fold model on its held-out fold
    # (R, K, C) the metric that picks the worst fold: the mean margin of each fold's samples
    # of each class for "class_margin", the accuracy (C axis of 1) for "accuracy"
    fold_metric: np.ndarray
    worst_fold: np.ndarray  # (R, C) the worst fold per repeat and class; -1: none counted
    metric: str  # "class_margin" or "accuracy" (cleanlab_ng.train.recov)
    proba: np.ndarray  # (N, C) out-of-fold probabilities averaged over the first PROBA_RUNS repeats
    l2_grid: np.ndarray  # (G,) ridge L2 strengths tried
    log_loss: np.ndarray  # (G,) out-of-fold log-loss of the first repeat, per strength
    l2: float  # the chosen strength
    noise_count: int  # estimated number of wrong labels, from ``proba``
    n_runs: int
    n_folds: int
    stop_reason: str  # "fixed", "stable" or "max_runs"
    stability: float  # Spearman correlation of the counts at R/2 and R; nan if not checked

    @property
    def oof_accuracy(self) -> float:
        """Mean held-out accuracy of the R x K fold models on the given labels."""
        return float(self.fold_accuracy.mean())


@dataclass(frozen=True, eq=False)
class FastRecov:
    """Stage ``fastrecov``: fastReCoV runs of the fine-tuned proxy (``detectors.md`` §2)."""

    memory: np.ndarray  # (N,) moving average of the held-out probability of the given label
    proba: np.ndarray  # (N, C) held-out probabilities averaged over the runs
    noise_count: int  # estimated number of wrong labels, from ``proba``
    n_runs: int
    n_folds: int
    threshold: float  # identified: memory <= threshold


@dataclass(frozen=True, eq=False)
class TrainingRecord:
    """What the proxy training recorded, for the samples that could be encoded.

    Attributes
    ----------
    labels : ndarray of shape (n_samples,)
        Given labels (class indices).
    n_classes : int
    features : ndarray of shape (n_samples, n_features) or None
        The standardised features the heads trained on (read by linear_separation).
    neighbours : ndarray of shape (n_samples, k) or None
        Each sample's nearest other samples in ``features``, nearest first
        (:func:`cleanlab_ng.neighbours.feature_neighbours`); searched once per run and read
        by linear_separation and the merge's referee. None: each searches for itself.
    oof, dynamics, rounds, adaptation, recov, fastrecov : stage dataclasses or None
        None when the stage was not trained; ``dynamics`` is one proxy run (the pipeline
        makes one record per run and averages the detectors that read it).
    """

    labels: np.ndarray
    n_classes: int
    features: np.ndarray | None = None
    neighbours: np.ndarray | None = None
    oof: OutOfFold | None = None
    dynamics: Dynamics | None = None
    rounds: Rounds | None = None
    adaptation: Adaptation | None = None
    recov: Recov | None = None
    fastrecov: FastRecov | None = None

    @property
    def n_samples(self) -> int:
        return len(self.labels)

    @property
    def proba(self) -> np.ndarray:
        """Out-of-fold probabilities (N, C): averaged over the ``recov`` repeats (or the
        ``fastrecov`` runs) when that stage exists, else the ``oof`` stage's."""
        return self._out_of_fold().proba

    @property
    def noise_count(self) -> int:
        """Estimated number of wrong labels, from the same probabilities as :attr:`proba`."""
        return self._out_of_fold().noise_count

    def _out_of_fold(self):
        for stage in (self.recov, self.fastrecov, self.oof):
            if stage is not None:
                return stage
        raise ValueError("out-of-fold probabilities need the 'recov', 'fastrecov' or 'oof' "
                         "training stage, which this record lacks")

    def require(self, stage: str, detector: str):
        """The stage, or a clear error when a detector is called without it."""
        value = getattr(self, stage)
        if value is None:
            raise ValueError(f"detector '{detector}' needs the '{stage}' training stage, "
                             "which this record lacks")
        return value


def save_stage(folder: Path, stage: str, value, key: dict) -> None:
    """Write one stage atomically: arrays to ``<stage>.npz``, scalars and key to JSON.

    ``value`` is a stage dataclass or a tuple of them (the runs of ``dynamics``); a tuple's
    arrays are saved as ``<run>/<field>`` and its scalars as a list, one entry per run.
    """
    folder.mkdir(parents=True, exist_ok=True)
    runs = value if isinstance(value, tuple) else (value,)
    arrays, scalars = {}, []
    for i, run in enumerate(runs):
        prefix = f"{i}/" if isinstance(value, tuple) else ""
        own = {f.name: getattr(run, f.name) for f in fields(run)
               if isinstance(getattr(run, f.name), np.ndarray)}
        arrays.update({prefix + name: a for name, a in own.items()})
        scalars.append({f.name: getattr(run, f.name) for f in fields(run) if f.name not in own})
    meta = {"key": key, "scalars": scalars if isinstance(value, tuple) else scalars[0]}
    atomic_write(folder / f"{stage}.npz", lambda p: np.savez(p, **arrays))
    text = json.dumps(meta, sort_keys=True, default=float)
    atomic_write(folder / f"{stage}.json", lambda p: Path(p).write_text(text))


def load_stage(folder: Path, stage: str, key: dict):
    """The saved stage (a tuple where a tuple was saved) if its key matches ``key`` exactly,
    else None."""
    meta_path, data_path = folder / f"{stage}.json", folder / f"{stage}.npz"
    if not (meta_path.is_file() and data_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    if meta["key"] != json.loads(json.dumps(key, sort_keys=True, default=float)):
        return None
    cls = {"oof": OutOfFold, "dynamics": Dynamics, "rounds": Rounds,
           "adaptation": Adaptation, "recov": Recov, "fastrecov": FastRecov}[stage]
    with np.load(data_path) as data:
        arrays = {name: data[name] for name in data.files}
    if isinstance(meta["scalars"], dict):
        return cls(**arrays, **meta["scalars"])
    return tuple(cls(**{name.partition("/")[2]: a for name, a in arrays.items()
                        if name.startswith(f"{i}/")}, **scalars)
                 for i, scalars in enumerate(meta["scalars"]))


