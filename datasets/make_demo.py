"""Build the demo dataset ``datasets/digits_noisy`` from scikit-learn's bundled digits.

    python datasets/make_demo.py

Writes an image class folder ``digits_noisy/data/<class>/<nnnn>.png`` (1,797 8x8 greyscale
digits, 20 % of the labels replaced: half by a random other class, half by the next digit)
and, beside the data folder rather than inside it, ``digits_noisy/truth.csv`` with each
image's given and true label. The noise is seeded, so the output is the same every time.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

NOISE_RATE = 0.20
SEED = 2026
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def main(root: Path = Path(__file__).parent / "digits_noisy") -> None:
    digits = load_digits()
    true = digits.target
    rng = np.random.default_rng(SEED)
    given = true.copy()
    flipped = rng.choice(len(true), int(NOISE_RATE * len(true)), replace=False)
    symmetric, pair = flipped[: len(flipped) // 2], flipped[len(flipped) // 2:]
    given[symmetric] = (true[symmetric] + rng.integers(1, 10, len(symmetric))) % 10
    given[pair] = (true[pair] + 1) % 10
    rows = []
    for i, (image, label) in enumerate(zip(digits.images, given)):
        path = Path(NAMES[label]) / f"{i:04d}.png"
        (root / "data" / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255 / 16).round().astype(np.uint8)).save(root / "data" / path)
        rows.append((path.as_posix(), NAMES[label], NAMES[true[i]], int(label != true[i])))
    with open(root / "truth.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sample_id", "given_label", "true_label", "is_noisy"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} images ({len(flipped)} mislabeled) to {root / 'data'}")


if __name__ == "__main__":
    main()
