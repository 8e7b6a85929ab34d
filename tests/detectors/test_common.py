"""Contract tests that every registered detector must pass, on one real small record."""

import numpy as np
import pytest
import torch
from sklearn.preprocessing import StandardScaler

from cleanlab_ng.detectors import (
    DETECTORS,
    DetectorResult,
    get_detector,
    mean_result,
    run_detector,
)
from cleanlab_ng.errors import ConfigError
from cleanlab_ng.train.adaptation import adapt_fold_heads
from cleanlab_ng.train.proxy import train_dynamics, train_out_of_fold, train_rounds
from cleanlab_ng.train.record import TrainingRecord
from cleanlab_ng.train.recov import train_recov


@pytest.fixture(scope="session")
def record(digits):
    X, _, given, _ = digits
    Z = torch.tensor(StandardScaler().fit_transform(X), dtype=torch.float32)
    oof = train_out_of_fold(Z, given, n_classes=10, seed=0)
    rate = oof.noise_count / len(given)
    dyn = train_dynamics(Z, given, n_classes=10, l2=oof.l2, noise_rate=rate, epochs=6, seed=0)
    rounds = train_rounds(Z, given, n_classes=10, l2=oof.l2, noise_rate=rate, n_rounds=3,
                          max_epochs=4, seed=0)
    recov = train_recov(Z, given, n_classes=10, n_runs=512, seed=0)
    adaptation = adapt_fold_heads(Z, given, oof.folds, oof.l2, n_classes=10, seed=0)
    common = dict(labels=given, n_classes=10, features=Z.numpy(), oof=oof, dynamics=dyn,
                  recov=recov, adaptation=adaptation)
    single = TrainingRecord(**common)
    multi = TrainingRecord(**common, rounds=rounds)
    return single, multi


@pytest.mark.parametrize("name", sorted(DETECTORS))
@pytest.mark.parametrize("mode", ["single", "multi"])
def test_detector_contract(record, digits, name, mode):
    if name == "cl":
        pytest.importorskip("cleanlab")  # the optional baseline
    rec = record[0] if mode == "single" else record[1]
    before = {k: v.copy() for k, v in vars(rec.dynamics).items() if isinstance(v, np.ndarray)}
    result = run_detector(name, rec)
    assert isinstance(result, DetectorResult) and result.name == name
    assert result.score.shape == result.flag.shape == (rec.n_samples,)
    assert 0 <= result.score.min() and result.score.max() <= 1
    assert all(np.shape(v) == (rec.n_samples,) for v in result.evidence.values())
    again = run_detector(name, rec)
    np.testing.assert_array_equal(result.score, again.score)
    for key, value in before.items():
        np.testing.assert_array_equal(getattr(rec.dynamics, key), value)
    flipped = digits[3]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(flipped, result.score) > 0.75


def test_unknown_detector_suggests_the_closest_name():
    with pytest.raises(ConfigError) as info:
        get_detector("late_stoping")
    known = ", ".join(sorted(DETECTORS))
    assert str(info.value) == (f"unknown detector 'late_stoping'; did you mean "
                               f"'late_stopping'? Known: {known}.")


def test_callables_pass_through():
    def mine(record):
        return None

    assert get_detector(mine) is mine


def test_detector_without_its_stage_says_which():
    rec = TrainingRecord(labels=np.zeros(3, dtype=np.int64), n_classes=2)
    with pytest.raises(ValueError, match="needs the 'dynamics' training stage"):
        run_detector("bmm", rec)


def test_mean_result_averages_scores_and_float_evidence_and_takes_majority_flags():
    runs = [DetectorResult("d", np.array([.2, .9, .6]), np.array([False, True, True]),
                           evidence={"loss": np.array([1., 3., 2.]),
                                     "epoch": np.array([1, 5, -1])},
                           diagnostics={"epoch": 4}),
            DetectorResult("d", np.array([.4, .5, .2]), np.array([False, False, False]),
                           evidence={"loss": np.array([3., 1., 2.]),
                                     "epoch": np.array([2, 6, -1])},
                           diagnostics={"epoch": 7}),
            DetectorResult("d", np.array([.0, .4, .1]), np.array([True, True, False]),
                           evidence={"loss": np.array([2., 2., 2.]),
                                     "epoch": np.array([4, 9, 3])},
                           diagnostics={"epoch": 5})]
    mean = mean_result(runs)
    np.testing.assert_allclose(mean.score, [.2, .6, .3])
    np.testing.assert_array_equal(mean.flag, [False, True, False])
    np.testing.assert_allclose(mean.evidence["loss"], [2., 2., 2.])
    np.testing.assert_array_equal(mean.evidence["epoch"], [2, 6, -1])
    assert mean.evidence["epoch"].dtype == np.int64
    assert mean.diagnostics == {"epoch": 4, "runs": 3}
    assert mean_result(runs[:1]) is runs[0]
