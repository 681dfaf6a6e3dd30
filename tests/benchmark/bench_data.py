"""Helpers of the benchmark tests: CheXpert- and NIH-format folders of generated tiny images with the
real label names, a benchmark file over them, and the ``hmlc`` runner."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from hmlc.cli.main import main

CHEXPERT_LABELS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)
NIH_FINDINGS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
    "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
NIH_HEADER = [
    "Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender", "View Position",
    "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]",
]
SIZE = 16


def _image(path: Path, rng: np.random.Generator, brighter: bool) -> None:
    """A seeded 8-bit grayscale image; ``brighter`` shifts it so a model has something to learn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 160, (SIZE, SIZE)) + (90 if brighter else 0)
    cv2.imwrite(str(path), pixels.astype(np.uint8))


def make_chexpert(root: Path, n_train: int = 32, n_valid: int = 24, seed: int = 0) -> Path:
    """``root/CheXpert-v1.0-small`` with train.csv, valid.csv and JPEGs; every label has both classes in valid."""
    rng = np.random.default_rng(seed)
    folder = root / "CheXpert-v1.0-small"
    folder.mkdir(parents=True)
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS]
    for split, n in (("train", n_train), ("valid", n_valid)):
        rows = []
        for i in range(n):
            codes = (rng.random(len(CHEXPERT_LABELS)) < 0.4).astype(int)
            codes[i % len(CHEXPERT_LABELS)] = 1 - codes[i % len(CHEXPERT_LABELS)]  # both classes everywhere
            path = f"CheXpert-v1.0-small/{split}/patient{i + (0 if split == 'train' else 50000):05d}/study1/view1_frontal.jpg"
            _image(root / path, rng, brighter=bool(codes[CHEXPERT_LABELS.index("Pleural Effusion")]))
            row = {"Path": path, "Sex": "Female", "Age": "60", "Frontal/Lateral": "Frontal", "AP/PA": "PA"}
            row.update({label: str(c) for label, c in zip(CHEXPERT_LABELS, codes)})
            if split == "train" and i % 5 == 0:
                row["Edema"] = "-1"  # an uncertain code, as CheXpert's training labels have
            rows.append(row)
        with open(folder / f"{split}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
    return folder


def make_nih(root: Path, n: int = 60, n_test: int = 24, seed: int = 1) -> Path:
    """An NIH ChestX-ray14 folder: Data_Entry_2017.csv, images/, and the official split lists."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    rows = []
    for i in range(n):
        found = [f for f in NIH_FINDINGS if rng.random() < 0.3]
        if i < len(NIH_FINDINGS) * 2:  # every finding positive and negative among the test images
            found = [f for f in found if f != NIH_FINDINGS[i // 2]] + ([NIH_FINDINGS[i // 2]] if i % 2 else [])
        name = f"{i:08d}_000.png"
        _image(root / "images" / name, rng, brighter="Effusion" in found)
        rows.append({"Image Index": name, "Finding Labels": "|".join(found) or "No Finding",
                     "Patient ID": str(i + 1), "View Position": "PA"})
    with open(root / "Data_Entry_2017.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=NIH_HEADER, restval="0")
        writer.writeheader()
        writer.writerows(rows)
    names = [r["Image Index"] for r in rows]
    (root / "test_list.txt").write_text("\n".join(names[:n_test]) + "\n")
    (root / "train_val_list.txt").write_text("\n".join(names[n_test:]) + "\n")
    return root


#: Every training of these tests: a tiny CNN from random weights, 16 px, one epoch, no extras.
TINY = [
    "model.backbone=tiny_cnn", "model.pretrained=false", f"data.image_size={SIZE}", "train.epochs=1",
    "train.method=flat", "train.batch_size=64", "train.progress=false", "output.tensorboard=false",
    "data.num_workers=0",
]


def benchmark_file(path: Path, chexpert: Path, nih: Path, **changes: Any) -> Path:
    """A benchmark file: a CheXpert and an NIH experiment, evaluated on CheXpert valid and NIH test."""
    doc: dict[str, Any] = {
        "description": "tiny generated CheXpert- and NIH-format data",
        "bootstrap": 200,
        "experiments": [
            {"name": "chexpert", "set": ["data.dataset=chexpert", f"data.root={chexpert}", *TINY]},
            {"name": "nih", "set": ["data.dataset=nih", f"data.root={nih}", *TINY]},
        ],
        "datasets": [
            {"name": "chexpert-valid", "dataset": "chexpert", "root": str(chexpert), "split": "valid",
             "label_maps": {"nih": "nih->chexpert"}},
            {"name": "nih-test", "dataset": "nih", "root": str(nih), "split": "test",
             "label_maps": {"chexpert": "chexpert->nih"}},
        ],
    }
    doc.update(changes)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run(argv: list[Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``hmlc ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
