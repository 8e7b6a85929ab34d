"""The benchmark suite: every detector, the merged report and cleanlab on real and synthetic noise.

    python -m benchmarks cache [--full]             # embed the CIFAR images once
    python -m benchmarks run [SUITE ...] [--full]   # default: every quick suite

Suites: cifar10n, cifar10h, music_genre_crowd, synthetic, labelerrors (benchmarks/suites.py).
Each label set is one ``cleanlab-ng clean`` (all five detectors and the ``cl`` baseline, the
defaults otherwise, ``--threads`` as given) in a process of its own; its report is scored
against the known wrong labels. Writes ``benchmarks/results/<suite>.json`` (one row per
label set and method) and ``<suite>.md`` (``<suite>_full.*`` with ``--full``), and
rewrites ``benchmarks/results/summary.md`` from every quick suite's latest JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import embeddings
from benchmarks.count import count_estimates
from benchmarks.foundation import current_commit
from benchmarks.runner import method_rows, out_of_fold_proba, run_clean, write_inputs
from benchmarks.suites import SUITES

RESULTS = Path(__file__).parent / "results"
DETECTORS = ("bmm", "recov", "late_stopping", "confidence_drop", "linear_separation")
#: the columns that differ between draws of the same label set's noise
PER_DRAW = ("precision", "recall", "f1", "auroc", "auprc", "flagged", "estimated_count",
            "proxy_accuracy", "oof_accuracy_given", "wall_s", "peak_rss_gib", "recov_runs")


def run_suite(suite: str, full: bool, threads: int, jobs: int, work: Path, command: str,
              commit: str) -> list[dict]:
    """Every label set of a suite, ``jobs`` at a time; rows in the suite's order."""
    label_sets = list(SUITES[suite](full))
    with ThreadPoolExecutor(jobs) as pool:  # each job waits on a child process
        runs = pool.map(lambda item: run_label_set(suite, item[1], threads,
                                                   work / str(item[0]), command, commit),
                        enumerate(label_sets))
        return [row for rows in runs for row in rows]


def run_label_set(suite: str, label_set, threads: int, work: Path, command: str,
                  commit: str) -> list[dict]:
    source, options = write_inputs(label_set, work / "data")
    out = work / "out"
    run = run_clean(source, out, options, threads)
    summary = run["summary"]
    report = pd.read_parquet(out / "report.parquet")
    proba = out_of_fold_proba(out)
    proxy_accuracy = (None if label_set.true is None else round(float(
        (report["predicted_label"].to_numpy(dtype=float) == label_set.true).mean()), 4))
    shared = {
        "suite": suite, "label_set": label_set.name, "draw": label_set.draw,
        "n": len(label_set.given),
        "true_count": int(label_set.wrong.sum()), "real_noise": label_set.real,
        "estimated_count": summary["noise_count_estimate"],
        "proxy_accuracy": proxy_accuracy,
        "oof_accuracy_given": summary["proxy"]["oof_accuracy"],
        "wall_s": round(run["wall_s"], 1), "peak_rss_gib": round(run["peak_rss_gib"], 3),
        "timings": summary["seconds"], "recov_runs": summary["detectors"]["recov"].get("runs"),
        "count_estimates": count_estimates(label_set.given, proba),
        "note": label_set.note, "commit": commit, "command": command,
    }
    rows = [{**shared, **row} for row in method_rows(label_set, report, list(DETECTORS))]
    keep_for_study(suite, label_set, report, proba)
    merged = next(r for r in rows if r["method"] == "merged")
    print(f"{suite} / {label_set.name} (draw {label_set.draw}): merged F1 {merged['f1']:.3f}, "
          f"flagged {merged['flagged']} for {merged['true_count']} wrong, {run['wall_s']:.0f} s",
          flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return rows


def keep_for_study(suite: str, label_set, report: pd.DataFrame, proba: np.ndarray) -> None:
    """Scores, flags, truth and probabilities of a run, for offline studies of the merge and
    the count (benchmarks/merge_study.py) without retraining."""
    folder = embeddings.CACHE / "reports" / suite
    folder.mkdir(parents=True, exist_ok=True)
    slug = label_set.name.replace(" ", "_").replace("%", "") + (
        f"_draw{label_set.draw}" if label_set.draw else "")
    columns = [c for c in report.columns if c.endswith(("_score", "_flag"))]
    frame = report[columns + ["neighbour_disagreement", "is_noisy", "predicted_label"]].assign(
        given=label_set.given, wrong=label_set.wrong, real=label_set.real)
    frame.to_parquet(folder / f"{slug}.parquet")
    np.save(folder / f"{slug}.proba.npy", proba)


def write_suite(suite: str, rows: list[dict], seconds: float, full: bool, setup: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    name = f"{suite}_full" if full else suite  # the README's summary reads the quick runs
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(suite_markdown(suite, rows, seconds, full, setup))


def mean_over_draws(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per suite, label set and method: the numbers averaged over the noise draws,
    with their count in ``draws``."""
    if "draw" not in frame:
        frame = frame.assign(draw=0)
    keys = ["suite", "label_set", "method"]
    how = {c: "mean" if c in PER_DRAW else "first" for c in frame.columns if c not in keys}
    how["draw"] = "count"
    return (frame.groupby(keys, sort=False).agg(how).reset_index()
            .rename(columns={"draw": "draws"}))


def suite_markdown(suite: str, rows: list[dict], seconds: float, full: bool, setup: str) -> str:
    frame = mean_over_draws(pd.DataFrame(rows))
    head = rows[0]
    lines = [f"# Benchmark suite `{suite}`{' (full)' if full else ''}", "",
             f"Command: `{head['command']}` · commit `{head['commit']}` · {date.today()} · "
             f"{setup} · {seconds / 60:.1f} min for the suite", ""]
    if frame["draws"].max() > 1:
        lines += [f"Label sets with {frame['draws'].max()} draws of the noise: every number is "
                  "the mean over the draws (flagged counts, wall time and memory per draw); "
                  "the JSON keeps each draw.", ""]
    notes = sorted({r["note"] for r in rows if r["note"]})
    lines += [f"Note: {n}." for n in notes] + ([""] if notes else [])
    lines += ["## F1 (AUROC) per method", "",
              pivot(frame, lambda r: f"{r.f1:.3f} ({r.auroc:.3f})").to_markdown(), "",
              "## Precision / recall / flagged", "",
              pivot(frame, lambda r: f"{r.precision:.2f} / {r.recall:.2f} / {r.flagged:g}"
                    ).to_markdown(), "",
              "## AUPRC", "", pivot(frame, lambda r: f"{r.auprc:.3f}").to_markdown(), "",
              "## Counts, proxy and cost", "", runs_table(frame).to_markdown(index=False), ""]
    return "\n".join(lines)


def pivot(frame: pd.DataFrame, cell) -> pd.DataFrame:
    table = frame.assign(cell=[cell(r) for r in frame.itertuples()]).pivot(
        index="label_set", columns="method", values="cell")
    order = [m for m in ("merged", "cleanlab", *DETECTORS, "predicted_neq_given", "flag_nothing")
             if m in table.columns]
    return table.loc[frame["label_set"].unique(), order]


def runs_table(frame: pd.DataFrame) -> pd.DataFrame:
    runs = frame[frame["method"] == "merged"]
    cleanlab = frame[frame["method"] == "cleanlab"].set_index("label_set")["flagged"]
    return pd.DataFrame({
        "label_set": runs["label_set"], "draws": runs["draws"], "n": runs["n"],
        "true_count": runs["true_count"],
        "estimated_count": runs["estimated_count"],
        "cleanlab_count": cleanlab.loc[runs["label_set"]].to_numpy(),
        "proxy_accuracy": runs["proxy_accuracy"].round(4), "recov_runs": runs["recov_runs"],
        "wall_s": runs["wall_s"].round(1), "peak_rss_gib": runs["peak_rss_gib"].round(3),
        "slowest_stage": [max(t, key=t.get) + f" {t[max(t, key=t.get)]:.0f} s"
                          for t in runs["timings"]],
    })


def machine(threads: int, jobs: int) -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, {jobs} run(s) at once x {threads} "
            f"torch thread(s), Python {platform.python_version()}")


def write_summary() -> None:
    """README's table: merged vs cleanlab F1 per label set, from each suite's latest JSON."""
    rows = []
    for suite in SUITES:
        path = RESULTS / f"{suite}.json"
        if path.is_file():
            rows += json.loads(path.read_text())
    if not rows:
        return
    frame = mean_over_draws(pd.DataFrame(rows))
    (RESULTS / "summary.md").write_text(summary_markdown(frame))


def summary_markdown(frame: pd.DataFrame) -> str:
    keys = ["suite", "label_set"]
    f1 = frame.pivot_table(index=keys, columns="method", values="f1", sort=False)
    merged = frame[frame["method"] == "merged"].set_index(keys)
    best = f1[list(DETECTORS)]
    table = pd.DataFrame({
        "merged F1": f1["merged"].map("{:.3f}".format),
        "cleanlab F1": f1["cleanlab"].map("{:.3f}".format),
        "merged − cleanlab": (f1["merged"] - f1["cleanlab"]).map("{:+.3f}".format),
        "best single detector": [f"{d} {v:.3f}" for d, v in zip(best.idxmax(axis=1),
                                                                 best.max(axis=1))],
        "flagged / true count": [f"{f:g} / {t:g}" for f, t in zip(merged["flagged"],
                                                                   merged["true_count"])],
        "draws": merged["draws"],
        "cleanlab count": frame[frame["method"] == "cleanlab"].set_index(keys)["flagged"],
        "proxy accuracy": merged["proxy_accuracy"],
    }).reset_index()
    scored = table[table["suite"] != "labelerrors"]
    ahead = (f1["merged"] - f1["cleanlab"]).drop("labelerrors", level=0, errors="ignore")
    commits = ", ".join(sorted(frame["commit"].unique()))
    draws = ("" if frame["draws"].max() <= 1 else
             "Label sets with more than one draw of the noise (`draws`) show the mean over "
             "the draws. ")
    return (f"# Benchmark summary\n\nLatest run of each suite (commit {commits}); the "
            f"per-suite files hold every method and metric. {draws}\n\n"
            f"Merged F1 ≥ cleanlab's on {int((ahead >= 0).sum())} of {len(scored)} label sets "
            f"of cifar10n, cifar10h, music_genre_crowd and synthetic; largest shortfall "
            f"{-ahead.min():.3f}.\n\n{table.to_markdown(index=False)}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split(
        "\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    cache = sub.add_parser("cache", help="embed the CIFAR images once (EfficientNet-Lite0)")
    cache.add_argument("--full", action="store_true", help="all 50,000 CIFAR-10N images")
    cache.add_argument("--threads", type=int, default=2)
    run = sub.add_parser("run", help="run suites and write benchmarks/results/")
    run.add_argument("suites", nargs="*", metavar="SUITE",
                     help=f"any of {', '.join(SUITES)} [default: all]")
    run.add_argument("--full", action="store_true", help="all 50,000 CIFAR-10N images")
    run.add_argument("--threads", type=int, default=1,
                     help="torch threads per run (1 on a shared machine)")
    run.add_argument("--jobs", type=int, default=1,
                     help="label sets run at once, each in its own process")
    args = parser.parse_args(argv)
    unknown = [s for s in getattr(args, "suites", []) if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}")

    if args.action == "cache":
        import torch  # the runs set their own threads in their own processes

        torch.set_num_threads(args.threads)
        t0 = time.perf_counter()
        embeddings.build(args.full)
        print(f"cache built in {(time.perf_counter() - t0) / 60:.1f} min")
        return 0
    command = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
    commit = current_commit()
    with tempfile.TemporaryDirectory(prefix="cleanlab-ng-bench-") as tmp:
        for suite in args.suites or list(SUITES):
            t0 = time.perf_counter()
            rows = run_suite(suite, args.full, args.threads, args.jobs, Path(tmp) / suite,
                             command, commit)
            write_suite(suite, rows, time.perf_counter() - t0, args.full,
                        machine(args.threads, args.jobs))
    write_summary()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
