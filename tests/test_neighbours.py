import numpy as np

from cleanlab_ng import neighbours


def test_nearest_neighbours_match_brute_force_cosine():
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(300, 5))
    got = neighbours.nearest_neighbours(Z, 7, block=64)  # several blocks
    U = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    sim = U @ U.T
    np.fill_diagonal(sim, -np.inf)
    np.testing.assert_array_equal(got, np.argsort(-sim, axis=1, kind="stable")[:, :7])
    assert neighbours.nearest_neighbours(Z[:4], 10).shape == (4, 3)  # k capped at n - 1


def test_neighbours_among_a_reference_subset():
    rng = np.random.default_rng(7)
    Z = rng.normal(size=(200, 4))
    ref = np.sort(rng.choice(200, 80, replace=False))
    got = neighbours.nearest_neighbours(Z, 5, reference=ref, block=32)
    U = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    sim = U @ U[ref].T
    sim[ref, np.arange(80)] = -np.inf
    np.testing.assert_array_equal(got, ref[np.argsort(-sim, axis=1, kind="stable")[:, :5]])
    np.testing.assert_array_equal(neighbours.nearest_neighbours(Z, 5),
                                  neighbours.nearest_neighbours(Z, 5, np.arange(200)))
    k, subset = neighbours.reference_subset(50_000, 200)
    assert k == 80 and len(np.unique(subset)) == neighbours.MAX_REFERENCE
    assert neighbours.reference_subset(500, 200) == (200, None)
    assert neighbours.reference_subset(50_000, 10)[0] == 10  # never more than asked


def test_label_disagreement_is_the_share_of_neighbours_labelled_otherwise():
    rng = np.random.default_rng(3)
    centres = np.eye(3) * 8
    labels = np.repeat(np.arange(3), 50)
    Z = centres[labels] + rng.normal(size=(150, 3))
    given = labels.copy()
    given[[0, 60, 120]] = [1, 2, 0]  # one flip per cluster
    d = neighbours.label_disagreement(Z, given, k=10)
    assert d.shape == (150,) and d.min() >= 0 and d.max() <= 1
    assert np.all(d[[0, 60, 120]] == 1.0)  # its neighbours all keep the cluster's label
    others = np.delete(d, [0, 60, 120])
    assert others.max() <= 0.1  # at most the one flip among ten neighbours


def test_a_deeper_search_serves_a_shallower_one():
    rng = np.random.default_rng(5)
    Z = rng.normal(size=(400, 6))
    labels = rng.integers(0, 3, 400)
    deep = neighbours.feature_neighbours(Z, 50)
    assert deep.shape == (400, 50)
    np.testing.assert_array_equal(neighbours.feature_neighbours(Z, 10, deep),
                                  neighbours.feature_neighbours(Z, 10))
    np.testing.assert_array_equal(neighbours.label_disagreement(Z, labels, 10, deep),
                                  neighbours.label_disagreement(Z, labels, 10))
    # a search shallower than asked is not used: the answer is searched anew
    assert neighbours.feature_neighbours(Z, 20, deep[:, :5]).shape == (400, 20)


def test_label_support_backs_the_most_common_label_of_the_neighbours():
    from cleanlab_ng.neighbours import label_support

    labels = np.array([0, 0, 0, 1, 1, 2])
    near = np.array([[1, 2, 3, 4], [0, 2, 3, 5], [3, 4, 5, 0], [4, 5, 0, 1],
                     [3, 5, 2, 1], [3, 4, 0, 1]])
    share, backed = label_support(near, labels, np.array([0, 1, 1, 2, 0, 0]))
    assert share.tolist() == [0.5, 0.25, 0.5, 0.25, 0.5, 0.5]
    # row 1: 0 is carried twice, 1 once; in rows 0 and 5 two labels tie: a tie backs
    assert backed.tolist() == [True, False, True, False, True, True]
    # among all-different neighbours any label they carry is backed, one they lack is not
    backed = label_support(np.array([[1, 2], [0, 2], [0, 1]]), np.array([0, 1, 2]),
                           np.array([1, 1, 1]))[1]
    assert backed.tolist() == [True, False, True]
