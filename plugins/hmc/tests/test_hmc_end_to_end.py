"""End to end: `hmlc train --preset hmc/flat` on the real pheno_FUN, and a bad file through the CLI.

Scaled down to run in seconds on two CPU cores: one epoch, the MLP narrowed
to 32 units, batch 32.
"""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hmc_testing import TREE_HEADER, needs_feature_inputs, write_arff

from hmlc.cli.main import main


@pytest.mark.slow
@pytest.mark.realdata
def test_train_preset_on_pheno_fun(hmc_data: Path, tmp_path: Path) -> None:
    needs_feature_inputs()
    args = [
        "train", "--preset", "hmc/flat", "--out", str(tmp_path / "runs"),
        "--set", f"data.root={hmc_data}", "--set", "data.params.name=pheno_FUN",
        "--set", "train.epochs=1", "--set", "train.batch_size=32", "--set", "model.backbone_params.width=32",
        "--set", "train.progress=false", "--set", "output.tensorboard=false", "--set", "output.name=run",
    ]
    assert main(args) == 0
    run = tmp_path / "runs" / "run"
    results = json.loads((run / "results.json").read_text())
    assert results["completed"] is True
    # The hierarchy came from the file's header: its 455 nodes under the added root.
    lines = gzip.decompress((hmc_data / "FUN" / "pheno_FUN" / "pheno_FUN.train.arff.gz").read_bytes()).decode()
    declared = next(line for line in lines.split("\n") if " hierarchical " in line).split()[-1].split(",")
    assert results["labels"] == ["root", *declared]
    # Every label is validated but the excluded root.
    with open(run / "metrics.csv", newline="") as f:
        header = next(csv.reader(f))
    scored = {c.removeprefix("val_auc/") for c in header if c.startswith("val_auc/")}
    assert scored == set(declared)


@pytest.mark.slow
def test_bad_file_is_one_error_line(tmp_path: Path) -> None:
    needs_feature_inputs()
    folder = tmp_path / "data" / "FUN" / "bad_FUN"
    write_arff(folder / "bad_FUN.train.arff", TREE_HEADER + ["1,red,2,01", "1,red,2,01/09"])
    write_arff(folder / "bad_FUN.valid.arff", TREE_HEADER + ["1,red,2,01"])
    done = subprocess.run(
        [sys.executable, "-m", "hmlc", "train", "--preset", "hmc/flat", "--out", str(tmp_path / "runs"),
         "--set", f"data.root={tmp_path / 'data'}", "--set", "data.params.name=bad_FUN", "--set", "train.epochs=1"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == (
        f"hmlc: error: {folder / 'bad_FUN.train.arff'}, line 10: label '01/09' is not a node of the header's "
        "hierarchy (5 nodes: 01, 01/01, 01/01/03, 02, 02/05, ...)"
    )
    assert "Traceback" not in done.stderr
