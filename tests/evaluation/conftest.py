"""Fixtures of the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .chexpert_files import ChexpertFiles, write_chexpert_files


@pytest.fixture
def chexpert_files(tmp_path: Path) -> ChexpertFiles:
    return write_chexpert_files(tmp_path / "files")
