"""Load a dataset folder (or a single table file) into a :class:`Dataset`.

Four layouts are recognised, in this order:

* **images + labels file** -- ``DIR/labels.csv`` (or ``labels=FILE``) with a path and a
  label column; paths are relative to the labels file's folder.
* **embeddings** -- an ``.npy`` matrix with a labels file beside it, or a Parquet file whose
  features are a single list/array column.
* **table** -- one ``.csv``, ``.tsv`` or ``.parquet`` file (or a folder holding exactly one); a
  text table in the separator, decimal mark and encoding a spreadsheet wrote it in.
* **text** -- such a table with ``text_column=NAME``: that column's strings are the inputs.
* **image class folders** -- ``DIR/<class>/<file>``.

Nothing here writes to disk. Every problem with the input raises :class:`DatasetError`
with one line that names the file (and row) and says what to do.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import DatasetError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
TEXT_TABLE_SUFFIXES = frozenset({".csv", ".tsv"})
TABLE_SUFFIXES = TEXT_TABLE_SUFFIXES | {".parquet", ".pq"}
WORKBOOK_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls", ".ods"})
# the field separators spreadsheets write: a comma; a semicolon where the comma is the
# decimal mark (Excel in much of Europe); a tab; a pipe
CSV_SEPARATORS = ",;\t|"
_DECIMAL_COMMA = re.compile(r"\s*[-+]?\d*,?\d+(?:[eE][-+]?\d+)?\s*")
LAYOUTS = ("image_folder", "image_labels", "table", "embeddings", "text")

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled dataset as read from disk.

    Attributes
    ----------
    source : Path
        The folder or file the user pointed at.
    layout : {"image_folder", "image_labels", "table", "embeddings", "text"}
    sample_ids : ndarray of str, shape (n_samples,)
        Stable, human-meaningful ids: relative image paths, the id column, or row numbers.
    labels : ndarray of int64, shape (n_samples,)
        Given labels as indices into ``class_names``.
    class_names : list
        The label values exactly as given (str or int), sorted.
    image_paths : list of Path or None
        Absolute image paths, for image layouts.
    table : DataFrame or None
        The labels file or table as read (all columns, original order), for export.
    features : DataFrame or ndarray or Series or None
        Table feature columns, the embedding matrix, or the texts.
    files : dict
        The user's files that define the dataset, by role (``table``, ``labels``,
        ``embeddings``); the export writes the same kinds of files.
    """

    source: Path
    layout: str
    sample_ids: np.ndarray
    labels: np.ndarray
    class_names: list
    image_paths: list[Path] | None = None
    table: pd.DataFrame | None = None
    features: pd.DataFrame | np.ndarray | None = None
    files: dict[str, Path] = field(default_factory=dict)
    label_column: str = "label"

    @property
    def table_format(self) -> dict:
        """How ``table`` was written, as ``DataFrame.to_csv`` keywords (separator, decimal
        mark, encoding); empty for Parquet or no table. The export writes it back alike."""
        return {} if self.table is None else self.table.attrs.get("table_format", {})

    @property
    def n_samples(self) -> int:
        return len(self.labels)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def root(self) -> Path:
        """The folder that holds the dataset (the source itself, or its parent for a file)."""
        return self.source if self.source.is_dir() else self.source.parent


def load_dataset(
    path: str | Path,
    *,
    labels: str | Path | None = None,
    label_column: str = "label",
    path_column: str = "path",
    id_column: str | None = None,
    text_column: str | None = None,
) -> Dataset:
    """Read a dataset folder or table file, detecting its layout.

    Parameters
    ----------
    path : str or Path
        A dataset folder, or one ``.csv`` / ``.tsv`` / ``.parquet`` / ``.npy`` file.
    labels : str or Path, default=None
        Labels file for images or an ``.npy`` matrix; default ``labels.csv`` beside the data.
    label_column : str, default="label"
    path_column : str, default="path"
        Column of the labels file that holds image paths.
    id_column : str, default=None
        Table column to use as sample id; default the row number from 0.
    text_column : str, default=None
        Table column of free text: the dataset is then text, and every other column except
        the label and id is kept for export but not used as a feature.

    Returns
    -------
    Dataset
    """
    source = Path(path).resolve()
    if not source.exists():
        raise DatasetError(f"{path}: no such file or folder. Check the path.")
    labels_file = _find_labels_file(source, labels)
    dataset = _load(source, labels_file, label_column, path_column, id_column, text_column)
    if text_column is not None and dataset.layout != "text":
        raise DatasetError(f"{path}: --text-column needs a CSV or Parquet table, and this is "
                           f"{dataset.layout.replace('_', ' ')} data. Drop --text-column.")
    return dataset


def _load(source: Path, labels_file: Path | None, label_column: str, path_column: str,
          id_column: str | None, text_column: str | None) -> Dataset:
    if source.is_file():
        return _load_file(source, labels_file, label_column, id_column, text_column)

    npys = sorted(p for p in source.iterdir() if p.suffix == ".npy")
    if labels_file is not None:
        head = _read_table(labels_file)
        if path_column in head.columns:
            return _load_image_labels(source, labels_file, head, label_column, path_column)
        if len(npys) == 1:
            return _load_npy(npys[0], labels_file, label_column, id_column, head)
    tables = sorted(p for p in source.iterdir() if p.suffix in TABLE_SUFFIXES and p.is_file())
    class_dirs = [d for d in sorted(source.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if class_dirs and any(_image_files(d) for d in class_dirs):
        return _load_image_folder(source, class_dirs)
    if len(tables) == 1:
        return _load_file(tables[0], None, label_column, id_column, text_column)
    if npys:
        raise DatasetError(
            f"{source}: found {npys[0].name} but no labels file beside it. "
            "Add labels.csv with a label column or pass --labels FILE."
        )
    workbooks = sorted(p for p in source.iterdir() if p.suffix.lower() in WORKBOOK_SUFFIXES)
    if not tables and len(workbooks) == 1:
        _refuse_workbook(workbooks[0])
    if len(tables) > 1:
        names = ", ".join(p.name for p in tables)
        raise DatasetError(
            f"{source}: several tables ({names}); cannot tell which one is the dataset. "
            "Pass the table file itself."
        )
    raise DatasetError(
        f"{source}: unknown dataset layout. Use class folders (DIR/<class>/<image>), "
        "images with labels.csv, one CSV/Parquet table, or an .npy with labels.csv."
    )


def content_hash(dataset: Dataset) -> str:
    """SHA-256 of everything the results depend on: file names and bytes, in a fixed order."""
    h = hashlib.sha256()
    paths: list[Path] = sorted(dataset.files.values())
    if dataset.image_paths is not None:
        paths += dataset.image_paths
    root = dataset.root
    for p in paths:
        h.update(_relative_posix(p, root).encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


# -- layouts -----------------------------------------------------------------------------


def _load_image_folder(root: Path, class_dirs: list[Path]) -> Dataset:
    paths, labels, names = [], [], []
    for d in class_dirs:
        files = _image_files(d)
        if not files:
            continue
        names.append(d.name)
        paths += files
        labels += [len(names) - 1] * len(files)
    _check_classes(names, str(root), "class folders")
    ids = np.array([_relative_posix(p, root) for p in paths], dtype=object)
    return Dataset(
        source=root, layout="image_folder", sample_ids=ids,
        labels=np.asarray(labels, dtype=np.int64), class_names=names, image_paths=paths,
    )


def _load_image_labels(
    root: Path, labels_file: Path, frame: pd.DataFrame, label_column: str, path_column: str
) -> Dataset:
    name = labels_file.name
    _require_column(frame, label_column, labels_file, "--label-column")
    base = labels_file.parent
    ids, paths, seen = [], [], {}
    for row, raw in enumerate(frame[path_column].tolist()):
        where = f"{name} {_row(labels_file, row)}"
        if raw is None or (isinstance(raw, float) and np.isnan(raw)) or str(raw).strip() == "":
            raise DatasetError(f"{where}: path is empty. Fill it in or delete the row.")
        rel = PurePosixPath(str(raw).strip().replace("\\", "/"))
        sample_id = str(PurePosixPath(*[p for p in rel.parts if p != "."]))
        if rel.is_absolute() or ".." in rel.parts:
            raise DatasetError(f"{where}: {raw} points outside {base.name}/. "
                               "Give paths relative to the labels file's folder.")
        full = (base / sample_id).resolve()
        if not full.is_file():
            raise DatasetError(f"{where}: {sample_id} does not exist. "
                               "Fix the path or delete the row.")
        if sample_id in seen:
            raise DatasetError(
                f"{where}: {sample_id} is listed twice (first at {seen[sample_id]}). "
                "Keep one row per image."
            )
        seen[sample_id] = _row(labels_file, row)
        ids.append(sample_id)
        paths.append(full)
    labels, names = _encode_labels(frame[label_column], labels_file)
    return Dataset(
        source=root, layout="image_labels", sample_ids=np.array(ids, dtype=object),
        labels=labels, class_names=names, image_paths=paths, table=frame,
        files={"labels": labels_file}, label_column=label_column,
    )


def _load_file(
    path: Path, labels_file: Path | None, label_column: str, id_column: str | None,
    text_column: str | None = None,
) -> Dataset:
    if path.suffix == ".npy":
        if labels_file is None:
            raise DatasetError(
                f"{path.name}: no labels file beside it. "
                "Add labels.csv with a label column or pass --labels FILE."
            )
        return _load_npy(path, labels_file, label_column, id_column)
    if path.suffix.lower() in WORKBOOK_SUFFIXES:
        _refuse_workbook(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise DatasetError(
            f"{path.name}: not a dataset file. Pass a folder, or a .csv, .tsv, .parquet or .npy "
            "file."
        )
    frame = _read_table(path)
    _require_column(frame, label_column, path, "--label-column")
    ids = _sample_ids(frame, id_column, path)
    labels, names = _encode_labels(frame[label_column], path)
    if text_column is not None:
        _require_column(frame, text_column, path, "--text-column")
        texts = frame[text_column]
        if pd.api.types.is_numeric_dtype(texts) and texts.notna().any():
            raise DatasetError(f"{path.name}: --text-column '{text_column}' holds numbers, "
                               "not text. Name the column that holds the texts.")
        return Dataset(
            source=path, layout="text", sample_ids=ids, labels=labels, class_names=names,
            table=frame, features=texts.fillna("").astype(str), files={"table": path},
            label_column=label_column,
        )
    rest = [c for c in frame.columns if c not in (label_column, id_column)]
    vector_cols = [c for c in rest if _is_vector_column(frame[c])]
    if vector_cols:
        if len(rest) != 1:
            raise DatasetError(
                f"{path.name}: an embedding column ({vector_cols[0]}) beside other features "
                f"({', '.join(c for c in rest if c != vector_cols[0])}). "
                "Keep one list column of vectors, or only scalar feature columns."
            )
        matrix = _stack_vectors(frame[vector_cols[0]], path)
        return Dataset(
            source=path, layout="embeddings", sample_ids=ids, labels=labels, class_names=names,
            table=frame, features=matrix, files={"table": path}, label_column=label_column,
        )
    if not rest:
        raise DatasetError(
            f"{path.name}: no feature columns besides '{label_column}'. "
            "Add feature columns, or point at the images the labels belong to."
        )
    _check_no_infinity(frame[rest], path)
    return Dataset(
        source=path, layout="table", sample_ids=ids, labels=labels, class_names=names,
        table=frame, features=frame[rest], files={"table": path}, label_column=label_column,
    )


def _load_npy(path: Path, labels_file: Path, label_column: str, id_column: str | None,
              frame: pd.DataFrame | None = None) -> Dataset:
    """``frame``: the labels file, where the caller has read it already."""
    try:
        matrix = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DatasetError(f"{path.name}: cannot read as a numeric .npy matrix ({exc}). "
                           "Save it with numpy.save from a float array.") from None
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number):
        raise DatasetError(
            f"{path.name}: expected a 2-d numeric matrix, got shape {matrix.shape} "
            f"and dtype {matrix.dtype}. Save one row per sample."
        )
    frame = _read_table(labels_file) if frame is None else frame
    _require_column(frame, label_column, labels_file, "--label-column")
    if len(frame) != len(matrix):
        raise DatasetError(
            f"{labels_file.name}: {len(frame)} rows but {path.name} has {len(matrix)}. "
            "Give one label row per embedding row, in the same order."
        )
    _check_finite_rows(matrix, path)
    ids = _sample_ids(frame, id_column, labels_file)
    labels, names = _encode_labels(frame[label_column], labels_file)
    root = path.parent
    return Dataset(
        source=root, layout="embeddings", sample_ids=ids, labels=labels, class_names=names,
        table=frame, features=matrix.astype(np.float32),
        files={"embeddings": path, "labels": labels_file}, label_column=label_column,
    )


# -- helpers -----------------------------------------------------------------------------


def _refuse_workbook(path: Path) -> None:
    raise DatasetError(f"{path.name}: a spreadsheet workbook, which is not read directly. "
                       "Save the sheet as CSV (any separator) and pass that file.")


def _row(path: Path, index: int) -> str:
    """Where row ``index`` (0-based) of a table is, as the user sees it: a CSV's line as a
    spreadsheet numbers it (line 1 is the header), a Parquet row as pandas indexes it."""
    return f"row {index + 2}" if path.suffix in TEXT_TABLE_SUFFIXES else f"row {index}"


def _find_labels_file(source: Path, labels: str | Path | None) -> Path | None:
    if labels is not None:
        found = Path(labels).resolve()
        if not found.is_file():
            raise DatasetError(f"{labels}: labels file does not exist. Check --labels.")
        return found
    beside = (source if source.is_dir() else source.parent) / "labels.csv"
    if source.is_file() and source.suffix != ".npy":
        return None
    return beside if beside.is_file() else None


def _read_table(path: Path) -> pd.DataFrame:
    """A CSV/TSV or Parquet file as a frame; a text table's format goes in its ``attrs``
    (see :attr:`Dataset.table_format`)."""
    try:
        if path.suffix in TEXT_TABLE_SUFFIXES:
            return _read_text_table(path)
        return pq.read_table(path).to_pandas()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, pa.ArrowInvalid,
            UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"{path.name}: cannot be read as a table ({reason}). "
                           "Check that it is a valid CSV or Parquet file.") from None


def _read_text_table(path: Path) -> pd.DataFrame:
    with path.open("rb") as f:
        head = f.read(1 << 16)
    encoding = "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
    sep = _sniff_separator(head.decode("utf-8", errors="replace").splitlines()[:6])
    try:
        frame = pd.read_csv(path, sep=sep, encoding=encoding, keep_default_na=True)
    except UnicodeDecodeError:
        # not UTF-8: most likely a spreadsheet's export on Windows, in its code page
        encoding = "cp1252"
        frame = pd.read_csv(path, sep=sep, encoding=encoding, keep_default_na=True)
        log.info("%s: not UTF-8, read as Windows-1252", path.name)
    table_format = {"sep": sep, "encoding": encoding}
    if sep == ";" and _decimal_commas_to_floats(frame):
        table_format["decimal"] = ","
    frame.attrs["table_format"] = table_format
    return frame


def _sniff_separator(lines: list[str]) -> str:
    """The separator that splits the first lines into the most fields, the same number on
    each; a comma when none does better than one field."""
    lines = lines[:-1] if len(lines) > 1 else lines  # the last may be cut off mid-row
    best, fields = ",", 1
    for sep in CSV_SEPARATORS:
        counts = {len(row) for row in csv.reader(lines, delimiter=sep) if row}
        if len(counts) == 1 and (n := counts.pop()) > fields:
            best, fields = sep, n
    return best


def _decimal_commas_to_floats(frame: pd.DataFrame) -> bool:
    """Turn the text columns that hold only decimal-comma numbers ("3,14") into floats, in
    place; whether there was any."""
    found = False
    for name in frame.columns:
        col = frame[name]
        if not pd.api.types.is_string_dtype(col):
            continue
        values = col.dropna().astype(str)
        if len(values) and values.str.contains(",").any() and values.str.fullmatch(
                _DECIMAL_COMMA).all():
            frame[name] = pd.to_numeric(col.str.replace(",", ".", regex=False))
            found = True
    return found


def _require_column(frame: pd.DataFrame, column: str, path: Path, option: str) -> None:
    if column not in frame.columns:
        cols = ", ".join(map(str, frame.columns[:12])) + (", ..." if frame.shape[1] > 12 else "")
        likely = (("text", "sentence", "review", "content", "body") if option == "--text-column"
                  else ("label", "labels", "target", "class", "y"))
        hint = next((c for c in likely if c in frame.columns), None)
        fix = f"Pass {option} {hint}" if hint and hint != column else f"Pass {option} NAME"
        raise DatasetError(f"{path.name}: no column '{column}' (columns: {cols}). {fix}.")


def _encode_labels(values: pd.Series, path: Path) -> tuple[np.ndarray, list]:
    missing = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DatasetError(f"{path.name} {_row(path, row)}: label is empty. "
                           "Fill it in or delete the row.")
    if pd.api.types.is_float_dtype(values) and np.all(values == np.round(values)):
        values = values.astype(np.int64)
    elif not pd.api.types.is_integer_dtype(values):
        values = values.astype(str)
    names, labels = np.unique(values.to_numpy(), return_inverse=True)
    names = [v.item() if hasattr(v, "item") else v for v in names]
    _check_classes(names, path.name, "labels")
    return labels.astype(np.int64), names


def _check_classes(names: list, where: str, what: str) -> None:
    if len(names) == 0:
        raise DatasetError(f"{where}: no labelled samples found. Add samples with labels.")
    if len(names) == 1:
        raise DatasetError(f"{where}: only one class ({names[0]!r}) in the {what}. "
                           "Label noise needs at least two classes.")


def _sample_ids(frame: pd.DataFrame, id_column: str | None, path: Path) -> np.ndarray:
    if id_column is None:
        return np.array([str(i) for i in range(len(frame))], dtype=object)
    _require_column(frame, id_column, path, "--id-column")
    ids = frame[id_column].astype(str).to_numpy(dtype=object)
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise DatasetError(f"{path.name} {_row(path, row)}: id {ids[row]!r} appears twice. "
                           "Make the id column unique or drop --id-column.")
    return ids


def _is_vector_column(column: pd.Series) -> bool:
    first = column.dropna().head(1).tolist()
    return bool(first) and isinstance(first[0], (list, tuple, np.ndarray))


def _stack_vectors(column: pd.Series, path: Path) -> np.ndarray:
    lengths = column.map(lambda v: -1 if v is None else len(v)).to_numpy()
    bad = lengths != lengths.max()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{path.name} {_row(path, row)}: embedding has length {lengths[row]}, "
                           f"others {lengths.max()}. Give every row a vector of the same length.")
    matrix = np.stack(column.to_numpy()).astype(np.float32)
    _check_finite_rows(matrix, path)
    return matrix


def _check_finite_rows(matrix: np.ndarray, path: Path) -> None:
    # an embedding has no cell to impute: a NaN or inf is a broken row
    if not np.isfinite(matrix).all():
        row = int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])
        raise DatasetError(f"{path.name} {_row(path, row)}: embedding contains NaN or inf. "
                           "Fix or drop that row.")


def _check_no_infinity(features: pd.DataFrame, path: Path) -> None:
    # a missing value is imputed, but an infinite one is a broken computation upstream
    for name in features.columns:
        col = features[name]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            infinite = np.isinf(col.to_numpy(dtype=np.float64, na_value=np.nan))
            if infinite.any():
                row = int(np.flatnonzero(infinite)[0])
                raise DatasetError(
                    f"{path.name} {_row(path, row)}, column '{name}': infinite value. Replace "
                    "it, or leave the cell empty to have it imputed.")


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _relative_posix(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
