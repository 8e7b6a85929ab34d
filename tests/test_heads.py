"""The batched trainer against one scikit-learn fit per model."""

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from cleanlab_ng.train.heads import (
    cross_fit_softmax,
    fit_linear_heads,
    in_sample_order,
    kfold_assignment,
    prepare_ridge,
    repeated_fold_orders,
    repeated_folds,
    ridge_compute_dtype,
    ridge_cross_fit,
)
from cleanlab_ng.train.proxy import (
    dynamics_runs,
    train_dynamics,
    train_dynamics_runs,
    train_out_of_fold,
)
from cleanlab_ng.train.record import load_stage, save_stage


def test_batched_heads_match_per_model_sklearn_fits(digits):
    X, _, given, _ = digits
    Z = StandardScaler().fit_transform(X)  # float64: compare the optimum, not float32 noise
    rng = np.random.default_rng(0)
    masks = rng.random((3, len(given))) < 0.8
    l2 = np.array([1e-3, 1e-2, 1e-1])
    heads = fit_linear_heads(torch.tensor(Z), torch.tensor(given), torch.tensor(masks),
                             torch.tensor(l2), n_classes=10, max_iter=1000, tol=1e-9)
    for m in range(3):
        n_train = masks[m].sum()
        ref = LogisticRegression(C=1 / (l2[m] * n_train), max_iter=5000, tol=1e-10)
        ref.fit(Z[masks[m]], given[masks[m]])
        ours = torch.softmax(heads.logits(torch.tensor(Z))[m], -1).numpy()
        # tolerance: probabilities agree to 1e-4, predictions everywhere
        np.testing.assert_allclose(ours, ref.predict_proba(Z), atol=1e-4)
        assert (ours.argmax(1) == ref.predict(Z)).all()


def test_folds_are_stratified_and_seeded():
    labels = np.repeat(np.arange(3), [10, 7, 5])
    a = kfold_assignment(labels, 5, np.random.default_rng(1))
    b = kfold_assignment(labels, 5, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    for c in range(3):
        counts = np.bincount(a[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_out_of_fold_never_sees_its_own_sample(digits):
    X, _, given, _ = digits
    Z = torch.tensor(StandardScaler().fit_transform(X), dtype=torch.float32)
    y = torch.tensor(given)
    folds = kfold_assignment(given, 5, np.random.default_rng(0))
    proba = cross_fit_softmax(Z, y, folds[None], [1e-2], n_classes=10)[0, 0]
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    # a sample whose label was flipped is never predicted as that label with certainty,
    # which it would be if its own fold model had trained on it
    flipped = digits[3]
    assert proba[flipped, given[flipped]].mean() < 0.3


def test_l2_is_chosen_by_out_of_fold_log_loss_and_is_deterministic(digits):
    X, _, given, _ = digits
    Z = torch.tensor(StandardScaler().fit_transform(X), dtype=torch.float32)
    a = train_out_of_fold(Z, given, n_classes=10, seed=3)
    b = train_out_of_fold(Z, given, n_classes=10, seed=3)
    assert a.l2 == a.l2_grid[np.argmin(a.log_loss)]
    np.testing.assert_array_equal(a.proba, b.proba)
    assert a.l2 > a.l2_grid[0]  # 20 % noise: the weakest regularisation never wins


def test_dynamics_runs_shrink_with_the_dataset():
    assert [dynamics_runs(n) for n in (178, 2000, 2001, 5000, 10_000, 50_000)] == [
        5, 5, 4, 2, 1, 1]


def test_proxy_runs_are_seeded_their_first_is_the_single_run_and_they_save(digits, tmp_path):
    X, _, given, _ = digits
    Z = torch.tensor(StandardScaler().fit_transform(X[:300]), dtype=torch.float32)
    options = dict(n_classes=10, l2=1e-3, noise_rate=0.2, epochs=3)
    seen = []
    runs = train_dynamics_runs(Z, given[:300], n_runs=3, seed=4,
                               on_epoch=lambda done, total: seen.append((done, total)),
                               **options)
    assert seen == [(e, 9) for e in range(1, 10)]
    single = train_dynamics(Z, given[:300], seed=4, **options)
    np.testing.assert_array_equal(runs[0].loss, single.loss)
    assert not np.array_equal(runs[1].loss, runs[2].loss)
    again = train_dynamics_runs(Z, given[:300], n_runs=3, seed=4, **options)
    np.testing.assert_array_equal(runs[2].loss, again[2].loss)
    save_stage(tmp_path, "dynamics", runs, {"runs": 3})
    loaded = load_stage(tmp_path, "dynamics", {"runs": 3})
    assert isinstance(loaded, tuple) and len(loaded) == 3
    for run, back in zip(runs, loaded):
        np.testing.assert_array_equal(run.pred, back.pred)
        assert run.read_epoch == back.read_epoch
    assert load_stage(tmp_path, "dynamics", {"runs": 2}) is None


def test_repeated_folds_are_stratified_and_do_not_depend_on_blocking():
    labels = np.repeat(np.arange(3), [10, 7, 5])
    folds = repeated_folds(labels, 5, seed=4, repeats=range(3)).numpy()
    np.testing.assert_array_equal(folds[1:], repeated_folds(labels, 5, 4, range(1, 3)).numpy())
    assert not (folds[0] == folds[1]).all()
    for f in folds:
        for c in range(3):
            counts = np.bincount(f[labels == c], minlength=5)
            assert counts.max() - counts.min() <= 1
        sizes = np.bincount(f, minlength=5)
        assert sizes.max() - sizes.min() <= 1


def _ridge_reference(Z, y, folds, l2, n_classes):
    """Per-model float64 solves of the shared-Gram ridge objective and one Jacobi step
    towards each model's own Gram (``RidgeCrossFit``), written out directly."""
    n, d = Z.shape
    K = folds.max() + 1
    Zc = Z - Z.mean(0)
    Y = np.eye(n_classes)[y]
    shared = (K - 1) / K * (Zc.T @ Zc + l2 * n * np.eye(d))
    out = np.empty((n, n_classes))
    for k in range(K):
        held = folds == k
        targets = Zc[~held].T @ Y[~held]
        W = np.linalg.solve(shared, targets)
        own = Zc[~held].T @ Zc[~held] + l2 * (K - 1) / K * n * np.eye(d)
        W += np.linalg.solve(shared, targets - own @ W)
        # the intercept: the training samples' class shares (the features are centred)
        out[held] = Zc[held] @ W + Y[~held].sum(0) / ((K - 1) / K * n)
    return out


def test_batched_ridge_matches_per_model_solves(digits):
    X, _, given, _ = digits
    Z = StandardScaler().fit_transform(X)
    orders = repeated_fold_orders(given, 5, seed=0, repeats=range(3))
    folds = repeated_folds(given, 5, seed=0, repeats=range(3))
    Z_t, y_t = torch.tensor(Z, dtype=torch.float32), torch.tensor(given)
    exact = prepare_ridge(Z_t, y_t, n_classes=10, dtype=torch.float32)
    fast = prepare_ridge(Z_t, y_t, n_classes=10, dtype=torch.bfloat16)
    for l2 in (1e-3, 1e-1):
        scores = in_sample_order(*ridge_cross_fit(exact, orders, 5, l2), len(given)).numpy()
        rounded = in_sample_order(*ridge_cross_fit(fast, orders, 5, l2), len(given)).numpy()
        for r in range(3):
            ref = _ridge_reference(Z, given, folds[r].numpy(), l2, 10)
            # tolerance: float32 features against a float64 solve, scores of order 1
            np.testing.assert_allclose(scores[r].T, ref, atol=2e-4)
            # bfloat16 keeps 8 bits of mantissa: scores within a few hundredths, and the
            # predicted class of all but the near-ties unchanged
            np.testing.assert_allclose(rounded[r].T, ref, atol=0.05)
            assert (rounded[r].argmax(0) == ref.argmax(1)).mean() > 0.99


def test_fold_orders_deal_the_folds():
    labels = np.repeat(np.arange(3), [10, 7, 5])
    orders = repeated_fold_orders(labels, 5, seed=4, repeats=range(2))
    folds = repeated_folds(labels, 5, seed=4, repeats=range(2))
    for order, fold in zip(orders, folds):
        assert sorted(order.tolist()) == list(range(len(labels)))
        for k in range(5):
            assert (fold[order[k::5]] == k).all()
            assert (np.diff(labels[order[k::5].numpy()]) >= 0).all()  # grouped by class


def test_compute_dtype_is_float32_off_cpu_or_without_native_bfloat16():
    assert ridge_compute_dtype(torch.device("meta")) == torch.float32
    assert ridge_compute_dtype(torch.device("cpu")) in (torch.float32, torch.bfloat16)


def test_shared_gram_ridge_predicts_like_scikit_learn_ridge(digits):
    X, _, given, _ = digits
    Z = StandardScaler().fit_transform(X)
    orders = repeated_fold_orders(given, 5, seed=1, repeats=range(1))
    folds = repeated_folds(given, 5, seed=1, repeats=range(1))
    fit = prepare_ridge(torch.tensor(Z, dtype=torch.float32), torch.tensor(given), n_classes=10)
    ours = in_sample_order(*ridge_cross_fit(fit, orders, 5, 1e-2), len(given))[0]
    ours = ours.numpy().argmax(0)
    ref = np.empty(len(given), dtype=np.int64)
    f = folds[0].numpy()
    for k in range(5):
        held = f == k
        n_train = (~held).sum()
        model = Ridge(alpha=1e-2 * n_train).fit(Z[~held], np.eye(10)[given[~held]])
        ref[held] = model.predict(Z[held]).argmax(1)
    # the shared Gram plus one Jacobi step towards each model's own: the exact per-fold
    # ridge predicts the same class for all but about 1 % of the samples (64 features and
    # 480 training samples per model; 3 % with the shared Gram alone)
    assert (ours == ref).mean() > 0.98
    assert abs((ours == given).mean() - (ref == given).mean()) < 0.01


def test_cross_fit_softmax_repeats_match_single_fits(digits):
    X, _, given, _ = digits
    Z = torch.tensor(StandardScaler().fit_transform(X))
    y = torch.tensor(given)
    folds = repeated_folds(given, 3, seed=0, repeats=range(2)).numpy()
    both = cross_fit_softmax(Z, y, folds, [1e-2], n_classes=10, max_iter=500)
    for r in range(2):
        alone = cross_fit_softmax(Z, y, folds[r:r + 1], [1e-2], n_classes=10, max_iter=500)
        # one L-BFGS over the summed objectives stops at a slightly different point
        np.testing.assert_allclose(both[0, r], alone[0, 0], atol=1e-3)


def test_finetune_epoch_skips_a_last_batch_of_one():
    """65 samples in batches of 64 leave one: batch norm cannot train on it, and the epoch
    must not fail on a dataset that happens to have such a size."""
    from cleanlab_ng.train.finetune import train_epoch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4),
                                torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pixels = torch.randint(0, 256, (65, 3, 2, 2), dtype=torch.uint8)
    y = torch.randint(0, 3, (65,))
    before = [p.detach().clone() for p in model.parameters()]
    train_epoch(model, opt, lambda x: x.float() / 255, pixels, y, torch.arange(65),
                batch_size=64, gen=torch.Generator().manual_seed(0))
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
