"""Fixtures of the NIH ChestX-ray14 plugin's tests: a fresh plugin host, the optional real data, folder builders."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hmlc.plugins import reset_host

PLUGIN = Path(__file__).resolve().parents[1]
#: ../shared/data relative to the project root (absent on a user's machine).
SHARED_DATA = PLUGIN.parents[1].parent / "shared" / "data"
DATA_ENTRY = SHARED_DATA / "nih" / "Data_Entry_2017_v2020.csv.gz"
HEADER = [
    "Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender", "View Position",
    "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]",
]


@pytest.fixture(autouse=True)
def _fresh_plugin_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HMLC_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("HMLC_DISABLED_PLUGINS", raising=False)
    reset_host()
    yield
    reset_host()


@pytest.fixture(scope="session")
def data_entry() -> Path:
    """The real Data_Entry_2017_v2020.csv.gz (112,120 rows, no images); skips when absent."""
    if not DATA_ENTRY.is_file():
        pytest.skip(f"{DATA_ENTRY} not found (optional real data, see ../shared/data/README.md)")
    return DATA_ENTRY


def write_image(path: Path, seed: int, size: int = 24) -> None:
    """A seeded 8-bit grayscale PNG, as ChestX-ray14's are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8))


def write_data_entry(path: Path, rows: list[dict[str, str]]) -> Path:
    """A Data_Entry_2017-format CSV of ``rows`` (Image Index, Finding Labels, Patient ID, View Position)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HEADER, restval="0")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def nih_files() -> Any:
    """``(write_image, write_data_entry)`` for tests that build ChestX-ray14-format folders."""
    return write_image, write_data_entry
