"""Logs that agree with results: metrics.csv holds one row per epoch whatever resumes and failures came between."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hmlc.engine.rundir import MetricsLog, atomic_write_bytes
from tests.reliability.conftest import run_cli, tiny_sets


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_logging_an_epoch_again_replaces_it_and_every_later_one(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.csv")
    for step in (1, 2, 3):
        log.log({"epoch": step, "loss": 1.0 / step}, step=step)
    # a resume from the checkpoint of epoch 1: epochs 2 and 3 are trained and logged again
    log.log({"epoch": 2, "loss": 0.25, "val": 0.7}, step=2)
    rows = _rows(tmp_path / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[1]["loss"] == "0.25" and rows[1]["val"] == "0.7" and rows[0]["val"] == ""
    log.log({"epoch": 3, "loss": 0.2}, step=3)
    assert [r["epoch"] for r in _rows(tmp_path / "metrics.csv")] == ["1", "2", "3"]


def test_a_failed_resume_then_a_resume_leaves_one_row_per_epoch(
    synth_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = tiny_sets(synth_folder, "output.name=r", "train.epochs=3")
    code, _, err = run_cli(["train", "--out", tmp_path, "--stop-after-epochs", "1", *sets], capsys)
    assert code == 0, err
    run = tmp_path / "r"
    metrics = run / "metrics.csv"
    # A resume that logged epochs 2 and 3 and then failed to save their checkpoints (a full disk).
    rows = _rows(metrics)
    with metrics.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writerow({**rows[0], "epoch": "2"})
        writer.writerow({**rows[0], "epoch": "3"})
    code, _, err = run_cli(["train", "--resume", run], capsys)
    assert code == 0, err
    assert [r["epoch"] for r in _rows(metrics)] == ["1", "2", "3"]


def test_atomic_write_bytes_leaves_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "plot.png"
    atomic_write_bytes(target, b"old")

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("hmlc.engine.rundir.os.replace", full_disk)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["plot.png"]
