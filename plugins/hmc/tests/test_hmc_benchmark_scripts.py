"""The plugin's benchmark scripts run as a user runs them (python <script>), on the real pheno_FUN.

Scaled down to seconds: one epoch of a 32-unit MLP, two timed steps. They guard what a
unit test of the library cannot: that each script still loads its presets and runs to its
table (the scripts are not imported by anything else).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hmc_testing import needs_feature_inputs

PLUGIN = Path(__file__).resolve().parents[1]
ROOT = PLUGIN.parents[1]


def run_script(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
@pytest.mark.realdata
def test_reproduce_script_scores_one_final_run(hmc_data: Path, tmp_path: Path) -> None:
    needs_feature_inputs()
    out = tmp_path / "rows.jsonl"
    stdout = run_script(
        str(PLUGIN / "benchmarks" / "reproduce.py"), "--datasets", "pheno_FUN", "--methods", "chmcnn",
        "--root", str(hmc_data), "--epochs", "1", "--set", "model.backbone_params.width=32", "--out", str(out),
    )
    assert "| pheno_FUN | chmcnn | 1 |" in stdout
    row = json.loads(out.read_text().splitlines()[0])
    assert row["dataset"] == "pheno_FUN" and 0.0 < row["micro_auprc"] < 1.0


@pytest.mark.slow
@pytest.mark.realdata
def test_vector_training_script_times_steps(hmc_data: Path) -> None:
    needs_feature_inputs()
    stdout = run_script(
        str(ROOT / "benchmarks" / "vector_training.py"), "--datasets", "pheno_FUN", "--methods", "flat",
        "--batches", "8", "--steps", "2", "--root", str(hmc_data),
    )
    assert "pheno_FUN" in stdout and "validation pass" in stdout
