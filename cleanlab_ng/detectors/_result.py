"""The value every detector returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class DetectorResult:
    """Per-sample output of one detector.

    Attributes
    ----------
    name : str
    score : ndarray of float, shape (n_samples,)
        In [0, 1]; **higher = more likely mislabeled** (cleanlab's quality scores run the
        other way).
    flag : ndarray of bool, shape (n_samples,)
        The method's own decision rule.
    evidence : dict of str to ndarray of shape (n_samples,)
        Named per-sample values that explain the score; report columns ``<name>_<key>``.
    diagnostics : dict of str to scalar
        Run-level facts (epoch read, mixture weights, ...) for the summary.
    """

    name: str
    score: np.ndarray
    flag: np.ndarray
    evidence: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostics: dict[str, float | int | str] = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.score)
        if self.score.ndim != 1 or self.flag.shape != (n,):
            raise ValueError(f"{self.name}: score and flag must both have shape ({n},)")
        if self.flag.dtype != bool:
            raise ValueError(f"{self.name}: flag must be bool, got {self.flag.dtype}")
        if not (np.all(np.isfinite(self.score)) and self.score.min(initial=0) >= 0
                and self.score.max(initial=0) <= 1):
            raise ValueError(f"{self.name}: score must be finite and in [0, 1]")
        for key, value in self.evidence.items():
            if np.shape(value) != (n,):
                raise ValueError(f"{self.name}: evidence '{key}' must have shape ({n},)")
