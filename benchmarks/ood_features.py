"""Which features the (b) folder's foreign images stand apart in: EfficientNet-Lite0's blocks.

    python -m benchmarks.ood_features [--threads 1] [--n-cifar 10000]

detectors.md §5 reads LSA's features from an *intermediate* block of the network (ResNet
layer2 by default): there the network was pretrained self-supervised on the noisy data
itself. ``clean`` reads the pooled output of the last layer of a frozen ImageNet network.
This measures, on the (b) folder of ``benchmarks/detectors.py`` (two CIFAR-10 classes
scattered into the other eight, 10 % of the rest flipped), the pooled outputs of blocks
3, 4 and 5 of EfficientNet-Lite0 (80, 112, 192 channels), the last layer (1280), the last
layer averaged over a horizontal flip of the image, and concatenations of them (each
part L2-normalised and z-scored, as LSA processes features), by:

- the supervised ceiling of ``benchmarks/detectors.py``: logistic regression (C = 0.001)
  trained on the *true* foreign labels, 5-fold cross-fitted; its AUROC and how many
  in-distribution samples score above the threshold that catches 80 % of the foreign
  images. Four held-out pairs: cat/dog and the easiest, median and hardest of detectors.md.
- on cat/dog, ``linear_separation_score`` re-read from the (b) run's training record with
  each feature set in place of the default (no truth).

The blocks are embedded once (the PNGs of ``python -m benchmarks cache``, 224 px, as
``clean`` embeds an image folder) and cached in ``benchmarks/.cache/``. Writes
``benchmarks/results/ood_features.md`` and ``.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.detectors import (
    CACHE,
    CAT_DOG,
    OTHER_PAIRS,
    RESULTS,
    cifar_labels,
    cost_at_80pct,
    linear_ceiling,
    load_record,
    ood_experiment,
    ood_folder,
    pair_name,
    parse_cifar_args,
)
from benchmarks.embeddings import IMAGE_SIZE, image_paths
from benchmarks.foundation import current_commit
from cleanlab_ng.backbones import _build_model, _read_rgb, resolve_backbone
from cleanlab_ng.detectors import linear_separation
from cleanlab_ng.features import _standardise
from cleanlab_ng.neighbours import normalise_features

BLOCKS = (3, 4, 5)  # tf_efficientnet_lite0's stages 3-5; stage 6 (320 ch) feeds the last layer
COMBINATIONS = {"block 5 + last": ("block 5", "last"),
                "blocks 4, 5 + last": ("block 4", "block 5", "last")}


def blocks_path(n: int) -> Path:
    return CACHE / f"cifar10n_lite0_blocks_{IMAGE_SIZE}px_0-{n - 1}.npz"


def block_features(n: int, batch_size: int = 16) -> dict[str, np.ndarray]:
    """Pooled features of CIFAR-10N images 0..n-1 per block, the last layer, and the last
    layer of the flipped image; cached."""
    path = blocks_path(n)
    if path.exists():
        return dict(np.load(path))
    backbone, _ = resolve_backbone()
    model = _build_model(backbone.name, backbone.weights, "cpu")
    pooled = {}
    hooks = [model.blocks[b].register_forward_hook(
        lambda module, args, out, b=b: pooled.__setitem__(b, out.mean((2, 3))))
        for b in BLOCKS]
    mean = torch.tensor(backbone.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(backbone.std).view(1, 3, 1, 1) * 255
    parts = {k: [] for k in [*(f"block {b}" for b in BLOCKS), "last", "last, flipped"]}
    paths = image_paths("cifar10n", n)
    for start in range(0, n, batch_size):
        batch = np.stack([_read_rgb(p, IMAGE_SIZE) for p in paths[start:start + batch_size]])
        x = (torch.from_numpy(batch).permute(0, 3, 1, 2).float() - mean) / std
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            parts["last"].append(model(x).numpy())
            for b in BLOCKS:
                parts[f"block {b}"].append(pooled[b].numpy())
            parts["last, flipped"].append(model(torch.flip(x, dims=[3])).numpy())
    for hook in hooks:
        hook.remove()
    features = {k: np.concatenate(v) for k, v in parts.items()}
    np.savez(path, **features)
    return features


def feature_sets(blocks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sets = {k: v for k, v in blocks.items() if k != "last, flipped"}
    sets["last, flip-averaged"] = (blocks["last"] + blocks["last, flipped"]) / 2
    for name, keys in COMBINATIONS.items():
        sets[name] = np.concatenate([normalise_features(blocks[k]) for k in keys], axis=1)
    return sets


def main(argv=None) -> None:
    args, command = parse_cifar_args("benchmarks.ood_features", __doc__, argv)
    commit = current_commit()
    t0 = time.perf_counter()
    cached = blocks_path(args.n_cifar).exists()
    sets = feature_sets(block_features(args.n_cifar))
    embedding = ("blocks read from the cache" if cached
                 else f"blocks embedded in {time.perf_counter() - t0:.0f} s")
    labels = cifar_labels(args.n_cifar)["true_label"].to_numpy()
    folders = {pair: ood_folder(labels, pair) for pair in (CAT_DOG, *OTHER_PAIRS)}
    rows = []
    for held_out, folder in folders.items():
        foreign = np.isin(folder.order, folder.foreign)
        for name, Z in sets.items():
            rows.append({"held_out": pair_name(held_out), "features": name,
                         "width": Z.shape[1], **linear_ceiling(Z[folder.order], foreign)})
    # the (b) run itself (kept in detectors.py's work folder): its losses and labels, each
    # feature set in place of the run's own for the neighbourhoods
    work = CACHE / "runs"
    ood_experiment(work, args.n_cifar, args.threads, CAT_DOG, detail=False)
    out = work / f"out-ood-{CAT_DOG[0]}-{CAT_DOG[1]}"  # where ood_experiment writes it
    report = pd.read_csv(out / "report.csv")
    names, given = np.unique(report["given_label"].astype(str), return_inverse=True)
    record = load_record(out, given, len(names))
    folder = folders[CAT_DOG]
    foreign = np.isin(folder.order, folder.foreign)
    unsupervised = []
    for name, Z in sets.items():
        run = replace(record, features=_standardise(Z[folder.order]), neighbours=None)
        unsupervised.append({"features": name,
                             **cost_at_80pct(foreign, linear_separation.detect(run).score)})
    write_results(rows, unsupervised, command, commit, embedding)


def write_results(rows: list[dict], unsupervised: list[dict], command: str, commit: str,
                  embedding: str) -> None:
    (RESULTS / "ood_features.json").write_text(json.dumps(
        {"commit": commit, "command": command, "ceiling": rows,
         "linear_separation_cat_dog": unsupervised}, indent=1) + "\n")
    table = pd.DataFrame(rows)
    cell = table.apply(lambda r: f"{r.auroc:.3f} / {r.in_distribution_at_80pct}", axis=1)
    grid = table.assign(cell=cell).pivot(index="features", columns="held_out", values="cell")
    grid = grid.reindex(index=table["features"].unique(), columns=table["held_out"].unique())
    grid.insert(0, "width", table.groupby("features")["width"].first())
    lines = [
        "# OOD features: where the (b) folder's foreign images stand apart",
        "",
        f"Command: `{command}` · commit `{commit}` · {time.strftime('%Y-%m-%d')} · "
        f"EfficientNet-Lite0 (ImageNet), {IMAGE_SIZE} px · {embedding}",
        "",
        "## Supervised ceiling per feature set: AUROC / in-distribution samples above the "
        "80 %-recall threshold",
        "",
        "Logistic regression (C = 0.001) on the *true* foreign labels, 5-fold cross-fitted. "
        "Fewer is better: no detector without those labels should be expected to do better.",
        "",
        grid.to_markdown(),
        "",
        "## linear_separation_score on cat/dog, per feature set (no truth)",
        "",
        "The (b) run's losses and labels; each feature set in place of the default for the "
        "neighbourhoods.",
        "",
        pd.DataFrame(unsupervised).to_markdown(index=False),
        "",
    ]
    (RESULTS / "ood_features.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
