import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cleanlab_ng import DatasetError, load_dataset


def test_image_folder_ids_are_relative_paths(image_folder):
    root, ids, _ = image_folder
    ds = load_dataset(root)
    assert ds.layout == "image_folder"
    assert sorted(ds.sample_ids) == sorted(ids)
    assert ds.class_names == [f"c{i}" for i in range(10)]
    assert all(ds.class_names[y] == s.split("/")[0] for y, s in zip(ds.labels, ds.sample_ids))


def test_images_with_labels_file_keep_paths_as_written(tmp_path):
    img = tmp_path / "imgs" / "sub"
    img.mkdir(parents=True)
    for i in range(4):
        Image.new("L", (8, 8), color=i * 40).save(img / f"{i}.png")
    pd.DataFrame({"file": ["./sub/0.png", "sub/1.png", "sub//2.png", "sub/3.png"],
                  "label": ["cat", "dog", "cat", "dog"]}).to_csv(tmp_path / "imgs" / "labels.csv",
                                                                 index=False)
    ds = load_dataset(tmp_path / "imgs", path_column="file")
    assert ds.layout == "image_labels"
    assert list(ds.sample_ids) == ["sub/0.png", "sub/1.png", "sub/2.png", "sub/3.png"]
    assert ds.class_names == ["cat", "dog"] and list(ds.labels) == [0, 1, 0, 1]


def test_csv_table_with_categories_and_int_labels(tmp_path):
    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0, 4.0], "colour": ["red", "blue", None, "red"],
                          "label": [3, 7, 3, 7]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    ds = load_dataset(tmp_path / "t.csv")
    assert ds.layout == "table" and ds.class_names == [3, 7]
    assert list(ds.sample_ids) == ["0", "1", "2", "3"]
    assert list(ds.features.columns) == ["x", "colour"]


def test_folder_with_one_parquet_table_and_id_column(tmp_path):
    frame = pd.DataFrame({"key": ["a", "b", "c"], "f": [0.1, 0.2, 0.3], "y": ["u", "v", "u"]})
    frame.to_parquet(tmp_path / "data.parquet")
    ds = load_dataset(tmp_path, label_column="y", id_column="key")
    assert ds.layout == "table" and list(ds.sample_ids) == ["a", "b", "c"]


def test_a_european_spreadsheet_export_reads_as_numbers(tmp_path):
    # Excel where the comma is the decimal mark: semicolons, decimal commas, Windows-1252
    text = "width;count;label\n1,5;2;café\n-0,25;3;thé\n2;4;café\n;5;thé\n"
    (tmp_path / "t.csv").write_bytes(text.encode("cp1252"))
    ds = load_dataset(tmp_path / "t.csv")
    assert ds.class_names == ["café", "thé"] and list(ds.labels) == [0, 1, 0, 1]
    np.testing.assert_array_equal(ds.features["width"], [1.5, -0.25, 2.0, np.nan])
    assert ds.features["count"].dtype == np.int64
    assert ds.table_format == {"sep": ";", "encoding": "cp1252", "decimal": ","}


def test_tab_separated_table_and_its_rows_as_lines(tmp_path):
    (tmp_path / "t.tsv").write_text("f\tlabel\n1.0\ta\n2.0\t\n")
    with pytest.raises(DatasetError, match=r"^t.tsv row 3: label is empty"):
        load_dataset(tmp_path / "t.tsv")
    (tmp_path / "t.tsv").write_text("f\tlabel\n1.0\ta\n2.0\tb\n")
    ds = load_dataset(tmp_path / "t.tsv")
    assert ds.class_names == ["a", "b"] and ds.table_format == {"sep": "\t", "encoding": "utf-8"}


def test_npy_embeddings_with_labels_beside(tmp_path):
    np.save(tmp_path / "emb.npy", np.random.default_rng(0).normal(size=(5, 3)))
    pd.DataFrame({"label": list("ababa")}).to_csv(tmp_path / "labels.csv", index=False)
    ds = load_dataset(tmp_path)
    assert ds.layout == "embeddings" and ds.features.shape == (5, 3)


def test_parquet_with_vector_column_is_embeddings(tmp_path):
    frame = pd.DataFrame({"vec": [np.arange(4.0) + i for i in range(3)], "label": [0, 1, 0]})
    frame.to_parquet(tmp_path / "emb.parquet")
    ds = load_dataset(tmp_path / "emb.parquet")
    assert ds.layout == "embeddings" and ds.features.shape == (3, 4)


def _one_class(tmp_path):
    (tmp_path / "cat").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "cat" / "a.png")


def _npy_only(tmp_path):
    np.save(tmp_path / "emb.npy", np.zeros((2, 2)))


def _no_label_column(tmp_path):
    pd.DataFrame({"f": [1, 2], "target": [0, 1]}).to_csv(tmp_path / "t.csv", index=False)


def _empty_label(tmp_path):
    pd.DataFrame({"f": [1, 2, 3], "label": ["a", None, "b"]}).to_csv(tmp_path / "t.csv",
                                                                     index=False)


def _empty_label_parquet(tmp_path):
    pd.DataFrame({"f": [1, 2, 3], "label": ["a", None, "b"]}).to_parquet(tmp_path / "t.parquet")


def _missing_image(tmp_path):
    Image.new("L", (4, 4)).save(tmp_path / "a.png")
    pd.DataFrame({"path": ["a.png", "b.png"], "label": [0, 1]}).to_csv(
        tmp_path / "labels.csv", index=False)


def _text_only(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")


def _infinite_value(tmp_path):
    pd.DataFrame({"f": [1.0, 2.0, np.inf], "g": [1.0, None, 3.0], "label": ["a", "b", "a"]}
                 ).to_csv(tmp_path / "t.csv", index=False)


def _infinite_embedding(tmp_path):
    pd.DataFrame({"vec": [[0.0, 1.0], [np.nan, 1.0]], "label": ["a", "b"]}).to_parquet(
        tmp_path / "emb.parquet")


def _infinite_npy_row(tmp_path):
    np.save(tmp_path / "emb.npy", np.array([[0.0, 1.0], [1.0, 0.0], [np.inf, 1.0]]))
    pd.DataFrame({"label": ["a", "b", "a"]}).to_csv(tmp_path / "labels.csv", index=False)


def _workbook(tmp_path):
    (tmp_path / "t.xlsx").write_bytes(b"PK\x03\x04")


BAD_INPUTS = [
    (_one_class, "{root}: only one class ('cat') in the class folders. "
                 "Label noise needs at least two classes."),
    (_npy_only, "{root}: found emb.npy but no labels file beside it. "
                "Add labels.csv with a label column or pass --labels FILE."),
    (_no_label_column, "t.csv: no column 'label' (columns: f, target). "
                       "Pass --label-column target."),
    (_empty_label, "t.csv row 3: label is empty. Fill it in or delete the row."),
    # a CSV row as a spreadsheet numbers it, a Parquet row as pandas indexes it
    (_empty_label_parquet, "t.parquet row 1: label is empty. Fill it in or delete the row."),
    (_missing_image, "labels.csv row 3: b.png does not exist. Fix the path or delete the row."),
    (_infinite_value, "t.csv row 4, column 'f': infinite value. Replace it, or leave the "
                      "cell empty to have it imputed."),
    (_infinite_embedding, "emb.parquet row 1: embedding contains NaN or inf. "
                          "Fix or drop that row."),
    (_infinite_npy_row, "emb.npy row 2: embedding contains NaN or inf. Fix or drop that row."),
    (_workbook, "t.xlsx: a spreadsheet workbook, which is not read directly. Save the sheet as "
                "CSV (any separator) and pass that file."),
    (_text_only, "{root}: unknown dataset layout. Use class folders (DIR/<class>/<image>), "
                 "images with labels.csv, one CSV/Parquet table, or an .npy with labels.csv."),
]


@pytest.mark.parametrize("make, message", BAD_INPUTS, ids=[m.__name__ for m, _ in BAD_INPUTS])
def test_bad_input_raises_one_line_error(tmp_path, make, message):
    root = tmp_path / "ds"
    root.mkdir()
    make(root)
    with pytest.raises(DatasetError) as info:
        load_dataset(root)
    assert str(info.value) == message.format(root=root)
