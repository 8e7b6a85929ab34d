"""``--finetune`` against heads on frozen features, on the OOD image folder (a GPU check).

    python -m benchmarks.finetune [--epochs 20] [--image-size 224] [--results DIR]

The (b) folder of ``benchmarks/detectors.py`` (CIFAR-10N images 0..n-1, cat and dog held out
and scattered into the other eight classes, 10 % of the rest flipped), written as a real
image class folder from the cached PNGs (``python -m benchmarks cache``), then ``clean`` on
it twice with the four detectors that read the proxy run: heads on the frozen
EfficientNet-Lite0 features (the default) and ``--finetune`` (the backbone trained end to
end). ``recov`` is left out of both: with ``--finetune`` it is fastReCoV, ten runs of five
fine-tuned fold models, more than a GPU check's budget. Per run: seconds per stage, the (b)
figures, and the merge rules against each detector on the folder (truth: foreign or
flipped, as in (c)); for the fine-tuned run also the typing re-read with the fine-tuned
network's own probabilities (:func:`read_epoch_typing`).

Meant for a GPU (``device="auto"``); on a CPU the fine-tuning takes hours. Writes
``finetune.md`` and ``.json`` to ``--results`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import cleanlab_ng
from benchmarks.detectors import (
    CACHE,
    CAT_DOG,
    DETECTORS,
    RESULTS,
    auroc_ci,
    cifar_labels,
    merge_rows,
    ood_folder,
    ood_metrics,
    pair_name,
    typing_metrics,
)
from benchmarks.embeddings import IMAGE_SIZE, image_paths
from benchmarks.foundation import current_commit
from cleanlab_ng.merge import out_of_distribution
from cleanlab_ng.train.record import load_stage

RUNS = {"frozen features, linear head": {}, "--finetune": {"finetune": True}}


def image_folder(root: Path, n: int, held_out: tuple[int, int]) -> pd.DataFrame:
    """The (b) folder as class folders of PNGs; its truth per sample id (``c<k>/<index>.png``)."""
    labels = cifar_labels(n)["true_label"].to_numpy()
    order, given, foreign, flips = ood_folder(labels, held_out)
    paths = image_paths("cifar10n", n)
    shutil.rmtree(root, ignore_errors=True)
    ids = []
    for i in order:
        target = root / f"c{given[i]}" / f"{i:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths[i], target)
        ids.append(f"c{given[i]}/{i:05d}.png")
    return pd.DataFrame({"sample_id": ids, "foreign": np.isin(order, foreign),
                         "flipped": np.isin(order, flips)})


def read_epoch_typing(out: Path, rep: pd.DataFrame, data) -> dict:
    """The no-class test of ``cleanlab_ng.merge.out_of_distribution`` on every sample that
    linear_separation flags (the report tests only those also flagged, or singled out more
    strongly), with the fine-tuned network's probabilities at its read epoch in place of the
    frozen heads' out-of-fold ones."""
    folder = out / ".cleanlab-ng" / "record"
    key = json.loads((folder / "dynamics.json").read_text())["key"]
    dyn = load_stage(folder, "dynamics", key)[0]
    proba = dyn.snapshots[-1]  # snapshot_epochs[-1] is read_epoch
    candidates = rep["linear_separation_flag"].to_numpy(bool)
    ood = out_of_distribution(candidates, data.labels, proba)
    flagged_flips = rep["flipped"].to_numpy() & rep["is_noisy"].to_numpy()
    return {"read_epoch": dyn.read_epoch, "memorization_epoch": dyn.memorization_epoch,
            "train_accuracy": [round(float(a), 4) for a in dyn.train_accuracy],
            **typing_metrics(ood, rep["foreign"].to_numpy(), flagged_flips)}


def run(root: Path, truth: pd.DataFrame, name: str, options: dict, *, epochs: int,
        image_size: int) -> tuple[dict, list[dict]]:
    finetune = options.get("finetune", False)
    out = root.parent / f"out-{root.name}-{'finetune' if finetune else 'frozen'}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    if finetune:  # the head runs keep their default of 40 epochs
        options = dict(options, epochs=epochs)
    res = cleanlab_ng.clean(root, out, detectors=DETECTORS, image_size=image_size,
                            cache_dir=root.parent / f"{root.name}-features", export="none",
                            on_progress=_progress(name), **options)
    wall = time.perf_counter() - t0
    rep = res.report.merge(truth, on="sample_id", validate="one_to_one")
    foreign, flipped = rep["foreign"].to_numpy(), rep["flipped"].to_numpy()
    auc, lo, hi = auroc_ci(foreign, rep["linear_separation_score"].to_numpy())
    row = {"run": name, "device": res.summary["proxy"]["device"], "wall_s": round(wall, 1),
           "seconds": res.summary["seconds"], "estimated_noise_rate":
           res.summary["estimated_noise_rate"], "lsa_auroc_foreign": auc,
           "lsa_auroc_ci": [lo, hi], **ood_metrics(rep, foreign, flipped)}
    if finetune:
        data = cleanlab_ng.load_dataset(root)  # the record's order and label codes
        row["typing_from_finetuned_read_epoch"] = read_epoch_typing(
            out, rep.set_index("sample_id").loc[data.sample_ids], data)
    merges = merge_rows(name, rep, foreign | flipped, res.summary["noise_count_estimate"])
    return row, merges


def _progress(name: str):
    last = {}

    def report(stage: str, done: int, total: int) -> None:
        if done == total or time.perf_counter() - last.get(stage, 0) > 30:
            last[stage] = time.perf_counter()
            print(f"[{name}] {stage} {done}/{total}", flush=True)
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="of the fine-tuning")
    parser.add_argument("--n-cifar", type=int, default=10000)
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=CACHE / "runs")
    parser.add_argument("--commit", default=None, help="of the code, where the copy it runs "
                        "from has no git history (a GPU machine's)")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.finetune " + " ".join(argv if argv is not None
                                                          else sys.argv[1:])
    root = args.work / f"ood-images-{CAT_DOG[0]}-{CAT_DOG[1]}"
    truth = image_folder(root, args.n_cifar, CAT_DOG)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    rows, merges = [], []
    for name, options in RUNS.items():
        row, merge = run(root, truth, name, options, epochs=args.epochs,
                         image_size=args.image_size)
        rows.append(row)
        merges += merge
        print(json.dumps(row, default=float), flush=True)
        # after each run: a run cut short by a GPU lease still leaves the ones before it
        write_results(args.results, rows, merges, command=command, gpu=gpu,
                      epochs=args.epochs, image_size=args.image_size,
                      commit=args.commit or current_commit())


def write_results(folder: Path, rows: list[dict], merges: list[dict], *, command: str,
                  gpu: str, epochs: int, image_size: int, commit: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    header = (f"Command: `{command}` · commit `{commit}` · "
              f"{time.strftime('%Y-%m-%d')} · GPU: {gpu} · one seed · {epochs} epochs · "
              f"detectors `{DETECTORS}` · held out: {pair_name(CAT_DOG)} · {image_size} px")
    (folder / "finetune.json").write_text(json.dumps(
        {"command": command, "commit": commit, "header": header, "runs": rows,
         "merge": merges}, indent=1, default=float) + "\n")
    table = pd.DataFrame([{k: v for k, v in r.items()
                           if not isinstance(v, (dict, list))} for r in rows]).set_index("run")
    m = pd.DataFrame(merges).pivot(index="method", columns="set", values="f1")
    lines = ["# `--finetune` vs frozen features on the OOD image folder", "", header, "",
             "## (b) figures per run", "", table.T.round(3).to_markdown(), "",
             "## Seconds per stage", "",
             pd.DataFrame({r["run"]: r["seconds"] for r in rows}).round(1).to_markdown(), "",
             "## F1 of each detector and merge rule (truth: foreign or flipped)", "",
             m.round(3).to_markdown(), ""]
    for r in rows:
        if "typing_from_finetuned_read_epoch" in r:
            lines += ["## Typing re-read with the fine-tuned network's read-epoch "
                      "probabilities", "", "```",
                      json.dumps(r["typing_from_finetuned_read_epoch"], indent=1), "```", ""]
    (folder / "finetune.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
