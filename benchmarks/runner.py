"""Run ``cleanlab-ng clean`` on one label set and score every method in its report.

Each run is the whole command in a process of its own (imports, loading, training, export),
so its wall time and peak memory are what a user would see.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmarks.suites import LabelSet

#: every method scored per label set, in table order
BASELINES = ("cleanlab", "predicted_neq_given", "flag_nothing")


def write_inputs(label_set: LabelSet, root: Path) -> tuple[Path, list[str]]:
    """The label set as files ``clean`` reads, and the extra command-line options."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    if label_set.texts is not None:
        pd.DataFrame({"text": label_set.texts, "label": label_set.given}).to_csv(
            root / "texts.csv", index=False)
        return root / "texts.csv", ["--text-column", "text"]
    np.save(root / "features.npy", np.asarray(label_set.features, dtype=np.float32))
    pd.DataFrame({"label": label_set.given}).to_csv(root / "labels.csv", index=False)
    return root, []


def run_clean(source: Path, out: Path, options: list[str], threads: int) -> dict:
    """The whole command in a child process: its summary, wall time and peak RSS."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-c", "from cli.main import cli; cli()", "clean", str(source),
               "--out", str(out), "--threads", str(threads), "--export", "none", "--quiet",
               *options]
    t0 = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 3):  # 3: --fail-above, not used here
        raise RuntimeError(f"clean failed ({child.returncode}): {stderr.strip()[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"summary": summary, "wall_s": wall, "peak_rss_gib": usage.ru_maxrss / 2**20}


def out_of_fold_proba(out: Path) -> np.ndarray:
    """The probabilities behind ``predicted_label`` and the count, as the record keeps them."""
    record = out / ".cleanlab-ng" / "record"
    for stage in ("recov", "fastrecov", "oof"):
        if (record / f"{stage}.npz").is_file():
            with np.load(record / f"{stage}.npz") as data:
                return data["proba"]
    raise FileNotFoundError(f"{record}: no out-of-fold stage")


def score(wrong: np.ndarray, flag: np.ndarray, ranking: np.ndarray | None) -> dict:
    """Precision, recall, F1 of a flag; AUROC and AUPRC of a ranking (of the flag if None)."""
    flag = np.asarray(flag, dtype=bool)
    hits = int((flag & wrong).sum())
    precision = hits / flag.sum() if flag.any() else 0.0
    recall = hits / wrong.sum() if wrong.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    ranked = flag.astype(float) if ranking is None else np.nan_to_num(ranking, nan=0.0)
    return {"precision": precision, "recall": recall, "f1": f1,
            "auroc": roc_auc_score(wrong, ranked), "auprc": average_precision_score(wrong, ranked),
            "flagged": int(flag.sum())}


def method_rows(label_set: LabelSet, report: pd.DataFrame, detectors: list[str]) -> list[dict]:
    """One row per method: each detector, the merged report and the baselines."""
    wrong = label_set.wrong
    given = label_set.given
    rows = {name: score(wrong, report[f"{name}_flag"].to_numpy(),
                        report[f"{name}_score"].to_numpy()) for name in detectors}
    rows["merged"] = score(wrong, report["is_noisy"].to_numpy(), report["noise_score"].to_numpy())
    rows["cleanlab"] = score(wrong, report["cl_flag"].to_numpy(), report["cl_score"].to_numpy())
    predicted = report["predicted_label"].to_numpy(dtype=float)
    rows["predicted_neq_given"] = score(wrong, predicted != given, None)
    rows["flag_nothing"] = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "auroc": 0.5,
                            "auprc": float(wrong.mean()), "flagged": 0}
    return [{"method": m, **{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}}
            for m, r in rows.items()]
