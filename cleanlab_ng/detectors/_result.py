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


def flag_top(score: np.ndarray, n: int) -> np.ndarray:
    """Flags on the ``n`` highest scores; ties go to the earlier sample."""
    flag = np.zeros(len(score), dtype=bool)
    flag[np.argsort(-score, kind="stable")[:n]] = True
    return flag


def mean_result(results: list[DetectorResult]) -> DetectorResult:
    """One detector's results on several proxy runs, averaged into one result.

    The score and every floating-point evidence column are the mean over the runs; a sample
    is flagged when at least half of the runs flag it; integer evidence (an epoch, a count)
    is the median, rounded down. The diagnostics are the first run's, with ``runs`` added.
    One result is returned unchanged.

    Examples
    --------
    >>> runs = [DetectorResult("d", np.array([.2, .9]), np.array([False, True])),
    ...         DetectorResult("d", np.array([.4, .5]), np.array([False, False]))]
    >>> mean = mean_result(runs)
    >>> mean.score, mean.flag
    (array([0.3, 0.7]), array([False,  True]))
    """
    if len(results) == 1:
        return results[0]
    first = results[0]
    evidence = {}
    for key, value in first.evidence.items():
        stacked = np.stack([np.asarray(r.evidence[key]) for r in results])
        evidence[key] = (stacked.mean(axis=0) if np.issubdtype(stacked.dtype, np.floating)
                         else np.floor(np.median(stacked, axis=0)).astype(stacked.dtype))
    return DetectorResult(
        first.name, score=np.mean([r.score for r in results], axis=0),
        flag=np.mean([r.flag for r in results], axis=0) >= 0.5, evidence=evidence,
        diagnostics={**first.diagnostics, "runs": len(results)},
    )
