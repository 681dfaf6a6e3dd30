"""Fixtures for the data tests: a small synthetic export and the shared real data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest

from hmlc.data.synthetic import export_synthetic

# tests/data/conftest.py -> the project root's sibling folder shared/data
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CHEXPERT_LABELS = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
]



class Export(NamedTuple):
    out: Path
    summary: dict[str, Any]
    n: int
    seed: int
    size: int


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Export:
    """A 40-image synthetic export (32 train, 8 valid) at 32x32; treat as read-only."""
    out = tmp_path_factory.mktemp("export") / "synth-v1"
    n, seed, size = 40, 3, 32
    return Export(out, export_synthetic(out, n=n, seed=seed, image_size=size), n, seed, size)


@pytest.fixture(scope="session")
def chexpert_labels() -> list[str]:
    return list(CHEXPERT_LABELS)


@pytest.fixture(scope="session")
def chexpert_dir() -> Path:
    """The shared CheXpert folder (holding CheXpert-v1.0-small/); skips when absent."""
    folder = SHARED_DATA / "chexpert"
    if not (folder / "CheXpert-v1.0-small" / "valid.csv").is_file():
        pytest.skip(f"real CheXpert data not found at {folder}")
    return folder
