import numpy as np
import pandas as pd
import pytest

import cleanlab_ng
from cleanlab_ng import DatasetError, load_dataset
from cleanlab_ng.text import embed_texts

TOPICS = {
    "sport": "match goal team league coach season player score referee stadium",
    "cooking": "recipe oven flour butter sugar bake simmer onion garlic pan",
    "space": "orbit rocket planet launch moon telescope galaxy astronaut satellite star",
}


def _corpus(n_per_topic: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for k, words in enumerate(TOPICS.values()):
        vocab = words.split()
        for _ in range(n_per_topic):
            texts.append(" ".join(rng.choice(vocab, 12)) + " the and of it")
            labels.append(k)
    return texts, np.array(labels)


def test_embed_texts_is_deterministic_and_separates_topics():
    texts, labels = _corpus(30, seed=0)
    Z, reason = embed_texts(texts, n_components=8)
    again, _ = embed_texts(texts, n_components=8)
    assert Z.shape == (90, 8) and "TF-IDF" in reason
    np.testing.assert_array_equal(Z, again)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1, rtol=1e-5)
    centroids = np.stack([Z[labels == k].mean(0) for k in range(3)])
    nearest = np.argmax(Z @ centroids.T, axis=1)
    assert (nearest == labels).mean() == 1.0


def test_text_column_layout_finds_flipped_labels(tmp_path):
    texts, labels = _corpus(60, seed=1)
    names = np.array(list(TOPICS))
    given = labels.copy()
    flipped = np.arange(5, 180, 12)  # 15 of 180
    given[flipped] = (labels[flipped] + 1) % 3
    (tmp_path / "data").mkdir()
    pd.DataFrame({"doc": texts, "topic": names[given], "source": "web"}).to_csv(
        tmp_path / "data" / "posts.csv", index=False)
    res = cleanlab_ng.clean(tmp_path / "data" / "posts.csv", tmp_path / "out", text_column="doc",
                            label_column="topic", detectors="bmm,late_stopping", threads=1)
    assert res.summary["layout"] == "text"
    flagged = set(res.report.loc[res.report["is_noisy"], "sample_id"].astype(int))
    assert len(flagged & set(flipped)) >= 12 and len(flagged - set(flipped)) <= 3
    cleaned = pd.read_csv(tmp_path / "out" / "cleaned" / "posts.csv")
    assert list(cleaned.columns) == ["doc", "topic", "source"]


def test_text_column_errors_name_the_column(tmp_path):
    pd.DataFrame({"n": [1, 2, 3], "label": [0, 1, 0]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DatasetError, match=r"t.csv: no column 'body' .* Pass --text-column NAME"):
        load_dataset(tmp_path / "t.csv", text_column="body")
    with pytest.raises(DatasetError, match="holds numbers, not text"):
        load_dataset(tmp_path / "t.csv", text_column="n")
    np.save(tmp_path / "e.npy", np.zeros((3, 2)))
    (tmp_path / "t.csv").unlink()
    pd.DataFrame({"label": [0, 1, 0]}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DatasetError, match="--text-column needs a CSV or Parquet table"):
        load_dataset(tmp_path, text_column="body")


def test_a_text_column_in_a_table_gets_a_hint(tmp_path):
    texts, labels = _corpus(20, seed=2)
    (tmp_path / "data").mkdir()
    pd.DataFrame({"doc": texts, "n_words": 16, "label": labels}).to_csv(
        tmp_path / "data" / "t.csv", index=False)
    res = cleanlab_ng.clean(tmp_path / "data" / "t.csv", tmp_path / "out",
                            detectors="bmm", threads=1, export="none")
    assert "pass --text-column doc" in res.summary["proxy"]["features_reason"]
