"""Tables: the standardised columns against RBF kernel features, and the automatic choice.

Every proxy head is linear in its features. On a table whose classes no hyperplane separates
the heads misfit clean samples and the detectors flag them; ``--table-features auto`` takes
Nystroem RBF features when their out-of-fold heads predict the given labels better. This runs
``cleanlab-ng clean TABLE.csv`` (the table layout, as a user's CSV) with each of
``--table-features linear``, ``kernel`` and ``auto`` on:

* two moons, two circles (scikit-learn generators) and iris versicolor against the rest:
  classes no hyperplane separates;
* wine, breast cancer, digits (scikit-learn's bundled sets): nearly linear;
* each at 0 % (every flag is a false alarm) and 20 % symmetric noise;
* the crowd-labelled music-genre table (``../shared/datasets/music_genre_crowd``, 29 % wrong).

Usage: ``python -m benchmarks.tables [--threads 1]``; writes ``benchmarks/results/tables.md``
and ``tables.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_iris,
    load_wine,
    make_circles,
    make_moons,
)

from benchmarks.foundation import current_commit
from benchmarks.runner import run_clean, score
from benchmarks.suites import flip_labels, music_genre_crowd

RESULTS = Path(__file__).parent / "results"
MODES = ("linear", "kernel", "auto")
RATES = (0.0, 0.2)


def base_sets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    iris_X, iris_y = load_iris(return_X_y=True)
    return {
        "moons": make_moons(1500, noise=0.15, random_state=0),
        "circles": make_circles(1500, noise=0.08, factor=0.5, random_state=0),
        "iris versicolor vs rest": (iris_X, (iris_y == 1).astype(int)),
        "wine": load_wine(return_X_y=True),
        "breast cancer": load_breast_cancer(return_X_y=True),
        "digits": load_digits(return_X_y=True),
    }


def label_sets() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, features, given labels, true labels) of every table."""
    sets = []
    for name, (X, y) in base_sets().items():
        for rate in RATES:
            given = flip_labels(y, "symmetric", rate, seed=[0, 7]) if rate else y
            sets.append((f"{name} {rate:.0%}", X, given, y))
    music = next(music_genre_crowd())
    sets.append(("music genre crowd (29 % wrong)", music.features, music.given, music.true))
    return sets


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def write_table(path: Path, X, given, *, ids: bool = False) -> None:
    """``X`` and the labels as a user's CSV: columns x0, x1, ..., label (and a row-number
    ``id`` column first with ``ids``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(np.asarray(X, dtype=np.float64),
                         columns=[f"x{i}" for i in range(X.shape[1])])
    if ids:
        frame.insert(0, "id", np.arange(len(frame)))
    frame["label"] = given
    frame.to_csv(path, index=False)


def run_table(work: Path, name: str, X, given, true, threads: int) -> list[dict]:
    table = work / slug(name) / "table.csv"
    write_table(table, X, given)
    wrong = given != true
    rows = []
    for mode in MODES:
        out = work / f"out-{slug(name)}-{mode}"
        run = run_clean(table, out, ["--table-features", mode], threads)
        report = pd.read_parquet(out / "report.parquet")
        with warnings.catch_warnings():  # a clean table has no wrong label to rank
            warnings.simplefilter("ignore")
            merged = score(wrong, report["is_noisy"].to_numpy(), report["noise_score"].to_numpy())
            cl = score(wrong, report["cl_flag"].to_numpy(), report["cl_score"].to_numpy())
        proxy = run["summary"]["proxy"]
        rows.append({
            "table": name, "n": len(given), "columns": X.shape[1], "wrong": int(wrong.sum()),
            "mode": mode, "features": proxy["features"], "merged_f1": round(merged["f1"], 4),
            "merged_flagged": merged["flagged"], "merged_auroc": round(merged["auroc"], 4),
            "cleanlab_f1": round(cl["f1"], 4), "cleanlab_flagged": cl["flagged"],
            "oof_accuracy": proxy["oof_accuracy"], "wall_s": round(run["wall_s"], 1),
            "reason": proxy["features_reason"],
        })
        print(f"{name:32s} {mode:7s} F1 {merged['f1']:.3f} flagged {merged['flagged']:5d} "
              f"({proxy['features']}, {run['wall_s']:.1f} s)", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/.cache/tables"))
    args = parser.parse_args(argv)
    command = "python -m benchmarks.tables" + (f" --threads {args.threads}"
                                               if args.threads != 1 else "")
    rows = []
    for name, X, given, true in label_sets():
        rows += run_table(args.work, name, X, given, true, args.threads)
    write_results(pd.DataFrame(rows), command, current_commit(), args.threads)


def write_results(frame: pd.DataFrame, command: str, commit: str, threads: int) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tables.json").write_text(json.dumps(
        {"commit": commit, "command": command, "rows": frame.to_dict("records")}, indent=1) + "\n")
    f1 = frame.pivot(index="table", columns="mode", values="merged_f1")
    flagged = frame.pivot(index="table", columns="mode", values="merged_flagged")
    order = list(dict.fromkeys(frame["table"]))
    auto = frame[frame["mode"] == "auto"].set_index("table")
    wrong = frame.drop_duplicates("table").set_index("table")["wrong"]
    cells = pd.DataFrame({
        "wrong": wrong,
        **{f"F1 {m}": f1[m] for m in MODES},
        **{f"flagged {m}": flagged[m] for m in MODES},
        "auto took": auto["features"],
        "cleanlab F1 (auto's run)": auto["cleanlab_f1"],
    }).loc[order]
    noisy = cells[cells["wrong"] > 0]
    best = noisy[["F1 linear", "F1 kernel"]].max(axis=1)
    shortfall = (best - noisy["F1 auto"]).max()
    clean_rows = cells[cells["wrong"] == 0]
    lines = [
        "# Tables: the columns, RBF kernel features, and the automatic choice",
        "",
        f"Command: `{command}` · commit `{commit}` · {time.strftime('%Y-%m-%d')} · "
        f"threads {threads} · one draw of the noise per table",
        "",
        "`cleanlab-ng clean TABLE.csv --table-features MODE` on each table (the table layout, "
        "as a user's CSV). F1 of the merged flag against the true wrong labels; on the 0 % "
        "tables every flag is a false alarm, so the flagged counts are the figure there.",
        "",
        cells.to_markdown(floatfmt=".3f"),
        "",
        f"- `auto` is at most {shortfall:.3f} below the better of `linear` and `kernel` on the "
        f"{len(noisy)} noisy tables, and flags {int(clean_rows['flagged auto'].sum())} samples "
        f"on the {len(clean_rows)} clean ones (`linear` "
        f"{int(clean_rows['flagged linear'].sum())}, `kernel` "
        f"{int(clean_rows['flagged kernel'].sum())}).",
        "",
        "Why `auto` chose (held-out accuracy of linear heads on the kernel features minus on "
        "the columns, on the given labels):",
        "",
        *[f"- {t}: {r.split('; ')[-1]}" for t, r in auto["reason"].loc[order].items()],
        "",
    ]
    (RESULTS / "tables.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
