"""Precision and recall of a cleanlab-ng report against a dataset's truth file.

    python datasets/score_demo.py runs/demo/report.csv datasets/digits_noisy/truth.csv
"""

from __future__ import annotations

import sys

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


if __name__ == "__main__":
    main(*sys.argv[1:3])
