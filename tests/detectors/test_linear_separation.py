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
    p = linear_separation.hyperplane_posteriors(linear_separation.normalise_features(Z),
                                                trusted[None])[0]
    assert (p[25:50] > 0.5).mean() > 0.9  # the untrusted outliers are found
    assert (p[50:] > 0.5).mean() < 0.05


def test_hyperplanes_fitted_together_match_one_at_a_time():
    rng = np.random.default_rng(3)
    Z = linear_separation.normalise_features(rng.normal(size=(400, 6)) + np.r_[
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
