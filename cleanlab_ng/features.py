"""Turn a :class:`Dataset` into the feature matrix ``Z`` that the proxy heads train on.

* tables: numbers as they are, categories one-hot, missing values imputed (and counted),
  then, where they predict the given labels better, random RBF kernel features (Nystroem);
* embeddings: as given;
* text: TF-IDF reduced by truncated SVD (:mod:`cleanlab_ng.text`), offline and deterministic;
* images: the pooled embedding of a pretrained timm backbone when its weights are available
  offline, else raw downscaled pixels -- the choice and its reason are logged and returned.

Every column is then standardised. Features are cached on disk, keyed by the content hash
of the input, the backbone, its weights and the resolution, so a second run never
re-encodes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .choices import TABLE_FEATURES
from .data import Dataset, content_hash
from .errors import DatasetError
from .export import atomic_write

log = logging.getLogger(__name__)

# our choice: beyond this many categories a column is more likely an id or free text than a
# category; its rarest values are pooled into one "other" indicator.
MAX_CATEGORIES = 50
TABLE_ENCODING = 2
# our choice: below this many rows a column of distinct strings may still be a category
MIN_ROWS_FOR_IDENTIFIERS = 20
# Every proxy head is linear in the features, which suits embeddings but not a table whose
# classes no hyperplane separates (two moons, concentric circles, a class between two
# others): there the heads misfit clean samples and the detectors flag them. Our choice: an
# RBF kernel (gamma = 1 / columns on standardised columns) approximated by Nystroem on this
# many landmarks, enough for such boundaries in a few dozen columns at N x 256 features;
# taken only when its out-of-fold heads predict the given labels better than the columns'
# by KERNEL_Z standard errors of the paired difference (benchmarks/tables.py)
KERNEL_COMPONENTS = 256
KERNEL_Z = 2.0
KERNEL_FOLDS = 5


@dataclass(frozen=True, eq=False)
class Features:
    """Standardised features for every sample.

    Attributes
    ----------
    Z : ndarray of float32, shape (n_samples, n_features)
        Rows of unreadable samples are zeros.
    readable : ndarray of bool, shape (n_samples,)
        False for images that could not be decoded; they are left out of training.
    kind : str
        ``table``, ``table+kernel``, ``embeddings``, ``text``, ``pixels`` or
        ``timm:<model>``.
    reason : str
        Why this kind was chosen, for the log and the summary.
    n_imputed : int
        Missing table values that were filled in.
    cached : bool
        Whether they were read from the on-disk cache.
    """

    Z: np.ndarray
    readable: np.ndarray
    kind: str
    reason: str
    n_imputed: int = 0
    cached: bool = False


def encode(
    dataset: Dataset,
    *,
    backbone: str | None = None,
    weights: str | Path | None = None,
    image_size: int = 224,
    device: str = "cpu",
    cache_dir: Path | None = None,
    input_hash: str | None = None,
    table_features: str = "auto",
    on_progress: Callable[[int, int], None] | None = None,
) -> Features:
    """Encode ``dataset`` into standardised features, through the on-disk cache.

    Parameters
    ----------
    dataset : Dataset
    backbone : str, default=None
        timm model name for images; default EfficientNet-Lite0 (ImageNet) when its weights
        package is installed.
    weights : str or Path, default=None
        Weights file for ``backbone``.
    image_size : int, default=224
        Side of the square the images are resized to before the backbone.
    device : str, default="cpu"
    cache_dir : Path, default=None
        Where features are cached, keyed by the input's content hash, the backbone, its
        weights and the resolution; None disables the cache.
    input_hash : str, default=None
        The dataset's content hash (computed when needed and not given).
    table_features : {"auto", "linear", "kernel"}, default="auto"
        Tables only: the standardised columns (``linear``), random RBF kernel features of
        them (``kernel``), or the kernel features when they predict the given labels
        better out of fold (``auto``, see :func:`table_kernel_choice`).
    on_progress : callable, default=None
        ``on_progress(done, total)`` while images are encoded.

    Returns
    -------
    Features
        ``cached`` tells whether they were read from the cache.
    """
    spec, reason, kind = None, "", dataset.layout
    if dataset.image_paths is not None:
        from . import backbones  # torch and timm load only when images need them

        spec, reason = backbones.resolve_backbone(backbone, weights)
        kind = f"timm:{spec.name}" if spec else "pixels"
        log.info("image features: %s", reason)
    cache_file = None
    if cache_dir is not None:
        key = {
            "input": input_hash or content_hash(dataset),
            "kind": kind,
            "weights": _file_hash(spec.weights) if spec and spec.weights else None,
            "image_size": image_size if dataset.image_paths is not None else None,
            "text_column": dataset.features.name if dataset.layout == "text" else None,
            "table_features": table_features if dataset.layout == "table" else None,
            # bumped when the same table encodes differently (2: identifiers left out)
            "table_encoding": TABLE_ENCODING if dataset.layout == "table" else None,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        cache_file = Path(cache_dir) / f"features-{digest}.npz"
        if cache_file.is_file():
            with np.load(cache_file) as cached:
                # caches written before the kind was stored hold images or embeddings only
                stored = str(cached["kind"]) if "kind" in cached else kind
                return Features(cached["Z"], cached["readable"], stored,
                                str(cached["reason"]), int(cached["n_imputed"]), cached=True)
    if dataset.layout == "table":
        features = _table_features(dataset, table_features)
    else:
        features = _compute(dataset, spec, reason, kind, image_size, device, on_progress)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_file, lambda p: np.savez(
            p, Z=features.Z, readable=features.readable, kind=features.kind,
            reason=features.reason, n_imputed=features.n_imputed))
    return features


def _table_features(dataset: Dataset, mode: str) -> Features:
    if mode not in TABLE_FEATURES:
        raise ValueError(f"table_features must be one of {TABLE_FEATURES}, got {mode!r}")
    frame, reason, kind = dataset.features, "table columns, standardised", "table"
    identifiers = _identifier_columns(frame)
    if identifiers:
        if len(identifiers) == frame.shape[1]:
            raise DatasetError(
                f"{dataset.source.name}: column '{identifiers[0]}' holds a different value on "
                "every row (an identifier) and there is no other feature column. Add feature "
                f"columns, or pass --text-column {identifiers[0]} if it holds text.")
        frame = frame.drop(columns=identifiers)
    texts = _free_text_columns(dataset.features)[:1]
    named = [str(c) for c in identifiers if str(c) not in texts]  # the text gets its own hint
    if named:
        reason += (f"; left out {', '.join(map(repr, named))}: a different value on every "
                   f"row, an identifier (--id-column {named[0]} names the samples by it)")
    Z, n_imputed = _table_matrix(frame)
    Z = _standardise(Z)
    for name in texts:
        fate = "left out" if name in map(str, identifiers) else "used as categories"
        reason += (f"; column '{name}' looks like free text and was {fate}: "
                   f"pass --text-column {name} to embed it as text")
        log.warning(reason)
    if mode != "linear":
        K = _standardise(kernel_features(Z))
        if mode == "kernel":
            Z, kind = K, "table+kernel"
            reason += "; RBF kernel features (asked for)"
        else:
            gain, se = table_kernel_choice(Z, K, dataset.labels, dataset.n_classes)
            better = gain > KERNEL_Z * se and gain > 0
            reason += (f"; RBF kernel features {'taken' if better else 'not taken'}: held-out "
                       f"accuracy {gain * 100:+.1f} points (standard error {se * 100:.1f})")
            if better:
                Z, kind = K, "table+kernel"
    log.info("table features: %s", reason)
    return Features(Z, np.ones(len(Z), bool), kind, reason, n_imputed)


def kernel_features(Z: np.ndarray, n_components: int = KERNEL_COMPONENTS,
                    seed: int = 0) -> np.ndarray:
    """Nystroem features of the RBF kernel ``exp(-||x - x'||^2 / n_columns)`` on the rows of
    the standardised ``Z``: linear heads on them fit boundaries the columns cannot."""
    from sklearn.kernel_approximation import Nystroem

    nystroem = Nystroem(gamma=1.0 / Z.shape[1], n_components=min(n_components, len(Z)),
                        random_state=seed)
    return nystroem.fit_transform(Z).astype(np.float32)


def table_kernel_choice(Z: np.ndarray, K: np.ndarray, labels: np.ndarray,
                        n_classes: int) -> tuple[float, float]:
    """How much better held-out linear heads on ``K`` predict the given labels than on
    ``Z``: the mean paired gain in accuracy and its standard error.

    The heads are recov's closed-form ridge heads (5 folds, each feature set at its best L2
    of ``RIDGE_L2_GRID``), a few milliseconds where the softmax heads took seconds. The given
    labels are noisy, but a wrong label is as hard to predict from either set of features,
    so the gain measures how much more of the classes' structure the kernel features hold.
    """
    import torch  # loads only for tables, which need it for the heads anyway

    from .train.heads import prepare_ridge, repeated_fold_orders, ridge_cross_fit
    from .train.recov import RIDGE_L2_GRID

    y = torch.as_tensor(labels, dtype=torch.int64)
    orders = repeated_fold_orders(labels, KERNEL_FOLDS, 0, range(1))
    correct = []
    for F in (Z, K):
        fit = prepare_ridge(torch.as_tensor(F), y, n_classes=n_classes, dtype=torch.float32)
        best = None
        for l2 in RIDGE_L2_GRID:
            scores, slots = ridge_cross_fit(fit, orders, KERNEL_FOLDS, l2)
            rows, predicted = slots.reshape(-1), scores.argmax(dim=0).reshape(-1)
            real = rows < len(labels)  # the padding slots of short folds
            hit = np.zeros(len(labels))
            hit[rows[real].numpy()] = (predicted[real] == y[rows[real]]).numpy()
            if best is None or hit.mean() > best.mean():
                best = hit
        correct.append(best)
    diff = correct[1] - correct[0]
    se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
    return float(diff.mean()), float(se)


def _compute(dataset, spec, reason, kind, image_size, device, on_progress) -> Features:
    if dataset.layout == "text":
        from .text import embed_texts

        texts = dataset.features.tolist()
        if not any(t.strip() for t in texts):
            raise DatasetError(f"{dataset.source.name}: column '{dataset.features.name}' holds "
                               "no text. Name the column that holds the texts.")
        Z, reason = embed_texts(texts)
        return Features(_standardise(Z), np.ones(len(Z), bool), kind, reason)
    if dataset.layout == "embeddings":
        Z = np.asarray(dataset.features, dtype=np.float32)
        return Features(_standardise(Z), np.ones(len(Z), bool), kind,
                        "precomputed embeddings, standardised")
    from . import backbones

    Z, readable = backbones.embed_images(dataset.image_paths, spec, image_size=image_size,
                                         device=device, on_progress=on_progress)
    if not readable.any():
        raise DatasetError(f"{dataset.source}: none of the {len(readable)} images could be "
                           "decoded. Check that the files are images.")
    Z = np.where(readable[:, None], _standardise(Z, rows=readable), 0).astype(np.float32)
    return Features(Z, readable, kind, reason)


def _table_matrix(frame: pd.DataFrame) -> tuple[np.ndarray, int]:
    blocks, n_imputed = [], 0
    for name in frame.columns:
        col = frame[name]
        missing = col.isna()
        n_imputed += int(missing.sum())
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            values = col.astype(object).where(~missing, "<missing>").astype(str)
            top = values.value_counts().index[:MAX_CATEGORIES]
            values = values.where(values.isin(top), "<other>")
            blocks.append(pd.get_dummies(values, dtype=np.float32).to_numpy())
        else:
            if missing.all():
                continue
            blocks.append(col.fillna(col.median()).to_numpy(np.float32)[:, None])
    if not blocks:
        raise DatasetError("table: no usable feature column (all values missing). "
                           "Add feature values.")
    return np.hstack(blocks), n_imputed


def _identifier_columns(frame: pd.DataFrame) -> list:
    """Text columns with a different value on every row: no value recurs, so as categories
    they would be one indicator per row, noise to the heads (an id, a file name, a URL)."""
    if len(frame) < MIN_ROWS_FOR_IDENTIFIERS:
        return []
    return [name for name in frame.columns
            if not pd.api.types.is_numeric_dtype(frame[name])
            and not pd.api.types.is_bool_dtype(frame[name])
            and frame[name].notna().all() and frame[name].nunique() == len(frame)]


def _free_text_columns(frame: pd.DataFrame) -> list[str]:
    """String columns whose values are mostly distinct and long: text, not categories."""
    names = []
    for name in frame.columns:
        col = frame[name].dropna()
        if len(col) and not pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(
                col):
            values = col.astype(str)
            # our choice: categories repeat and are short; sentences are neither
            if values.nunique() > 0.5 * len(values) and values.str.len().mean() >= 30:
                names.append(str(name))
    return names


def _standardise(Z: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    ref = Z if rows is None else Z[rows]
    mean = ref.mean(axis=0)
    std = ref.std(axis=0)
    return ((Z - mean) / np.where(std > 1e-8, std, 1)).astype(np.float32)


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
