"""Fixtures of the CheXpert plugin's tests: a fresh plugin host and the optional real data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hmlc.plugins import reset_host

#: ../shared/data/chexpert relative to the project root (absent on a user's machine).
CHEXPERT_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "chexpert"
SMALL = CHEXPERT_DATA / "CheXpert-v1.0-small"
TRAIN_FULL = CHEXPERT_DATA / "train_full.csv.gz"


@pytest.fixture(autouse=True)
def _fresh_plugin_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HMLC_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("HMLC_DISABLED_PLUGINS", raising=False)
    reset_host()
    yield
    reset_host()


@pytest.fixture(scope="session")
def chexpert_small() -> Path:
    """The real CheXpert-v1.0-small sample (636 train, 234 valid images); skips when absent."""
    if not (SMALL / "train.csv").is_file() or not (SMALL / "valid.csv").is_file():
        pytest.skip(f"CheXpert sample not found at {SMALL} (optional real data, see ../shared/data/README.md)")
    return SMALL


@pytest.fixture(scope="session")
def train_full() -> Path:
    """The complete official train.csv (223,414 rows, no images); skips when absent."""
    if not TRAIN_FULL.is_file():
        pytest.skip(f"CheXpert train_full.csv.gz not found at {TRAIN_FULL} (optional real data)")
    return TRAIN_FULL
