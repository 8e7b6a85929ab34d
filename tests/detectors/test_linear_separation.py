import warnings
from dataclasses import replace

import numpy as np
import pytest

from cleanlab_ng.detectors import linear_separation
from cleanlab_ng.neighbours import feature_neighbours, normalise_features
from cleanlab_ng.outliers import robust_outliers
from cleanlab_ng.train.record import Dynamics, TrainingRecord


def test_small_loss_posterior_picks_the_high_mode():
    rng = np.random.default_rng(0)
    loss = np.concatenate([rng.normal(0.2, 0.05, 300), rng.normal(2.0, 0.1, 60)])
    q = linear_separation.small_loss_posterior(loss)
    assert (q[300:] > 0.95).all() and (q[:300] < 0.05).all()


def test_small_loss_posterior_is_quiet_when_its_ten_iterations_stop_short():
    # these losses take the paper's GMM (max_iter=10) past its iteration limit
    rng = np.random.default_rng(31)
    loss = np.r_[rng.normal(0, 1, 150), rng.normal(1.5, 1, 50)] ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = linear_separation.small_loss_posterior(loss)
    assert q.shape == loss.shape


def test_hyperplane_generalises_from_a_partial_trusted_set():
    # outliers live in their own direction of the embedding; only half of them are "trusted"
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(500, 8))
    Z[:50, 0] += 6
    trusted = np.zeros(500, bool)
    trusted[:25] = True
    p = linear_separation.hyperplane_posteriors(normalise_features(Z),
                                                trusted[None])[0]
    assert (p[25:50] > 0.5).mean() > 0.9  # the untrusted outliers are found
    assert (p[50:] > 0.5).mean() < 0.05


def test_hyperplanes_fitted_together_match_one_at_a_time():
    rng = np.random.default_rng(3)
    Z = normalise_features(rng.normal(size=(400, 6)) + np.r_[
        np.zeros((360, 6)), np.full((40, 6), 1.5)])
    targets = np.zeros((3, 400), bool)
    targets[0, 360:380] = targets[1, 370:400] = targets[2, :5] = True
    together = linear_separation.hyperplane_posteriors(Z, targets)
    for row, t in zip(together, targets):
        np.testing.assert_allclose(row, linear_separation.hyperplane_posteriors(Z, t[None])[0],
                                   atol=2e-3)


def test_no_trusted_noise_gives_zero_posterior():
    Z = np.random.default_rng(2).normal(size=(20, 3))
    targets = np.zeros((2, 20), bool)
    targets[1, :4] = True  # the other row still gets its fit
    p = linear_separation.hyperplane_posteriors(Z, targets)
    np.testing.assert_array_equal(p[0], np.zeros(20))
    assert p[1, :4].mean() > p[1, 4:].mean()


def test_robust_outliers_ignore_a_minority_of_extremes():
    x = np.r_[np.random.default_rng(5).normal(0, 1, 1000), np.full(30, 50.0)]
    out = robust_outliers(x, 2.0)
    assert out[1000:].all() and out[:1000].mean() < 0.05
    assert not robust_outliers(np.zeros(10), 2.0).any()


def _record(Z: np.ndarray, labels: np.ndarray, loss: np.ndarray) -> TrainingRecord:
    n, E = len(labels), 6
    zeros = np.zeros((E, n), dtype=np.float32)
    dyn = Dynamics(loss=np.tile(loss, (E, 1)).astype(np.float32), pred=zeros.astype(np.int32),
                   p_given=zeros, margin=zeros, entropy=zeros, train_accuracy=np.zeros(E),
                   snapshot_epochs=np.array([0, 2, 5]), snapshots=np.zeros((3, n, 4)),
                   memorization_epoch=-1, read_epoch=E - 1)
    return TrainingRecord(labels=labels, n_classes=4, dynamics=dyn, features=Z)


def test_neighbours_single_out_the_foreign_cluster_not_the_flips():
    # four classes and a fifth, foreign cluster labelled at random; 10 % flips in the four.
    # Both the flips and the foreign samples have high losses: only the foreign ones sit
    # among high-loss neighbours labelled otherwise
    rng = np.random.default_rng(6)
    centres = rng.normal(0, 4, size=(5, 16))
    truth = np.repeat(np.arange(5), 150)
    Z = centres[truth] + rng.normal(size=(750, 16))
    labels = np.where(truth == 4, rng.integers(0, 4, 750), truth)
    flips = rng.choice(600, 60, replace=False)
    labels[flips] = (truth[flips] + rng.integers(1, 4, 60)) % 4
    wrong = (labels != truth) | (truth == 4)
    loss = np.where(wrong, rng.normal(2.5, 0.3, 750), rng.normal(0.3, 0.1, 750))
    res = linear_separation.detect(_record(Z, labels, loss), n_neighbours=50)
    foreign = truth == 4
    assert res.score[foreign].min() > res.score[flips].max()
    assert res.flag[foreign].mean() > 0.9 and res.flag[~wrong].mean() < 0.02
    # the record's shared neighbour search gives the same answer as the detector's own
    searched = replace(_record(Z, labels, loss), neighbours=feature_neighbours(Z, 80))
    np.testing.assert_array_equal(linear_separation.detect(searched, n_neighbours=50).score,
                                  res.score)
    plane = linear_separation.detect(_record(Z, labels, loss), separation="hyperplane")
    assert plane.diagnostics["separation"] == "hyperplane"
    with pytest.raises(ValueError, match="separation"):
        linear_separation.detect(_record(Z, labels, loss), separation="kernel")
