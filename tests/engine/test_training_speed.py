"""What the per-step and per-epoch speed-ups keep: labels encoded once unless redrawn, metrics.csv
appended with the same bytes as rewritten, the fused Adam as an opt-in that trains the same model."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from safetensors.torch import load_file

from hmlc.cli.main import main
from hmlc.engine.experiment import ExperimentData
from hmlc.engine.rundir import MetricsLog

from .conftest import sets


def _encode_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> list[int]:
    epochs: list[int] = []
    encode = ExperimentData.encode

    def counted(self: ExperimentData, seed: int, epoch: int, redraw: bool):  # type: ignore[no-untyped-def]
        epochs.append(epoch)
        return encode(self, seed, epoch, redraw)

    monkeypatch.setattr(ExperimentData, "encode", counted)
    assert main(["train", "--out", str(tmp_path), *sets("train.method=flat", "train.epochs=3", *overrides)]) == 0
    return epochs


def test_labels_are_encoded_once_per_stage_unless_redrawn_each_epoch(tmp_path: Path, monkeypatch) -> None:
    assert _encode_calls(tmp_path / "a", monkeypatch) == [0]
    # A redrawing policy draws anew every epoch: each epoch encodes its own labels.
    assert _encode_calls(tmp_path / "b", monkeypatch, "policy.redraw_each_epoch=true") == [0, 1, 2]


def test_appended_metrics_rows_are_the_bytes_of_a_rewritten_file(tmp_path: Path) -> None:
    rows = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25, "val": 0.7}, {"epoch": 3, "loss": 1 / 3, "val": 0.8}]
    log = MetricsLog(tmp_path / "metrics.csv")
    for step, row in enumerate(rows, 1):
        log.log(row, step=step)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["epoch", "loss", "val"])
    writer.writeheader()
    writer.writerows(rows)
    assert (tmp_path / "metrics.csv").read_bytes() == buffer.getvalue().encode("utf-8")
    # A new MetricsLog (a resumed run) reads the file and goes on appending after it.
    MetricsLog(tmp_path / "metrics.csv").log({"epoch": 4, "loss": 0.2, "val": 0.9}, step=4)
    writer.writerow({"epoch": 4, "loss": 0.2, "val": 0.9})
    assert (tmp_path / "metrics.csv").read_bytes() == buffer.getvalue().encode("utf-8")


def test_fused_adam_is_opt_in_and_trains_the_same_model_to_rounding(tmp_path: Path) -> None:
    weights = {}
    for fused in ("false", "true"):
        name = f"fused-{fused}"
        assert main(["train", "--out", str(tmp_path), *sets(f"train.fused_adam={fused}", f"output.name={name}")]) == 0
        last = tmp_path / name / "checkpoints" / "last"
        meta = "".join(p.read_text(encoding="utf-8") for p in last.glob("*.json"))
        assert ('"fused": true' in meta) == (fused == "true")
        weights[fused] = load_file(str(next(last.glob("model*.safetensors"))))
    for key, value in weights["false"].items():
        assert (value - weights["true"][key]).abs().max().item() < 1e-3, key
