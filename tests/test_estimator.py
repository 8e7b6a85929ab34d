"""The in-memory API: LabelIssueFinder and find_label_issues on arrays and DataFrames."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import f1_score

from cleanlab_ng import DatasetError, LabelIssueFinder, find_label_issues

FAST = dict(epochs=6, recov_runs=256, n_jobs=1, detectors="bmm,late_stopping,recov")


def test_finder_flags_the_flipped_labels_of_an_array(digits):
    X, _, given, flipped = digits
    names = np.array([f"digit {c}" for c in range(10)])
    finder = LabelIssueFinder(random_state=0, **FAST).fit(X, names[given])
    assert f1_score(flipped, finder.is_noisy_) > 0.7
    assert finder.report_.index.equals(pd.RangeIndex(len(X)))
    assert (finder.report_["given_label"].to_numpy() == names[given]).all()
    assert finder.noise_score_.shape == (len(X),)
    assert finder.summary_["n"] == len(X)
    # scikit-learn conventions: parameters as given, cloneable
    assert clone(finder).get_params()["recov_runs"] == 256


def test_find_label_issues_keeps_a_dataframes_index_and_a_label_named_column(digits):
    X, _, given, flipped = digits
    frame = pd.DataFrame(X[:, :32], index=pd.Index(np.arange(len(X)) * 3, name="id"))
    frame["label"] = 0  # a feature that happens to be called label
    report = find_label_issues(frame, given, random_state=0, **FAST)
    assert report.index.equals(frame.index)
    assert (report["given_label"].to_numpy() == given).all()
    assert report.loc[frame.index[flipped], "noise_score"].mean() > \
        report.loc[frame.index[~flipped], "noise_score"].mean()


@pytest.mark.parametrize("y, message", [
    (lambda g: g[:-1], "X has 600 rows but y has 599 labels. Give one label per row."),
    (lambda g: np.zeros_like(g), "y: only one class (0) in the labels. Label noise needs at "
                                 "least two classes."),
])
def test_bad_arrays_get_errors_that_name_x_and_y(digits, y, message):
    X, _, given, _ = digits
    with pytest.raises(DatasetError) as info:
        find_label_issues(X, y(given), **FAST)
    assert str(info.value) == message
