"""Constants and helpers shared by the HMC plugin's tests (a module of its own: importing
``conftest`` by name picks whichever plugin's conftest was imported first)."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import pytest

#: ../shared/data/hmc relative to the project root (absent on a user's machine).
HMC_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "hmc"
DATA_README = HMC_DATA.parent / "README.md"


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
