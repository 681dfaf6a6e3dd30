"""End to end on a PadChest-format folder: `hmlc train`, `hmlc predict --dataset padchest`, `hmlc evaluate`.

The folder holds the ten real label sets of sample_labels.csv, each copied for
eight made-up patients, with generated 16-bit PNGs (40 px) in PadChest's
``<ImageDir>/<ImageID>`` layout; tiny_cnn from random weights, 32 px, two
epochs: about half a minute on two CPU cores.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hmlc.plugins import get_host

SPLITS = ["--set", "data.params.valid_fraction=0.3", "--set", "data.params.test_fraction=0"]  # train: every image not in valid
CSV_NAME = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
SCORED = ["normal", "scoliosis", "costophrenic angle blunting"]


def hmlc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hmlc", *args], capture_output=True, text=True, timeout=600, check=False)


def written_labels(rows: dict[str, dict[str, str]], image_id: str) -> set[str]:
    return {name.strip() for name in ast.literal_eval(rows[image_id]["Labels"])}


@pytest.fixture(scope="module")
def trained(sample_labels: Path, padchest_folder: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with open(sample_labels, newline="", encoding="utf-8") as f:
        real = list(csv.DictReader(f))
    rows = [
        {**r, "PatientID": f"{copy}-{r['PatientID']}", "ImageID": f"{copy}-{r['ImageID']}"}
        for copy in range(8)
        for r in real
    ]
    base = tmp_path_factory.mktemp("padchest")
    padchest_folder(base / "PadChest", rows, size=40)
    out = tmp_path_factory.mktemp("padchest-out")  # hmlc never writes into the data folder
    done = hmlc(
        "train", "--out", str(out / "runs"),
        "--set", "data.dataset=padchest", "--set", f"data.root={base}", *SPLITS,
        "--set", "model.backbone=tiny_cnn", "--set", "model.pretrained=false", "--set", "data.image_size=32",
        "--set", "train.epochs=2", "--set", "train.head_epochs=1", "--set", "train.batch_size=16",
        "--set", "train.progress=false", "--set", "output.tensorboard=false", "--set", "output.name=run",
    )
    assert done.returncode == 0, done.stderr
    return {"base": base, "out": out, "run": out / "runs" / "run", "rows": {r["ImageID"]: r for r in rows}, "stderr": done.stderr}


@pytest.mark.slow
@pytest.mark.realdata
def test_train_predict_and_evaluate(trained: dict[str, Any]) -> None:
    base, run, rows = trained["base"], trained["run"], trained["rows"]
    results = json.loads((run / "results.json").read_text())
    assert results["completed"] is True
    assert results["labels"] == list(get_host().hierarchy("padchest").labels)

    preds = trained["out"] / "preds.csv"
    done = hmlc(
        "predict", "--checkpoint", str(run), "--dataset", "padchest", "--split", "valid",
        "--set", f"data.root={base}", *SPLITS, "--out", str(preds),
    )
    assert done.returncode == 0, done.stderr
    with open(preds, newline="") as f:
        ids = [r["Path"] for r in csv.DictReader(f)]
    assert 0 < len(ids) < len(rows)
    # Training closed its labels: every training image that names a finding made
    # 'radiological finding' positive, counted here from the written names.
    findings = set(get_host().hierarchy("padchest").descendants("radiological finding"))
    closure = json.loads((run / "closure.json").read_text())["changed"]
    valid = set(ids)
    expected = sum(bool(written_labels(rows, i) & findings) for i in rows if i not in valid)
    assert closure["radiological finding"] == expected > 0

    labels = trained["out"] / "labels.csv"
    with open(labels, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Path", *SCORED])
        for i in ids:
            writer.writerow([i, *(int(label in written_labels(rows, i)) for label in SCORED)])
    done = hmlc(
        "evaluate", "--predictions", str(preds), "--labels", str(labels),
        "--labels-subset", ",".join(SCORED), "--bootstrap", "0", "--json",
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert metrics["n"] == len(ids)
    for label in SCORED:
        n_pos = sum(label in written_labels(rows, i) for i in ids)
        assert (metrics["labels"][label]["n_pos"], metrics["labels"][label]["n_neg"]) == (n_pos, len(ids) - n_pos)
        assert (results["final"][label]["n_pos"], results["final"][label]["n_neg"]) == (n_pos, len(ids) - n_pos)
        assert 0.0 <= metrics["labels"][label]["auc"] <= 1.0 if 0 < n_pos < len(ids) else math.isnan(
            metrics["labels"][label]["auc"]
        )


@pytest.mark.slow
@pytest.mark.realdata
def test_validation_scores_closed_labels(trained: dict[str, Any]) -> None:
    results = json.loads((trained["run"] / "results.json").read_text())
    assert results["final"]["radiological finding"]["n_pos"] > 0
