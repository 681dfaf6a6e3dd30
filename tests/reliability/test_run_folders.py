"""Run folders that always resume: validated before they exist, removed when a run fails, exclusive, reusable."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from hmlc.engine.rundir import RunDirectory
from hmlc.errors import ConfigError
from tests.reliability.conftest import run_cli, tiny_sets


def _one_line(code: int, err: str, needle: str) -> None:
    """Exit 2 and one error line (after any progress lines training printed), no traceback."""
    assert code == 2, err
    last = err.splitlines()[-1]
    assert last.startswith("hmlc: error: ") and err.count("hmlc: error") == 1 and "Traceback" not in err, err
    assert needle in last, err


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ("train.lr=.inf", "train.lr"),
        ("train.lr=1e400", "train.lr"),
        ("train.betas=[0.9, 1.0]", "betas"),
        ("train.betas=[-0.1, 0.9]", "betas"),
        ("train.betas=[1e400, 0.9]", "betas"),
        ("train.head_lr=.nan", "train.head_lr"),
        ("train.batch_size=100000000000000000000", "train.batch_size"),
        ("train.epochs=0", "nothing to train"),
    ],
)
def test_what_can_be_validated_is_validated_before_the_folder_exists(
    synth_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, needle: str
) -> None:
    code, _, err = run_cli(["train", "--out", tmp_path / "runs", *tiny_sets(synth_folder, setting)], capsys)
    _one_line(code, err, needle)
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_a_run_that_fails_after_its_folder_exists_leaves_no_folder(
    synth_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_folder, data)
    images = sorted((data / "train").rglob("*.png"))
    images[3].write_bytes(images[3].read_bytes()[:40])  # truncated: the header survives, the pixels do not
    code, out, err = run_cli(["train", "--out", tmp_path / "runs", *tiny_sets(data, "output.name=r")], capsys)
    _one_line(code, err, str(images[3]))
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_folder_without_a_checkpoint_is_resumed_from_the_start_or_reused(
    tiny_run: Path, synth_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What kill -9 before the first checkpoint leaves: config.yaml and closure.json only.
    killed = tmp_path / "runs" / "r"
    killed.mkdir(parents=True)
    for name in ("config.yaml", "closure.json"):
        shutil.copy(tiny_run / name, killed / name)
    code, _, err = run_cli(["train", "--resume", killed], capsys)
    assert code == 0, err
    assert (killed / "checkpoints" / "last" / "meta.json").is_file()
    shutil.rmtree(killed / "checkpoints")
    code, _, err = run_cli(["train", "--out", tmp_path / "runs", *tiny_sets(synth_folder, "output.name=r")], capsys)
    assert code == 0, err
    assert (killed / "checkpoints" / "last" / "meta.json").is_file()
    code, _, err = run_cli(["train", "--out", tmp_path / "runs", *tiny_sets(synth_folder, "output.name=r")], capsys)
    _one_line(code, err, "--resume")


def test_run_directory_create_is_exclusive(tmp_path: Path) -> None:
    names = [f"run{i}" for i in range(15)]
    winners: dict[str, list[RunDirectory]] = {name: [] for name in names}
    refused: list[str] = []
    barrier = threading.Barrier(6)

    def contend() -> None:
        barrier.wait()
        for name in names:
            try:
                winners[name].append(RunDirectory.create(tmp_path, name))
            except ConfigError as exc:
                refused.append(str(exc))

    threads = [threading.Thread(target=contend) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(runs) == 1 for runs in winners.values()), {k: len(v) for k, v in winners.items()}
    assert len(refused) == 5 * len(names) and all("in use by another hmlc process" in r for r in refused)
    for runs in winners.values():
        runs[0].release()
