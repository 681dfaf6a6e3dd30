"""The parser and the reader on the real benchmark files, against counts made here with gzip and str.split.

Skips when ../shared/data/hmc is absent. The expected numbers come from the
files through plain string handling (never through hmlc_hmc), and are checked
against the facts listed in ../shared/data/README.md.
"""

from __future__ import annotations

import gzip
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from hmc_testing import needs_feature_inputs
from hmlc_hmc.arff import read_arff
from hmlc_hmc.dataset import HmcDataset

# ---------------------------------------------------------------- independent counts


def _text(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")


def _file(root: Path, name: str, split: str) -> Path:
    return root / name.rsplit("_", 1)[1] / name / f"{name}.{split}.arff.gz"


def _attributes(lines: list[str]) -> list[list[str]]:
    return [line.split() for line in lines if line.upper().startswith("@ATTRIBUTE")]


def _features(lines: list[str]) -> list[list[str]]:
    """[name, type] of every attribute but the class."""
    return [a[1:3] for a in _attributes(lines) if a[2] != "hierarchical"]


def _hierarchy_entries(lines: list[str]) -> list[str]:
    class_line = next(a for a in _attributes(lines) if len(a) > 2 and a[2] == "hierarchical")
    return class_line[3].split(",")


def _data(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.strip().upper() == "@DATA")
    return [line for line in lines[start + 1 :] if line.strip() and not line.startswith("%")]


def _go_parents(entries: list[str]) -> dict[str, set[str]]:
    parents: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        parent, child = entry.split("/")
        parents[child].add(parent)
    return parents


def _go_ancestors(node: str, parents: dict[str, set[str]], memo: dict[str, set[str]]) -> set[str]:
    if node not in memo:
        found: set[str] = set()
        for p in parents.get(node, ()):
            found |= {p} | _go_ancestors(p, parents, memo)
        memo[node] = found
    return memo[node]


# ---------------------------------------------------------------- FunCat: cellcycle_FUN


@pytest.mark.parametrize("split,rows", [("train", 1628), ("valid", 848), ("test", 1281)])
def test_cellcycle_fun_rows_features_nodes_edges(hmc_data: Path, split: str, rows: int) -> None:
    path = _file(hmc_data, "cellcycle_FUN", split)
    lines = _text(path)
    entries = _hierarchy_entries(lines)
    assert len(_data(lines)) == rows
    assert len(_features(lines)) == 77
    assert len(entries) == 499 and sum("/" in e for e in entries) == 481
    arff = read_arff(path)
    assert arff.features.shape == (rows, 77) and arff.labels.shape == (rows, 500)
    header = arff.header
    assert header.form == "tree" and header.labels[0] == "root" and set(header.declared) == set(entries)
    below_root = [e for e in header.edges if e[0] != "root"]
    assert len(header.edges) == 499 and len(below_root) == 481
    assert {c for p, c in header.edges if p == "root"} == {e for e in entries if "/" not in e}
    # Missing values: every '?' is a NaN, nothing else is.
    missing = sum(line.split(",")[:-1].count("?") for line in _data(lines))
    assert int(np.isnan(arff.features).sum()) == missing


def test_cellcycle_fun_label_frequencies(hmc_data: Path) -> None:
    path = _file(hmc_data, "cellcycle_FUN", "valid")
    counts: Counter[str] = Counter()
    for line in _data(_text(path)):
        nodes = {"root"}
        for label in line.rsplit(",", 1)[1].strip().split("@"):
            parts = label.split("/")
            nodes |= {"/".join(parts[:i]) for i in range(1, len(parts) + 1)}
        counts.update(nodes)
    arff = read_arff(path)
    got = dict(zip(arff.header.labels, arff.labels.sum(axis=0).tolist()))
    assert got == {label: counts.get(label, 0) for label in arff.header.labels}
    assert got["root"] == 848


def test_cellcycle_fun_first_row_values(hmc_data: Path) -> None:
    path = _file(hmc_data, "cellcycle_FUN", "train")
    first = _data(_text(path))[0].split(",")
    expected = np.array([np.nan if v == "?" else float(v) for v in first[:-1]], dtype=np.float32)
    np.testing.assert_array_equal(read_arff(path).features[0], expected)


# ---------------------------------------------------------------- Gene Ontology: cellcycle_GO


@pytest.mark.parametrize("split,rows", [("train", 1625), ("valid", 848), ("test", 1278)])
def test_cellcycle_go_rows(hmc_data: Path, split: str, rows: int) -> None:
    path = _file(hmc_data, "cellcycle_GO", split)
    assert len(_data(_text(path))) == rows
    arff = read_arff(path)
    assert arff.features.shape == (rows, 77) and arff.labels.shape == (rows, 4126)


def test_cellcycle_go_dag(hmc_data: Path) -> None:
    lines = _text(_file(hmc_data, "cellcycle_GO", "train"))
    entries = _hierarchy_entries(lines)
    below = [e for e in entries if not e.startswith("root/")]
    nodes_below = {x for e in entries for x in e.split("/")} - {"root"}
    parents = _go_parents(entries)
    several = sum(len(ps) >= 2 for ps in parents.values())
    assert (len(nodes_below), len(below), several) == (4125, 5824, 1477)
    reader = HmcDataset()
    graph = reader.data_hierarchy(root=hmc_data, params={"name": "cellcycle_GO"})
    assert graph is not None and graph.name == "cellcycle_GO"
    assert len(graph) == 4126 and graph.roots == ("root",)
    assert len([e for e in graph.edges if e[0] != "root"]) == 5824
    assert sum(len(graph.parents(label)) >= 2 for label in graph.labels) == several
    assert set(graph.edges) == {tuple(e.split("/")) for e in entries}
    assert reader.score_exclude(graph) == ("root", "GO0003674", "GO0005575", "GO0008150")


def test_cellcycle_go_label_frequencies(hmc_data: Path) -> None:
    path = _file(hmc_data, "cellcycle_GO", "valid")
    lines = _text(path)
    parents = _go_parents(_hierarchy_entries(lines))
    memo: dict[str, set[str]] = {}
    counts: Counter[str] = Counter()
    for line in _data(lines):
        nodes: set[str] = set()
        for label in line.rsplit(",", 1)[1].strip().split("@"):
            nodes |= {label} | _go_ancestors(label, parents, memo)
        counts.update(nodes)
    arff = read_arff(path)
    got = dict(zip(arff.header.labels, arff.labels.sum(axis=0).tolist()))
    assert got == {label: counts.get(label, 0) for label in arff.header.labels}


# ---------------------------------------------------------------- pheno_FUN (nominal) and seq_GO


def _one_hot_width(features: list[list[str]]) -> int:
    return sum(1 if t.lower() in ("numeric", "real", "integer") else len(t.strip("{}").split(",")) for _, t in features)


def test_pheno_fun(hmc_data: Path) -> None:
    for split, rows in [("train", 656), ("valid", 353), ("test", 582)]:
        lines = _text(_file(hmc_data, "pheno_FUN", split))
        assert len(_data(lines)) == rows
    features = _features(lines)
    assert len(features) == 69 and all(t.startswith("{") for _, t in features)
    assert len(_hierarchy_entries(lines)) == 455
    arff = read_arff(_file(hmc_data, "pheno_FUN", "test"))
    assert arff.features.shape == (582, _one_hot_width(features)) and len(arff.header.declared) == 455
    # One-hot: each nominal feature has exactly one 1 per row (no '?' in pheno).
    assert (arff.features.sum(axis=1) == 69).all()
    first = _data(lines)[0].split(",")[:-1]
    names = [f"{name}={value}" for (name, _), value in zip(features, first)]
    row = dict(zip(arff.header.feature_names, arff.features[0].tolist()))
    assert all(row[n] == 1.0 for n in names)


def test_seq_go(hmc_data: Path) -> None:
    lines = _text(_file(hmc_data, "seq_GO", "train"))
    features = _features(lines)
    nodes = {x for e in _hierarchy_entries(lines) for x in e.split("/")} - {"root"}
    assert len(features) == 478 and len(nodes) == 4133
    arff = read_arff(_file(hmc_data, "seq_GO", "train"))
    assert arff.features.shape == (len(_data(lines)), _one_hot_width(features))
    assert len(arff.header.labels) == 4134


# ---------------------------------------------------------------- the reader


def test_reader_splits_on_the_real_layout(hmc_data: Path) -> None:
    needs_feature_inputs()
    reader = HmcDataset()
    params = {"name": "pheno_FUN"}
    graph = reader.data_hierarchy(root=hmc_data, params=params)
    assert graph is not None and len(graph) == 456
    sizes = {}
    for split in ("train", "valid", "test", "trainvalid"):
        loaded = reader.load(split, root=hmc_data, params=params, image_size=None, labels=graph.labels, graph=graph)
        sizes[split] = len(loaded.table)
        assert loaded.table.labels == graph.labels and loaded.images.dim == 276
        assert set(np.unique(loaded.table.codes())) <= {0.0, 1.0}
    assert sizes == {"train": 656, "valid": 353, "test": 582, "trainvalid": 656 + 353}
    assert reader.score_exclude(graph) == ("root",)
