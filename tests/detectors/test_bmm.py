import numpy as np
import pytest
from scipy import stats

from cleanlab_ng.detectors import bmm
from cleanlab_ng.train.record import Dynamics, TrainingRecord


def _record_from_losses(loss: np.ndarray) -> TrainingRecord:
    n = len(loss)
    zeros = np.zeros((1, n), dtype=np.float32)
    dyn = Dynamics(loss=loss[None, :].astype(np.float32), pred=zeros.astype(np.int32),
                   p_given=zeros, margin=zeros, entropy=zeros, train_accuracy=np.zeros(1),
                   snapshot_epochs=np.zeros(3, dtype=int), snapshots=np.zeros((3, n, 2)),
                   memorization_epoch=-1, read_epoch=0)
    return TrainingRecord(labels=np.zeros(n, dtype=np.int64), n_classes=2, dynamics=dyn)


def test_fit_recovers_known_two_component_mixture():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.beta(2, 8, 8000), rng.beta(8, 2, 2000)])
    alpha, beta, weight = bmm.fit_beta_mixture(x, n_iter=50)
    assert weight[1] == pytest.approx(0.2, abs=0.02)
    assert alpha / (alpha + beta) == pytest.approx([0.2, 0.8], abs=0.02)


def test_posterior_matches_scipy_oracle_before_monotonisation():
    alpha, beta, weight = np.array([2.0, 8.0]), np.array([8.0, 2.0]), np.array([0.7, 0.3])
    x = np.array([0.105, 0.305, 0.505])  # bin centres below the table's peak
    got = bmm.lookup_posterior(x, alpha, beta, weight)
    grid = np.linspace(1e-12, 1 - 1e-12, 100)[np.floor(100 * x).astype(int)]
    noisy = 0.3 * stats.beta.pdf(grid, 8, 2)
    expected = noisy / (0.7 * stats.beta.pdf(grid, 2, 8) + noisy)
    np.testing.assert_allclose(got, expected, rtol=1e-9)


@pytest.mark.parametrize("alpha, beta", [([1.5, 3.0], [6.0, 2.0]), ([3.0, 0.6], [5.0, 1.2])])
def test_posterior_never_decreases_with_the_loss(alpha, beta):
    # the second pair has a noisy component that spikes again near 0 (detectors.md §1)
    x = np.linspace(0.001, 0.999, 500)
    post = bmm.lookup_posterior(x, np.array(alpha), np.array(beta), np.array([0.8, 0.2]))
    assert np.all(np.diff(post) >= 0)


def test_unit_scale_uses_p5_p95_and_clamps():
    loss = np.arange(101, dtype=float)
    x, fit_set = bmm.unit_scale(loss)
    assert fit_set.sum() == 91  # P5 = 5 ... P95 = 95 inclusive
    np.testing.assert_allclose(x[loss <= 5], 1e-3)  # at or below P5 + 1e-5: clamped up
    np.testing.assert_allclose(x[loss > 95], 1 - 1e-3)  # above P95: clamped down
    assert 0.999 < x[95] < 1  # P95 itself maps just below 1, as in the official code


def test_detect_flags_the_high_loss_mode():
    rng = np.random.default_rng(1)
    loss = np.concatenate([rng.gamma(2, 0.1, 900), rng.normal(3.0, 0.3, 100)])
    result = bmm.detect(_record_from_losses(loss))
    truth = np.arange(1000) >= 900
    assert (result.flag == truth).mean() > 0.97
    assert result.diagnostics["noisy_weight"] == pytest.approx(0.1, abs=0.05)
    # every loss above P95 shares the top bin; the raw loss still orders them
    top = np.argsort(loss)[-50:]
    assert np.all(np.diff(result.score[top]) > 0)


def test_collapse_flags_nothing():
    loss = np.full(500, 0.3)
    result = bmm.detect(_record_from_losses(loss))
    assert not result.flag.any()
    assert result.diagnostics["collapsed"]
