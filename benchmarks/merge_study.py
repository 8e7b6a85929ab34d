"""Merge rules and count estimators compared offline, on the runs the suite kept.

    python -m benchmarks.merge_study

Reads what ``python -m benchmarks run`` kept under ``benchmarks/.cache/reports/`` (each
detector's score and flag, the truth, the out-of-fold probabilities), recomputes every merge
rule of ``cleanlab_ng.merge`` with the shipped count, and every count estimator of
``cleanlab_ng.noise_count``, and writes ``benchmarks/results/merge_study.md`` and ``.json``.
Synthetic sets choose; real-noise sets only check. ``merge:overlap^p`` and
``merge:referee^p`` are those rules with the weights' power ``p``, the sweeps that chose
``cleanlab_ng.merge.OVERLAP_POWER`` and ``REFEREE_POWER``; ``merge:jury seat s`` is ``jury``
with the referee's seat ``s``, the sweep that chose ``REFEREE_SEAT``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.count import count_estimates, fit_weight
from benchmarks.embeddings import CACHE
from benchmarks.foundation import current_commit
from benchmarks.runner import score
from cleanlab_ng.detectors import DetectorResult
from cleanlab_ng.merge import (
    MERGE_RULES,
    flag_top,
    merge_scores,
    overlap_weights,
    rank_normalise,
    referee_weights,
    seat_referee,
)
from cleanlab_ng.noise_count import W0, W1, estimate_noise_count

RESULTS = Path(__file__).parent / "results"
DETECTORS = ("bmm", "recov", "late_stopping", "confidence_drop", "linear_separation")
OVERLAP_POWERS = (1, 2, 4, 8, 16, 32, 64)  # the sweep behind merge.OVERLAP_POWER
REFEREE_POWERS = (4, 8, 16, 32, 64)  # the sweep behind merge.REFEREE_POWER
REFEREE_SEATS = (0.5, 1.0, 1.5, 2.0)  # the sweep behind merge.REFEREE_SEAT


def kept_runs() -> list[tuple[str, str, pd.DataFrame, np.ndarray]]:
    runs = []
    for path in sorted((CACHE / "reports").glob("*/*.parquet")):
        proba = np.load(path.with_suffix(".proba.npy"))
        runs.append((path.parent.name, path.stem, pd.read_parquet(path), proba))
    return runs


def study(runs: list) -> list[dict]:
    rows = []
    for suite, stem, frame, proba in runs:
        wrong = frame["wrong"].to_numpy(bool)
        given = frame["given"].to_numpy()
        name = stem.partition("_draw")[0]  # draws of one label set are averaged in the tables
        results = [DetectorResult(d, score=frame[f"{d}_score"].to_numpy(float),
                                  flag=frame[f"{d}_flag"].to_numpy(bool)) for d in DETECTORS]
        count = estimate_noise_count(given, proba)
        base = {"suite": suite, "label_set": name, "real": bool(frame["real"].iloc[0]),
                "true_count": int(wrong.sum()), "estimated_count": count}
        for r in results:
            rows.append({**base, "method": r.name, **score(wrong, r.flag, r.score)})
        rows.append({**base, "method": "cleanlab", **score(
            wrong, frame["cl_flag"].to_numpy(bool), frame["cl_score"].to_numpy(float))})
        referee = frame["neighbour_disagreement"].to_numpy(float)
        # the referee on its own, cut at the same count: how good a judge it is here
        rows.append({**base, "method": "neighbour_disagreement",
                     **score(wrong, flag_top(referee, count), referee)})
        for rule in MERGE_RULES:
            merged, flag = merge_scores(results, n_flag=count, rule=rule, referee=referee)
            rows.append({**base, "method": f"merge:{rule}", **score(wrong, flag, merged)})
            rows.append({**base, "method": f"merge:{rule}@true_count",
                         **score(wrong, flag_top(merged, wrong.sum()), merged)})
        ranks = np.array([rank_normalise(r.score) for r in results])
        for power in OVERLAP_POWERS:
            merged = overlap_weights(ranks, count, power) @ ranks
            rows.append({**base, "method": f"merge:overlap^{power}",
                         **score(wrong, flag_top(merged, count), merged)})
        for power in REFEREE_POWERS:
            merged = referee_weights(ranks, referee, count, power) @ ranks
            rows.append({**base, "method": f"merge:referee^{power}",
                         **score(wrong, flag_top(merged, count), merged)})
        for seat in REFEREE_SEATS:
            merged = seat_referee(referee_weights(ranks, referee, count), ranks, referee, seat)
            rows.append({**base, "method": f"merge:jury seat {seat:g}",
                         **score(wrong, flag_top(merged, count), merged)})
    return rows


def count_study(runs: list) -> tuple[list[dict], tuple[float, float]]:
    """Every candidate count per kept run, and the weight fitted on the synthetic runs."""
    rows = []
    for suite, name, frame, proba in runs:
        given = frame["given"].to_numpy()
        rows.append({"suite": suite, "label_set": name, "real": bool(frame["real"].iloc[0]),
                     "n": len(given), "true_count": int(frame["wrong"].sum()),
                     "cleanlab": int(frame["cl_flag"].sum()), **count_estimates(given, proba)})
    return rows, fit_weight([r for r in rows if not r["real"]])


def count_markdown(rows: list[dict], fitted: tuple[float, float]) -> list[str]:
    frame = pd.DataFrame(rows).set_index("label_set")
    methods = ["shipped", "mean", "calibrated", "strict", "cleanlab"]
    error = frame[methods].div(frame["true_count"], axis=0) - 1
    lines = ["## Count", "",
             f"Weight fitted on the synthetic runs here: W0 = {fitted[0]:.3f}, "
             f"W1 = {fitted[1]:.3f}; shipped in cleanlab_ng/noise_count.py: W0 = {W0}, "
             f"W1 = {W1}. Relative error of each count (estimate / truth - 1):", "",
             "| noise | count | mean abs error | max abs error |", "|---|---|---|---|"]
    for real in (False, True):
        part = error[frame["real"] == real].abs()
        lines += [f"| {'real' if real else 'synthetic'} | {m} | {part[m].mean():.3f} | "
                  f"{part[m].max():.3f} |" for m in methods]
    table = frame[["suite", "n", "true_count", *methods]].join(
        error.round(3).add_suffix(" error"))
    return lines + ["", table.to_markdown(), ""]


def wins(frame: pd.DataFrame, rule: str, against: list[str]) -> tuple[int, int, float]:
    """Label sets where ``rule``'s F1 is >= every method in ``against``; the largest gap."""
    f1 = frame.pivot_table(index=["suite", "label_set"], columns="method", values="f1")
    gap = f1[against].max(axis=1) - f1[rule]
    return int((gap <= 1e-9).sum()), len(gap), float(gap.max())


def main() -> int:
    runs = kept_runs()
    rows = study(runs)
    frame = pd.DataFrame(rows)
    lines = [f"# Merge rules and counts, offline (commit `{current_commit()}`)", "",
             "Command: `python -m benchmarks.merge_study` over the runs kept by the last "
             "`python -m benchmarks run`.", ""]
    for real in (False, True):
        part = frame[frame["real"] == real]
        if part.empty:
            continue
        lines += [f"## {'Real' if real else 'Synthetic'} noise", "",
                  "| rule | ≥ every single detector | worst gap to one | ≥ cleanlab | "
                  "worst gap to cleanlab | mean F1 | mean AUROC |", "|---|---|---|---|---|---|---|"]
        for rule in [m for m in part["method"].unique() if m.startswith("merge:")]:
            n, total, gap = wins(part, rule, list(DETECTORS))
            c, _, cgap = wins(part, rule, ["cleanlab"])
            sub = part[part["method"] == rule]
            lines.append(f"| {rule} | {n}/{total} | {gap:+.3f} | {c}/{total} | {cgap:+.3f} | "
                         f"{sub['f1'].mean():.3f} | {sub['auroc'].mean():.3f} |")
        lines.append("")
        table = part.pivot_table(index="label_set", columns="method", values="f1",
                                 sort=False).round(3)
        lines += [table.to_markdown(), ""]
    counts, fitted = count_study(runs)
    lines += count_markdown(counts, fitted)
    (RESULTS / "merge_study.md").write_text("\n".join(lines))
    (RESULTS / "merge_study.json").write_text(json.dumps(
        {"merge": rows, "count": counts, "fitted_weight": fitted}, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
