"""train.checkpoint_every_s: checkpoints/last written after an epoch only when due, never lost at a stage's end."""

from __future__ import annotations

import json
from typing import Any

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
