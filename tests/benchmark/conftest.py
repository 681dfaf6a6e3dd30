"""Fixtures of the benchmark tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .bench_data import make_chexpert, make_nih


@pytest.fixture
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(CheXpert root, NIH root) of generated images."""
    base = tmp_path_factory.mktemp("data")
    make_chexpert(base / "chexpert")
    return base / "chexpert", make_nih(base / "nih")
