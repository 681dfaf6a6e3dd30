"""`hmlc prepare` (and `--help`, `config show`, `plugins`) start without torch, and still check every name first.

Importing torch takes 1.3 to 2 s on the 2-CPU development machine, about as long as preparing
the 870 CheXpert sample images; prepare only decodes images, so the command a user runs must
not pay it. The commands run in a fresh interpreter (a subprocess), which then reports which of
the heavy libraries each has imported."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hmlc.data.synthetic import export_synthetic

#: Libraries decoding images does not need (at load 4: torch 2.1 s to import, scikit-learn 1.5 s, timm 5.3 s).
HEAVY = ("torch", "torchvision", "timm", "sklearn")

# Runs `hmlc ARGV` for each ARGV in turn in this one interpreter; prints, per command, its exit
# code and the heavy libraries imported so far.
RUNNER = """
import json, sys
from hmlc.cli.main import main

results = []
for argv in json.loads(sys.argv[1]):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    results.append({"argv": argv, "code": code, "heavy": [m for m in %r if m in sys.modules]})
print("RESULTS " + json.dumps(results))
""" % (HEAVY,)


def run_commands(commands: list[list[str]], tmp_path: Path) -> tuple[list[dict[str, Any]], str]:
    """(one result per command, stderr) of the commands run in order in one new interpreter."""
    env = {**os.environ, "HMLC_CACHE": str(tmp_path / "default-cache")}
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(commands)],
        capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")]
    assert done.returncode == 0 and lines, f"runner failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return json.loads(lines[-1].removeprefix("RESULTS ")), done.stderr


def write_chexpert_layout(folder: Path, n_train: int = 24, n_valid: int = 8) -> Path:
    """A CheXpert-v1.0-small folder: train.csv, valid.csv with the 14 observations, chest-like JPEGs."""
    labels = pytest.importorskip("hmlc_chexpert").CHEXPERT_LABELS
    root = folder / "CheXpert-v1.0-small"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:120, 0:100]
    for split, n in (("train", n_train), ("valid", n_valid)):
        rows = []
        for i in range(n):
            frontal = i % 4 != 3
            rel = f"CheXpert-v1.0-small/{split}/patient{i + 1:05d}/study1/view1_{'frontal' if frontal else 'lateral'}.jpg"
            lungs = 200 * np.exp(-(((yy - 60 - rng.integers(-8, 8)) / 40.0) ** 2 + ((xx - 50) / 30.0) ** 2))
            (folder / rel).parent.mkdir(parents=True)
            cv2.imwrite(str(folder / rel), np.clip(lungs + rng.normal(0, 10, lungs.shape), 0, 255).astype(np.uint8))
            codes = rng.choice(["1.0", "0.0", "-1.0", ""], size=len(labels))
            rows.append([rel, "Female", "50", "Frontal" if frontal else "Lateral", "AP" if frontal else "", *codes])
        with (root / f"{split}.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *labels])
            writer.writerows(rows)
    return root


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.glob("*/*") if p.is_dir())


def _check(results: list[dict[str, Any]], err: str) -> None:
    for result in results:
        assert result["code"] == 0, (result["argv"], err)
        assert result["heavy"] == [], f"`hmlc {' '.join(result['argv'][:3])} ...` imported {result['heavy']}"


def test_prepare_help_and_config_show_import_no_torch(tmp_path: Path) -> None:
    synth = tmp_path / "synth"
    export_synthetic(synth, n=40, seed=1, image_size=48)
    sets = [
        "data.dataset=csv", f"data.root={synth}", "hierarchy=synthetic", "data.preprocessor=center-crop",
        "data.preprocessor_params={resize: 40, crop: 32}", "model.backbone=resnet18", "policy.default=u-multiclass",
    ]
    config = [arg for item in sets for arg in ("--set", item)]
    commands = [
        ["--help"],
        ["config", "show", *config],
        ["prepare", *config, "--cache", str(tmp_path / "cache")],
        # Every registry of every installed plugin: registering backbones (and the rest) needs no torch.
        ["plugins"],
        ["list", "backbones"],
    ]
    _check(*run_commands(commands, tmp_path))
    assert len(_entries(tmp_path / "cache")) == 2  # train and valid were really prepared


def test_the_paper_recipe_prepares_without_torch(tmp_path: Path) -> None:
    """The CheXpert reader, template matching, a DenseNet registered by the plugin."""
    chexpert = write_chexpert_layout(tmp_path / "chexpert")
    commands = [
        ["config", "show", "--preset", "chexpert/u-ones-ct-lsr"],
        [
            "prepare", "--preset", "chexpert/u-ones-ct-lsr", "--set", f"data.root={chexpert}",
            "--set", "data.params.views=both", "--cache", str(tmp_path / "cache"),
        ],
    ]
    _check(*run_commands(commands, tmp_path))
    entries = _entries(tmp_path / "cache")
    assert [p.parent.name for p in entries] == ["chexpert", "chexpert"]
    assert sum(len(json.loads((p / "index.json").read_text())["ids"]) for p in entries) == 32


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("policy.default=u-bogus", "unknown uncertainty policy 'u-bogus'"),
        ("model.backbone=densenet12", "unknown backbone 'densenet12'; did you mean: densenet121"),
        ("model.backbone_params={depth: 3}", "backbone 'densenet121' has no parameter 'depth'"),
    ],
)
def test_prepare_still_checks_names_and_backbone_params_first_without_torch(
    tmp_path: Path, setting: str, message: str
) -> None:
    chexpert = write_chexpert_layout(tmp_path / "chexpert", n_train=4, n_valid=4)
    cache = tmp_path / "cache"
    argv = [
        "prepare", "--preset", "chexpert/u-ones-ct-lsr", "--set", f"data.root={chexpert}",
        "--set", setting, "--cache", str(cache),
    ]
    [result], err = run_commands([argv], tmp_path)
    assert result["code"] == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hmlc: error: ") and message in lines[0], err
    assert result["heavy"] == []
    assert _entries(cache) == []  # nothing was decoded or written
