"""The benchmark scripts of benchmarks/ run as a user runs them (python <script>), scaled down to seconds.

They guard what a unit test of the library cannot: that each script still imports, builds its
inputs and prints its table (no other code imports them).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_dag_scale_compares_every_operation_with_its_loop() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "dag_scale.py"), "--n", "300", "--n-tree", "3000",
         "--n-codes", "200", "--repeat", "1"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if "| loop" in line or "| level walk" in line]
    names = [line.split("  ")[0] for line in rows]
    assert len(rows) == 8, proc.stdout
    assert any(n.startswith("CT stage-2 loss") for n in names)  # the sparse product's gradients are the walk's
    assert any(n.startswith("chain rule, GO") for n in names) and any(n.startswith("closure") for n in names)
    for line in rows:  # every fast path gives the loop's numbers
        diff = float(line.rsplit("max diff ", 1)[1].split()[0])
        assert diff < 1e-5, line
    compiled = [line for line in proc.stdout.splitlines() if "| torch walk" in line]
    assert len(compiled) == (2 if importlib.util.find_spec("numba") else 0), proc.stdout
    for line in compiled:  # the compiled walk gives the torch walk's numbers, bit for bit
        assert float(line.rsplit("max diff ", 1)[1].split()[0]) == 0.0, line


@pytest.mark.slow
def test_protocol_scores_times_both_paths_and_they_agree() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "protocol_scores.py"), "--scale", "0.02", "--repeat", "1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if "max diff " in line and line.split()[-1][0].isdigit()]
    assert [r.split("  ")[0].strip() for r in rows] == ["GO (seq_GO test)", "FunCat (seq_FUN test)", "CheXpert-like"]
    for line in rows:  # the sorted keys give the argsort path's scores (to rounding)
        assert float(line.rsplit("max diff ", 1)[1]) < 1e-12, line


@pytest.mark.slow
def test_fold_walks_compares_each_kernel_with_an_earlier_revision_bit_for_bit() -> None:
    if importlib.util.find_spec("numba") is None:
        pytest.skip("the compiled walk needs numba (pip install hmlc[fast])")
    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", "92edff6"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout holding revision 92edff6")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fold_walks.py"), "--n", "200", "--repeat", "1"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if "| ratio" in line]
    assert [line.split("  ")[0] for line in rows] == [
        "product (chain rule)", "min (chain rule, min)", "max (max-constraint)", "argmax (MCLoss)"
    ], proc.stdout
    assert all(line.endswith("same bits True") for line in rows), proc.stdout
