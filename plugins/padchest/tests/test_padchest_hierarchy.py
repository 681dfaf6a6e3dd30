"""The shipped PadChest hierarchies against trees_code.txt, read independently with yaml and networkx."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch
import yaml
from hmlc_padchest import FULL_HIERARCHY_FILE, HIERARCHY_FILE

from hmlc.chain_rule import chain_rule
from hmlc.hierarchy import LabelGraph
from hmlc.plugins import get_host

PLUGIN = Path(__file__).resolve().parents[1]

PADCHEST_ROOTS = {"normal", "radiological finding", "differential diagnosis"}


class RawTree:
    """trees_code.txt as written: every (parent, child) pair, every node's concepts, the roots."""

    def __init__(self, path: Path) -> None:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        self.roots = [d["label"] for d in docs]
        self.pairs: list[tuple[str, str]] = []
        self.concepts: dict[str, set[str]] = defaultdict(set)
        self.graph = nx.DiGraph()
        stack = [(d, None) for d in docs]
        while stack:
            node, parent = stack.pop()
            self.graph.add_node(node["label"])
            if "concept" in node:
                self.concepts[node["label"]].add(node["concept"].split(")")[0].strip("( "))
            if parent is not None:
                self.pairs.append((parent, node["label"]))
                self.graph.add_edge(parent, node["label"])
            stack.extend((c, node["label"]) for c in node.get("children") or [])


@pytest.fixture(scope="module")
def raw(trees_code: Path) -> RawTree:
    return RawTree(trees_code)


def shipped(name: str) -> LabelGraph:
    return get_host().hierarchy(name)


def test_both_variants_are_registered_from_the_shipped_files() -> None:
    assert shipped("padchest").name == "padchest"
    assert shipped("padchest-full").name == "padchest-full"
    assert HIERARCHY_FILE.is_file() and FULL_HIERARCHY_FILE.is_file()
    assert (FULL_HIERARCHY_FILE.parent / "ATTRIBUTION.md").is_file()
    assert "CC BY-SA 4.0" in FULL_HIERARCHY_FILE.read_text(encoding="utf-8").split("name:")[0]


@pytest.mark.realdata
def test_regenerating_from_trees_code_gives_the_same_bytes(trees_code: Path, tmp_path: Path) -> None:
    script = PLUGIN / "tools" / "convert_trees.py"
    done = subprocess.run(
        [sys.executable, str(script), str(trees_code), str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    for committed in (HIERARCHY_FILE, FULL_HIERARCHY_FILE):
        assert (tmp_path / committed.name).read_bytes() == committed.read_bytes(), committed.name


@pytest.mark.realdata
def test_full_hierarchy_statistics(raw: RawTree) -> None:
    g = shipped("padchest-full")
    reduced = nx.transitive_reduction(raw.graph)
    parents = {label: set(reduced.predecessors(label)) for label in reduced}
    assert set(g.labels) == set(raw.graph.nodes)
    assert len(g) == 304  # the figures of datasets/padchest/README.md, counted on the raw file
    assert len(set(raw.pairs)) == 326 and len(raw.pairs) == 331
    assert set(g.edges) == set(reduced.edges)
    assert len(g.edges) == 326 - 11
    assert set(g.roots) == set(raw.roots) == {
        "normal", "exclude", "suboptimal study", "radiological finding", "differential diagnosis", "localization",
    }
    multi = {label for label, ps in parents.items() if len(ps) >= 2}
    assert {label for label in g.labels if len(g.parents(label)) >= 2} == multi
    assert len(multi) == 17
    assert "calcified granuloma" in multi and set(g.parents("calcified granuloma")) == {"calcified densities", "granuloma"}
    assert g.max_depth == nx.dag_longest_path_length(raw.graph) == 5
    # Dropping implied edges loses no implication: every label keeps its ancestors.
    for label in g.labels:
        assert set(g.ancestors(label)) == nx.ancestors(raw.graph, label), label


@pytest.mark.realdata
def test_padchest_keeps_findings_diagnoses_and_normal(raw: RawTree) -> None:
    g, full = shipped("padchest"), shipped("padchest-full")
    expected = set(PADCHEST_ROOTS).union(*(nx.descendants(raw.graph, r) for r in PADCHEST_ROOTS))
    assert set(g.labels) == expected and len(g) == 195
    assert set(g.roots) == PADCHEST_ROOTS
    assert set(g.edges) == {e for e in full.edges if e[0] in expected}
    assert not {"localization", "exclude", "suboptimal study", "lingula"} & set(g.labels)
    assert g.max_depth == 4


@pytest.mark.realdata
def test_every_umls_concept_is_kept(raw: RawTree) -> None:
    with open(FULL_HIERARCHY_FILE, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    found: dict[str, set[str]] = defaultdict(set)
    stack = list(data["nodes"])
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found[node["label"]].update(node.get("umls", {}))
            stack.extend(node.get("children", []))
    assert {k: v for k, v in found.items() if v} == dict(raw.concepts)
    assert found["adenopathy"] == {"C0478664", "C0149711"}


@pytest.mark.parametrize("name", ["padchest", "padchest-full"])
@pytest.mark.parametrize("combine", ["product", "min"])
def test_chain_rule_is_coherent_over_the_whole_dag(name: str, combine: str) -> None:
    g = shipped(name)
    logits = torch.randn(64, len(g), generator=torch.Generator().manual_seed(0)) * 4
    p = chain_rule(logits, g, combine).numpy()
    edges = np.array(g.edge_indices)
    assert len(edges) == len(g.edges)
    assert (p[:, edges[:, 1]] <= p[:, edges[:, 0]]).all()
