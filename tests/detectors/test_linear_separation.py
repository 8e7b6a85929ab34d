import numpy as np

from cleanlab_ng.detectors import linear_separation


def test_small_loss_posterior_picks_the_high_mode():
    rng = np.random.default_rng(0)
    loss = np.concatenate([rng.normal(0.2, 0.05, 300), rng.normal(2.0, 0.1, 60)])
    q = linear_separation.small_loss_posterior(loss)
    assert (q[300:] > 0.95).all() and (q[:300] < 0.05).all()


def test_hyperplane_generalises_from_a_partial_trusted_set():
    # outliers live in their own direction of the embedding; only half of them are "trusted"
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(500, 8))
    Z[:50, 0] += 6
    trusted = np.zeros(500, bool)
    trusted[:25] = True
    p = linear_separation.hyperplane_posterior(linear_separation.normalise_features(Z), trusted)
    assert (p[25:50] > 0.5).mean() > 0.9  # the untrusted outliers are found
    assert (p[50:] > 0.5).mean() < 0.05


def test_no_trusted_noise_gives_zero_posterior():
    Z = np.random.default_rng(2).normal(size=(20, 3))
    np.testing.assert_array_equal(
        linear_separation.hyperplane_posterior(Z, np.zeros(20, bool)), np.zeros(20))
