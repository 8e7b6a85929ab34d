"""The detector registry: a name for every detector, and what training each one reads.

A detector is a module with a pure ``detect(record, **options) -> DetectorResult`` and a
``REQUIRES`` tuple naming the record stages it reads; adding one is one module and one line
in :data:`DETECTORS`. :data:`BASELINES` are run and reported like the others but never enter
the merged verdict: they are there to compare against.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from ..errors import ConfigError
from ..train.record import TrainingRecord
from . import bmm, cl, confidence_drop, late_stopping, linear_separation, recov
from ._result import DetectorResult, mean_result

Detector = Callable[..., DetectorResult]

DETECTORS: dict[str, Detector] = {
    "bmm": bmm.detect,
    "late_stopping": late_stopping.detect,
    "recov": recov.detect,
    "confidence_drop": confidence_drop.detect,
    "linear_separation": linear_separation.detect,
    "cl": cl.detect,
}
REQUIRES: dict[str, tuple[str, ...]] = {
    "bmm": bmm.REQUIRES,
    "late_stopping": late_stopping.REQUIRES,
    "recov": recov.REQUIRES,
    "confidence_drop": confidence_drop.REQUIRES,
    "linear_separation": linear_separation.REQUIRES,
    "cl": cl.REQUIRES,
}
# compared in the report, never merged: confident learning itself (cleanlab)
BASELINES = frozenset({"cl"})

__all__ = ["BASELINES", "DETECTORS", "DetectorResult", "get_detector", "mean_result",
           "parse_detectors", "run_detector"]


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
