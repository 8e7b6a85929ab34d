"""Table features: the columns, or RBF kernel features where no hyperplane separates the
classes; the choice, the modes and the cache."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs, make_moons

from cleanlab_ng.data import load_dataset
from cleanlab_ng.features import encode, kernel_features, table_kernel_choice


def write_table(path, X, y):
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["label"] = y
    frame.to_csv(path, index=False)
    return path


def test_kernel_features_are_taken_where_the_columns_cannot_separate(tmp_path):
    X, y = make_moons(400, noise=0.15, random_state=0)
    features = encode(load_dataset(write_table(tmp_path / "moons.csv", X, y)))
    assert features.kind == "table+kernel"
    assert features.Z.shape == (400, 256)
    assert "RBF kernel features taken" in features.reason


def test_kernel_features_are_not_taken_where_the_columns_suffice(tmp_path):
    X, y = make_blobs(400, centers=[[-4, 0], [4, 0]], random_state=0)
    features = encode(load_dataset(write_table(tmp_path / "blobs.csv", X, y)))
    assert features.kind == "table"
    assert features.Z.shape == (400, 2)
    assert "not taken" in features.reason


def test_kernel_choice_measures_the_held_out_gain():
    X, y = make_moons(600, noise=0.1, random_state=1)
    Z = (X - X.mean(0)) / X.std(0)
    gain, se = table_kernel_choice(Z, kernel_features(Z), y, 2)
    assert gain > 0.05 and 0 < se < gain / 3
    # the same features on both sides gain nothing
    assert table_kernel_choice(Z, Z, y, 2) == (0.0, 0.0)


def test_modes_are_honoured_and_cached_apart(tmp_path):
    X, y = make_moons(200, noise=0.15, random_state=0)
    data = load_dataset(write_table(tmp_path / "moons.csv", X, y))
    kinds = {mode: encode(data, table_features=mode, cache_dir=tmp_path / "cache").kind
             for mode in ("linear", "kernel", "auto")}
    assert kinds == {"linear": "table", "kernel": "table+kernel", "auto": "table+kernel"}
    again = encode(data, table_features="linear", cache_dir=tmp_path / "cache")
    assert again.cached and again.kind == "table"
    with pytest.raises(ValueError, match="table_features"):
        encode(data, table_features="rbf")


def test_clean_table_with_a_curved_boundary_is_left_alone(tmp_path):
    # clean labels that no hyperplane separates: linear heads flag the misfits, the kernel
    # features next to none
    import cleanlab_ng

    X, y = make_moons(400, noise=0.15, random_state=0)
    path = write_table(tmp_path / "moons.csv", X, y)
    flagged = {}
    for mode in ("linear", "auto"):
        result = cleanlab_ng.clean(path, tmp_path / f"out-{mode}", table_features=mode,
                                   detectors="bmm,late_stopping", epochs=10, threads=1,
                                   recov_runs=64, export="none")
        flagged[mode] = int(result.report["is_noisy"].sum())
        assert result.summary["proxy"]["features"] == {"linear": "table",
                                                       "auto": "table+kernel"}[mode]
    assert flagged["auto"] <= 4 < 10 <= flagged["linear"]
    assert np.isfinite(result.report["noise_score"]).all()


def test_a_cache_written_without_the_kind_still_loads(tmp_path):
    X, y = make_blobs(50, centers=2, random_state=0)
    np.save(tmp_path / "features.npy", X.astype(np.float32))
    pd.DataFrame({"label": y}).to_csv(tmp_path / "labels.csv", index=False)
    data = load_dataset(tmp_path)
    first = encode(data, cache_dir=tmp_path / "cache")
    [file] = (tmp_path / "cache").glob("features-*.npz")
    with np.load(file) as cached:  # the layout of the cache before kinds were stored
        old = {k: cached[k] for k in cached.files if k != "kind"}
    np.savez(file, **old)
    again = encode(data, cache_dir=tmp_path / "cache")
    assert again.cached and again.kind == first.kind == "embeddings"
    np.testing.assert_array_equal(again.Z, first.Z)


def test_a_column_of_distinct_strings_is_an_identifier_not_a_feature(tmp_path):
    from cleanlab_ng.errors import DatasetError

    X, y = make_blobs(100, centers=[[-4, 0], [4, 0]], random_state=0)
    frame = pd.DataFrame({"file": [f"img_{i}.png" for i in range(100)], "x0": X[:, 0],
                          "colour": ["red", "blue"] * 50, "label": y})
    frame.to_csv(tmp_path / "t.csv", index=False)
    features = encode(load_dataset(tmp_path / "t.csv"), table_features="linear")
    assert features.Z.shape == (100, 3)  # x0 and colour's two indicators
    assert "left out 'file'" in features.reason and "--id-column file" in features.reason
    frame[["file", "label"]].to_csv(tmp_path / "only.csv", index=False)
    with pytest.raises(DatasetError, match="column 'file' holds a different value on every row"):
        encode(load_dataset(tmp_path / "only.csv"))


def test_a_free_text_identifier_is_said_to_be_left_out_not_used(tmp_path):
    words = np.array(["alpha", "beta", "gamma", "delta", "omega", "sigma"])
    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(words, 8)) + f" {i}" for i in range(40)]
    pd.DataFrame({"doc": docs, "x": rng.normal(size=40), "label": ["a", "b"] * 20}).to_csv(
        tmp_path / "t.csv", index=False)
    features = encode(load_dataset(tmp_path / "t.csv"), table_features="linear")
    assert features.Z.shape == (40, 1)
    assert "'doc' looks like free text and was left out: pass --text-column doc" in (
        features.reason)
    assert "used as categories" not in features.reason
