"""The detector registry: a name for every detector, and what training each one reads.

A detector is a module with a pure ``detect(record, **options) -> DetectorResult`` and a
``REQUIRES`` tuple naming the record stages it reads; adding one is one module here and its
name in :data:`cleanlab_ng.choices.DETECTOR_NAMES`. :data:`BASELINES` are run and reported
like the others but never enter the merged verdict: they are there to compare against.

A detector's module is imported the first time it is looked up, so that a run pays only
for the libraries of the detectors it runs (``scipy.stats`` and scikit-learn take about two
seconds to import, a sixth of a short ``recov``-only run).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from importlib import import_module
from types import ModuleType

from ..choices import DETECTOR_NAMES
from ..errors import ConfigError
from ..train.record import TrainingRecord
from ._result import DetectorResult, flag_top, mean_result

Detector = Callable[..., DetectorResult]


@cache
def _module(name: str) -> ModuleType:
    return import_module(f".{name}", __name__)


class _Registry(Mapping[str, Detector]):
    """Detector name -> its ``detect`` function, the module imported on first look-up."""

    def __getitem__(self, name: str) -> Detector:
        if name not in DETECTOR_NAMES:
            raise KeyError(name)
        return _module(name).detect

    def __contains__(self, name: object) -> bool:
        return name in DETECTOR_NAMES

    def __iter__(self) -> Iterator[str]:
        return iter(DETECTOR_NAMES)

    def __len__(self) -> int:
        return len(DETECTOR_NAMES)


DETECTORS: Mapping[str, Detector] = _Registry()

# compared in the report, never merged: confident learning itself (cleanlab)
BASELINES = frozenset({"cl"})

__all__ = ["BASELINES", "DETECTORS", "DetectorResult", "flag_top", "get_detector",
           "mean_result", "parse_detectors", "required_stages", "run_detector"]


def get_detector(name: str | Detector) -> Detector:
    """The detector called ``name``; a callable is passed through unchanged."""
    if callable(name):
        return name
    if name in DETECTORS:
        return DETECTORS[name]
    known = ", ".join(sorted(DETECTORS))
    close = difflib.get_close_matches(name, DETECTORS, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else "."
    raise ConfigError(f"unknown detector '{name}'{hint} Known: {known}.")


def required_stages(name: str) -> tuple[str, ...]:
    """The record stages the detector called ``name`` reads."""
    return _module(name).REQUIRES


def parse_detectors(spec: str | list[str] | None) -> list[str]:
    """Detector names from ``"bmm,late_stopping"`` or a list; None means all registered."""
    if spec is None:
        return list(DETECTORS)
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    if not names:
        raise ConfigError("no detector selected. Pass at least one name, e.g. --detectors bmm.")
    for n in names:
        get_detector(n)
    return list(dict.fromkeys(names))


def run_detector(name: str, record: TrainingRecord, **options) -> DetectorResult:
    """Run the named detector on ``record``."""
    return get_detector(name)(record, **options)
