"""End to end on the real CheXpert sample: `hmlc prepare`, then `hmlc train --preset chexpert/u-ones-ct-lsr`.

Scaled down so it runs in well under a minute on two CPU cores: tiny_cnn from
random weights, template matching at 73 -> 64 px (the paper's 256 -> 224
ratio), 2 + 1 epochs, all 636 training and 234 validation images.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hmlc_chexpert.presets import COMPETITION_LABELS
from hmlc_chexpert.template_match import TemplateMatch

from hmlc.cli.main import main
from hmlc.models import load_checkpoint

PRESET = "chexpert/u-ones-ct-lsr"


def small_settings(root: Path) -> list[str]:
    sets = [
        f"data.root={root}",
        "data.params.views=both",  # all 636 training and 234 validation images
        "model.backbone=tiny_cnn",
        "model.pretrained=false",
        "data.image_size=64",
        "data.preprocessor_params.resize=73",
        "data.preprocessor_params.crop=64",
    ]
    return [arg for s in sets for arg in ("--set", s)]


@pytest.mark.slow
@pytest.mark.realdata
def test_prepare_then_train_on_the_real_sample(
    chexpert_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("HMLC_CACHE", str(cache))
    settings = small_settings(chexpert_small.parent)

    # As users run it: a process of its own, with its two worker processes.
    prepare = subprocess.run(
        [sys.executable, "-m", "hmlc", "prepare", "--preset", PRESET, *settings, "--workers", "2"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert prepare.returncode == 0, prepare.stderr
    entries = sorted((cache / "chexpert").iterdir())
    assert [e.name.split("-")[0] for e in entries] == ["train", "valid"]
    sizes = {e.name.split("-")[0]: (e / "images.u8").stat().st_size for e in entries}
    assert sizes == {"train": 636 * 64 * 64, "valid": 234 * 64 * 64}

    run_args = [
        "train", "--preset", PRESET, *settings, "--out", str(tmp_path / "runs"),
        "--set", "train.epochs=2", "--set", "train.head_epochs=1",
        "--set", "train.progress=false", "--set", "output.tensorboard=false", "--set", "output.name=run",
    ]
    assert main(run_args) == 0
    err = capsys.readouterr().err
    for entry in entries:
        assert f"using preprocessed cache {entry}" in err  # training read what prepare built

    run = tmp_path / "runs" / "run"
    results = json.loads((run / "results.json").read_text())
    assert results["completed"] is True
    with open(chexpert_small / "valid.csv", newline="") as f:
        valid = list(csv.DictReader(f))
    assert len(valid) == 234
    print(f"\nper-label validation AUC (234 real images) after `hmlc train --preset {PRESET}` scaled down:")
    for label, r in results["final"].items():
        positives = sum(float(row[label]) == 1.0 for row in valid)
        assert (r["n_pos"], r["n_neg"]) == (positives, 234 - positives)
        if 0 < positives < 234:
            assert 0.0 <= r["auc"] <= 1.0
        else:
            assert math.isnan(r["auc"])
        print(f"  {label:28s} {r['auc']:.3f}  ({r['n_pos']} positive)")
    competition = [results["final"][label]["auc"] for label in COMPETITION_LABELS]
    assert results["final_mean_auc"] == pytest.approx(float(np.mean(competition)))
    print(f"  mean over the 5 competition labels: {results['final_mean_auc']:.3f}")

    checkpoint = load_checkpoint(run / "checkpoints" / "best")
    preprocessing = checkpoint.metadata["preprocessing"]
    assert (preprocessing["preprocessor"], preprocessing["params"]) == ("template-match", {"resize": 73, "crop": 64})
    template = checkpoint.extra_state["preprocess/template"].numpy()
    stored = np.load(entries[0] / "preprocess.npz")["template"]
    np.testing.assert_array_equal(template, stored)  # the template fitted once by prepare
    assert template.shape == (64, 64) and template.std() > 0
    restored = TemplateMatch(resize=73, crop=64)
    restored.load_state({"template": template})
    assert restored.fingerprint() == preprocessing["fingerprint"]
