"""Inputs overwritten: an output path that is an input, or lies in a data folder, is refused before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmlc.cli.paths import refuse_overwriting_inputs
from hmlc.errors import ConfigError
from tests.reliability.conftest import folder_state, run_cli, tiny_sets


def _refused(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    assert err.startswith("hmlc: error: ") and err.count("\n") == 1, err
    assert needle in err, err


def test_predict_out_onto_the_datasets_labels_csv_is_refused(
    synth_folder: Path, tiny_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = folder_state(synth_folder)
    labels = synth_folder / "valid.csv"
    code, _, err = run_cli(
        ["predict", "--checkpoint", tiny_run, "--dataset", "csv", "--split", "valid",
         "--set", f"data.root={synth_folder}", "--out", labels], capsys)
    _refused(code, err, "inside the input folder")
    assert folder_state(synth_folder) == before


def test_predict_out_onto_its_input_image_is_refused(
    synth_folder: Path, tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "x.png"
    image.write_bytes(next(synth_folder.rglob("*.png")).read_bytes())
    before = image.read_bytes()
    code, _, err = run_cli(["predict", "--checkpoint", tiny_run, image, "--out", image], capsys)
    _refused(code, err, "is one of this command's inputs")
    assert image.read_bytes() == before
    link = tmp_path / "link.csv"
    link.symlink_to(image)
    code, _, err = run_cli(["predict", "--checkpoint", tiny_run, image, "--out", link], capsys)
    _refused(code, err, "is one of this command's inputs")
    assert image.read_bytes() == before


def test_predict_into_a_checkpoint_folder_is_refused_beside_it_allowed(
    tiny_run: Path, synth_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = next(synth_folder.rglob("*.png"))
    best = tiny_run / "checkpoints" / "last"
    code, _, err = run_cli(["predict", "--checkpoint", tiny_run, image, "--out", best / "p.csv"], capsys)
    _refused(code, err, "inside the input folder")
    code, _, err = run_cli(["predict", "--checkpoint", best, image, "--out", tiny_run / "p.csv"], capsys)
    assert code == 0, err
    (tiny_run / "p.csv").unlink()


def test_every_command_with_outputs_calls_the_guard(
    synth_folder: Path, tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = folder_state(synth_folder)
    labels = synth_folder / "valid.csv"
    ckpt = tiny_run / "checkpoints" / "last"
    image = next(synth_folder.rglob("*.png"))
    cases = [
        (["evaluate", "--predictions", labels, "--labels", labels, "--radiologists", synth_folder,
          "--out", synth_folder / "report"], "inside"),
        (["export", "--checkpoint", ckpt, "--format", "onnx", "--out", ckpt / "model.onnx"], "inside"),
        (["explain", "--checkpoint", ckpt, image, "--out", image], "inputs"),
        (["explain", "--checkpoint", ckpt, image, "--out", ckpt / "maps"], "inside"),
        (["prepare", "--cache", synth_folder / "cache", *tiny_sets(synth_folder)], "inside"),
        (["train", "--out", synth_folder / "runs", *tiny_sets(synth_folder)], "inside"),
        (["ablate", "--grid", "seed=1,2", "--out", synth_folder, *tiny_sets(synth_folder)], "never writes"),
    ]
    for argv, needle in cases:
        code, _, err = run_cli(argv, capsys)
        _refused(code, err + str(argv[0]), needle)
    assert folder_state(synth_folder) == before


def test_the_guard_compares_resolved_paths_and_identities(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "labels.csv").write_text("Path\n")
    hard = tmp_path / "hard.csv"
    hard.hardlink_to(data / "labels.csv")
    with pytest.raises(ConfigError, match="is one of this command's inputs"):
        refuse_overwriting_inputs({"--out": hard}, [data / "labels.csv"])
    with pytest.raises(ConfigError, match="inside the input folder"):
        refuse_overwriting_inputs({"--out": tmp_path / "x" / ".." / "data" / "new.csv"}, [], [data])
    refuse_overwriting_inputs({"--out": tmp_path / "out.csv", "--other": None}, [data / "labels.csv"], [data, None])
