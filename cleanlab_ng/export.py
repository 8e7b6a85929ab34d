"""Write the report, the summary and the cleaned dataset into OUT_DIR.

Every file is written to a temporary name in its final folder and renamed into place, so an
interrupted run never leaves a half-written report. A marker folder (``.cleanlab-ng/``)
holds a manifest of every file the tool wrote: an OUT holding an earlier run's outputs is
updated in place, and the tool only ever deletes files listed there.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from .choices import EXPORT_MODES
from .data import Dataset
from .errors import ConfigError

MARKER = ".cleanlab-ng"


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def prepare_out(out: Path, inputs: list[Path], *, overwrite: bool) -> Path:
    """Check that OUT may be written and create it with its marker; return the marker folder.

    ``inputs`` are the resolved paths the run reads: the path the user named, then every
    file and folder of the dataset. OUT may not be, or lie inside, an input folder, and no
    input may lie inside OUT, whose ``cleaned/`` every run rewrites: cleaning an earlier
    run's ``cleaned/`` into the same OUT would delete the very files it reads. A folder
    beside a named table file is fine. An existing OUT must be empty, an earlier run's output
    (it holds the marker), or ``overwrite`` must be set.
    """
    out = out.resolve()
    holder = next((p for p in inputs if (p == out or p in out.parents) and p.is_dir()), None)
    if holder is not None:
        raise ConfigError(f"{out}: the output folder lies inside the input {holder}. "
                          "Choose an --out outside the dataset.")
    inside = next((p for p in inputs if out in p.parents), None)
    if inside is not None:
        raise ConfigError(f"{inside}: this input lies inside the output folder {out}, which "
                          "every run rewrites. Choose another --out.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder. Choose another --out.")
    marker = out / MARKER
    if out.is_dir() and not marker.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out}: folder is not empty and was not written by cleanlab-ng. "
                          "Choose an empty --out, or pass --overwrite to write there anyway.")
    marker.mkdir(parents=True, exist_ok=True)
    return marker


class Manifest:
    """The set of files (relative to OUT) that the tool wrote there."""

    def __init__(self, out: Path):
        self.out = out
        self.path = out / MARKER / "manifest.json"
        self.files: set[str] = set()
        if self.path.is_file():
            self.files = set(json.loads(self.path.read_text())["files"])

    def add(self, path: Path) -> None:
        self.files.add(path.relative_to(self.out).as_posix())

    def remove_under(self, folder: Path) -> None:
        """Delete the files we wrote under ``folder``; anything else there is left alone."""
        prefix = folder.relative_to(self.out).as_posix() + "/"
        for rel in sorted(f for f in self.files if f.startswith(prefix)):
            (self.out / rel).unlink(missing_ok=True)
            self.files.discard(rel)
        for d in sorted(folder.rglob("*"), reverse=True) if folder.is_dir() else []:
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()

    def save(self) -> None:
        text = json.dumps({"files": sorted(self.files)}, indent=1)
        atomic_write(self.path, lambda p: Path(p).write_text(text))


# the report's verdict that ``--fix mark`` adds to the table or labels file
MARK_COLUMNS = ("is_noisy", "issue", "noise_score", "suggested_label")


def flagged_first(report: pd.DataFrame) -> pd.DataFrame:
    """The ``is_noisy`` rows, highest ``noise_score`` first: ``flagged.csv``'s order."""
    return report[report["is_noisy"]].sort_values("noise_score", ascending=False,
                                                  kind="stable")


def write_outputs(out: Path, report: pd.DataFrame, summary: dict, manifest: Manifest) -> None:
    """``report.parquet``, ``report.csv``, ``flagged.csv`` and ``summary.json``."""
    flagged = flagged_first(report)
    writers = {
        "report.parquet": lambda p: report.to_parquet(p, index=False),
        "report.csv": lambda p: report.to_csv(p, index=False),
        "flagged.csv": lambda p: flagged.to_csv(p, index=False),
        "summary.json": lambda p: Path(p).write_text(json.dumps(summary, indent=2) + "\n"),
    }
    for name, write in writers.items():
        atomic_write(out / name, write)
        manifest.add(out / name)


def check_markable(dataset: Dataset) -> None:
    """Raise ConfigError unless ``--fix mark`` can add ``MARK_COLUMNS`` to the dataset's table
    or labels file: there must be one, without columns of those names."""
    if dataset.table is None:
        raise ConfigError(f"--fix mark: {dataset.source} is "
                          f"{dataset.layout.replace('_', ' ')} data, with no table or labels "
                          "file to write the marks in. Use report.csv, or --fix remove.")
    taken = [c for c in MARK_COLUMNS if c in dataset.table.columns]
    if taken:
        name = next(p.name for role, p in dataset.files.items() if role != "embeddings")
        raise ConfigError(f"--fix mark: {name} already has a column '{taken[0]}', which the "
                          "marks would overwrite. Rename it, or use --fix remove.")


def export_cleaned(
    dataset: Dataset, keep: np.ndarray, out: Path, manifest: Manifest, *, mode: str = "hardlink",
    labels: np.ndarray | None = None, marks: pd.DataFrame | None = None,
) -> int:
    """Write ``out/cleaned``: the dataset in its own layout, only the rows in ``keep``.

    Image files are hard-linked (copied across devices, or with ``mode="copy"``); tables,
    labels files and ``.npy`` matrices keep their format (a CSV its separator, decimal mark
    and encoding), columns and row order. ``labels``
    (indices into the class names, default the given ones) relabels: a table's or labels
    file's label column gets the new class name, an image of a class folder moves to the
    new class's folder (``<stem>.from-<old class><suffix>`` where its name is taken there).
    ``marks`` (one row per sample) are added as columns to the table or labels file.
    Returns the number of samples kept.
    """
    if mode not in EXPORT_MODES:
        raise ConfigError(f"unknown export mode '{mode}'. Use one of: {', '.join(EXPORT_MODES)}.")
    target = out / "cleaned"
    manifest.remove_under(target)
    if mode == "none":
        return 0
    target.mkdir(exist_ok=True)
    labels = dataset.labels if labels is None else labels
    names = np.asarray(dataset.class_names, dtype=object)
    if dataset.image_paths is not None:
        ids = dataset.sample_ids
        if dataset.layout == "image_folder":
            ids = _refiled(ids, dataset.labels, labels, names, keep)
        for path, sample_id in zip(np.asarray(dataset.image_paths, dtype=object)[keep],
                                   ids[keep]):
            dest = target / sample_id
            dest.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(path, dest, mode)
            manifest.add(dest)
    for role, path in dataset.files.items():
        dest = target / path.name
        if role == "embeddings":
            atomic_write(dest, lambda p: np.save(p, np.load(path)[keep]))
        else:
            frame = dataset.table
            changed = np.flatnonzero(labels != dataset.labels)
            if len(changed):
                frame = frame.copy()
                column = frame.columns.get_loc(dataset.label_column)
                # object first: a new class name must not be cast to the old column's dtype
                frame[dataset.label_column] = frame[dataset.label_column].astype(object)
                frame.iloc[changed, column] = names[labels[changed]]
                frame[dataset.label_column] = frame[dataset.label_column].infer_objects()
            if marks is not None:
                frame = frame.assign(**{c: marks[c].to_numpy() for c in marks.columns})
            frame = frame.iloc[np.flatnonzero(keep)]
            atomic_write(dest, lambda p: _write_table(frame, p, dataset.table_format))
        manifest.add(dest)
    return int(keep.sum())


def _refiled(ids: np.ndarray, given: np.ndarray, labels: np.ndarray, names: np.ndarray,
             keep: np.ndarray) -> np.ndarray:
    """Class-folder ids with each relabelled image moved to its new class's folder."""
    ids = ids.copy()
    moved = np.flatnonzero(keep & (labels != given))
    taken = set(ids[keep & (labels == given)])
    for i in moved:
        old, _, rest = ids[i].partition("/")
        new = f"{names[labels[i]]}/{rest}"
        if new in taken:
            name = PurePosixPath(rest)
            new = f"{names[labels[i]]}/{name.with_stem(f'{name.stem}.from-{old}')}"
        taken.add(new)
        ids[i] = new
    return ids


def _write_table(frame: pd.DataFrame, path: str, table_format: dict) -> None:
    """Parquet, or text in the input's format (:attr:`Dataset.table_format`)."""
    if table_format:
        frame.to_csv(path, index=False, **table_format)
    else:
        frame.to_parquet(path, index=False)


def _link_or_copy(src: Path, dest: Path, mode: str) -> None:
    dest.unlink(missing_ok=True)
    if mode == "hardlink":
        try:
            os.link(src, dest)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
    shutil.copy2(src, dest)
