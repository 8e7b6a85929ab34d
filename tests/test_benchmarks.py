"""The benchmark harness scores methods correctly (no data from ../shared needed)."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.count import count_estimates
from benchmarks.runner import method_rows, score
from benchmarks.suites import LabelSet, flip_labels


def test_score_counts_hits_and_ranks():
    wrong = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    flag = np.array([1, 0, 1, 0, 0, 0], dtype=bool)
    ranking = np.array([.9, .8, .7, .1, .2, .3])
    row = score(wrong, flag, ranking)
    assert row["precision"] == row["recall"] == row["f1"] == pytest.approx(0.5)
    assert row["auroc"] == 1.0 and row["flagged"] == 2


def test_flip_labels_flips_the_rate_and_never_keeps_the_label():
    y = np.repeat(np.arange(5), 40)
    for kind in ("symmetric", "pair"):
        noisy = flip_labels(y, kind, 0.2, 0)
        assert (noisy != y).sum() == 40
    pair = flip_labels(y, "pair", 0.2, 0)
    assert np.all(pair[pair != y] == (y[pair != y] + 1) % 5)


def test_method_rows_cover_every_method_and_flag_nothing():
    given = np.array([0, 1, 1, 0])
    wrong = np.array([False, True, False, False])
    report = pd.DataFrame({
        "bmm_score": [.1, .9, .2, .3], "bmm_flag": [False, True, False, False],
        "noise_score": [.1, .9, .2, .3], "is_noisy": [False, True, False, False],
        "cl_score": [.1, .2, .9, .3], "cl_flag": [False, False, True, False],
        "predicted_label": [0, 0, 1, 0]})
    rows = {r["method"]: r for r in method_rows(
        LabelSet("s", "x", given=given, wrong=wrong), report, ["bmm"])}
    assert set(rows) == {"bmm", "merged", "cleanlab", "predicted_neq_given", "flag_nothing"}
    assert rows["merged"]["f1"] == 1.0 and rows["cleanlab"]["f1"] == 0.0
    assert rows["predicted_neq_given"]["f1"] == 1.0
    assert rows["flag_nothing"] == {"method": "flag_nothing", "precision": 0.0, "recall": 0.0,
                                    "f1": 0.0, "auroc": 0.5, "auprc": 0.25, "flagged": 0}


def test_count_estimates_on_confident_probabilities():
    given = np.array([0, 0, 0, 1, 1, 1])
    proba = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.1, .9], [.7, .3]])
    counts = count_estimates(given, proba)
    assert counts["argmax"] == counts["strict"] == 2
    assert counts["expected"] == round(.1 + .2 + .9 + .2 + .1 + .7)
