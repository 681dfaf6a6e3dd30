"""Training stopped by SIGINT or SIGTERM, or killed by SIGKILL, at chosen points resumes to the same result.

The faults come at exact places through ``HMLC_TEST_FAULTS`` (see hmlc/faults.py):
after a given optimizer step, or half-way through a checkpoint write. Every
case trains the same tiny image run with conditional training (stage 1 on the
whole network, stage 2 on the head over features computed once, two epochs
each, dropout and flips on), kills or interrupts it in a subprocess, resumes it,
and compares with an uninterrupted run: the same tensors, the same checkpoint
bytes (meta.json included), the same metrics.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hmlc.faults import FAULTS_ENV
from hmlc.models.checkpoint import load_checkpoint, save_checkpoint
from tests.reliability.conftest import run_cli

#: ~100 images of 32 px, CT in two stages of two epochs (stage 2 on features computed once), 6 steps per epoch.
SETTINGS = [
    "data.params.n_train=96", "data.params.n_valid=48", "data.image_size=32", "train.method=ct",
    "train.epochs=2", "train.head_epochs=2", "train.batch_size=16", "train.progress=false",
    "train.deterministic=true", "train.threads=1", "train.device=cpu", "output.tensorboard=false",
    "model.dropout=0.2", "output.name=r",
]
#: Relative paths: every run's config.yaml (recorded in its checkpoints) is the same, whatever its folder.
TRAIN = ["train", "--out", "runs", *[a for s in SETTINGS for a in ("--set", s)]]
RUN = Path("runs") / "r"


def _train_subprocess(cwd: Path, faults: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``hmlc train`` of the tiny run in ``cwd`` with ``faults``, in its own process group."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, FAULTS_ENV: faults, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "hmlc", *TRAIN, *extra], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600, start_new_session=True,
    )


def _in(cwd: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return run_cli(argv, capsys)
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run (in this process)."""
    from hmlc.cli.main import main
    from hmlc.plugins import reset_host

    cwd = tmp_path_factory.mktemp("reference")
    old = Path.cwd()
    os.chdir(cwd)
    try:
        reset_host()
        assert main(TRAIN) == 0
    finally:
        os.chdir(old)
    return cwd / RUN


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _rows(run: Path) -> list[tuple[str, ...]]:
    with (run / "metrics.csv").open(newline="") as fh:
        return [(r["stage"], r["epoch"], r["train_loss"], r["train_images"], r["val_mean_auc"]) for r in csv.DictReader(fh)]


def _assert_same_run(run: Path, reference: Path, *, config_differs: bool = False) -> None:
    """The resumed run ends as the uninterrupted one: tensors, checkpoint bytes, metrics, results."""
    for name in ("last", "best"):
        for file in ("model.safetensors", "state.safetensors"):
            if not (reference / "checkpoints" / name / file).exists():
                continue
            a = load_file(str(reference / "checkpoints" / name / file))
            b = load_file(str(run / "checkpoints" / name / file))
            assert a.keys() == b.keys(), (name, file)
            for key in a:
                assert torch.equal(a[key], b[key]), (name, file, key)
    ours, theirs = _files(run / "checkpoints"), _files(reference / "checkpoints")
    if config_differs:  # meta.json records the configuration; the tensors files do not
        ours = {k: v for k, v in ours.items() if not k.endswith("meta.json")}
        theirs = {k: v for k, v in theirs.items() if not k.endswith("meta.json")}
    assert ours.keys() == theirs.keys()  # nothing left over by the interrupted writes
    for key in theirs:
        assert ours[key] == theirs[key], key
    assert _rows(run) == _rows(reference)
    ours_results, theirs_results = (json.loads((r / "results.json").read_text()) for r in (run, reference))
    assert ours_results["final"] == theirs_results["final"] and ours_results["history"] == theirs_results["history"]


def _stage(run: Path, name: str = "last") -> dict:
    meta = json.loads((run / "checkpoints" / name / "meta.json").read_text())["metadata"]
    return {"progress": meta["progress"], "position": meta.get("epoch_position")}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "left"),
    [
        # during an epoch of stage 1: checkpoints/last is the end of epoch 1
        ("SIGKILL@step:ct1:2:3", {"last"}),
        # during a checkpoint write: the new folder is written, the old one not yet replaced
        ("SIGKILL@save:last:2:staged", {"last", "staging"}),
        # the old folder is moved aside and the new one not yet in its place
        ("SIGKILL@save:last:3:swapped", {"backup", "staging"}),
        # during stage 2 (head on features computed once), in its second epoch
        ("SIGKILL@step:ct2:2:2", {"last"}),
    ],
)
def test_a_run_killed_anywhere_resumes_to_the_same_tensors_and_bytes(
    reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fault: str, left: set[str]
) -> None:
    proc = _train_subprocess(tmp_path, fault)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run = tmp_path / RUN
    names = {p.name for p in (run / "checkpoints").iterdir()}
    assert ("last" in names) == ("last" in left)
    assert (".last.previous" in names) == ("backup" in left)
    assert any(n.startswith(".last.tmp-") for n in names) == ("staging" in left)
    code, _, err = _in(tmp_path, ["train", "--resume", str(RUN)], capsys)
    assert code == 0, err
    _assert_same_run(run, reference)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "progress"),
    [
        # in epoch 2 of stage 1: epoch 1 was not written (not due), so no checkpoint at all yet
        ("SIGKILL@step:ct1:2:3", None),
        # in stage 2: the end of stage 1 was written (a stage's last epoch always is)
        ("SIGKILL@step:ct2:2:2", {"stage": 0, "epoch": 2}),
    ],
)
def test_with_a_checkpoint_interval_a_killed_run_resumes_from_what_was_written(
    reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fault: str, progress: dict | None
) -> None:
    proc = _train_subprocess(tmp_path, fault, "--set", "train.checkpoint_every_s=3600")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run = tmp_path / RUN
    if progress is None:
        assert not (run / "checkpoints" / "last").exists()
    else:
        assert _stage(run)["progress"] == progress
    code, _, err = _in(tmp_path, ["train", "--resume", str(RUN)], capsys)
    assert code == 0, err
    _assert_same_run(run, reference, config_differs=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "code", "where", "extra"),
    [
        # Ctrl-C in a terminal reaches the DataLoader workers too
        ("SIGINT@step:ct1:2:3@group", 130, "stage ct1 epoch 2 step 3", ("--set", "data.num_workers=2")),
        ("SIGTERM@step:ct2:1:2", 143, "stage ct2 epoch 1 step 2", ()),
    ],
)
def test_sigint_and_sigterm_checkpoint_the_exact_step_and_exit_cleanly(
    reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fault: str, code: int, where: str,
    extra: tuple[str, ...],
) -> None:
    proc = _train_subprocess(tmp_path, fault, *extra)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("hmlc:") == 1, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"hmlc: interrupted at {where}; checkpoint written to {RUN / 'checkpoints' / 'last'}; "
        f"resume with: hmlc train --resume {RUN}"
    )
    run = tmp_path / RUN
    stage, epoch, step = where.split()[1], int(where.split()[3]), int(where.split()[5])
    saved = _stage(run)
    assert saved["progress"] == {"stage": ["ct1", "ct2"].index(stage), "epoch": epoch - 1}
    assert saved["position"]["steps"] == step
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best", "last"]
    rc, _, err = _in(tmp_path, ["train", "--resume", str(RUN)], capsys)
    assert rc == 0, err
    _assert_same_run(run, reference, config_differs=bool(extra))


@pytest.mark.slow
def test_a_second_signal_during_the_checkpoint_write_leaves_the_previous_checkpoint(
    reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first Ctrl-C asks for a checkpoint after step 3; the second comes while it is written.
    proc = _train_subprocess(tmp_path, "SIGINT@step:ct1:2:3,SIGINT@save:last:2:swapped")
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == f"hmlc: interrupted again; resume with: hmlc train --resume {RUN}"
    run = tmp_path / RUN
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best", "last"]
    assert _stage(run) == {"progress": {"stage": 0, "epoch": 1}, "position": None}  # epoch 1's, intact
    load_checkpoint(run / "checkpoints" / "last")
    code, _, err = _in(tmp_path, ["train", "--resume", str(RUN)], capsys)
    assert code == 0, err
    _assert_same_run(run, reference)


@pytest.mark.parametrize("point", ["staged", "swapped"])
def test_an_interrupted_checkpoint_save_keeps_the_previous_one_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    from hmlc.faults import count_event

    folder = tmp_path / "ckpt"
    save_checkpoint(folder, {"w": torch.zeros(3)}, {"n": 1})
    before = _files(folder)
    number = count_event("save:ckpt") + 1  # the number the next save of 'ckpt' gets
    monkeypatch.setenv(FAULTS_ENV, f"SIGINT@save:ckpt:{number}:{point}")
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(folder, {"w": torch.ones(3)}, {"n": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no staging folder, no backup
    assert _files(folder) == before
    assert load_checkpoint(folder).metadata == {"n": 1}


@pytest.mark.slow
def test_ablate_stops_on_ctrl_c_with_a_checkpoint_and_continues_when_run_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = [a for s in SETTINGS if not s.startswith("output.name") for a in ("--set", s)]
    ablate = ["ablate", "--grid", "policy=u-ones", *settings, "--out", "abl"]
    env = {**os.environ, FAULTS_ENV: "SIGINT@step:ct1:1:2", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "hmlc", *ablate], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("hmlc:") == 1, proc.stderr
    run = Path("abl") / "runs" / "u-ones-seed0"
    assert proc.stderr.splitlines()[-1] == (
        f"hmlc: interrupted at stage ct1 epoch 1 step 2; checkpoint written to {run / 'checkpoints' / 'last'}; "
        "continue with the same hmlc ablate command (--out abl)"
    )
    assert not (tmp_path / "abl" / "table.md").exists()  # no table of a run that did not finish
    code, out, err = _in(tmp_path, ablate, capsys)
    assert code == 0, err
    assert "continuing" in out and (tmp_path / "abl" / "table.md").is_file()
    assert json.loads((tmp_path / run / "results.json").read_text())["completed"]


#: `hmlc predict` whose third image read sends the signal given as the first argument.
_PREDICT_WITH_SIGNAL = """
import os, signal, sys
import hmlc.engine.predictor as predictor
read, reads = predictor.read_image_file, []
def read_then_signal(path):
    reads.append(path)
    if len(reads) == 3:
        os.kill(os.getpid(), signal.Signals[sys.argv[1]])
    return read(path)
predictor.read_image_file = read_then_signal
from hmlc.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(("name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_predict_stops_on_a_signal_with_one_line_and_writes_nothing(
    tiny_run: Path, synth_folder: Path, tmp_path: Path, name: str, code: int
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    argv = ["predict", "--checkpoint", str(tiny_run), str(synth_folder / "valid"), "--out", str(out / "p.csv"),
            "--batch-size", "2"]
    proc = subprocess.run([sys.executable, "-c", _PREDICT_WITH_SIGNAL, name, *argv], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == code, proc.stderr[-2000:]
    assert proc.stderr == "hmlc: interrupted\n"
    assert list(out.iterdir()) == []


class _SignalOnRead:
    """Eight-pixel images of value i; the process that reads image 3 gets ``signum`` (as a group's Ctrl-C would)."""

    size = 8

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __len__(self) -> int:
        return 12

    def read(self, i: int) -> np.ndarray:
        if i == 3:
            os.kill(os.getpid(), self.signum)
        return np.full((8, 8), i, np.uint8)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_dataloader_workers_leave_stop_signals_to_the_main_process(signum: int) -> None:
    # A worker that died of the signal would make the main process fail with a worker error
    # instead of finishing its step (training) or ending with one line (predict).
    from hmlc.engine.inference import forward_images

    out = forward_images(
        lambda x: x.float().mean(dim=(1, 2, 3))[:, None], _SignalOnRead(signum), lambda x: x, torch.device("cpu"),
        batch_size=2, num_workers=2,
    )
    assert out[:, 0].tolist() == list(range(12))
