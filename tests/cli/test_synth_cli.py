"""`hmlc synth export`: CheXpert-layout export from the command line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hmlc.cli.main import main


def test_export_writes_chexpert_layout_and_trains_through_the_csv_reader(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["synth", "export", str(out), "--n", "60", "--image-size", "32", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary  # counts per split
    train = pd.read_csv(out / "train.csv")
    valid = pd.read_csv(out / "valid.csv")
    assert len(train) + len(valid) == 60
    assert list(train.columns[:5]) == ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"]
    assert train["Path"].str.startswith("synth/train/patient").all()
    assert all((tmp_path / p).is_file() for p in train["Path"])
    # The exported folder trains through the generic CSV reader.
    rc = main([
        "train", "--out", str(tmp_path / "runs"), "--set", "data.dataset=csv", "--set", f"data.root={out}",
        "--set", "hierarchy=synthetic", "--set", "data.image_size=32", "--set", "train.epochs=1",
        "--set", "train.head_epochs=1", "--set", "train.progress=false", "--set", "output.name=r",
    ])
    assert rc == 0
    assert "mean AUC" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args", [["--n", "1"], ["--valid-fraction", "1.5"], ["--image-size", "4"], ["--n", "x"]]
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args):
    assert main_exit(["synth", "export", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hmlc: error:")


def test_refuses_a_folder_that_is_not_an_export(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["synth", "export", str(tmp_path), "--n", "10"]) == 2
    assert "hmlc: error:" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def main_exit(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse type errors exit through the parser
        return exc.code


def test_an_unwritable_output_path_is_one_line_and_exit_2(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["synth", "export", str(blocker / "sub"), "--n", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hmlc: error:") and "a-file" in err[0]
    assert blocker.read_text() == "not a folder"
