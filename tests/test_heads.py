"""The batched trainer against one scikit-learn fit per model."""

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from cleanlab_ng.train.heads import fit_linear_heads, kfold_assignment, out_of_fold_proba
from cleanlab_ng.train.proxy import train_out_of_fold


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
    proba = out_of_fold_proba(Z, y, folds, [1e-2], n_classes=10)[0]
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
