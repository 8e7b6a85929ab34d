"""End to end through the command line, on real files written from scikit-learn's digits."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from sklearn.metrics import roc_auc_score

import cleanlab_ng
from cleanlab_ng.detectors import DETECTORS, cl
from cleanlab_ng.errors import DatasetError
from cli.main import cli

from .conftest import tree_hash
from .test_data import BAD_INPUTS

FAST = ["--epochs", "6", "--threads", "1", "--recov-runs", "256"]
REPORT_COLUMNS = ["sample_id", "given_label", "predicted_label", "suggested_label",
                  "noise_score", "is_noisy", "issue", "bmm_score", "bmm_flag", "bmm_loss",
                  "late_stopping_score", "late_stopping_flag", "late_stopping_fkl_epoch"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _auroc(report: pd.DataFrame, flipped_ids) -> float:
    truth = report["sample_id"].isin(set(flipped_ids))
    return roc_auc_score(truth, report["noise_score"])


def test_csv_table_end_to_end(tmp_path, csv_table):
    path, frame, flipped = csv_table
    before = tree_hash(path.parent)
    out = tmp_path / "out"
    result = invoke("clean", path, "--out", out, "--id-column", "id", *FAST)
    assert result.exit_code == 0, result.output
    assert tree_hash(path.parent) == before
    report = pd.read_parquet(out / "report.parquet")
    assert set(REPORT_COLUMNS) <= set(report.columns)
    assert list(report["sample_id"]) == list(frame["id"])
    assert report["given_label"].dtype == np.int64  # integer labels stay integers
    assert _auroc(report, frame["id"][flipped]) > 0.9
    flagged = pd.read_csv(out / "flagged.csv")
    assert flagged["noise_score"].is_monotonic_decreasing
    assert len(flagged) == report["is_noisy"].sum()
    cleaned = pd.read_csv(out / "cleaned" / "digits.csv")
    assert list(cleaned.columns) == list(frame.columns)
    assert list(cleaned["id"]) == list(frame["id"][~report["is_noisy"].to_numpy()])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 600 and summary["flagged"] == report["is_noisy"].sum()
    # the cl baseline runs where cleanlab is installed (the dev extra), else it is skipped
    expected = set(DETECTORS) if cl.available() else set(DETECTORS) - {"cl"}
    assert set(summary["detectors"]) == expected


def test_cleaned_table_keeps_a_spreadsheets_format(tmp_path, csv_table):
    _, frame, _ = csv_table
    table = frame.drop(columns="id").assign(
        px20=frame["px20"] / 16, label=frame["label"].map(lambda y: f"zéro-{y}"))
    path = tmp_path / "in" / "d.csv"
    path.parent.mkdir()
    table.to_csv(path, sep=";", decimal=",", encoding="cp1252", index=False)
    out = tmp_path / "out"
    assert invoke("clean", path, "--out", out, *FAST).exit_code == 0
    noisy = pd.read_parquet(out / "report.parquet")["is_noisy"].to_numpy()
    lines = path.read_bytes().splitlines(keepends=True)
    kept = [lines[0]] + [line for line, n in zip(lines[1:], noisy) if not n]
    assert (out / "cleaned" / "d.csv").read_bytes() == b"".join(kept)


def test_parquet_table_and_npy_embeddings(tmp_path, digits):
    X, _, given, flipped = digits
    src = tmp_path / "pq"
    src.mkdir()
    frame = pd.DataFrame(X[:, :32], columns=[f"f{i}" for i in range(32)])
    frame["label"] = [f"digit{g}" for g in given]
    frame.to_parquet(src / "d.parquet")
    result = invoke("clean", src, "--out", tmp_path / "out1", *FAST)
    assert result.exit_code == 0, result.output
    report = pd.read_parquet(tmp_path / "out1" / "report.parquet")
    assert report["given_label"].iloc[0] == f"digit{given[0]}"
    assert (tmp_path / "out1" / "cleaned" / "d.parquet").is_file()

    emb = tmp_path / "emb"
    emb.mkdir()
    np.save(emb / "vectors.npy", X.astype(np.float32))
    pd.DataFrame({"label": given}).to_csv(emb / "labels.csv", index=False)
    before = tree_hash(emb)
    result = invoke("clean", emb, "--out", tmp_path / "out2", *FAST)
    assert result.exit_code == 0, result.output
    assert tree_hash(emb) == before
    report = pd.read_parquet(tmp_path / "out2" / "report.parquet")
    kept = np.load(tmp_path / "out2" / "cleaned" / "vectors.npy")
    assert len(kept) == (~report["is_noisy"]).sum() == len(
        pd.read_csv(tmp_path / "out2" / "cleaned" / "labels.csv"))
    assert _auroc(report, report["sample_id"][flipped]) > 0.9


def test_image_folder_with_an_unreadable_file(tmp_path, image_folder):
    root, ids, flipped = image_folder
    (root / "c3" / "broken.png").write_bytes(b"not an image")
    before = tree_hash(root)
    out = tmp_path / "out"
    result = invoke("clean", root, "--out", out, "--image-size", "32", *FAST)
    assert result.exit_code == 0, result.output
    assert tree_hash(root) == before
    report = pd.read_csv(out / "report.csv")
    broken = report[report["sample_id"] == "c3/broken.png"].iloc[0]
    assert broken["issue"] == "unreadable" and not broken["is_noisy"]
    assert json.loads((out / "summary.json").read_text())["unreadable"] == 1
    kept = sorted(p.relative_to(out / "cleaned").as_posix()
                  for p in (out / "cleaned").rglob("*.png"))
    expected = sorted(report.loc[report["issue"] == "clean", "sample_id"])
    assert kept == expected
    assert (out / "cleaned" / kept[0]).stat().st_ino == (root / kept[0]).stat().st_ino
    assert _auroc(report.dropna(subset=["noise_score"]), ids[flipped]) > 0.75


def test_images_with_labels_csv(tmp_path, digits):
    X, _, given, _ = digits
    src = tmp_path / "src"
    (src / "img").mkdir(parents=True)
    rows = []
    for i in range(120):
        Image.fromarray((X[i].reshape(8, 8) * 15).astype(np.uint8)).save(src / "img" / f"{i}.png")
        rows.append({"path": f"img/{i}.png", "label": int(given[i]), "note": "x"})
    pd.DataFrame(rows).to_csv(src / "labels.csv", index=False)
    out = tmp_path / "out"
    result = invoke("clean", src, "--out", out, "--image-size", "32", "--export", "copy", *FAST)
    assert result.exit_code == 0, result.output
    cleaned = pd.read_csv(out / "cleaned" / "labels.csv")
    assert list(cleaned.columns) == ["path", "label", "note"]
    assert all((out / "cleaned" / p).is_file() for p in cleaned["path"])


def test_same_seed_same_report_and_rerun_reuses_record(tmp_path, csv_table):
    path, _, _ = csv_table
    a, b = tmp_path / "a", tmp_path / "b"
    assert invoke("clean", path, "--out", a, *FAST).exit_code == 0
    assert invoke("clean", path, "--out", b, *FAST).exit_code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(a / "report.parquet"),
                                  pd.read_parquet(b / "report.parquet"))
    first = pd.read_parquet(a / "report.parquet")
    result = invoke("clean", path, "--out", a, "--detectors", "bmm", "--json", *FAST)
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert not {"encode", "train_oof", "train_dynamics"} & set(summary["seconds"])
    again = pd.read_parquet(a / "report.parquet")
    assert "late_stopping_score" not in again.columns
    # the reloaded proxy runs give the same averaged detector
    assert summary["detectors"]["bmm"]["runs"] == summary["proxy"]["dynamics_runs"] > 1
    pd.testing.assert_series_equal(again["bmm_score"], first["bmm_score"])


def test_record_from_other_training_code_is_retrained(tmp_path, csv_table, monkeypatch):
    path, _, _ = csv_table
    args = ("clean", path, "--out", tmp_path / "o", "--detectors", "bmm", "--json", *FAST)
    assert invoke(*args).exit_code == 0
    monkeypatch.setattr("cleanlab_ng.pipeline.code_fingerprint", lambda: "other code")
    result = invoke(*args)
    assert result.exit_code == 0
    assert "train_dynamics" in json.loads(result.stdout)["seconds"]


def test_json_summary_and_fail_above(tmp_path, csv_table):
    path, _, _ = csv_table
    result = invoke("clean", path, "--out", tmp_path / "o", "--json", "--quiet",
                    "--fail-above", "0.05", *FAST)
    assert result.exit_code == 3
    summary = json.loads(result.stdout)
    assert summary["estimated_noise_rate"] > 0.05


def test_overwrite_never_deletes_foreign_files(tmp_path, csv_table):
    path, _, _ = csv_table
    out = tmp_path / "out"
    (out / "cleaned").mkdir(parents=True)
    (out / "cleaned" / "mine.txt").write_text("keep me")
    refused = invoke("clean", path, "--out", out, *FAST)
    assert refused.exit_code == 2
    assert refused.stderr == (f"error: {out}: folder is not empty and was not written by "
                              "cleanlab-ng. Choose an empty --out, or pass --overwrite to "
                              "write there anyway.\n")
    assert invoke("clean", path, "--out", out, "--overwrite", *FAST).exit_code == 0
    assert invoke("clean", path, "--out", out, "--export", "none", *FAST).exit_code == 0
    assert (out / "cleaned" / "mine.txt").read_text() == "keep me"
    assert not (out / "cleaned" / "digits.csv").exists()


def test_out_may_sit_beside_a_table_file(csv_table):
    path, _, _ = csv_table
    before = tree_hash(path)
    assert invoke("clean", path, "--out", path.parent / "out", *FAST).exit_code == 0
    assert (path.parent / "out" / "cleaned" / "digits.csv").is_file()
    assert tree_hash(path) == before


@pytest.mark.parametrize("layout", ["table", "images"])
def test_cleaning_a_cleaned_export_into_its_own_out_is_refused(tmp_path, csv_table,
                                                                 image_folder, layout):
    # the run would first clear OUT/cleaned, which here is the input itself
    source = csv_table[0] if layout == "table" else image_folder[0]
    out = tmp_path / "out"
    fast = [*FAST, "--backbone", "pixels", "--detectors", "bmm"]
    assert invoke("clean", source, "--out", out, *fast).exit_code == 0
    again = out / "cleaned" / source.name if layout == "table" else out / "cleaned"
    before = tree_hash(again)
    result = invoke("clean", again, "--out", out, *fast)
    assert result.exit_code == 2
    assert result.stderr == (f"error: {again}: this input lies inside the output folder {out}, "
                             "which every run rewrites. Choose another --out.\n")
    assert tree_hash(again) == before


def test_bad_input_stays_one_line_without_cleanlab(tmp_path, csv_table, monkeypatch):
    monkeypatch.setattr(cl, "available", lambda: False)
    path, _, _ = csv_table
    result = invoke("clean", path.parent, "--out", path.parent / "out")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_a_librarys_warning_is_one_log_line(tmp_path, csv_table, monkeypatch):
    def warn_then_fail(*args, **kwargs):
        warnings.warn("Best performing initialization did not converge.", UserWarning)
        raise DatasetError("t.csv: stop here.")

    monkeypatch.setattr(cleanlab_ng, "clean", warn_then_fail)
    path, _, _ = csv_table
    result = invoke("clean", path, "--out", tmp_path / "out")
    assert result.exit_code == 2
    warning, error = result.stderr.strip().splitlines()
    assert "did not converge. (UserWarning)" in warning and ".py" not in warning
    assert error == "error: t.csv: stop here."


@pytest.mark.parametrize("case", ["out_inside", "cuda", "no_labels", "bad_detector"])
def test_cli_errors_are_one_line_with_exit_2(tmp_path, csv_table, case):
    path, _, _ = csv_table
    args = {
        "out_inside": ["clean", path.parent, "--out", path.parent / "out"],
        "cuda": ["clean", path, "--out", tmp_path / "o", "--device", "cuda"],
        "no_labels": ["clean", path, "--out", tmp_path / "o", "--label-column", "y"],
        "bad_detector": ["clean", path, "--out", tmp_path / "o", "--detectors", "bnm"],
    }[case]
    expected = {
        "out_inside": f"error: {path.parent / 'out'}: the output folder lies inside the input "
                      f"{path.parent}. Choose an --out outside the dataset.\n",
        "cuda": "error: --device cuda: no CUDA device is available. Use --device cpu or auto.\n",
        "no_labels": "error: digits.csv: no column 'y' (columns: id, px0, px1, px2, px3, px4, "
                     "px5, px6, px7, px8, px9, px10, ...). Pass --label-column label.\n",
        "bad_detector": None,
    }[case]
    if case == "cuda":
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is present")
    result = invoke(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    if expected:
        assert result.stderr == expected
    else:
        assert result.stderr.endswith("Error: Invalid value for '--detectors': unknown detector "
                                      "'bnm'; did you mean 'bmm'? Known: "
                                      f"{', '.join(sorted(DETECTORS))}.\n")
    assert not (path.parent / "out").exists()


@pytest.mark.parametrize("make, message", BAD_INPUTS, ids=[m.__name__ for m, _ in BAD_INPUTS])
def test_bad_datasets_exit_2_with_their_one_line_message(tmp_path, make, message):
    root = tmp_path / "ds"
    root.mkdir()
    make(root)
    result = invoke("clean", root, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr == f"error: {message.format(root=root)}\n"


def test_help_and_version_do_not_load_the_heavy_libraries():
    # `cleanlab-ng --help` must answer at once: the CLI module loads no torch, pandas or
    # scikit-learn until a command runs
    code = ("import sys; from cli.main import cli; "
            "print(sorted({'torch', 'pandas', 'sklearn', 'scipy'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parents[1])
    assert done.stdout.strip() == "[]"


def test_a_recov_only_run_loads_neither_scikit_learn_nor_scipy_stats(tmp_path, digits):
    # they take about two seconds to import, a sixth of a short recov run: only the
    # detectors that need them load them
    X, _, given, _ = digits
    root = tmp_path / "emb"
    root.mkdir()
    np.save(root / "features.npy", X.astype(np.float32))
    pd.DataFrame({"label": given}).to_csv(root / "labels.csv", index=False)
    code = ("import sys; from cli.main import cli\n"
            "try: cli(sys.argv[1:])\n"
            "finally: print(sorted({'sklearn', 'scipy.stats'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code, "clean", str(root), "--out",
                           str(tmp_path / "out"), "--detectors", "recov", "--recov-runs", "20",
                           "--threads", "1", "--quiet"], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_summary_table_rounds_the_diagnostics():
    from rich.console import Console

    from cli.render import summary_table

    summary = {"n": 10, "flagged": 1, "estimated_noise_rate": 0.1, "unreadable": 0,
               "kept": 9, "seconds": {"load": 0.01234}, "baselines": [],
               "proxy": {"oof_accuracy": 0.9, "features": "table"},
               "detectors": {"recov": {"flagged": 1, "runs": 4096,
                                       "stability": 0.9930625746361081}}}
    console = Console(width=200, record=True)
    console.print(summary_table(summary, "out"))
    text = console.export_text()
    assert "stability 0.993 " in text and "runs 4096" in text
    assert "0.99306" not in text


def test_the_terminal_lists_the_most_likely_mislabeled_first():
    from rich.console import Console

    from cli.render import flagged_table

    report = pd.DataFrame({
        "sample_id": ["a.png", "b.png", "c.png", "d.png"], "given_label": ["cat"] * 4,
        "suggested_label": ["dog", "cat", "dog", "cat"], "suggestion_backed": [True] * 2 + [
            False, True], "noise_score": [0.7, 0.9, 0.8, 0.1],
        "is_noisy": [True, True, True, False],
        "issue": ["mislabeled", "out_of_distribution", "mislabeled", "clean"]})
    console = Console(width=120, record=True)
    console.print(flagged_table(report, "out", n=2))
    text = console.export_text()
    assert "top 2 of 3 flagged (all in out/flagged.csv)" in text
    assert text.index("b.png") < text.index("c.png") and "a.png" not in text
    assert "dog (not backed)" in text  # c.png: its neighbours do not back the suggestion
    assert flagged_table(report.assign(is_noisy=False), "out") is None


@pytest.mark.parametrize("export, shown", [("copy", True), ("none", False)])
def test_summary_table_says_how_many_mislabeled_were_relabelled(export, shown):
    from rich.console import Console

    from cli.render import summary_table

    summary = {"n": 10, "flagged": 3, "estimated_noise_rate": 0.3, "unreadable": 0,
               "kept": 9 if export == "copy" else 0, "seconds": {}, "baselines": [],
               "proxy": {"oof_accuracy": 0.7, "features": "table"}, "detectors": {},
               "fix": "relabel", "export": export, "relabelled": 2,
               "issues": {"mislabeled": 3}}
    console = Console(width=200, record=True)
    console.print(summary_table(summary, "out"))
    assert ("2 of 3 mislabeled relabelled" in console.export_text()) == shown


def test_fix_relabel_moves_mislabeled_images_to_their_suggested_class(tmp_path, image_folder):
    root, ids, flipped = image_folder
    out = tmp_path / "out"
    fast = [*FAST, "--backbone", "pixels", "--detectors", "bmm,late_stopping"]
    assert invoke("clean", root, "--out", out, "--fix", "relabel", *fast).exit_code == 0
    report = pd.read_csv(out / "report.csv")
    summary = json.loads((out / "summary.json").read_text())
    mislabeled = report["is_noisy"] & (report["issue"] == "mislabeled") & (
        report["suggested_label"] != report["given_label"])
    moved = mislabeled & report["suggestion_backed"]
    assert summary["fix"] == "relabel" and summary["relabelled"] == moved.sum() > 0
    assert summary["suggestions_backed"] >= moved.sum()
    files = {f.relative_to(out / "cleaned").as_posix() for f in (out / "cleaned").rglob("*.png")}
    assert len(files) == summary["kept"] == len(report) - (report["is_noisy"] & ~moved).sum()
    for _, row in report[moved].iterrows():
        name = row["sample_id"].split("/", 1)[1]
        assert f"{row['suggested_label']}/{name}" in files
    # the true class of a relabelled image is its new folder more often than its old one
    true = dict(zip(ids, np.where(flipped, "flipped", "kept")))
    assert np.mean([true[s] == "flipped" for s in report.loc[moved, "sample_id"]]) > 0.7


def test_fix_mark_keeps_every_row_and_adds_the_verdict(tmp_path, csv_table, image_folder):
    path, frame, _ = csv_table
    out = tmp_path / "out"
    assert invoke("clean", path, "--out", out, "--fix", "mark", *FAST).exit_code == 0
    report = pd.read_csv(out / "report.csv")
    cleaned = pd.read_csv(out / "cleaned" / "digits.csv")
    marks = ["is_noisy", "issue", "noise_score", "suggested_label"]
    assert list(cleaned.columns) == [*frame.columns, *marks]
    pd.testing.assert_frame_equal(cleaned[frame.columns], frame)
    pd.testing.assert_frame_equal(cleaned[marks], report[marks])
    assert report["is_noisy"].any()
    # a class folder has no table to hold the marks: refused before any training
    root, _, _ = image_folder
    result = invoke("clean", root, "--out", tmp_path / "img", "--fix", "mark")
    assert result.exit_code == 2 and not (tmp_path / "img").exists()
    assert result.stderr == (f"error: --fix mark: {root} is image folder data, with no table or "
                             "labels file to write the marks in. Use report.csv, or --fix "
                             "remove.\n")
    # nor does it overwrite a column of the user's
    frame.rename(columns={"px0": "issue"}).to_csv(tmp_path / "taken.csv", index=False)
    result = invoke("clean", tmp_path / "taken.csv", "--out", tmp_path / "t", "--fix", "mark")
    assert result.exit_code == 2
    assert result.stderr == ("error: --fix mark: taken.csv already has a column 'issue', which "
                             "the marks would overwrite. Rename it, or use --fix remove.\n")


def test_fix_relabel_rewrites_a_tables_label_column(tmp_path, csv_table, digits):
    path, frame, _ = csv_table
    _, true, given, _ = digits  # the rows of the table, in order
    out = tmp_path / "out"
    assert invoke("clean", path, "--out", out, "--fix", "relabel", *FAST).exit_code == 0
    report = pd.read_csv(out / "report.csv")
    cleaned = pd.read_csv(out / "cleaned" / "digits.csv")
    relabel = ((report["issue"] == "mislabeled") & (report["suggested_label"] != given)
               & report["suggestion_backed"])
    kept = ~report["is_noisy"] | relabel
    assert cleaned["id"].tolist() == frame["id"][kept].tolist()
    assert cleaned["label"].tolist() == report["suggested_label"][kept].tolist()
    assert cleaned["label"].dtype == frame["label"].dtype  # integer classes stay integers
    # most of the input's wrong labels are gone, on more rows than removing them leaves
    assert (cleaned["label"] != true[kept]).mean() < 0.5 * (given != true).mean()
    assert kept.sum() > (~report["is_noisy"]).sum()
    # the suggestions the neighbours back are right more often than those they do not
    flagged = (report["issue"] == "mislabeled").to_numpy()
    right = report["suggested_label"].to_numpy() == true
    backed = report["suggestion_backed"].to_numpy()
    assert right[flagged & backed].mean() > right[flagged & ~backed].mean()


def test_a_relabelled_image_whose_name_is_taken_gets_its_old_class_in_the_name():
    from cleanlab_ng.export import _refiled

    ids = np.array(["a/x.png", "b/x.png", "a/y.png"], dtype=object)
    names = np.array(["a", "b"], dtype=object)
    moved = _refiled(ids, np.array([0, 1, 0]), np.array([1, 1, 1]), names,
                     np.array([True, True, True]))
    assert moved.tolist() == ["b/x.from-a.png", "b/x.png", "b/y.png"]
