import numpy as np
import pytest

from cleanlab_ng.detectors import DetectorResult
from cleanlab_ng.errors import ConfigError
from cleanlab_ng.merge import (
    agreement_weights,
    build_report,
    merge_scores,
    overlap_weights,
    rank_normalise,
    referee_weights,
)
from cleanlab_ng.noise_count import confident_joint, estimate_noise_count


def _result(name, score, flag=None):
    score = np.asarray(score, dtype=float)
    flag = score > 0.5 if flag is None else np.asarray(flag)
    return DetectorResult(name, score=score, flag=flag)


def test_rank_mean_flags_the_top_n():
    a = _result("a", [0.9, 0.1, 0.8, 0.2])
    b = _result("b", [0.7, 0.2, 0.9, 0.6])
    score, flag = merge_scores([a, b], n_flag=2, rule="rank_mean")
    np.testing.assert_allclose(score, [0.875, 0.25, 0.875, 0.5])
    np.testing.assert_array_equal(flag, [True, False, True, False])


def test_vote_needs_a_majority():
    a = _result("a", [0.9, 0.6, 0.1])
    b = _result("b", [0.8, 0.2, 0.1])
    c = _result("c", [0.4, 0.7, 0.1])
    score, flag = merge_scores([a, b, c], n_flag=0, rule="vote")
    np.testing.assert_array_equal(flag, [True, True, False])
    assert score[0] > score[1] > score[2]


def test_agreement_down_weights_the_detector_at_odds_with_the_rest():
    # a and b rank the samples alike; c ranks them the other way round (a failing signal)
    a = _result("a", [0.9, 0.8, 0.3, 0.1])
    b = _result("b", [0.8, 0.9, 0.2, 0.1])
    c = _result("c", [0.1, 0.2, 0.8, 0.9])
    np.testing.assert_allclose(agreement_weights(np.array(
        [rank_normalise(r.score) for r in (a, b, c)])), [0.5, 0.5, 0.0])
    score, flag = merge_scores([a, b, c], n_flag=2, rule="agreement")
    np.testing.assert_allclose(score, [0.875, 0.875, 0.5, 0.25])
    np.testing.assert_array_equal(flag, [True, True, False, False])
    # the plain rank mean lets c pull the clear cases to the middle
    rank_score, _ = merge_scores([a, b, c], n_flag=2, rule="rank_mean")
    assert np.ptp(rank_score) < np.ptp(score)


def test_agreement_weights_fall_back_to_equal():
    one = np.array([[0.5, 1.0]])
    np.testing.assert_allclose(agreement_weights(one), [1.0])
    opposed = np.array([[0.5, 1.0], [1.0, 0.5]])
    np.testing.assert_allclose(agreement_weights(opposed), [0.5, 0.5])


def test_overlap_counts_only_the_top_where_agreement_counts_every_rank():
    # a and b flag samples 0 and 1 but order the other 18 in opposite ways; c orders those 18
    # like a but flags 18 and 19 and puts 0 and 1 last. Full-ranking agreement trusts a and
    # c, which agree on 18 samples' order; the overlap of the top two trusts a and b.
    rest = np.arange(2, 20) / 40
    a = _result("a", np.r_[1.0, 0.95, rest])
    b = _result("b", np.r_[0.95, 1.0, rest[::-1]])
    c = _result("c", np.r_[0.0, 0.01, rest[:-2], 0.95, 1.0])
    ranks = np.array([rank_normalise(r.score) for r in (a, b, c)])
    np.testing.assert_allclose(overlap_weights(ranks, 2, power=1), [0.5, 0.5, 0.0])
    assert agreement_weights(ranks)[2] > agreement_weights(ranks)[1]
    _, flag = merge_scores([a, b, c], n_flag=2, rule="overlap")
    np.testing.assert_array_equal(np.flatnonzero(flag), [0, 1])
    _, flag = merge_scores([a, b, c], n_flag=2, rule="agreement")
    np.testing.assert_array_equal(np.flatnonzero(flag), [18, 19])


def test_overlap_power_sharpens_and_weights_fall_back_to_equal():
    ranks = np.array([[1, 2, 3, 4, 5, 6], [2, 1, 3, 4, 6, 5], [6, 5, 3, 4, 1, 2]]) / 6
    mild, sharp = overlap_weights(ranks, 3, power=1), overlap_weights(ranks, 3, power=8)
    assert mild[2] > sharp[2] > 0
    np.testing.assert_allclose(overlap_weights(ranks[:1], 3), [1.0])
    np.testing.assert_allclose(overlap_weights(ranks, 0), np.full(3, 1 / 3))
    disjoint = np.array([[1, 2, 3, 4], [3, 4, 1, 2]]) / 4
    np.testing.assert_allclose(overlap_weights(disjoint, 2), [0.5, 0.5])


def test_referee_follows_the_detector_it_agrees_with_even_against_a_majority():
    # a and b make the same mistakes (they read the same proxy): they rank samples 2 and 3
    # top, where the wrong labels are 0 and 1. c and the referee, which share no training
    # with them, put 0 and 1 on top. overlap trusts the agreeing pair; referee trusts c.
    a = _result("a", [0.3, 0.2, 0.9, 0.8, 0.1, 0.0])
    b = _result("b", [0.2, 0.3, 0.8, 0.9, 0.0, 0.1])
    c = _result("c", [0.9, 0.8, 0.3, 0.1, 0.2, 0.0])
    referee = np.array([0.7, 0.9, 0.1, 0.2, 0.3, 0.0])
    ranks = np.array([rank_normalise(r.score) for r in (a, b, c)])
    np.testing.assert_allclose(referee_weights(ranks, referee, 2, power=1), [0, 0, 1])
    _, flag = merge_scores([a, b, c], n_flag=2, rule="referee", referee=referee)
    np.testing.assert_array_equal(np.flatnonzero(flag), [0, 1])
    _, flag = merge_scores([a, b, c], n_flag=2, rule="overlap")
    np.testing.assert_array_equal(np.flatnonzero(flag), [2, 3])


def test_jury_lifts_a_wrong_label_every_detector_ranks_below_a_clean_sample():
    # samples 0 and 1 are wrong; both detectors rank the clean sample 2 above sample 1 (a
    # blind spot they share), the referee ranks 1 first and 2 last. Weighing alone cannot
    # help (the detectors tie), the referee's own seat can
    a = _result("a", [0.9, 0.5, 0.6, 0.3, 0.2, 0.1])
    b = _result("b", [0.9, 0.5, 0.6, 0.2, 0.3, 0.1])
    referee = np.array([0.8, 0.9, 0.0, 0.1, 0.2, 0.3])
    _, flag = merge_scores([a, b], n_flag=2, rule="referee", referee=referee)
    np.testing.assert_array_equal(np.flatnonzero(flag), [0, 2])
    score, flag = merge_scores([a, b], n_flag=2, rule="jury", referee=referee)
    np.testing.assert_array_equal(np.flatnonzero(flag), [0, 1])
    np.testing.assert_allclose(score[:3], [17 / 18, 14 / 18, 11 / 18])
    with pytest.raises(ValueError, match="jury rule needs a referee"):
        merge_scores([a, b], n_flag=2, rule="jury")


def test_referee_weights_sharpen_and_fall_back_to_equal():
    ranks = np.array([[1, 2, 3, 4, 5, 6], [2, 1, 6, 3, 5, 4]]) / 6
    referee = np.array([1, 2, 3, 4, 5, 6.0])
    mild = referee_weights(ranks, referee, 3, power=1)
    sharp = referee_weights(ranks, referee, 3, power=8)
    np.testing.assert_allclose(mild, [3 / 5, 2 / 5])
    assert sharp[0] > mild[0]
    np.testing.assert_allclose(referee_weights(ranks[:1], referee, 3), [1.0])
    np.testing.assert_allclose(referee_weights(ranks, referee, 0), [0.5, 0.5])
    np.testing.assert_allclose(referee_weights(ranks, -referee, 1), [0.5, 0.5])


def test_jury_is_the_default_and_needs_a_referee():
    a = _result("a", [0.9, 0.8, 0.3, 0.1])
    b = _result("b", [0.8, 0.9, 0.2, 0.1])
    referee = np.array([0.5, 0.9, 0.1, 0.0])
    default = merge_scores([a, b], n_flag=2, referee=referee)[0]
    np.testing.assert_allclose(default, merge_scores([a, b], n_flag=2, rule="jury",
                                                     referee=referee)[0])
    assert not np.allclose(default, merge_scores([a, b], n_flag=2, rule="referee",
                                                 referee=referee)[0])
    with pytest.raises(ValueError, match="referee"):
        merge_scores([a, b], n_flag=2)


def test_every_entry_point_defaults_to_the_first_listed_rule():
    # benchmarks and --help read the default as MERGE_RULES[0]
    import inspect

    from cleanlab_ng import LabelIssueFinder, clean
    from cleanlab_ng.choices import MERGE_RULES
    from cli.main import clean as clean_command

    assert inspect.signature(merge_scores).parameters["rule"].default == MERGE_RULES[0]
    assert inspect.signature(build_report).parameters["rule"].default == MERGE_RULES[0]
    assert inspect.signature(clean).parameters["merge"].default == MERGE_RULES[0]
    assert LabelIssueFinder().merge == MERGE_RULES[0]
    option = next(p for p in clean_command.params if p.name == "merge")
    assert option.default == MERGE_RULES[0]


def test_unknown_rule():
    with pytest.raises(ConfigError, match="unknown merge rule 'max'. Use one of: jury, "
                                          "referee, overlap, agreement, rank_mean, vote."):
        merge_scores([_result("a", [0.1])], n_flag=0, rule="max")


def test_rank_normalise_shares_ties():
    np.testing.assert_allclose(rank_normalise(np.array([0.2, 0.2, 0.9])), [0.5, 0.5, 1.0])


def test_report_keeps_unreadable_rows_and_label_types():
    res = _result("bmm", [0.9, 0.1, 0.2])
    proba = np.array([[0.2, 0.8], [0.9, 0.1], [0.3, 0.7]])
    readable = np.array([True, True, False, True])
    report = build_report(np.array(["a", "b", "c", "d"], dtype=object),
                          np.array([0, 0, 1, 1]), [10, 20], readable, proba, [res], n_flag=1,
                          referee=np.array([0.5, 0.0, 0.25]))
    assert list(report["issue"]) == ["mislabeled", "clean", "unreadable", "clean"]
    np.testing.assert_array_equal(report["neighbour_disagreement"], [0.5, 0.0, np.nan, 0.25])
    assert list(report["given_label"]) == [10, 10, 20, 20]
    assert list(report["suggested_label"]) == [20, 10, 20, 20]
    assert np.isnan(report.loc[2, "noise_score"]) and not report.loc[2, "is_noisy"]
    assert report["predicted_label"].isna().tolist() == [False, False, True, False]
    assert "suggestion_backed" not in report  # no neighbours given


def test_report_says_whether_the_neighbours_back_each_suggestion():
    # four readable samples of three; sample 0 (given 0) is flagged and its suggestion, 1, is
    # what both of its neighbours carry; the unreadable row gets no support
    proba = np.array([[0.1, 0.9], [0.1, 0.9], [0.2, 0.8], [0.9, 0.1]])
    readable = np.array([True, True, False, True, True])
    report = build_report(np.array(list("abcde"), dtype=object), np.array([0, 1, 1, 1, 0]),
                          ["x", "y"], readable, proba, [_result("bmm", [0.9, 0.1, 0.2, 0.3])],
                          n_flag=1, rule="rank_mean",
                          neighbours=np.array([[1, 2], [0, 2], [0, 1], [0, 1]]))
    assert list(report["suggested_label"]) == ["y", "y", "y", "y", "x"]
    np.testing.assert_array_equal(report["suggestion_support"], [1.0, 0.5, np.nan, 0.5, 0.5])
    assert report["suggestion_backed"].tolist() == [True, True, False, True, True]
    assert list(report.columns[3:6]) == ["suggested_label", "suggestion_support",
                                         "suggestion_backed"]


def test_noise_count_on_a_planted_confident_joint():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 100)
    proba = np.where(labels[:, None] == [0, 1], 0.9, 0.1)
    wrong = rng.choice(200, 20, replace=False)
    proba[wrong] = proba[wrong][:, ::-1]
    cj = confident_joint(labels, proba)
    assert cj.sum() == pytest.approx(200) and cj.sum() - np.trace(cj) == pytest.approx(20)
    assert estimate_noise_count(labels, proba) == 20


def test_out_of_distribution_on_top_of_the_count_only_when_strongly_singled_out():
    # 40 samples of three classes; sample 0 is the merged top pick, samples 1 and 2 are
    # singled out by the separation and no class explains them (uniform probabilities);
    # sample 2's separation score stays below OOD_ON_TOP_MIN
    n = 40
    labels = np.arange(n) % 3
    proba = np.full((n, 3), 0.02)
    proba[np.arange(n), labels] = 0.96
    proba[[1, 2]] = 1 / 3
    merged = _result("bmm", np.r_[1.0, np.linspace(0.4, 0.0, n - 1)])
    sep = np.full(n, 0.05) + np.linspace(0, 0.01, n)
    sep[1], sep[2] = 0.6, 0.2
    # a constant score leaves the merged order to bmm; the on-top rule reads the evidence
    separation = DetectorResult("linear_separation", score=np.zeros(n), flag=sep > 0.1,
                                evidence={"separation": sep})
    ids = np.array([str(i) for i in range(n)], dtype=object)
    report = build_report(ids, labels, [0, 1, 2], np.ones(n, bool), proba,
                          [merged, separation], n_flag=1, rule="rank_mean")
    assert report["is_noisy"].tolist()[:3] == [True, True, False]
    assert report["issue"].tolist()[:3] == ["mislabeled", "out_of_distribution", "clean"]
    assert list(report["suggested_label"])[1] == labels[1]  # removed, not relabelled
    fixed = build_report(ids, labels, [0, 1, 2], np.ones(n, bool), proba,
                         [merged, separation], n_flag=1, rule="rank_mean", ood_on_top=False)
    assert fixed["is_noisy"].sum() == 1
