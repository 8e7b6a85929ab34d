"""Detector benchmark: confidence_drop variants, the OOD split, and the merge rules.

    python -m benchmarks.detectors [--threads 1] [--n-cifar 10000] [--skip-ood]

(a) AUROC for "wrong label", with a bootstrap 95 % interval, of the confidence_drop variants
    (d1, d1 + drift correction, d1 + gate, d2 as a flag, and the literal snapshot D1), on
    scikit-learn digits / breast cancer / wine with 20 % symmetric and pair noise and on
    CIFAR-10N images 0..n-1 with ``worse_label``.
(b) OOD: a CIFAR-10N image class folder (true labels) with two classes held out and
    scattered into the other eight, plus 10 % flipped in-distribution labels: cat/dog in
    full, then the easiest, median and hardest of the 45 pairs by a supervised ceiling.
(c) The merge rules, recomputed offline from each report's per-detector columns with
    ``cleanlab_ng.merge.merge_scores``, against each detector's own flag, on the synthetic
    sets and CIFAR-10N ``aggre_label`` and ``worse_label``.

Every run is ``cleanlab_ng.clean`` on a dataset written to a kept work folder
(``benchmarks/.cache/runs/``, which a rerun reuses). CIFAR-10N is
embedded once (EfficientNet-Lite0, 224 px) and cached under ``benchmarks/.cache/``.
Writes ``benchmarks/results/detectors.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from itertools import combinations
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier

import cleanlab_ng
from benchmarks.embeddings import IMAGE_SIZE, image_embeddings
from benchmarks.foundation import SHARED, current_commit
from benchmarks.suites import flip_labels
from cleanlab_ng.detectors import DetectorResult, confidence_drop, linear_separation
from cleanlab_ng.features import _standardise
from cleanlab_ng.merge import MERGE_RULES, merge_scores, out_of_distribution
from cleanlab_ng.neighbours import normalise_features
from cleanlab_ng.outliers import robust_outliers
from cleanlab_ng.train.record import TrainingRecord, load_stage

RESULTS = Path(__file__).parent / "results"
CACHE = Path(__file__).parent / ".cache"
CIFAR = SHARED / "cifar10n"
DETECTORS = "bmm,late_stopping,confidence_drop,linear_separation"
MERGED = DETECTORS.split(",")
NOISE_RATE = 0.2
DEFAULT_RULE = MERGE_RULES[0]
TRUE_COUNT = f"merge: {DEFAULT_RULE} at the true count"
CAT_DOG = (3, 5)
OTHER_PAIRS = ((1, 9), (0, 2), (0, 3))  # automobile/truck, airplane/bird, airplane/cat
PAIR_COLUMNS = ("held_out", "lsa_auroc_foreign", "foreign_ood_share",
                "flagged_flips_mislabeled_share", "foreign_flagged", "n_foreign", "flagged",
                "true_wrong", "ood_issued", "ood_issued_foreign_precision")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")
N_BOOT = 1000

# The reading of the numbers (one seed); rewrite it when they change.
NOTES = """## Reading (written by hand for the run at 8b3d903; one seed)

- (a) holds: the best confidence_drop variant reaches AUROC ≥ 0.60 with the interval above
  0.5 on every set (CIFAR-10N worse: d1 + gate 0.839 [0.830, 0.847]; default d1 0.826).
  The literal snapshot D1 stays at chance on CIFAR-10N (0.495 [0.484, 0.507]), as
  findings.md §3 said.
- (b) The flagged flips are typed mislabeled on every pair (95.0-98.2 %, target 80 %);
  the AUROC target holds on cat/dog (0.966 [0.958, 0.973]) and automobile/truck (0.977),
  not on airplane/bird (0.930) or airplane/cat (0.935); the typing target (80 % of the
  foreign images out_of_distribution) misses on all four: 55.2 %, 58.6 %, 29.4 %, 23.6 %.
  `linear_separation_score` is the small-loss split carried over each sample's 200 nearest
  neighbours times the share of them labelled otherwise (0.962-0.967 for 50-400 neighbours
  on cat/dog; the paper's hyperplane, re-read from the same record, 0.885).
  What the embedding allows: on cat/dog, models trained on the *true* foreign labels
  (logistic regression, kNN-50, an MLP; 5-fold cross-fitted) rank 351-734 in-distribution
  samples above their 80 %-recall threshold, ours 344 without those labels.
  `ceiling_over_pairs` repeats the best of them on all 45 held-out pairs: cat/dog, which
  the design took for a hard case, is the 6th easiest (351); the median pair costs 699,
  the hardest (airplane/cat) 1,408. On the easiest (automobile/truck, 51) our score ranks
  119 in-distribution samples above its own 80 %-recall threshold (by hand from the run's
  report), so there the loss is in the decision, not the score: linear_separation's flag
  (2 robust deviations) catches 76 % of the foreign images, and typing every flagged one
  out of distribution, by hand on the same reports, would reach 76.4 % (cat/dog 78.5 %)
  while adding 219 flags on CIFAR-10N aggre, which has no foreign images. A lower threshold
  flags aggre's confusable regions too: 340 extra at z = 2 (F1 -0.022, by hand at
  dc57da4; about 1,260 flagged for 912 wrong, outside the ±15 % count of issue 5); the
  shipped rule adds samples beyond the count only above z = 3 and a score of 0.25 (159 on
  top on cat/dog: 1,083 flagged for an estimate of 924; `separation_sweep` has the trade
  per z). Neither the neighbours' label entropy nor a two-component mixture on the score
  (both by hand at 6beea71) tells aggre's confusable regions from the foreign ones.
  Reaching the target needs an embedding in which the foreign images stand apart. The
  fine-tuned proxy is not one (`benchmarks/results/finetune.md`, on a GPU, four detectors,
  the same folder as image files): `--finetune` types 57.8 % of the foreign images out of
  distribution against 55.2 % for the frozen heads on that folder, and separating the
  fine-tuned network's own embedding (`finetune_embedding.md`, reverted) lowers the AUROC
  to 0.932 and types 26 % of the flagged flips out of distribution.
- (c) holds here: `jury` (the default) is ≥ every single detector on 7/8 sets (88 %), at
  most 0.012 below one (CIFAR-10N worse: confidence_drop 0.795, jury 0.782); with the true
  count in place of the estimate 7/8, at most 0.001 below. `referee`, the default before,
  4/8 (0.019), `overlap` 4/8 (0.017). `jury` is `referee` with the referee's own ranks
  among the detectors', weighing as much as an average detector: weighing alone can only
  choose among the detectors' rankings, the seat also lifts wrong labels they all rank low
  (digits pair 0.908 against referee's 0.870 and confidence_drop's 0.873). It was chosen
  on the suites' synthetic sets, not on these (benchmarks/results/merge_study.md). These
  runs merge the four detectors that read the proxy run; with all five, on the suites'
  label sets, `jury` is ≥ every single detector on 12 of the 24 synthetic sets (`referee`
  9, `overlap` 4), at most 0.060 below one (0.066, 0.136), and on 3 of the 7 real-noise
  sets (`referee` 3, `overlap` 5), at most 0.036 below one (20 Newsgroups, where
  late_stopping alone reaches 0.361 and the referee alone 0.154). So on the wider suite the
  80 % point is not met. The largest synthetic gaps are on pair noise at 40 %, where
  confidence_drop, which adapts without labels, reaches F1 0.79-0.82 and the detectors that
  read the proxy agree on its mistakes; weights that follow agreement among the detectors
  (overlap, agreement, the rank mean, the vote; and, by hand, a latent-class model and a
  stacker) do worse there.
"""


# ---------------------------------------------------------------- data

def synthetic_sets() -> dict:
    """name -> (features, true labels, noisy labels): three bundled sets x two noise kinds."""
    bundled = SHARED / "clean_pypi_bundled"
    out = {}
    for name, file in (("digits", "images.npy"), ("breast_cancer", "features.npy"),
                       ("wine", "features.npy")):
        X = np.load(bundled / f"sklearn_{name}" / file).astype(np.float32)
        X = X.reshape(len(X), -1)
        y = pd.read_csv(bundled / f"sklearn_{name}" / "labels.csv")["true_label"].to_numpy()
        for noise in ("symmetric", "pair"):
            out[f"{name} {noise} 20%"] = (X, y, flip_labels(y, noise, NOISE_RATE, 0))
    return out


def cifar_embeddings(n: int) -> np.ndarray:
    """EfficientNet-Lite0 features of CIFAR-10N images 0..n-1 at 224 px, the suite's cache
    (``python -m benchmarks cache``)."""
    return image_embeddings("cifar10n", n)


def cifar_labels(n: int) -> pd.DataFrame:
    return pd.read_csv(CIFAR / "labels.csv").iloc[:n]


# ---------------------------------------------------------------- runs

def run_table(work: Path, name: str, X: np.ndarray, noisy: np.ndarray, threads: int) -> dict:
    """clean() on an .npy + labels.csv dataset; the report, summary and the record."""
    src = work / name.replace(" ", "_").replace("%", "")
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    np.save(src / "features.npy", X)
    pd.DataFrame({"label": noisy}).to_csv(src / "labels.csv", index=False)
    t0 = time.perf_counter()
    res = cleanlab_ng.clean(src, work / f"out-{src.name}", detectors=DETECTORS, threads=threads,
                            export="none")
    wall = time.perf_counter() - t0
    record = load_record(work / f"out-{src.name}", noisy, int(noisy.max()) + 1)
    return {"report": res.report, "summary": res.summary, "record": record, "wall_s": wall}


def load_record(out: Path, labels: np.ndarray, n_classes: int) -> TrainingRecord:
    """The saved stages of a run, read back with the key they were saved under; of the
    proxy runs (several on a small dataset) the first, which the variants below read."""
    folder = out / ".cleanlab-ng" / "record"
    stages = {}
    for stage in ("dynamics", "adaptation"):
        key = json.loads((folder / f"{stage}.json").read_text())["key"]
        stages[stage] = load_stage(folder, stage, key)
    return TrainingRecord(labels=labels, n_classes=n_classes, dynamics=stages["dynamics"][0],
                          adaptation=stages["adaptation"])


# ---------------------------------------------------------------- metrics

def auroc_ci(truth: np.ndarray, score: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """AUROC with a percentile bootstrap 95 % interval over N_BOOT resamples of the samples."""
    truth = np.asarray(truth, bool)
    score = np.asarray(score, float)
    rng = np.random.default_rng(seed)
    n = len(truth)
    boots = []
    for _ in range(N_BOOT):
        idx = rng.integers(0, n, n)
        t = truth[idx]
        pos = t.sum()
        if pos == 0 or pos == n:
            continue
        r = stats.rankdata(score[idx])
        boots.append((r[t].sum() - pos * (pos + 1) / 2) / (pos * (n - pos)))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(roc_auc_score(truth, score)), float(lo), float(hi)


def flag_metrics(truth: np.ndarray, flag: np.ndarray) -> dict:
    return {"precision": float(precision_score(truth, flag, zero_division=0)),
            "recall": float(recall_score(truth, flag, zero_division=0)),
            "f1": float(f1_score(truth, flag, zero_division=0)), "flagged": int(flag.sum())}


def confidence_drop_rows(name: str, run: dict, truth: np.ndarray) -> list[dict]:
    """The five variants of (a) on one run."""
    record = run["record"]
    rows = []
    variants = {
        "d1 (default)": confidence_drop.detect(record),
        "d1 + drift_correction": confidence_drop.detect(record, drift_correction=True),
        "d1 + gate": confidence_drop.detect(record, gate=True),
        "d2 (flag)": confidence_drop.detect(record, rule="d2"),
    }
    for variant, res in variants.items():
        score = res.score
        if variant == "d1 + gate":
            # the gate withholds a verdict: uncertain samples count as unchanged (0.5)
            score = np.where(res.evidence["uncertain"], 0.5, res.score)
        if variant == "d2 (flag)":
            score = res.flag.astype(float)  # d2 has no score of its own
        auc, lo, hi = auroc_ci(truth, score)
        rows.append({"set": name, "variant": variant, "auroc": auc, "ci_low": lo, "ci_high": hi,
                     **flag_metrics(truth, res.flag)})
    snap = confidence_drop.snapshot_drop(record)
    auc, lo, hi = auroc_ci(truth, snap)
    rows.append({"set": name, "variant": "snapshot D1 (literal)", "auroc": auc, "ci_low": lo,
                 "ci_high": hi, **flag_metrics(truth, snap > 0)})
    return rows


def merge_rows(name: str, report: pd.DataFrame, truth: np.ndarray, n_flag: int) -> list[dict]:
    """Each detector's own flag and every merge rule, recomputed from the report columns;
    ``n_flag`` is the run's estimated count. Each rule's flags get the report's
    out-of-distribution samples on top, as the report's own ``is_noisy`` does."""
    results = [DetectorResult(d, score=report[f"{d}_score"].to_numpy(float),
                              flag=report[f"{d}_flag"].to_numpy(bool)) for d in MERGED]
    ood = (report["issue"] == "out_of_distribution").to_numpy()
    referee = report["neighbour_disagreement"].to_numpy(float)
    rows = []
    for r in results:
        rows.append({"set": name, "method": r.name, "auroc": float(roc_auc_score(truth, r.score)),
                     **flag_metrics(truth, r.flag)})
    for rule in MERGE_RULES:
        score, flag = merge_scores(results, n_flag=n_flag, rule=rule, referee=referee)
        rows.append({"set": name, "method": f"merge: {rule}", "auroc": float(
            roc_auc_score(truth, score)), **flag_metrics(truth, flag | ood)})
    # the default rule as if the estimated count were exact: what the count costs
    _, flag = merge_scores(results, n_flag=int(truth.sum()), rule=DEFAULT_RULE,
                           referee=referee)
    rows.append({"set": name, "method": TRUE_COUNT, "auroc": np.nan,
                 **flag_metrics(truth, flag | ood)})
    return rows


# ---------------------------------------------------------------- OOD

class OodFolder(NamedTuple):
    order: np.ndarray  # CIFAR indices of the folder's files: the kept images, then foreign
    given: np.ndarray  # the label each CIFAR image is filed under
    foreign: np.ndarray  # CIFAR indices of the images from the held-out classes
    flips: np.ndarray  # CIFAR indices of the kept images filed under another kept class


def ood_folder(labels: np.ndarray, held_out: tuple[int, int], seed: int = 0) -> OodFolder:
    """The (b) folder's make-up from CIFAR's true labels: the images of the eight kept
    classes, ~5 % of the folder drawn from the ``held_out`` two and filed at random among
    the eight, and 10 % of the kept images' labels flipped to another kept class."""
    rng = np.random.default_rng(seed)
    ind = np.flatnonzero(~np.isin(labels, held_out))
    foreign_all = np.flatnonzero(np.isin(labels, held_out))
    n_foreign = int(round(0.05 * len(ind) / 0.95))  # ~5 % of the files in the folder
    foreign = rng.choice(foreign_all, n_foreign, replace=False)
    kept = [c for c in range(10) if c not in held_out]
    given = labels.copy()
    flips = rng.choice(ind, int(round(0.10 * len(ind))), replace=False)
    for i in flips:
        given[i] = rng.choice([c for c in kept if c != labels[i]])
    given[foreign] = rng.choice(kept, len(foreign))
    return OodFolder(np.concatenate([ind, foreign]), given, foreign, flips)


def ood_experiment(work: Path, n: int, threads: int, held_out: tuple[int, int] = (3, 5),
                   seed: int = 0, detail: bool = True) -> dict:
    """Two held-out CIFAR classes scattered into the other eight, 10 % flips among the rest;
    with ``detail`` also the supervised ceiling and the separation sweep."""
    labels = cifar_labels(n)["true_label"].to_numpy()
    order, given, foreign, flips = ood_folder(labels, held_out, seed)
    # the folder's images as the features `clean` computes for an image class folder (the
    # same PNGs, EfficientNet-Lite0 at 224 px), taken from the suite's cache: embedding the
    # 8,471 images again would cost minutes and give the same matrix
    root = work / f"ood-{held_out[0]}-{held_out[1]}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    np.save(root / "features.npy", cifar_embeddings(n)[order])
    pd.DataFrame({"label": [f"c{g}" for g in given[order]]}).to_csv(root / "labels.csv",
                                                                     index=False)
    truth = pd.DataFrame({"sample_id": [str(i) for i in range(len(order))],
                          "index": order, "foreign": np.isin(order, foreign),
                          "flipped": np.isin(order, flips)})
    t0 = time.perf_counter()
    out = work / f"out-{root.name}"
    res = cleanlab_ng.clean(root, out, threads=threads, export="none")
    wall = time.perf_counter() - t0
    rep = res.report.merge(truth, on="sample_id", validate="one_to_one")
    foreign_mask = rep["foreign"].to_numpy()
    flipped = rep["flipped"].to_numpy()
    auc, lo, hi = auroc_ci(foreign_mask, rep["linear_separation_score"].to_numpy())
    extra = {}
    if detail:
        X = np.load(root / "features.npy")
        extra["supervised_ceiling"] = supervised_ceiling(
            X, foreign_mask, rep["linear_separation_score"].to_numpy())
        extra["separation_sweep"] = separation_sweep(out, X, rep["given_label"].to_numpy(),
                                                     foreign_mask, flipped)
    return {"n_files": len(rep), "n_flipped": int(flipped.sum()),
            "held_out_classes": list(held_out), "held_out": pair_name(held_out),
            "wall_s": round(wall, 1), "estimated_noise_rate": res.summary["estimated_noise_rate"],
            "lsa_auroc_foreign": auc, "lsa_auroc_ci": [lo, hi], **extra,
            **ood_metrics(rep, foreign_mask, flipped),
            "detectors": res.summary.get("detectors", None)}


def ood_metrics(rep: pd.DataFrame, foreign: np.ndarray, flipped: np.ndarray) -> dict:
    """The (b) figures of one report: how the foreign images and the flips were flagged and
    typed, and every detector's flag count."""
    noisy = rep["is_noisy"].to_numpy()
    flagged_flips = flipped & noisy
    ood = (rep["issue"] == "out_of_distribution").to_numpy()
    return {
        "n_foreign": int(foreign.sum()), "true_wrong": int((foreign | flipped).sum()),
        "flagged": int(noisy.sum()),
        "lsa_flag_foreign_recall": float(rep["linear_separation_flag"][foreign].mean()),
        "foreign_flagged": int((foreign & noisy).sum()),
        "flagged_foreign_ood_share": float(ood[foreign & noisy].mean())
        if (foreign & noisy).any() else float("nan"),
        "flagged_flips": int(flagged_flips.sum()),
        **typing_metrics(ood, foreign, flagged_flips),
        "merged_auroc_foreign": float(roc_auc_score(foreign, rep["noise_score"])),
        "flagged_per_detector": {d: int(rep[f"{d}_flag"].sum()) for d in
                                 [c[:-5] for c in rep.columns if c.endswith("_flag")]},
    }


def typing_metrics(ood: np.ndarray, foreign: np.ndarray, flagged_flips: np.ndarray) -> dict:
    """How the samples typed out of distribution (``ood``) split: the share of the foreign
    images among them and of them among the foreign images; the share of the flagged flips
    left mislabeled (a flagged sample is either)."""
    return {
        "foreign_ood_share": float(ood[foreign].mean()),
        "flagged_flips_mislabeled_share": float((~ood[flagged_flips]).mean())
        if flagged_flips.any() else float("nan"),
        "ood_issued": int(ood.sum()),
        "ood_issued_foreign_precision": float(foreign[ood].mean()) if ood.any()
        else float("nan"),
    }


def separation_sweep(out: Path, X: np.ndarray, given: np.ndarray, foreign: np.ndarray,
                     flipped: np.ndarray) -> dict:
    """linear_separation re-read from the run's record: AUROC foreign vs rest of the
    paper's hyperplane and of the neighbourhood rule per number of neighbours, and what the
    out-of-distribution rule types at each outlier threshold (the choices of N_NEIGHBOURS
    and OUTLIER_Z)."""
    names, labels = np.unique(given, return_inverse=True)
    # the record keeps no features: the run's are the .npy standardised as encode() does
    record = replace(load_record(out, labels, len(names)), features=_standardise(X))
    key = json.loads((out / ".cleanlab-ng" / "record" / "recov.json").read_text())["key"]
    proba = load_stage(out / ".cleanlab-ng" / "record", "recov", key).proba
    sweep = {"hyperplane_auroc": roc_auc_score(
        foreign, linear_separation.detect(record, separation="hyperplane").score)}
    scores = {k: linear_separation.detect(record, n_neighbours=k).score
              for k in (50, 100, 200, 400)}
    for k, score in scores.items():
        sweep[f"neighbours_{k}_auroc"] = roc_auc_score(foreign, score)
    score = scores[linear_separation.N_NEIGHBOURS]
    for z in (1.5, 2.0, 2.5, 3.0):
        ood = out_of_distribution(robust_outliers(score, z), labels, proba)
        sweep[f"z_{z}"] = {"typed_ood": int(ood.sum()), "foreign": int((ood & foreign).sum()),
                           "flipped": int((ood & flipped).sum())}
    return sweep


def supervised_ceiling(X: np.ndarray, foreign: np.ndarray, ours: np.ndarray) -> dict:
    """What the embedding allows: models trained on the *true* foreign / in-distribution
    labels, 5-fold cross-fitted on the features LSA reads (L2-normalised, z-scored), beside
    our score, which sees no such label. Per model its AUROC and how many in-distribution
    samples score above the threshold that catches 80 % of the foreign images (the typing
    target): no detector learnt without those labels should be expected to beat them."""
    Z = normalise_features(X)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    models = {f"logistic C={C}": LogisticRegression(C=C, max_iter=1000)
              for C in (0.001, 0.01, 0.1, 1.0)}
    models["kNN-50 cosine"] = KNeighborsClassifier(50, metric="cosine", weights="distance")
    models["MLP 256"] = MLPClassifier((256,), alpha=1e-2, early_stopping=True, random_state=0)
    scores = {name: cross_val_predict(model, Z, foreign, cv=folds, method="predict_proba")[:, 1]
              for name, model in models.items()}
    scores["linear_separation_score (no truth)"] = ours
    return {name: cost_at_80pct(foreign, score) for name, score in scores.items()}


def cost_at_80pct(foreign: np.ndarray, score: np.ndarray) -> dict:
    """A score's AUROC for the foreign images and how many in-distribution samples score at
    or above the threshold that catches 80 % of them."""
    threshold = np.quantile(score[foreign], 0.2)
    return {"auroc": round(float(roc_auc_score(foreign, score)), 4),
            "in_distribution_at_80pct": int((score[~foreign] >= threshold).sum())}


def ceiling_over_pairs(n: int) -> list[dict]:
    """The (b) folder for every one of the 45 held-out pairs, scored by the best supervised
    ceiling model on the (b) pair (logistic regression, C = 0.001, 5-fold cross-fitted on
    the *true* foreign labels): its AUROC and how many in-distribution samples score above
    its 80 %-recall threshold. Whether the pair (b) runs is a hard or an easy one for the
    typing target, on this embedding, before any detector is involved."""
    labels = cifar_labels(n)["true_label"].to_numpy()
    Z = cifar_embeddings(n)
    rows = []
    for held_out in combinations(range(10), 2):
        folder = ood_folder(labels, held_out)
        foreign = np.isin(folder.order, folder.foreign)
        rows.append({"held_out": pair_name(held_out), **linear_ceiling(Z[folder.order], foreign)})
    return rows


def linear_ceiling(Z: np.ndarray, foreign: np.ndarray) -> dict:
    """:func:`cost_at_80pct` of the best supervised ceiling model on the (b) pair: logistic
    regression (C = 0.001) on the *true* foreign labels, 5-fold cross-fitted."""
    score = cross_val_predict(
        LogisticRegression(C=0.001, max_iter=1000), normalise_features(Z), foreign,
        cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")[:, 1]
    return cost_at_80pct(foreign, score)


def pair_name(held_out: tuple[int, int]) -> str:
    return "/".join(CIFAR_CLASSES[c] for c in held_out)


# ---------------------------------------------------------------- main

def parse_cifar_args(module: str, doc: str, argv, *flags: str) -> tuple[argparse.Namespace, str]:
    """The options of a benchmark on the CIFAR-10N images (``--threads``, ``--n-cifar`` and
    the boolean ``flags``), with torch's threads pinned; and the command line as run."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-cifar", type=int, default=10000)
    for flag in flags:
        parser.add_argument(flag, action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    return args, f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:])


def main(argv=None) -> None:
    args, command = parse_cifar_args("benchmarks.detectors", __doc__, argv, "--skip-ood")
    commit = current_commit()
    # a kept work folder: a rerun updates each OUT in place and reuses its features and
    # training record (keyed by the input's content hash, the options and the training code)
    work = CACHE / "runs"
    work.mkdir(parents=True, exist_ok=True)
    drop, merges, runs = [], [], {}
    sets = dict(synthetic_sets())
    Z = cifar_embeddings(args.n_cifar)
    lab = cifar_labels(args.n_cifar)
    for col in ("worse_label", "aggre_label"):
        sets[f"CIFAR-10N {col.split('_')[0]} 0-{args.n_cifar - 1}"] = (
            Z, lab["true_label"].to_numpy(), lab[col].to_numpy())
    for name, (X, y, noisy) in sets.items():
        run = run_table(work, name, X, noisy, args.threads)
        truth = noisy != y
        runs[name] = {"n": len(y), "true_wrong": int(truth.sum()),
                      "flagged": int(run["report"]["is_noisy"].sum()),
                      "typed_ood": int((run["report"]["issue"] == "out_of_distribution").sum()),
                      "wall_s": round(run["wall_s"], 1),
                      "oof_accuracy": run["summary"]["proxy"]["oof_accuracy"]}
        if "aggre" not in name:
            drop += confidence_drop_rows(name, run, truth)
        merges += merge_rows(name, run["report"], truth, run["summary"]["noise_count_estimate"])
        reports = CACHE / "reports"
        reports.mkdir(parents=True, exist_ok=True)  # for offline study of merge rules
        run["report"].assign(truth=truth).to_parquet(reports / f"{name.replace(' ', '_')}.parquet")
        print(f"{name}: {runs[name]}", flush=True)
    ood = None
    if not args.skip_ood:
        # cat and dog: at the design we took them for a hard case, as they resemble the other
        # animals; `ceiling_over_pairs` measured otherwise (6th easiest of the 45 for a
        # linear probe on the true foreign labels), so the run is repeated on the easiest
        # pair, the median one and the hardest by that ceiling
        ood = ood_experiment(work, args.n_cifar, args.threads, CAT_DOG)
        ood["ceiling_over_pairs"] = ceiling_over_pairs(args.n_cifar)
        ood["other_pairs"] = [
            {k: v for k, v in ood_experiment(work, args.n_cifar, args.threads, pair,
                                             detail=False).items()
             if k not in ("detectors", "flagged_per_detector")} for pair in OTHER_PAIRS]
    write_results(drop, merges, runs, ood, command, commit, args.threads)


def write_results(drop, merges, runs, ood, command, commit, threads: int) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "detectors.json").write_text(json.dumps(
        {"commit": commit, "command": command, "runs": runs, "confidence_drop": drop,
         "merge": merges, "ood": ood}, indent=1, default=float) + "\n")
    d = pd.DataFrame(drop)
    m = pd.DataFrame(merges)
    lines = [
        "# Detector benchmark: confidence_drop variants, OOD split, merge rules",
        "",
        f"Command: `{command}` · commit `{commit}` · {time.strftime('%Y-%m-%d')} · one seed · "
        f"detectors `{DETECTORS}` · CIFAR-10N embedded with EfficientNet-Lite0 at "
        f"{IMAGE_SIZE} px · threads {threads}",
        "",
        "## Runs",
        "",
        pd.DataFrame(runs).T.to_markdown(),
        "",
        "## (a) confidence_drop: AUROC for \"wrong label\" [bootstrap 95 % interval, "
        f"{N_BOOT} resamples]",
        "",
        "d1 + gate: uncertain samples (adapted entropy > 0.4 ln C) scored 0.5 (unchanged). "
        "d2 is a flag only: its AUROC is that of the 0/1 flag.",
        "",
    ]
    d["cell"] = d.apply(lambda r: f"{r.auroc:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]", axis=1)
    lines += [d.pivot(index="variant", columns="set", values="cell")
              .reindex(d["variant"].unique()).T.to_markdown(), "",
              "Flags (precision / recall):", ""]
    d["pr"] = d.apply(lambda r: f"{r.precision:.2f} / {r.recall:.2f}", axis=1)
    lines += [d.pivot(index="variant", columns="set", values="pr")
              .reindex(d["variant"].unique()).T.to_markdown(), ""]
    best = d[d["variant"] != "snapshot D1 (literal)"].sort_values("auroc").groupby("set").tail(1)
    lines += ["Best variant per set (acceptance: AUROC ≥ 0.60 and interval above 0.5):", ""]
    for r in best.itertuples():
        ok = r.auroc >= 0.60 and r.ci_low > 0.5
        lines.append(f"- {r.set}: {r.variant} {r.auroc:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
                     f" — {'holds' if ok else 'MISSED'}")
    lines += ["", "## (c) Merge rules vs single detectors: F1 (AUROC)", ""]
    m["cell"] = m.apply(lambda r: f"{r.f1:.3f}" + ("" if np.isnan(r.auroc)
                                                    else f" ({r.auroc:.3f})"), axis=1)
    lines += [m.pivot(index="set", columns="method", values="cell")
              .reindex(columns=m["method"].unique()).to_markdown(), ""]
    f1 = m.pivot(index="set", columns="method", values="f1")
    singles = f1[MERGED]
    lines += ["Acceptance per rule: sets where its F1 ≥ every single detector's, and its "
              "largest shortfall below any single detector (the last line: the default rule "
              "with the true count in place of the estimate, for reference):", ""]
    for rule in [*MERGE_RULES, TRUE_COUNT.removeprefix("merge: ")]:
        gap = (f1[f"merge: {rule}"].to_numpy()[:, None] - singles.to_numpy()).min(axis=1)
        lines.append(f"- `{rule}`: ≥ all singles on {int((gap >= -1e-12).sum())}/{len(gap)} sets "
                     f"({(gap >= -1e-12).mean():.0%}); worst shortfall {max(0, -gap.min()):.3f}")
    if ood is not None:
        pairs = pd.DataFrame(ood["ceiling_over_pairs"]).sort_values("in_distribution_at_80pct")
        pairs.insert(0, "rank", np.arange(1, len(pairs) + 1))
        lines += ["", "## (b) OOD: two CIFAR-10N classes scattered into the other eight "
                  "(224 px features)", "",
                  "```", json.dumps({k: v for k, v in ood.items() if k != "ceiling_over_pairs"},
                                    indent=1, default=float), "```", "",
                  "`ceiling_over_pairs`: the same folder for every held-out pair, scored by "
                  "logistic regression (C = 0.001) on the *true* foreign labels, 5-fold "
                  "cross-fitted; easiest first (fewest in-distribution samples above the "
                  "threshold that catches 80 % of the foreign images):", "",
                  pairs.to_markdown(index=False), "",
                  "The same run on other pairs: the easiest, the median and the hardest by "
                  "that ceiling (acceptance: LSA AUROC ≥ 0.95, foreign images typed "
                  "out_of_distribution ≥ 80 %, flagged flips typed mislabeled ≥ 80 %):", "",
                  pd.DataFrame([ood, *ood["other_pairs"]])[list(PAIR_COLUMNS)]
                  .round(3).to_markdown(index=False)]
    lines += ["", NOTES]
    (RESULTS / "detectors.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
