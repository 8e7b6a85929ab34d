"""What ``cleaned/`` holds under ``--fix remove`` and ``--fix relabel``: samples kept and
labels still wrong, against the input, and how often the suggested labels are right.

Runs ``cleanlab-ng clean`` (defaults otherwise, ``--export copy``) on the demo image folder
(``datasets/digits_noisy``, pixels backbone as ``make demo``), on scikit-learn's digits and
breast cancer as CSV tables with 20 % symmetric noise, on the crowd-labelled music-genre
table (``../shared/datasets/music_genre_crowd``, 29 % wrong), and on CIFAR-10N images
0-9999 with ``aggre_label`` and ``worse_label`` (the suite's cached EfficientNet-Lite0
embedding as an ``.npy`` matrix with a labels file), then reads the cleaned export back and
compares its labels with the truth. For the relabel runs it also reads the report: of the
``mislabeled`` samples, how many suggestions their neighbours back (``suggestion_backed``)
and how often the backed and the unbacked suggestions are the true label.

Usage: ``python -m benchmarks.fix [--threads 1]``; writes ``benchmarks/results/fix.md`` and
``fix.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.embeddings import image_embeddings
from benchmarks.foundation import SHARED, current_commit
from benchmarks.runner import run_clean
from benchmarks.tables import label_sets, slug, write_table
from cleanlab_ng.diagnostics import proxy_strength

RESULTS = Path(__file__).parent / "results"
DEMO = Path(__file__).parents[1] / "datasets" / "digits_noisy"
MODES = ("remove", "relabel")
CIFAR_LABELS = ("aggre_label", "worse_label")
N_CIFAR = 10_000


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
        true = truth.set_index("sample_id")["true_label"]
        rows.append(_row("demo image folder (digits_noisy)", mode, len(truth), n_wrong,
                         kept, wrong, run, _suggestions(out, true)))
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
                         wrong, run, _suggestions(out, pd.Series(true))))
    return rows


def run_cifar(work: Path, column: str, threads: int) -> list[dict]:
    """CIFAR-10N images 0..N_CIFAR-1 as the embedding matrix ``clean`` takes, with an id
    column in the labels file that ``cleaned/labels.csv`` keeps."""
    labels = pd.read_csv(SHARED / "cifar10n" / "labels.csv").iloc[:N_CIFAR]
    given, true = labels[column].to_numpy(), labels["true_label"].to_numpy()
    root = work / f"cifar10n_{column}"
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "features.npy", image_embeddings("cifar10n", N_CIFAR))
    pd.DataFrame({"id": np.arange(N_CIFAR), "label": given}).to_csv(root / "labels.csv",
                                                                     index=False)
    rows = []
    for mode in MODES:
        out = work / f"out-cifar10n_{column}-{mode}"
        run = run_clean(root / "features.npy", out, ["--fix", mode, "--export", "copy"],
                        threads)
        cleaned = pd.read_csv(out / "cleaned" / "labels.csv")
        wrong = int((cleaned["label"].to_numpy() != true[cleaned["id"].to_numpy()]).sum())
        rows.append(_row(f"CIFAR-10N {column} 0-{N_CIFAR - 1}", mode, N_CIFAR,
                         int((given != true).sum()), len(cleaned), wrong, run,
                         _suggestions(out, pd.Series(true))))
    return rows


def _suggestions(out: Path, true: pd.Series) -> dict:
    """Of the report's ``mislabeled`` rows: how many suggestions the neighbours back, and
    the share of the backed and of the unbacked suggestions that are the true label (``true``
    indexed by sample id)."""
    report = pd.read_parquet(out / "report.parquet")
    mislabeled = report[report["issue"] == "mislabeled"]
    ids = mislabeled["sample_id"]
    ids = ids.astype(int) if true.index.dtype.kind in "iu" else ids
    right = mislabeled["suggested_label"].astype(str).to_numpy() == \
        true.loc[ids].astype(str).to_numpy()
    backed = mislabeled["suggestion_backed"].to_numpy(bool)
    return {"mislabeled": len(mislabeled), "backed": int(backed.sum()),
            "backed_right": _share(right[backed]), "unbacked_right": _share(right[~backed])}


def _share(hits: np.ndarray) -> float | None:
    return round(float(hits.mean()), 4) if len(hits) else None


def _row(name, mode, n, n_wrong, kept, wrong, run, suggestions) -> dict:
    row = {"dataset": name, "fix": mode, "n": n, "wrong_in_input": n_wrong,
           "input_wrong_rate": round(n_wrong / n, 4), "kept": kept, "wrong_kept": wrong,
           "cleaned_wrong_rate": round(wrong / max(kept, 1), 4),
           "correct_kept": kept - wrong,
           "relabelled": run["summary"].get("relabelled", 0),
           "oof_accuracy": run["summary"]["proxy"]["oof_accuracy"],
           "estimated_noise_rate": run["summary"]["estimated_noise_rate"],
           # how strong the proxy is (the summary's proxy.strength, to three places)
           "proxy_strength": round(proxy_strength(run["summary"]["proxy"]["oof_accuracy"],
                                                  run["summary"]["estimated_noise_rate"]), 3),
           "wall_s": round(run["wall_s"], 1)}
    return {**row, **suggestions} if mode == "relabel" else row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/.cache/fix"))
    args = parser.parse_args(argv)
    rows = run_demo(args.work, args.threads)
    for name, X, given, true in label_sets():
        if name in TABLES:
            rows += run_table(args.work, TABLES[name], X, given, true, args.threads)
    for column in CIFAR_LABELS:
        rows += run_cifar(args.work, column, args.threads)
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
        "truth; `correct_kept`: correctly labelled samples the export hands back. Relabel "
        "runs: `mislabeled` samples in the report, `backed` of them with a suggestion their "
        "10 nearest neighbours back (no other label more common among them; only those are "
        "relabelled, the rest left out), and the share of the backed and of the unbacked "
        "suggestions that are the true label. `proxy_strength`: the summary's `oof_accuracy` "
        "over 1 - `estimated_noise_rate`, roughly the proxy's accuracy on the samples whose "
        "label is right.",
        "",
        frame.drop(columns="wall_s").to_markdown(index=False, floatfmt=".4g"),
        "",
    ]
    (RESULTS / "fix.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
