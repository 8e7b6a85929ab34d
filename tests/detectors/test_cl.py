import dataclasses
import logging
import warnings

import numpy as np
import pytest
import torch
from sklearn.preprocessing import StandardScaler

import cleanlab_ng
from cleanlab_ng import ConfigError, pipeline
from cleanlab_ng.detectors import cl
from cleanlab_ng.train.proxy import train_out_of_fold
from cleanlab_ng.train.record import TrainingRecord
from cleanlab_ng.train.recov import train_recov

cleanlab = pytest.importorskip("cleanlab")


@pytest.fixture(scope="module")
def stages(digits):
    X, _, given, _ = digits
    Z = torch.tensor(StandardScaler().fit_transform(X), dtype=torch.float32)
    return (train_out_of_fold(Z, given, n_classes=10, seed=0),
            train_recov(Z, given, n_classes=10, n_runs=64, seed=0))


@pytest.mark.parametrize("source", ["oof", "recov"])
def test_cl_is_cleanlab_itself_on_the_record_probabilities(digits, stages, source):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    given = digits[2]
    oof, recov = stages
    record = TrainingRecord(labels=given, n_classes=10, oof=oof,
                            recov=recov if source == "recov" else None)
    proba = (recov if source == "recov" else oof).proba.astype(np.float64)
    proba /= proba.sum(1, keepdims=True)
    result = cl.detect(record)
    np.testing.assert_array_equal(result.flag, find_label_issues(given, proba))
    np.testing.assert_allclose(result.evidence["quality"],
                               get_label_quality_scores(given, proba))
    np.testing.assert_allclose(result.score, 1 - result.evidence["quality"])


def test_cleanlabs_warnings_go_to_the_log_not_the_terminal(digits, stages, caplog):
    # a class of one sample: cleanlab warns that it cannot flag within it
    given = digits[2].copy()
    given[0] = 10
    proba = np.hstack([stages[0].proba, np.full((len(given), 1), 0.01)])
    record = TrainingRecord(labels=given, n_classes=11,
                            oof=dataclasses.replace(stages[0], proba=proba))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one escaping would fail the test
        with caplog.at_level(logging.INFO, logger="cleanlab_ng"):
            cl.detect(record)
    assert "too few examples" in caplog.text


def test_cl_is_reported_but_never_merged(tmp_path, csv_table):
    path, _, _ = csv_table
    out = tmp_path / "out"
    options = dict(epochs=4, threads=1, recov_runs=64)
    alone = cleanlab_ng.clean(path, out, detectors="bmm", **options).report
    both = cleanlab_ng.clean(path, out, detectors="bmm,cl", **options)
    np.testing.assert_array_equal(both.report["noise_score"], alone["noise_score"])
    np.testing.assert_array_equal(both.report["is_noisy"], alone["is_noisy"])
    assert {"cl_score", "cl_flag", "cl_quality"} <= set(both.report.columns)
    assert both.summary["baselines"] == ["cl"]
    assert both.summary["detectors"]["cl"]["flagged"] == both.report["cl_flag"].sum()


def test_without_cleanlab_cl_is_skipped_by_default_and_refused_by_name(monkeypatch, caplog):
    monkeypatch.setattr(cl, "available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="cleanlab_ng"):
        names = pipeline._select_detectors(None)
        assert not caplog.text  # said once the input has loaded, so a bad input stays one line
        pipeline._warn_skipped_baseline(None)
    assert "cl" not in names and "recov" in names
    assert "cleanlab is not installed: skipping the cl baseline" in caplog.text
    with pytest.raises(ConfigError) as info:
        pipeline._select_detectors("recov,cl")
    assert str(info.value) == ("--detectors cl: cleanlab is not installed. "
                               "pip install 'cleanlab-ng[baseline]', or drop cl.")


def test_a_baseline_alone_is_refused():
    with pytest.raises(ConfigError) as info:
        pipeline._select_detectors("cl")
    assert str(info.value) == ("--detectors cl: baselines are only compared, never merged. "
                               "Add a detector, e.g. --detectors recov,cl.")
