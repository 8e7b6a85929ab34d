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


def test_draws_of_a_label_set_are_averaged_in_the_reports():
    from benchmarks.__main__ import mean_over_draws, summary_markdown

    def row(method, draw, f1, flagged):
        return {"suite": "synthetic", "label_set": "wine pair 10%", "draw": draw,
                "method": method, "f1": f1, "flagged": flagged, "true_count": 18,
                "proxy_accuracy": 0.9, "commit": "abc"}
    rows = [row(m, d, f1, fl) for d, (a, b) in enumerate([(0.8, 0.9), (1.0, 0.7)])
            for m, f1, fl in [("merged", a, 18 + d), ("cleanlab", b, 18)]]
    rows += [row(d, 0, 0.5, 10) for d in ("bmm", "recov", "late_stopping", "confidence_drop",
                                           "linear_separation")]
    frame = mean_over_draws(pd.DataFrame(rows))
    merged = frame[frame["method"] == "merged"].iloc[0]
    assert merged["f1"] == pytest.approx(0.9) and merged["flagged"] == 18.5
    assert merged["draws"] == 2 and merged["true_count"] == 18
    text = summary_markdown(frame)
    assert "Merged F1 ≥ cleanlab's on 1 of 1 label sets" in text
    assert "18.5 / 18" in text


def test_detectors_benchmark_reads_a_saved_record_with_several_proxy_runs(tmp_path, csv_table):
    import cleanlab_ng
    from benchmarks.detectors import load_record
    from cleanlab_ng.detectors import confidence_drop

    path, _, _ = csv_table
    result = cleanlab_ng.clean(path, tmp_path / "out", detectors="bmm,confidence_drop",
                               epochs=4, threads=1, export="none")
    assert result.summary["proxy"]["dynamics_runs"] > 1
    labels = pd.factorize(result.report["given_label"], sort=True)[0]
    record = load_record(tmp_path / "out", labels, int(labels.max()) + 1)
    assert record.dynamics.loss.shape == (4, len(labels))
    assert confidence_drop.snapshot_drop(record).shape == (len(labels),)


def test_supervised_ceiling_counts_in_distribution_samples_at_80_percent_recall():
    from benchmarks.detectors import supervised_ceiling

    rng = np.random.default_rng(0)
    foreign = np.arange(300) < 30
    X = rng.normal(size=(300, 4))
    X[foreign, 0] += 6.0  # the foreign samples stand apart on one axis
    ours = np.where(foreign, 0.2, 0.5)  # a score that ranks them last
    out = supervised_ceiling(X, foreign, ours)
    assert out["logistic C=1.0"]["auroc"] > 0.99
    assert out["logistic C=1.0"]["in_distribution_at_80pct"] <= 5
    assert out["linear_separation_score (no truth)"] == {"auroc": 0.0,
                                                          "in_distribution_at_80pct": 270}


def test_ood_feature_sets_average_the_flip_and_join_normalised_parts():
    from benchmarks.ood_features import feature_sets
    from cleanlab_ng.neighbours import normalise_features

    rng = np.random.default_rng(0)
    blocks = {name: rng.normal(size=(5, width)) for name, width in
              [("block 3", 2), ("block 4", 3), ("block 5", 4), ("last", 6), ("last, flipped", 6)]}
    sets = feature_sets(blocks)
    assert "last, flipped" not in sets
    np.testing.assert_allclose(sets["last, flip-averaged"],
                               (blocks["last"] + blocks["last, flipped"]) / 2)
    joined = sets["blocks 4, 5 + last"]
    assert joined.shape == (5, 13)
    for part, name in zip(np.split(joined, [3, 7], axis=1), ["block 4", "block 5", "last"]):
        np.testing.assert_allclose(part, normalise_features(blocks[name]))  # each on its own


def test_ood_folder_scatters_two_classes_and_flips_a_tenth_of_the_rest():
    from benchmarks.detectors import ood_folder

    labels = np.repeat(np.arange(10), 100)
    order, given, foreign, flips = ood_folder(labels, (3, 5))
    kept = ~np.isin(labels, (3, 5))
    assert len(order) == kept.sum() + len(foreign) and len(foreign) == 42  # 5 % of 842
    assert np.isin(labels[foreign], (3, 5)).all()
    assert not np.isin(given[order], (3, 5)).any()  # every file sits in a kept folder
    assert len(flips) == 80 and (given[flips] != labels[flips]).all()
    assert (given[order] != labels[order]).sum() == len(flips) + len(foreign)


def test_tables_benchmark_reports_auto_against_the_better_mode(tmp_path, monkeypatch):
    import benchmarks.tables as tables

    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    rows = []
    for table, wrong, f1, flagged in [("curved 20%", 30, (0.40, 0.90, 0.88), (50, 31, 31)),
                                      ("curved 0%", 0, (0.0, 0.0, 0.0), (30, 0, 1))]:
        for mode, f, n in zip(tables.MODES, f1, flagged):
            rows.append({"table": table, "wrong": wrong, "mode": mode, "merged_f1": f,
                         "merged_flagged": n, "cleanlab_f1": 0.5, "reason": "x; why",
                         "features": "table+kernel" if mode != "linear" else "table"})
    tables.write_results(pd.DataFrame(rows), "cmd", "abc", 1)
    text = (tmp_path / "tables.md").read_text()
    assert "at most 0.020 below the better of `linear` and `kernel` on the 1 noisy" in text
    assert "flags 1 samples on the 1 clean ones (`linear` 30, `kernel` 0)" in text
    assert "- curved 20%: why" in text


def test_cleaned_label_errors_read_class_folders_and_relabelled_names(tmp_path):
    from benchmarks.fix import cleaned_label_errors

    pd.DataFrame({"sample_id": ["a/0.png", "b/1.png", "a/2.png"],
                  "true_label": ["a", "a", "a"]}).to_csv(tmp_path / "truth.csv", index=False)
    for rel in ("a/0.png", "a/1.from-b.png", "b/2.png"):
        (tmp_path / "cleaned" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "cleaned" / rel).write_bytes(b"")
    assert cleaned_label_errors(tmp_path / "cleaned", str(tmp_path / "truth.csv")) == (3, 1)
