"""Shared fixtures: small real datasets written from scikit-learn's digits.

Threads are pinned so the suite behaves the same on a shared 2-core machine.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

torch.set_num_threads(1)

N_SAMPLES = 600
NOISE = 0.2


@pytest.fixture(scope="session")
def digits():
    """(X, true, given, flipped) for the first N_SAMPLES digits with 20 % labels flipped."""
    d = load_digits()
    X, true = d.data[:N_SAMPLES], d.target[:N_SAMPLES]
    rng = np.random.default_rng(0)
    flipped = np.zeros(N_SAMPLES, dtype=bool)
    flipped[rng.choice(N_SAMPLES, int(NOISE * N_SAMPLES), replace=False)] = True
    given = true.copy()
    given[flipped] = (true[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    return X, true, given, flipped


def write_image_folder(root: Path, X, labels) -> list[str]:
    """DIR/<class>/<nnnn>.png; returns the sample ids in row order."""
    ids = []
    for i, (x, y) in enumerate(zip(X, labels)):
        rel = f"c{y}/{i:04d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((x.reshape(8, 8) * 255 / 16).astype(np.uint8)).save(root / rel)
        ids.append(rel)
    return ids


@pytest.fixture
def image_folder(tmp_path, digits):
    X, _, given, flipped = digits
    root = tmp_path / "images"
    ids = write_image_folder(root, X, given)
    return root, np.array(ids), flipped


@pytest.fixture
def csv_table(tmp_path, digits):
    X, _, given, flipped = digits
    frame = pd.DataFrame(X, columns=[f"px{i}" for i in range(64)])
    frame.insert(0, "id", [f"s{i}" for i in range(len(frame))])
    frame["label"] = given
    root = tmp_path / "table"
    root.mkdir()
    frame.to_csv(root / "digits.csv", index=False)
    return root / "digits.csv", frame, flipped


def tree_hash(root: Path) -> str:
    """Hash of every file's path, bytes and mode under ``root`` (or of one file)."""
    h = hashlib.sha256()
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*"))
    for p in paths:
        h.update(str(p.relative_to(root.parent)).encode())
        if p.is_file():
            h.update(p.read_bytes())
            h.update(str(p.stat().st_mode).encode())
    return h.hexdigest()
