"""The README documents every detector, every CLI option and every report column."""

from pathlib import Path

import pytest

from cleanlab_ng.detectors import DETECTORS
from cli.main import clean

README = (Path(__file__).parents[1] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_is_documented(name):
    assert f"`{name}`" in README


@pytest.mark.parametrize("option", sorted(o for p in clean.params for o in p.opts
                                          if o.startswith("--")))
def test_every_cli_option_is_documented(option):
    assert f"`{option}" in README


@pytest.mark.parametrize("column", ["sample_id", "given_label", "predicted_label",
                                    "suggested_label", "suggestion_support",
                                    "suggestion_backed", "noise_score", "is_noisy", "issue"])
def test_report_columns_are_documented(column):
    assert f"`{column}`" in README
