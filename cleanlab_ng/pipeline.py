"""``clean()``: load, encode, train, detect, merge, export -- the stages in order."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import __version__
from .choices import (
    EXPORT_MODES,
    FIX_MODES,
    MERGE_RULES,
    RECOV_METRICS,
    RECOV_RULES,
    TABLE_FEATURES,
)
from .data import content_hash, load_dataset
from .detectors import (
    BASELINES,
    cl,
    mean_result,
    parse_detectors,
    required_stages,
    run_detector,
)
from .diagnostics import proxy_strength, run_warnings, weak_proxy
from .errors import ConfigError
from .export import (
    MARK_COLUMNS,
    Manifest,
    check_markable,
    export_cleaned,
    prepare_out,
    write_outputs,
)
from .features import encode
from .merge import build_report
from .neighbours import REFEREE_NEIGHBOURS, feature_neighbours, label_disagreement
from .ranks import spearman
from .train.adaptation import adapt_fold_heads
from .train.proxy import dynamics_runs, train_dynamics_runs, train_out_of_fold, train_rounds
from .train.record import TrainingRecord, code_fingerprint, load_stage, save_stage
from .train.recov import MAX_RUNS, train_recov

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, eq=False)
class CleanResult:
    """What :func:`clean` returns: the report, the summary and where they were written."""

    report: pd.DataFrame
    summary: dict
    out: Path


def clean(
    dataset: str | Path,
    out: str | Path,
    *,
    labels: str | Path | None = None,
    label_column: str = "label",
    path_column: str = "path",
    id_column: str | None = None,
    text_column: str | None = None,
    detectors: str | list[str] | None = None,
    merge: str = "jury",
    noise_rate: float | None = None,
    backbone: str | None = None,
    weights: str | Path | None = None,
    image_size: int = 224,
    cache_dir: str | Path | None = None,
    table_features: str = "auto",
    head: str = "linear",
    finetune: bool = False,
    epochs: int = 40,
    folds: int = 5,
    late_stopping_rounds: int = 0,
    recov_runs: int | None = None,
    recov_rule: str = "structure",
    recov_metric: str = "class_margin",
    device: str = "auto",
    seed: int = 0,
    threads: int | None = None,
    export: str = "hardlink",
    fix: str = "remove",
    overwrite: bool = False,
    on_progress: Progress | None = None,
) -> CleanResult:
    """Find the mislabeled samples of a dataset and write a report and a cleaned copy.

    Parameters
    ----------
    dataset : str or Path
        Dataset folder or table file (see :func:`cleanlab_ng.load_dataset`).
    out : str or Path
        Output folder; must not lie inside the dataset.
    labels, label_column, path_column, id_column, text_column
        Passed to :func:`cleanlab_ng.load_dataset`.
    detectors : str or list of str, default=None
        Names (``"bmm,late_stopping"``); None runs every registered detector.
    merge : {"jury", "referee", "overlap", "agreement", "rank_mean", "vote"}, default="jury"
        How the detectors are merged (:func:`cleanlab_ng.merge.merge_scores`).
    noise_rate : float, default=None
        Flag this fraction of samples instead of the estimated number of wrong labels.
    backbone, weights, image_size, cache_dir
        Image features (see :func:`cleanlab_ng.features.encode`); ``cache_dir`` defaults to
        ``OUT/.cleanlab-ng/cache``.
    table_features : {"auto", "linear", "kernel"}, default="auto"
        Tables: the standardised columns, RBF kernel features of them, or the kernel features
        when they predict the given labels better out of fold (see
        :func:`cleanlab_ng.features.encode`).
    head : {"linear", "mlp"}, default="linear"
        Proxy head of the full-data run.
    finetune : bool, default=False
        Images only: record the full-data run from the timm backbone trained end to end
        (meant for a GPU) instead of a head on the frozen features.
    epochs : int, default=40
        Epochs of the full-data proxy run.
    folds : int, default=5
        Folds of the out-of-fold heads.
    late_stopping_rounds : int, default=0
        Rounds of multi-round Late Stopping; 0 uses the single-run FkL score.
    recov_runs : int, default=None
        Repeats of K-fold cross-validation for ``recov``; None stops adaptively once the
        ranking is stable (at most ``MAX_RUNS``).
    recov_rule : {"structure", "count", "joint", "bound", "binomial", "gmm", "auto"}, \
            default="structure"
        How ``recov`` flags (see :func:`cleanlab_ng.detectors.recov.detect`); read at
        detection time only, so changing it never retrains.
    recov_metric : {"class_margin", "accuracy"}, default="class_margin"
        Which fold of a repeat is the worst (see :func:`cleanlab_ng.train.recov.train_recov`):
        per class by margin (ours), or by accuracy as in the paper.
    device : {"auto", "cpu", "cuda"}, default="auto"
    seed : int, default=0
    threads : int, default=None
        torch threads; default the cores available to this process.
    export : {"hardlink", "copy", "none"}, default="hardlink"
    fix : {"remove", "relabel", "mark"}, default="remove"
        What ``cleaned/`` does with the flagged samples: leaves them all out; gives the
        ``mislabeled`` ones their ``suggested_label`` where their nearest neighbours back it
        (``suggestion_backed``) and leaves out only the rest: the ``out_of_distribution``
        ones, those whose suggestion is not backed, and those whose suggestion is their
        given label; or keeps every sample and adds the columns ``MARK_COLUMNS`` of the
        report to the table or labels file (not for image class folders).
    overwrite : bool, default=False
        Allow writing into a non-empty OUT that holds no earlier run (nothing is deleted).
    on_progress : callable, default=None
        ``on_progress(stage, done, total)``.

    Returns
    -------
    CleanResult
    """
    _validate(epochs=epochs, folds=folds, late_stopping_rounds=late_stopping_rounds,
              noise_rate=noise_rate, head=head, image_size=image_size, merge=merge,
              table_features=table_features, export=export, fix=fix, recov_runs=recov_runs,
              recov_rule=recov_rule, recov_metric=recov_metric)
    names = _select_detectors(detectors)
    torch_device = _resolve_device(device)
    torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
    progress = on_progress or (lambda stage, done, total: None)
    timings: dict[str, float] = {}

    with _timed(timings, "load"):
        data = load_dataset(dataset, labels=labels, label_column=label_column,
                            path_column=path_column, id_column=id_column,
                            text_column=text_column)
        if fix == "mark":
            check_markable(data)
        if finetune and data.image_paths is None:
            raise ConfigError(f"--finetune: {data.source} is a {data.layout.replace('_', ' ')}, "
                              "not images. Drop --finetune.")
        marker = prepare_out(Path(out), [Path(dataset).resolve(), data.source,
                                           *data.files.values(), *(data.image_paths or ())],
                             overwrite=overwrite)
        out = marker.parent
        input_hash = content_hash(data)
    _warn_skipped_baseline(detectors)
    start = time.perf_counter()
    features = encode(
        data, backbone=backbone, weights=weights, image_size=image_size,
        device=str(torch_device), cache_dir=Path(cache_dir or marker / "cache"),
        input_hash=input_hash, table_features=table_features,
        on_progress=lambda d, t: progress("encode", d, t),
    )
    timings["features_cached" if features.cached else "encode"] = time.perf_counter() - start
    readable = features.readable
    y = data.labels[readable]
    n_classes = data.n_classes
    present = np.unique(y)
    if len(present) < 2:
        raise ConfigError(f"{data.source}: fewer than two classes among the readable samples. "
                          "Label noise needs at least two classes.")
    # no copy when every sample is readable: the features can be most of the memory
    Z = features.Z if readable.all() else features.Z[readable]
    X = torch.as_tensor(Z, device=torch_device)
    key = {"input": input_hash, "features": features.kind, "image_size": image_size,
           "seed": seed, "folds": folds, "device": torch_device.type, "version": __version__,
           "code": code_fingerprint(),
           "label_column": label_column, "text_column": text_column}
    record_dir = marker / "record"
    needed = {s for n in names for s in required_stages(n)}
    if late_stopping_rounds and "late_stopping" in names:
        needed.add("rounds")
    if finetune and "recov" in needed:  # the deep proxy: ten fastReCoV runs, not thousands
        needed = (needed - {"recov"}) | {"fastrecov"}
    # the out-of-fold probabilities behind predicted_label and the number flagged come
    # from (fast)recov when it runs, else from oof; the proxy runs take oof's L2 and noise rate
    if not needed & {"recov", "fastrecov"} or needed & {"dynamics", "rounds", "adaptation"}:
        needed.add("oof")

    stages = {}

    def train_stage(name: str, stage_key: dict, train: Callable[[Callable], object]) -> None:
        """Reuse the saved stage when its key matches, else train it and save it."""
        stages[name] = load_stage(record_dir, name, stage_key)
        if stages[name] is None:
            with _timed(timings, f"train_{name}"):
                stages[name] = train(lambda d, t: progress(f"train_{name}", d, t))
                save_stage(record_dir, name, stages[name], stage_key)

    device_name = str(torch_device)
    if "recov" in needed:
        train_stage("recov", dict(key, recov_runs=recov_runs, max_runs=MAX_RUNS,
                                  recov_metric=recov_metric),
                    lambda cb: train_recov(X, y, n_classes=n_classes, n_folds=folds,
                                           n_runs=recov_runs, seed=seed,
                                           fold_metric=recov_metric, on_run=cb))
        log.info("recov: %d runs (%s)", stages["recov"].n_runs, stages["recov"].stop_reason)
    if "fastrecov" in needed:
        train_stage("fastrecov", dict(key, epochs=epochs, backbone=features.kind),
                    lambda cb: _fastrecov(data, readable, y, backbone, weights, image_size,
                                          n_classes, folds, epochs, seed, device_name, cb))
    if "oof" in needed:
        train_stage("oof", key, lambda cb: train_out_of_fold(X, y, n_classes=n_classes,
                                                             n_folds=folds, seed=seed))
    oof = stages.get("oof")
    est_rate = oof.noise_count / len(y) if oof is not None else None
    if "dynamics" in needed and finetune:  # one run: fine-tuning a backbone is the cost
        train_stage("dynamics", dict(key, epochs=epochs, head="finetune", runs=1),
                    lambda cb: (_finetune(data, readable, y, backbone, weights, image_size,
                                          n_classes, est_rate, epochs, seed, device_name, cb),))
    elif "dynamics" in needed:
        n_runs = dynamics_runs(len(y))
        train_stage("dynamics", dict(key, epochs=epochs, head=head, runs=n_runs),
                    lambda cb: train_dynamics_runs(X, y, n_runs=n_runs, n_classes=n_classes,
                                                   l2=oof.l2, noise_rate=est_rate,
                                                   epochs=epochs, head=head, seed=seed,
                                                   on_epoch=cb))
    if "rounds" in needed:
        train_stage("rounds", dict(key, head=head, rounds=late_stopping_rounds),
                    lambda cb: train_rounds(X, y, n_classes=n_classes, l2=oof.l2,
                                            noise_rate=est_rate, n_rounds=late_stopping_rounds,
                                            head=head, seed=seed, on_round=cb))
    if "adaptation" in needed:
        train_stage("adaptation", key, lambda cb: adapt_fold_heads(
            X, y, oof.folds, oof.l2, n_classes=n_classes, seed=seed))
    runs = stages.pop("dynamics", None) or (None,)
    # one neighbour search, as deep as linear_separation reads; the referee takes its start
    depth = REFEREE_NEIGHBOURS
    if "linear_separation" in names:
        from .detectors import linear_separation  # only when it runs, as the registry does

        depth = linear_separation.N_NEIGHBOURS
    with _timed(timings, "neighbours"):
        near = feature_neighbours(Z, depth)
    record = TrainingRecord(labels=y, n_classes=n_classes, features=Z, neighbours=near,
                            dynamics=runs[0], **stages)
    # one record per proxy run: the detectors that read the run are averaged over them
    records = [record] + [replace(record, dynamics=run) for run in runs[1:]]

    fixed = round(noise_rate * len(y)) if noise_rate is not None else None
    n_flag = record.noise_count if fixed is None else fixed
    # recov's count rule flags the same estimate; its joint rule, the confident joint's cells
    # unless the user fixed the rate
    options = {"recov": {"rule": recov_rule, "n_flag": fixed}}
    with _timed(timings, "detect"):
        results = []
        for i, name in enumerate(names):
            on = records if "dynamics" in required_stages(name) else records[:1]
            results.append(mean_result([run_detector(name, r, **options.get(name, {}))
                                        for r in on]))
            progress("detect", i + 1, len(names))
    # baselines (cl) get their report columns but never enter the merged verdict
    merged = [r for r in results if r.name not in BASELINES]
    with _timed(timings, "merge"):
        # the referee the default merge weighs the detectors against and seats among them, a
        # column of every report; one neighbourhood for it and for backing the suggestions
        around = feature_neighbours(Z, REFEREE_NEIGHBOURS, near)
        referee = label_disagreement(Z, y, REFEREE_NEIGHBOURS, around)
        report = build_report(data.sample_ids, data.labels, data.class_names, readable,
                              record.proba, merged, n_flag=n_flag, rule=merge, referee=referee,
                              neighbours=around,
                              baselines=[r for r in results if r.name in BASELINES],
                              ood_on_top=fixed is None)
    with _timed(timings, "export"):
        manifest = Manifest(out)
        noisy, issue = report["is_noisy"].to_numpy(), report["issue"].to_numpy()
        new_labels = None
        if fix == "relabel":
            # a mislabeled sample gets its suggested label when its neighbours back it; one
            # whose suggestion they do not back, or is the label it has (flagged, but no
            # other class is more likely), goes, as the foreign do
            suggested = _label_indices(report["suggested_label"], data.class_names)
            relabel = (noisy & (issue == "mislabeled") & (suggested != data.labels)
                       & report["suggestion_backed"].to_numpy())
            noisy = noisy & ~relabel
            new_labels = np.where(relabel, suggested, data.labels)
        keep, marks = ~noisy & readable, None
        if fix == "mark":
            keep, marks = np.ones_like(keep), report[list(MARK_COLUMNS)]
        n_kept = export_cleaned(data, keep, out, manifest, mode=export, labels=new_labels,
                                marks=marks)
        summary = _summary(data, features, record, results, report, timings, seed=seed,
                           input_hash=input_hash, names=names, merge=merge, n_kept=n_kept,
                           folds=folds, dynamics_runs=len(records),
                           export=export, fix=fix, device=torch_device.type,
                           n_relabelled=0 if new_labels is None or export == "none"
                           else int((new_labels != data.labels).sum()),
                           dynamics_source=f"{features.kind} end to end" if finetune
                           else f"{head} head")
        write_outputs(out, report, summary, manifest)
        manifest.save()
    for warning in summary["warnings"]:
        log.warning(warning)
    summary["seconds"]["export"] = timings["export"]
    return CleanResult(report=report, summary=summary, out=out)


def _finetune(data, readable, y, backbone, weights, image_size, n_classes, noise_rate, epochs,
              seed, device, on_epoch):
    from .train.finetune import Schedule, finetune_dynamics

    spec, images = _images(data, readable, backbone, weights, image_size)
    return finetune_dynamics(images, y, spec, n_classes=n_classes, noise_rate=noise_rate,
                             schedule=Schedule(epochs=epochs), seed=seed, device=device,
                             on_epoch=on_epoch)


def _fastrecov(data, readable, y, backbone, weights, image_size, n_classes, folds, epochs, seed,
               device, on_run):
    from .train.fastrecov import train_fastrecov
    from .train.finetune import Schedule

    spec, images = _images(data, readable, backbone, weights, image_size)
    return train_fastrecov(images, y, spec, n_classes=n_classes, n_folds=folds,
                           schedule=Schedule(epochs=epochs), seed=seed, device=device,
                           on_run=on_run)


def _images(data, readable, backbone, weights, image_size):
    """The backbone to fine-tune and the readable images, decoded at ``image_size``."""
    from .backbones import load_images, resolve_backbone

    spec, reason = resolve_backbone(backbone, weights)
    if spec is None:
        raise ConfigError(f"--finetune: {reason}. Install the weights extra, or pass "
                          "--backbone and --weights.")
    paths = [p for p, ok in zip(data.image_paths, readable) if ok]
    return spec, load_images(paths, image_size)[0]


def _select_detectors(detectors) -> list[str]:
    """The detectors to run: ``cl`` needs cleanlab, and baselines alone merge nothing."""
    names = parse_detectors(detectors)
    if "cl" in names and not cl.available():
        if detectors is not None:
            raise ConfigError("--detectors cl: cleanlab is not installed. "
                              "pip install 'cleanlab-ng[baseline]', or drop cl.")
        names.remove("cl")  # said by _warn_skipped_baseline, once the input has loaded
    if all(n in BASELINES for n in names):
        raise ConfigError(f"--detectors {','.join(names)}: baselines are only compared, never "
                          "merged. Add a detector, e.g. --detectors recov,cl.")
    return names


def _warn_skipped_baseline(detectors) -> None:
    """Say that the default run skips ``cl``: after the input loaded, so that a bad input's
    error stays the only line."""
    if detectors is None and not cl.available():
        log.warning("cleanlab is not installed: skipping the cl baseline "
                    "(pip install 'cleanlab-ng[baseline]')")


def _summary(data, features, record, results, report, timings, **info) -> dict:
    oof, dyn, rec = record.oof, record.dynamics, record.recov
    source = "recov" if rec else "fastrecov" if record.fastrecov else "oof"
    readable = features.readable
    is_noisy = report["is_noisy"].to_numpy()
    per_class = {}
    for c, name in enumerate(data.class_names):
        rows = data.labels == c
        per_class[str(name)] = {"n": int(rows.sum()), "flagged": int(is_noisy[rows].sum()),
                                "flagged_rate": round(float(is_noisy[rows].mean()), 4)}
    agreement = {}
    for a, b in combinations(results, 2):
        agreement[f"{a.name}|{b.name}"] = {
            "flag_agreement": round(float((a.flag == b.flag).mean()), 4),
            "score_spearman": round(spearman(a.score, b.score), 4),
        }
    # the plain out-of-fold heads where they ran: recov's read-out, fitted on the given
    # labels, lifts pure-noise features a few points above the commonest class
    check = weak_proxy(record.labels, (oof or record).proba)
    accuracy = round(float((record.proba.argmax(1) == record.labels).mean()), 4)
    noise_rate = round(record.noise_count / int(readable.sum()), 4)
    strength = proxy_strength(accuracy, noise_rate)
    relabels = info["fix"] == "relabel" and info["export"] != "none"
    return {
        "version": __version__,
        "input": str(data.source),
        "input_hash": info["input_hash"],
        "layout": data.layout,
        "n": int(data.n_samples),
        "n_readable": int(readable.sum()),
        "unreadable": int((~readable).sum()),
        "n_classes": int(data.n_classes),
        "flagged": int(is_noisy.sum()),
        "noise_count_estimate": int(record.noise_count),
        "estimated_noise_rate": noise_rate,
        "issues": {k: int(v) for k, v in report["issue"].value_counts(sort=False).items()},
        "per_class": per_class,
        "proxy": {
            "features": features.kind,
            "features_reason": features.reason,
            "n_imputed": int(features.n_imputed),
            "oof_accuracy": accuracy,
            "oof_source": source,
            # oof_accuracy / (1 - estimated_noise_rate): diagnostics.proxy_strength
            "strength": round(strength, 4),
            # the out-of-fold heads against always answering the commonest class
            "weak_check": {k: round(v, 4) if isinstance(v, float) else v
                           for k, v in check.items()},
            "l2": oof.l2 if oof else None,
            "folds": info["folds"],
            "recov": {"runs": rec.n_runs, "stop_reason": rec.stop_reason,
                      "stability": None if np.isnan(rec.stability) else round(rec.stability, 4),
                      "ridge_l2": rec.l2, "fold_accuracy": round(rec.oof_accuracy, 4),
                      "fold_metric": rec.metric}
            if rec else None,
            "dynamics": info["dynamics_source"] if dyn else None,
            "dynamics_runs": info["dynamics_runs"] if dyn else None,
            "epochs": int(dyn.n_epochs) if dyn else None,
            "read_epoch": int(dyn.read_epoch) if dyn else None,
            "memorization_epoch": int(dyn.memorization_epoch) if dyn else None,
            "device": info["device"],
        },
        "detectors": {r.name: {"flagged": int(r.flag.sum()), **r.diagnostics} for r in results},
        "baselines": [r.name for r in results if r.name in BASELINES],
        "agreement": agreement,
        "merge": info["merge"],
        "export": info["export"],
        "fix": info["fix"],
        "kept": info["n_kept"],
        "relabelled": info["n_relabelled"],
        # how many of the mislabeled samples' suggestions their neighbours back
        "suggestions_backed": int((report["suggestion_backed"]
                                   & (report["issue"] == "mislabeled")).sum()),
        "seed": info["seed"],
        "warnings": run_warnings(check, noise_rate, strength, relabels=relabels),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }


def _validate(*, epochs, folds, late_stopping_rounds, noise_rate, head, image_size, merge,
              table_features, export, fix, recov_runs, recov_rule, recov_metric) -> None:
    checks = [
        ("epochs", epochs, isinstance(epochs, int) and epochs >= 2, "an int >= 2"),
        ("folds", folds, isinstance(folds, int) and folds >= 2, "an int >= 2"),
        ("late_stopping_rounds", late_stopping_rounds,
         isinstance(late_stopping_rounds, int) and late_stopping_rounds >= 0, "an int >= 0"),
        ("noise_rate", noise_rate, noise_rate is None or 0 <= noise_rate < 1,
         "a float in [0, 1)"),
        ("head", head, head in ("linear", "mlp"), "'linear' or 'mlp'"),
        ("image_size", image_size, isinstance(image_size, int) and image_size >= 8,
         "an int >= 8"),
        ("merge", merge, merge in MERGE_RULES, "one of " + ", ".join(MERGE_RULES)),
        ("table_features", table_features, table_features in TABLE_FEATURES,
         "one of " + ", ".join(TABLE_FEATURES)),
        ("export", export, export in EXPORT_MODES, "one of " + ", ".join(EXPORT_MODES)),
        ("fix", fix, fix in FIX_MODES, "one of " + ", ".join(FIX_MODES)),
        ("recov_runs", recov_runs,
         recov_runs is None or isinstance(recov_runs, int) and recov_runs >= 1,
         "None or an int >= 1"),
        ("recov_rule", recov_rule, recov_rule in RECOV_RULES, "one of " + ", ".join(RECOV_RULES)),
        ("recov_metric", recov_metric, recov_metric in RECOV_METRICS,
         "one of " + ", ".join(RECOV_METRICS)),
    ]
    for name, value, ok, what in checks:
        if not ok:
            raise ConfigError(f"'{name}' must be {what}, got {value!r}.")


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available. "
                          "Use --device cpu or auto.")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"'device' must be 'auto', 'cpu' or 'cuda', got {device!r}.")
    return torch.device(device)


@contextmanager
def _timed(timings: dict, stage: str):
    start = time.perf_counter()
    yield
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
    log.debug("%s: %.2f s", stage, timings[stage])


def _label_indices(values: pd.Series, class_names: list) -> np.ndarray:
    """Indices into ``class_names`` of report label values (class names as given)."""
    index = {name: i for i, name in enumerate(class_names)}
    return np.array([index[v] for v in values], dtype=np.int64)
