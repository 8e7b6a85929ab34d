import numpy as np

from cleanlab_ng.detectors import late_stopping
from cleanlab_ng.train.record import Dynamics, OutOfFold, Rounds, TrainingRecord


def _record(pred: np.ndarray, labels: np.ndarray, noise_count: int, rounds=None):
    e, n = pred.shape
    p_given = (pred == labels).astype(np.float32) * 0.5 + 0.25
    z = np.zeros((e, n), dtype=np.float32)
    dyn = Dynamics(loss=z, pred=pred, p_given=p_given, margin=z, entropy=z,
                   train_accuracy=np.zeros(e), snapshot_epochs=np.zeros(3, dtype=int),
                   snapshots=np.zeros((3, n, 2)), memorization_epoch=-1, read_epoch=e - 1)
    oof = OutOfFold(proba=np.full((n, 2), 0.5), folds=np.zeros(n, dtype=int),
                    l2_grid=np.ones(1), log_loss=np.ones(1), l2=1.0, noise_count=noise_count)
    return TrainingRecord(labels=labels, n_classes=2, dynamics=dyn, oof=oof, rounds=rounds)


def test_fkl_of_hand_made_history():
    ok = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0]], dtype=bool)
    np.testing.assert_array_equal(late_stopping.first_k_epoch_learning(ok, 1), [0, 1, 0, np.inf])
    np.testing.assert_array_equal(late_stopping.first_k_epoch_learning(ok, 2), [1, 2, 3, np.inf])
    np.testing.assert_array_equal(late_stopping.first_k_epoch_learning(ok, 3),
                                  [2, 3, np.inf, np.inf])


def test_flags_exactly_the_sample_never_predicted_as_its_label():
    labels = np.zeros(6, dtype=np.int64)
    pred = np.zeros((6, 6), dtype=np.int32)
    pred[:, 3] = 1  # sample 3 is never predicted as its given label
    pred[0, :] = 1  # nobody is right in the first epoch
    pred[1, 5] = 1  # sample 5 learns one epoch later than the others
    result = late_stopping.detect(_record(pred, labels, noise_count=1))
    np.testing.assert_array_equal(np.flatnonzero(result.flag), [3])
    assert result.score[3] == 1.0
    assert np.argsort(result.score)[-2] == 5
    np.testing.assert_array_equal(result.evidence["fkl_epoch"], [2, 2, 2, -1, 2, 3])


def test_multi_round_scores_earliest_removals_highest():
    labels = np.zeros(4, dtype=np.int64)
    pred = np.zeros((3, 4), dtype=np.int32)
    rounds = Rounds(removed_in=np.array([0, 2, 1, 0]), last_fkl=np.array([1.0, 3.0, np.inf, 2.0]),
                    n_rounds=2, keep_ratio=0.8)
    result = late_stopping.detect(_record(pred, labels, noise_count=2, rounds=rounds))
    np.testing.assert_array_equal(result.flag, [False, True, True, False])
    assert result.score[2] == 1.0 and result.score[1] == 0.5
    assert result.score[0] < result.score[3] < 0.25
