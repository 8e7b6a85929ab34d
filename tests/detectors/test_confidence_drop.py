import numpy as np
import pytest
import torch

from cleanlab_ng.detectors import confidence_drop
from cleanlab_ng.train.adaptation import adapt_fold_heads
from cleanlab_ng.train.heads import kfold_assignment
from cleanlab_ng.train.record import Adaptation, TrainingRecord


def _record(source, adapted, labels):
    return TrainingRecord(labels=np.asarray(labels), n_classes=source.shape[1],
                          adaptation=Adaptation(source=source, adapted=adapted))


def test_d1_flags_the_given_labels_that_lost_confidence():
    source = np.array([[0.7, 0.3], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    adapted = np.array([[0.9, 0.1], [0.4, 0.6], [0.1, 0.9], [0.5, 0.5]])
    result = confidence_drop.detect(_record(source, adapted, [0, 0, 0, 1]))
    np.testing.assert_allclose(result.evidence["delta"], [-0.2, 0.2, 0.1, 0.0])
    np.testing.assert_array_equal(result.flag, [False, True, True, False])
    np.testing.assert_allclose(result.score, [0.4, 0.6, 0.55, 0.5])


def test_d2_needs_the_crowd_to_sustain_a_contradiction():
    source = np.array([[0.2, 0.8], [0.3, 0.7], [0.9, 0.1]])
    adapted = np.array([[0.1, 0.9], [0.4, 0.6], [0.95, 0.05]])
    result = confidence_drop.detect(_record(source, adapted, [0, 0, 0]), rule="d2")
    np.testing.assert_array_equal(result.flag, [True, False, False])


def test_gate_keeps_uncertain_samples_unflagged():
    source = np.array([[0.6, 0.4], [0.9, 0.1]])
    adapted = np.array([[0.5, 0.5], [0.8, 0.2]])
    result = confidence_drop.detect(_record(source, adapted, [0, 0]), gate=True)
    np.testing.assert_array_equal(result.evidence["uncertain"], [True, True])
    assert not result.flag.any()


def test_adaptation_lowers_the_given_label_of_planted_wrong_labels():
    # two well separated blobs; 10 % of each blob carries the other blob's label
    rng = np.random.default_rng(0)
    true = np.repeat([0, 1], 200)
    X = rng.normal(size=(400, 5)) + 3 * true[:, None]
    labels = true.copy()
    wrong = rng.choice(400, 40, replace=False)
    labels[wrong] = 1 - labels[wrong]
    folds = kfold_assignment(labels, 5, np.random.default_rng(0))
    ad = adapt_fold_heads(torch.tensor(X, dtype=torch.float32), labels, folds, 1e-2,
                          n_classes=2, seed=0)
    result = confidence_drop.detect(_record(ad.source, ad.adapted, labels))
    is_wrong = np.zeros(400, bool)
    is_wrong[wrong] = True
    assert result.score[is_wrong].mean() > 0.5 > result.score[~is_wrong].mean()
    again = adapt_fold_heads(torch.tensor(X, dtype=torch.float32), labels, folds, 1e-2,
                             n_classes=2, seed=0)
    np.testing.assert_array_equal(ad.adapted, again.adapted)


def test_unknown_rule():
    with pytest.raises(ValueError, match="unknown confidence_drop rule"):
        confidence_drop.detect(_record(np.ones((1, 2)) / 2, np.ones((1, 2)) / 2, [0]), rule="x")
