"""Progress of training, validation, the stage-2 feature pass, predict and ablate in a log; constant-output warnings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from hmlc.cli.main import main
from hmlc.models import BackboneSpec
from hmlc.plugins import get_host

from .conftest import sets


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """A progress line at every update (stderr is captured: not a terminal)."""
    monkeypatch.setenv("HMLC_PROGRESS_SECONDS", "0")


def _progress_lines(err: str, desc: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"{desc}: ")]


def test_a_log_gets_progress_of_training_validation_and_the_feature_pass(tmp_path, capsys, log_lines) -> None:
    assert main(["train", "--out", str(tmp_path), *sets("train.progress=true", "output.name=r")]) == 0
    err = capsys.readouterr().err
    for desc, total in (("ct1 1/2", 96), ("[ct1] validation", 48), ("backbone features (computed once)", 96),
                        ("[ct2] validation", 48)):
        lines = _progress_lines(err, desc)
        assert lines, f"no progress line for {desc!r} in:\n{err}"
        assert re.match(rf"{re.escape(desc)}: {total}/{total} img \(100%\), [\d.,]+ img/s, \d+s elapsed", lines[-1])
    assert "constant probability" not in err
    # Predicting the run's validation split reports too.
    code = main(["predict", "--checkpoint", str(tmp_path / "r"), "--dataset", "synthetic", "--split", "valid",
                 *sets(), "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert _progress_lines(err, "predict")[-1].startswith("predict: 48/48 img (100%), ")


def test_feature_vectors_are_counted_as_vectors(tmp_path, capsys, log_lines) -> None:
    args = sets("train.progress=true", "output.name=r", "data.dataset=synthetic-vectors", "model.backbone=mlp",
                "model.backbone_params.layers=1", "model.backbone_params.width=16", "train.method=flat")
    assert main(["train", "--out", str(tmp_path), *args]) == 0
    err = capsys.readouterr().err
    assert re.match(r"flat 1/2: 96/96 vec \(100%\), [\d.,]+ vec/s, ", _progress_lines(err, "flat 1/2")[-1]), err
    assert re.search(r"\[flat\] epoch 2/2 .* \d+ vec/s ", err), err
    assert " img" not in err, err


def test_no_progress_when_it_is_off(tmp_path, capsys, log_lines) -> None:
    assert main(["train", "--out", str(tmp_path), *sets("train.progress=false", "output.name=r")]) == 0
    err = capsys.readouterr().err
    assert " img/s, " not in err and "elapsed" not in err, err


class _Constant(nn.Module):
    """Features that do not depend on the image: the head can only learn one output for all."""

    num_features = 8

    def __init__(self, in_chans: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.zeros(x.shape[0], 8, device=x.device)


def test_training_warns_when_the_model_predicts_a_constant(tmp_path, capsys) -> None:
    spec = BackboneSpec(name="constant_features", build=_Constant, num_features=8, in_chans=1, mean=(0.5,),
                        std=(0.25,))
    registry = get_host().registry("backbones")
    if "constant_features" not in registry:
        registry.add("constant_features", spec, "tests")
    args = ["train", "--out", str(tmp_path), *sets("model.backbone=constant_features", "output.name=c")]
    assert main(args) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "constant probability" in line]
    # One per validation (2 CT stage-1 epochs + 1 head epoch), one for the final weights.
    assert [w.split(":")[1].strip() for w in warnings] == ["[ct1] the model predicts one constant probability on all 48 validation samples for 10 label(s)"] * 2 + ["[ct2] the model predicts one constant probability on all 48 validation samples for 10 label(s)", "final weights"]
    assert all(w.startswith("warning: ") and "Mass" in w for w in warnings)


def test_the_ablation_loop_says_which_run_and_the_time_left(tmp_path, capsys) -> None:
    out = tmp_path / "abl"
    args = ["ablate", "--grid", "policy=u-ones,u-zeros", "--out", str(out)]
    assert main(args + sets("train.epochs=1", "train.head_epochs=0")) == 0
    printed = capsys.readouterr().out
    assert re.search(r"== u-ones \(seed 0\) \[run 1/2, \d+s elapsed\]", printed), printed
    assert re.search(r"== u-zeros \(seed 0\) \[run 2/2, \d+s elapsed, about \d+s left\]", printed), printed
    assert re.search(r"== 2 run\(s\) trained in \d+s", printed)
