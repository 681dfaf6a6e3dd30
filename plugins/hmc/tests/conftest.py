"""Fixtures of the HMC plugin's tests: a fresh plugin host, the optional real data, ARFF writers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from hmc_testing import HMC_DATA, write_arff

from hmlc.plugins import reset_host

@pytest.fixture(autouse=True)
def _fresh_plugin_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HMLC_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("HMLC_DISABLED_PLUGINS", raising=False)
    reset_host()
    yield
    reset_host()


@pytest.fixture(scope="session")
def hmc_data() -> Path:
    """The real benchmark files (FUN/ and GO/); skips when absent."""
    if not (HMC_DATA / "FUN" / "cellcycle_FUN").is_dir() or not (HMC_DATA / "GO" / "cellcycle_GO").is_dir():
        pytest.skip(f"HMC data not found at {HMC_DATA} (optional real data, see ../shared/data/README.md)")
    return HMC_DATA


@pytest.fixture
def arff_writer(tmp_path: Path) -> Callable[..., Path]:
    """``write(name, lines, newline="\\n")`` -> the path of a new file under tmp_path."""

    def write(name: str, lines: Sequence[str], newline: str = "\n") -> Path:
        return write_arff(tmp_path / name, lines, newline=newline)

    return write
