"""benchmarks/gpu_checks.py: the one script a device session runs; dry-run here on the CPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_checks.py"


@pytest.fixture(scope="module")
def gpu_checks():
    spec = importlib.util.spec_from_file_location("gpu_checks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_smoke_run_passes_every_section_and_writes_its_results(gpu_checks, tmp_path, capsys):
    rc = gpu_checks.main(["--device", "cpu", "--smoke", "--out", str(tmp_path)])
    assert rc == 0, capsys.readouterr().out[-3000:]
    report = json.loads((tmp_path / "gpu_checks.json").read_text())
    sections = report["sections"]
    assert set(sections) == {
        "env", "numerics", "backbones", "formats", "loader", "trainer", "compile", "ddp", "profile", "suite"
    }
    assert all(s["ok"] for s in sections.values())
    # torchrun with one process runs the DDP path: process group, replica check.
    assert sections["ddp"]["result"]["world_size"] == 1 and sections["ddp"]["result"]["replicas_identical"]
    assert sections["backbones"]["result"]["resnet18"]["train_img_s"] > 0
    assert (tmp_path / "gpu_checks.md").read_text().startswith("Measured with")


def test_wall_times_follow_from_the_measured_throughput(gpu_checks):
    bb = {name: {"size": 224, "train_img_s": 1000.0, "eval_img_s": 4000.0, "peak_train_gib": 5.0}
          for name in gpu_checks.PAPER_BACKBONES}
    report = {"sections": {
        "env": {"result": {"gpu": "GPU", "torch": "2", "cpus": 16}},
        "backbones": {"result": {"precision": "torch.bfloat16", "batch": 32, "eval_batch": 128, **bb}},
        "loader": {"result": {"size": 224, "workers_4_img_s": 9000.0}},
    }}
    table = gpu_checks.wall_time_table(report)
    # an epoch: 191,027 / 1000 img/s = 191 s; a setting: 5 x (191.0 + 202/4000) + 191,027/4000 = 1003 s
    row = next(line for line in table.splitlines() if line.startswith("| densenet121 "))
    assert "| 3.2 min | 16.7 min | 0.5 s |" in row
    assert "Table 1 (ten settings on DenseNet-121): 2.8 h." in table
    assert "six-backbone ensemble (one setting each): 1.7 h." in table
    assert "9,000 img/s (224 px)" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_is_one_line_and_exit_2(gpu_checks, tmp_path, capsys):
    assert gpu_checks.main(["--out", str(tmp_path)]) == 2
    assert "no CUDA device here" in capsys.readouterr().err


def test_an_unknown_section_is_refused(gpu_checks, tmp_path, capsys):
    assert gpu_checks.main(["--device", "cpu", "--only", "env,nope", "--out", str(tmp_path)]) == 2
    assert "unknown section(s) nope" in capsys.readouterr().err


CHEXPERT_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "chexpert"


@pytest.mark.slow
@pytest.mark.skipif(not (CHEXPERT_SAMPLE / "CheXpert-v1.0-small").is_dir(),
                    reason="CheXpert sample not in ../shared/data (optional real data)")
def test_smoke_run_of_the_real_chexpert_section(gpu_checks, tmp_path, capsys):
    rc = gpu_checks.main(["--device", "cpu", "--smoke", "--only", "chexpert", "--chexpert-root", str(CHEXPERT_SAMPLE),
                          "--out", str(tmp_path)])
    assert rc == 0, capsys.readouterr().out[-3000:]
    result = json.loads((tmp_path / "gpu_checks.json").read_text())["sections"]["chexpert"]["result"]
    assert result["prepare_rc"] == 0 and result["train_rc"] == 0
    assert [e["stage"] for e in result["epochs"]] == ["ct1", "ct2"]
    assert 0.0 <= result["final_mean_auc"] <= 1.0
