"""Fixtures of the HMC plugin's tests: a fresh plugin host, the optional real data, ARFF writers."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from hmlc.plugins import reset_host

#: ../shared/data/hmc relative to the project root (absent on a user's machine).
HMC_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "hmc"
DATA_README = HMC_DATA.parent / "README.md"


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


def needs_feature_inputs() -> None:
    """Skip unless the core has feature-vector inputs (hmlc.data.features)."""
    pytest.importorskip("hmlc.data.features", reason="the core has no feature-vector inputs yet")


#: A small FunCat-like tree header: 3 features (numeric, nominal, numeric) and 5 nodes.
TREE_HEADER = [
    "% a comment before the relation",
    "@RELATION tiny",
    "",
    "@ATTRIBUTE x1 numeric",
    "@ATTRIBUTE colour {red,green,blue}",
    "@ATTRIBUTE 'x 2' REAL",
    "@ATTRIBUTE class hierarchical 01,01/01,01/01/03,02,02/05",
    "@DATA",
]

#: A small GO-like DAG header: edges, with c under both a and b.
DAG_HEADER = [
    "@RELATION dag",
    "@ATTRIBUTE f numeric",
    "@ATTRIBUTE class hierarchical root/a,root/b,a/c,b/c,c/d",
    "@DATA",
]


def write_arff(path: Path, lines: Sequence[str], *, newline: str = "\n") -> Path:
    """Write ``lines`` to ``path``, gzipped when the name ends in .gz."""
    data = (newline.join(lines) + newline).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def arff_writer(tmp_path: Path) -> Callable[..., Path]:
    """``write(name, lines, newline="\\n")`` -> the path of a new file under tmp_path."""

    def write(name: str, lines: Sequence[str], newline: str = "\n") -> Path:
        return write_arff(tmp_path / name, lines, newline=newline)

    return write
