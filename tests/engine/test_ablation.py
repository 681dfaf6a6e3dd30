"""`hmlc ablate`: the grid, the table and its files."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest

from hmlc.cli.main import main
from hmlc.engine.ablation import AblationTable, grid_settings, parse_grid
from hmlc.errors import ConfigError

from .conftest import sets


def test_grid_settings_cover_every_combination_in_order():
    grid = parse_grid(["policy=u-ones,u-zeros", "ct=off,on"])
    settings = grid_settings(grid)
    assert [name for name, _ in settings] == ["u-ones", "u-ones+CT", "u-zeros", "u-zeros+CT"]
    assert settings[1][1] == ["policy.default=u-ones", "train.method=ct"]
    assert settings[2][1] == ["policy.default=u-zeros", "train.method=flat"]
    assert grid_settings(parse_grid(["train.lr=0.1,0.2"]))[0] == ("train.lr=0.1", ["train.lr=0.1"])


@pytest.mark.parametrize("bad", [["policy"], ["policy="], ["=a,b"], ["ct=maybe"], ["ct=on", "ct=off"], []])
def test_bad_grids_are_refused(bad):
    with pytest.raises(ConfigError):
        grid_settings(parse_grid(bad))


def test_table_reports_mean_and_sample_spread_over_seeds():
    table = AblationTable(["a", "b"])
    table.add("x", {"a": 0.8, "b": 0.6, "mean": 0.7})
    table.add("x", {"a": 0.9, "b": math.nan, "mean": 0.75})
    summary = table.summary()["x"]
    assert summary["a"]["mean"] == pytest.approx(0.85)
    assert summary["a"]["std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert summary["b"] == {"mean": 0.6, "std": 0.0, "n": 1}
    md = table.markdown()
    assert "| x | 0.850 ± 0.071 | 0.600 | **0.725 ± 0.035** |" in md


def test_ablate_cli_writes_markdown_csv_and_json(tmp_path, capsys):
    out = tmp_path / "abl"
    args = ["ablate", "--grid", "policy=u-ones,u-zeros", "--grid", "ct=off,on", "--seeds", "2", "--out", str(out)]
    assert main(args + sets("train.epochs=1")) == 0
    printed = capsys.readouterr().out
    assert "| u-zeros+CT |" in printed
    data = json.loads((out / "table.json").read_text())
    assert set(data["summary"]) == {"u-ones", "u-ones+CT", "u-zeros", "u-zeros+CT"}
    assert len(data["runs"]) == 8
    assert {r["seed"] for r in data["runs"]} == {0, 1}
    for setting, cols in data["summary"].items():
        runs = [r["aucs"]["mean"] for r in data["runs"] if r["setting"] == setting]
        assert cols["mean"]["mean"] == pytest.approx(float(np.mean(runs)))
        assert cols["mean"]["n"] == 2
    with (out / "table.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * 11  # 4 settings x (10 labels + mean)
    assert (out / "table.md").read_text().count("\n") == 2 + 4


def test_ablate_checks_every_setting_before_training(tmp_path, capsys):
    args = ["ablate", "--grid", "policy=u-ones,u-bogus", "--out", str(tmp_path / "abl")]
    assert main(args + sets()) == 2
    assert "u-bogus" in capsys.readouterr().err
    assert not (tmp_path / "abl" / "runs").exists()


def test_rerunning_an_interrupted_ablation_continues_it(tmp_path, capsys):
    """A finished setting is reused as it is, an interrupted one resumes, a missing one is trained."""
    out = tmp_path / "abl"
    grid = ["ablate", "--grid", "policy=u-ones,u-zeros", "--out", str(out)]
    # As if the first ablation was cut off: setting 1 finished, setting 2 stopped after one epoch.
    assert main(grid[:2] + ["policy=u-ones"] + grid[3:] + sets()) == 0
    first = out / "runs" / "u-ones-seed0"
    stamp = (first / "checkpoints" / "last" / "model.safetensors").stat().st_mtime_ns
    assert main(["train", "--out", str(out / "runs"), *sets("policy.default=u-zeros", "output.name=u-zeros-seed0"),
                 "--stop-after-epochs", "1"]) == 0
    capsys.readouterr()
    assert main(grid + sets() + ["--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "finished" in plan and "interrupted: ct1 1/2 epochs done" in plan
    assert "2 runs, 1 to train or continue; nothing was trained" in plan
    assert (first / "checkpoints" / "last" / "model.safetensors").stat().st_mtime_ns == stamp
    assert not json.loads((out / "runs" / "u-zeros-seed0" / "results.json").read_text())["completed"]
    assert main(grid + sets()) == 0
    printed = capsys.readouterr().out
    assert f"== u-ones (seed 0): finished earlier in {first}" in printed
    assert "== u-zeros (seed 0): continuing" in printed
    assert (first / "checkpoints" / "last" / "model.safetensors").stat().st_mtime_ns == stamp
    data = json.loads((out / "table.json").read_text())
    assert [r["setting"] for r in data["runs"]] == ["u-ones", "u-zeros"]
    resumed = json.loads((out / "runs" / "u-zeros-seed0" / "results.json").read_text())
    assert resumed["completed"]
    assert data["summary"]["u-zeros"]["mean"]["mean"] == pytest.approx(resumed["final_mean_auc"])
    with (out / "runs" / "u-zeros-seed0" / "metrics.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 3  # 2 CT stage-1 epochs + 1 head epoch, none twice


def test_an_ablation_folder_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "abl"
    args = ["ablate", "--grid", "policy=u-ones", "--out", str(out)]
    assert main(args + sets()) == 0
    capsys.readouterr()
    assert main(args + sets("train.lr=0.01")) == 2
    err = capsys.readouterr().err
    assert "was trained with other settings (train.lr: 0.003 there, 0.01 now)" in err and "new --out" in err


def test_an_ablation_run_killed_before_its_first_checkpoint_or_mid_swap_is_trained_on(tmp_path, capsys):
    out = tmp_path / "abl"
    args = ["ablate", "--grid", "policy=u-ones", "--out", str(out)]
    assert main(args + sets()) == 0
    capsys.readouterr()
    run = out / "runs" / "u-ones-seed0"
    expected = json.loads((run / "results.json").read_text())["final_mean_auc"]
    # Killed while swapping checkpoints/last: only the previous copy is there; the run is continued from it.
    (run / "checkpoints" / "last").rename(run / "checkpoints" / ".last.previous")
    (run / "results.json").unlink()
    assert main(args + sets()) == 0
    assert "== u-ones (seed 0): continuing" in capsys.readouterr().out
    assert (run / "checkpoints" / "last" / "meta.json").is_file()
    # Killed before its first checkpoint: the folder holds config.yaml and closure.json only; trained again.
    shutil.rmtree(run / "checkpoints")
    (run / "results.json").unlink()
    assert main(args + sets()) == 0
    printed = capsys.readouterr().out
    assert "continuing" not in printed and "finished earlier" not in printed
    assert json.loads((run / "results.json").read_text())["final_mean_auc"] == pytest.approx(expected)
