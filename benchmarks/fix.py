"""What ``cleaned/`` holds under ``--fix remove`` and ``--fix relabel``: samples kept and
labels still wrong, against the input.

Runs ``cleanlab-ng clean`` (defaults otherwise, ``--export copy``) on the demo image folder
(``datasets/digits_noisy``, pixels backbone as ``make demo``), on scikit-learn's digits and
breast cancer as CSV tables with 20 % symmetric noise, and on the crowd-labelled music-genre
table (``../shared/datasets/music_genre_crowd``, 29 % wrong), then reads the cleaned export
back and compares its labels with the truth.

Usage: ``python -m benchmarks.fix [--threads 1]``; writes ``benchmarks/results/fix.md`` and
``fix.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import pandas as pd

from benchmarks.foundation import current_commit
from benchmarks.runner import run_clean
from benchmarks.tables import label_sets, slug, write_table

RESULTS = Path(__file__).parent / "results"
DEMO = Path(__file__).parents[1] / "datasets" / "digits_noisy"
MODES = ("remove", "relabel")


def cleaned_label_errors(cleaned: Path, truth: str) -> tuple[int, int]:
    """datasets/score_demo.py's count, loaded from its file: a ``datasets`` package installed
    from PyPI (Hugging Face's) would shadow the repo's folder of that name."""
    spec = importlib.util.spec_from_file_location("score_demo", DEMO.parent / "score_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cleaned_label_errors(cleaned, truth)


# the tables of benchmarks.tables, under the names this benchmark reports them by
TABLES = {"digits 20%": "digits table 20%", "breast cancer 20%": "breast cancer table 20%",
          "music genre crowd (29 % wrong)": "music genre crowd table"}


def run_demo(work: Path, threads: int) -> list[dict]:
    truth = pd.read_csv(DEMO / "truth.csv")
    n_wrong = int((truth["given_label"] != truth["true_label"]).sum())
    rows = []
    for mode in MODES:
        out = work / f"demo-{mode}"
        run = run_clean(DEMO / "data", out, ["--backbone", "pixels", "--fix", mode,
                                             "--export", "copy"], threads)
        kept, wrong = cleaned_label_errors(out / "cleaned", str(DEMO / "truth.csv"))
        rows.append(_row("demo image folder (digits_noisy)", mode, len(truth), n_wrong,
                         kept, wrong, run))
    return rows


def run_table(work: Path, name: str, X, given, true, threads: int) -> list[dict]:
    table = work / slug(name) / "table.csv"
    write_table(table, X, given, ids=True)
    rows = []
    for mode in MODES:
        out = work / f"out-{slug(name)}-{mode}"
        run = run_clean(table, out, ["--id-column", "id", "--fix", mode, "--export", "copy"],
                        threads)
        cleaned = pd.read_csv(out / "cleaned" / "table.csv")
        wrong = int((cleaned["label"].to_numpy() != true[cleaned["id"].to_numpy()]).sum())
        rows.append(_row(name, mode, len(given), int((given != true).sum()), len(cleaned),
                         wrong, run))
    return rows


def _row(name, mode, n, n_wrong, kept, wrong, run) -> dict:
    return {"dataset": name, "fix": mode, "n": n, "wrong_in_input": n_wrong,
            "input_wrong_rate": round(n_wrong / n, 4), "kept": kept, "wrong_kept": wrong,
            "cleaned_wrong_rate": round(wrong / max(kept, 1), 4),
            "correct_kept": kept - wrong,
            "relabelled": run["summary"].get("relabelled", 0),
            "wall_s": round(run["wall_s"], 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/.cache/fix"))
    args = parser.parse_args(argv)
    rows = run_demo(args.work, args.threads)
    for name, X, given, true in label_sets():
        if name in TABLES:
            rows += run_table(args.work, TABLES[name], X, given, true, args.threads)
    command = "python -m benchmarks.fix" + (f" --threads {args.threads}"
                                            if args.threads != 1 else "")
    write_results(pd.DataFrame(rows), command, current_commit(), args.threads)


def write_results(frame: pd.DataFrame, command: str, commit: str, threads: int) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fix.json").write_text(json.dumps(
        {"commit": commit, "command": command, "rows": frame.to_dict("records")}, indent=1) + "\n")
    lines = [
        "# What cleaned/ holds: --fix remove against --fix relabel",
        "",
        f"Command: `{command}` · commit `{commit}` · {time.strftime('%Y-%m-%d')} · "
        f"threads {threads} · one draw of the noise",
        "",
        "`kept`: samples in `cleaned/`; `wrong_kept`: of those, labelled other than the "
        "truth; `correct_kept`: correctly labelled samples the export hands back.",
        "",
        frame.drop(columns="wall_s").to_markdown(index=False, floatfmt=".4g"),
        "",
    ]
    (RESULTS / "fix.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
