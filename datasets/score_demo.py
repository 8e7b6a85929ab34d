"""Precision and recall of a cleanlab-ng report against a dataset's truth file, and how
many labels of the cleaned class folders beside the report are still wrong.

    python datasets/score_demo.py runs/demo/report.csv datasets/digits_noisy/truth.csv
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd


def main(report_path: str, truth_path: str) -> None:
    report = pd.read_csv(report_path, usecols=["sample_id", "is_noisy"])
    truth = pd.read_csv(truth_path, usecols=["sample_id", "is_noisy"])
    both = report.merge(truth, on="sample_id", suffixes=("_flagged", "_true"), validate="1:1")
    flagged, wrong = both["is_noisy_flagged"].astype(bool), both["is_noisy_true"].astype(bool)
    hits = int((flagged & wrong).sum())
    precision = hits / max(int(flagged.sum()), 1)
    recall = hits / max(int(wrong.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    print(f"flagged {int(flagged.sum())} of {len(both)}; truly mislabeled {int(wrong.sum())}")
    print(f"precision {precision:.3f}  recall {recall:.3f}  F1 {f1:.3f}")
    cleaned = Path(report_path).parent / "cleaned"
    if cleaned.is_dir():
        kept, still_wrong = cleaned_label_errors(cleaned, truth_path)
        given_wrong = int(wrong.sum())
        print(f"cleaned/: {kept} images, {still_wrong} labelled wrongly "
              f"({still_wrong / max(kept, 1):.1%}); the input: {given_wrong} of {len(both)} "
              f"({given_wrong / len(both):.1%})")


def cleaned_label_errors(cleaned: Path, truth_path: str) -> tuple[int, int]:
    """(images, images whose class folder is not their true class) in a cleaned export of
    class folders; a relabelled image may carry ``.from-<old class>`` in its name."""
    truth = pd.read_csv(truth_path, usecols=["sample_id", "true_label"])
    true = {Path(s).name: str(t) for s, t in zip(truth["sample_id"], truth["true_label"])}
    files = [f for f in cleaned.rglob("*") if f.is_file()]
    wrong = sum(f.parent.name != true[re.sub(r"\.from-[^.]*(?=\.[^.]+$)", "", f.name)]
                for f in files)
    return len(files), wrong


if __name__ == "__main__":
    main(*sys.argv[1:3])
