"""Turn a :class:`Dataset` into the feature matrix ``Z`` that the proxy heads train on.

* tables: numbers as they are, categories one-hot, missing values imputed (and counted);
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

from .data import Dataset, content_hash
from .errors import DatasetError
from .export import atomic_write

log = logging.getLogger(__name__)

# our choice: beyond this many categories a column is more likely an id or free text than a
# category; its rarest values are pooled into one "other" indicator.
MAX_CATEGORIES = 50


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
        ``table``, ``embeddings``, ``pixels`` or ``timm:<model>``.
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
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        cache_file = Path(cache_dir) / f"features-{digest}.npz"
        if cache_file.is_file():
            with np.load(cache_file) as cached:
                return Features(cached["Z"], cached["readable"], kind,
                                str(cached["reason"]), int(cached["n_imputed"]), cached=True)
    features = _compute(dataset, spec, reason, kind, image_size, device, on_progress)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_file, lambda p: np.savez(
            p, Z=features.Z, readable=features.readable, reason=features.reason,
            n_imputed=features.n_imputed))
    return features


def _compute(dataset, spec, reason, kind, image_size, device, on_progress) -> Features:
    if dataset.layout == "table":
        Z, n_imputed = _table_matrix(dataset.features)
        reason = "table columns, standardised"
        for name in _free_text_columns(dataset.features)[:1]:
            reason += (f"; column '{name}' looks like free text and was used as categories: "
                       f"pass --text-column {name} to embed it as text")
            log.warning(reason)
        return Features(_standardise(Z), np.ones(len(Z), bool), kind, reason, n_imputed)
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
