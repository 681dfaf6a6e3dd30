"""train.checkpoint_every_s: checkpoints/last written after an epoch only when due, never lost at a stage's end."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from hmlc.cli.main import main
from hmlc.engine.trainer import Trainer

from .conftest import sets

#: CT on feature vectors: stage ct1 of 4 epochs, stage ct2 (the head) of 2.
RUN = ("data.dataset=synthetic-vectors", "data.params.n_train=64", "train.method=ct", "train.epochs=4",
       "train.head_epochs=2", "model.backbone=mlp", "model.backbone_params.layers=1",
       "model.backbone_params.width=8", "output.name=r")


@pytest.fixture
def saves(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, int]]]:
    """Every checkpoint write of the trainer: (name, the progress it records)."""
    calls: list[tuple[str, dict[str, int]]] = []
    real = Trainer._save

    def recording(self: Trainer, name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append((name, dict(self.progress)))
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_save", recording)
    return calls


def _last(calls: list[tuple[str, dict[str, int]]]) -> list[tuple[int, int]]:
    return [(p["stage"], p["epoch"]) for name, p in calls if name == "last"]


def test_by_default_every_epoch_writes_last(tmp_path, saves) -> None:
    assert main(["train", "--out", str(tmp_path), *sets(*RUN)]) == 0
    assert _last(saves) == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 1), (1, 2), (2, 0)]


def test_an_interval_writes_last_at_each_stage_end_only(tmp_path, saves) -> None:
    assert main(["train", "--out", str(tmp_path), *sets(*RUN, "train.checkpoint_every_s=3600")]) == 0
    # The last epoch of each stage, then the finished run.
    assert _last(saves) == [(0, 4), (1, 2), (2, 0)]
    meta = json.loads((tmp_path / "r" / "checkpoints" / "last" / "meta.json").read_text())["metadata"]
    assert meta["progress"] == {"stage": 2, "epoch": 0} and len(meta["history"]) == 6


def test_stop_after_epochs_writes_last_where_it_stops_and_the_run_resumes(tmp_path, saves) -> None:
    args = ["train", "--out", str(tmp_path), *sets(*RUN, "train.checkpoint_every_s=3600")]
    assert main([*args, "--stop-after-epochs", "2"]) == 0
    assert _last(saves) == [(0, 2)]
    assert main(["train", "--resume", str(tmp_path / "r")]) == 0
    assert _last(saves) == [(0, 2), (0, 4), (1, 2), (2, 0)]


def _weights(folder: Any) -> dict[str, Any]:
    from hmlc.models.checkpoint import load_checkpoint

    return {k: v.clone() for k, v in load_checkpoint(folder).state_dict.items()}


def test_a_pause_writes_last_where_a_stop_would_and_changes_nothing_after_it(tmp_path, saves) -> None:
    """pause_at (the benchmarks' scoring part-way): checkpoints/last written after that epoch with the
    weights a run stopped there has, handed to on_pause, and the training goes on to the weights of a
    run never paused (the extra write draws no random number and moves nothing)."""
    import torch

    from hmlc.config import load_config
    from hmlc.engine.trainer import train

    config = load_config(None, None, [*RUN, "model.backbone_params.dropout=0.5", "train.checkpoint_every_s=3600"])
    seen: dict[int, dict[str, Any]] = {}

    def score(epoch: int) -> None:  # as the suite's scoring does: a model built, random numbers drawn
        import random

        seen[epoch] = _weights(tmp_path / "paused" / "r" / "checkpoints" / "last")
        torch.nn.Linear(8, 8), torch.rand(3), np.random.rand(), random.random()

    paused = train(config, run_dir=tmp_path / "paused", pause_at=[1, 3], on_pause=score)
    assert sorted(seen) == [1, 3] and paused.completed
    assert _last(saves) == [(0, 1), (0, 3), (0, 4), (1, 2), (2, 0)]
    train(config, run_dir=tmp_path / "stopped", stop_after_epochs=1)
    train(config, run_dir=tmp_path / "plain")
    stopped = _weights(tmp_path / "stopped" / "r" / "checkpoints" / "last")
    plain = _weights(tmp_path / "plain" / "r" / "checkpoints" / "last")
    after = _weights(tmp_path / "paused" / "r" / "checkpoints" / "last")
    assert all(torch.equal(seen[1][k], stopped[k]) for k in stopped)
    assert all(torch.equal(after[k], plain[k]) for k in plain)
    assert not all(torch.equal(seen[1][k], plain[k]) for k in plain)  # the pause saw the weights of its epoch
