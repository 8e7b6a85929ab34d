"""Label issues of data already in memory: a scikit-learn style estimator and a function.

``LabelIssueFinder(random_state=0).fit(X, y)`` runs the same pipeline as ``cleanlab-ng
clean`` (proxy training, the detectors, the merge) on a feature matrix or a DataFrame and
keeps the per-sample report; :func:`find_label_issues` returns that report directly. A
numpy ``X`` is read as an embedding matrix (standardised, as an ``.npy`` file is); a
DataFrame as a table (categories one-hot, missing values imputed, kernel features where
they predict the labels better). The arrays are handed to the pipeline through a temporary
folder, which is removed afterwards; nothing is exported.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .errors import CleanlabNgError, DatasetError
from .pipeline import clean


class LabelIssueFinder(BaseEstimator):
    """Find the samples whose given label is likely wrong.

    Parameters
    ----------
    detectors : str or list of str, default=None
        Detector names (``"bmm,late_stopping"``); None runs all of them.
    merge : str, default="jury"
        How the detectors are combined (:func:`cleanlab_ng.merge.merge_scores`).
    noise_rate : float, default=None
        Flag this fraction of the samples instead of the estimated number of wrong labels.
    table_features : {"auto", "linear", "kernel"}, default="auto"
        DataFrames only: the columns, RBF kernel features of them, or the better of the two.
    epochs : int, default=40
    folds : int, default=5
    recov_runs : int, default=None
        Repeats of K-fold cross-validation for ``recov``; None stops once stable.
    device : {"auto", "cpu", "cuda"}, default="auto"
    n_jobs : int, default=None
        torch threads; None uses the cores available.
    random_state : int, default=0

    Attributes
    ----------
    report_ : DataFrame
        One row per sample, in the order of ``X`` (and with its index for a DataFrame):
        ``given_label``, ``predicted_label``, ``suggested_label``, ``noise_score`` (higher
        = more likely wrong), ``is_noisy``, ``issue`` and every detector's columns.
    summary_ : dict
        What ``summary.json`` holds: counts, the estimated noise rate, proxy accuracy.
    is_noisy_ : ndarray of bool, shape (n_samples,)
    noise_score_ : ndarray of float, shape (n_samples,)

    Examples
    --------
    >>> finder = LabelIssueFinder(random_state=0).fit(X, y)  # doctest: +SKIP
    >>> X_clean, y_clean = X[~finder.is_noisy_], y[~finder.is_noisy_]  # doctest: +SKIP
    """

    def __init__(self, *, detectors=None, merge: str = "jury",
                 noise_rate: float | None = None, table_features: str = "auto",
                 epochs: int = 40, folds: int = 5, recov_runs: int | None = None,
                 device: str = "auto", n_jobs: int | None = None, random_state: int = 0):
        self.detectors = detectors
        self.merge = merge
        self.noise_rate = noise_rate
        self.table_features = table_features
        self.epochs = epochs
        self.folds = folds
        self.recov_runs = recov_runs
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y) -> LabelIssueFinder:
        """Train the proxies on ``X`` with the given labels ``y`` and flag the wrong ones.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features) or DataFrame
        y : array-like of shape (n_samples,)
            Given labels, strings or integers.

        Returns
        -------
        self
        """
        labels = np.asarray(y)
        if labels.ndim != 1:
            raise DatasetError(f"y: expected one label per sample, got shape {labels.shape}.")
        if len(X) != len(labels):
            raise DatasetError(f"X has {len(X)} rows but y has {len(labels)} labels. "
                               "Give one label per row.")
        with tempfile.TemporaryDirectory(prefix="cleanlab-ng-") as tmp:
            root = Path(tmp).resolve() / "input"
            root.mkdir()
            source, labels_file, label_column = _write_inputs(root, X, labels)
            try:
                result = clean(source, root.parent / "out", labels=labels_file,
                               label_column=label_column, detectors=self.detectors,
                               merge=self.merge, noise_rate=self.noise_rate,
                               table_features=self.table_features, epochs=self.epochs,
                               folds=self.folds, recov_runs=self.recov_runs,
                               device=self.device, threads=self.n_jobs,
                               seed=self.random_state, export="none")
            except CleanlabNgError as e:
                # the messages name the temporary files; the user knows them as X and y
                message = str(e).replace(f"{root}/", "").replace("features.npy", "X")
                message = message.replace("table.parquet", "X").replace("labels.parquet", "y")
                raise type(e)(message) from None
        report = result.report.drop(columns="sample_id")
        report.index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(len(labels))
        self.report_ = report
        self.summary_ = result.summary
        self.is_noisy_ = report["is_noisy"].to_numpy()
        self.noise_score_ = report["noise_score"].to_numpy()
        return self


def find_label_issues(X, y, **params) -> pd.DataFrame:
    """The per-sample report of :class:`LabelIssueFinder` fitted on ``X`` and ``y``.

    ``params`` are the finder's parameters. Sort by ``noise_score`` for a ranking; the
    ``is_noisy`` column is the mask of the samples to drop or relabel.
    """
    return LabelIssueFinder(**params).fit(X, y).report_


def _write_inputs(root: Path, X, labels: np.ndarray) -> tuple[Path, Path | None, str]:
    """``X`` and the labels as the files the pipeline reads: (source, labels file, column)."""
    if isinstance(X, pd.DataFrame):
        frame = X.copy()
        frame.columns = [str(c) for c in frame.columns]
        column = "label"
        while column in frame.columns:  # a feature already has the name
            column = f"_{column}"
        frame[column] = labels
        frame.reset_index(drop=True).to_parquet(root / "table.parquet", index=False)
        return root / "table.parquet", None, column
    matrix = np.asarray(X)
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number):
        raise DatasetError(f"X: expected a 2-d numeric array, got shape {matrix.shape} and "
                           f"dtype {matrix.dtype}. Pass a DataFrame for mixed columns.")
    np.save(root / "features.npy", matrix)
    pd.DataFrame({"label": labels}).to_parquet(root / "labels.parquet", index=False)
    return root / "features.npy", root / "labels.parquet", "label"
