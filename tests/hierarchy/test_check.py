"""``hmlc hierarchy check``: each warning kind on a small file, --strict, and PadChest's real file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
import yaml

from hmlc.cli.main import main
from hmlc.hierarchy import LabelGraph
from hmlc.hierarchy.check import WARNING_KINDS, check_hierarchy, hierarchy_statistics
from hmlc.hierarchy.io import read_hierarchy

PADCHEST_TREE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "padchest" / "trees_code.txt"

CLEAN = """\
label: finding
children:
- label: opacity
  children:
  - label: nodule
- label: effusion
---
label: normal
"""

# One small file per warning kind; each holds exactly one instance.
FILES = {
    "repeated-terms": """\
label: finding
children:
- label: opacity
  children:
  - label: nodule
- label: mass
  children:
  - label: nodule
""",
    "conflicting-codes": """\
- label: finding
  children:
  - label: adenopathy
    concept: (C0478664)  Localized enlarged lymph nodes
- label: hilum
  children:
  - label: adenopathy
    concept: (C0149711)  hilar adenopathy
""",
    "duplicate-edges": """\
label: finding
children:
- label: effusion
- label: opacity
- label: effusion
""",
    "redundant-edges": """\
edges:
- [finding, pseudonodule]
- [pseudonodule, end on vessel]
- [finding, end on vessel]
""",
    "disagreeing-subtrees": """\
- label: lobar
  children:
  - label: upper lobe
    children: [left upper lobe, right upper lobe]
- label: upper lung field
  children:
  - label: upper lobe
    children: [left upper lobe, right upper lobe, apical]
""",
}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def kinds(text_or_path: str | Path, tmp_path: Path) -> dict[str, int]:
    path = text_or_path if isinstance(text_or_path, Path) else write(tmp_path, "tree.yaml", text_or_path)
    return {w.kind: w.count for w in check_hierarchy(read_hierarchy(path))}


# ----------------------------------------------------------------- each kind
def test_a_clean_file_has_no_warning(tmp_path: Path) -> None:
    assert kinds(CLEAN, tmp_path) == {}


def test_a_clean_dag_in_the_edges_form_has_no_warning(tmp_path: Path) -> None:
    assert kinds("edges: [[r, a], [r, b], [a, c], [b, c]]\n", tmp_path) == {}


def test_a_label_graph_given_as_is_is_checked_for_redundant_edges() -> None:
    graph = LabelGraph(["r", "a", "c"], [("r", "a"), ("a", "c"), ("r", "c")])
    (warning,) = check_hierarchy(read_hierarchy(graph))
    assert warning.kind == "redundant-edges"
    assert warning.examples == ("r -> c (also via a)",)


@pytest.mark.parametrize("kind", sorted(FILES))
def test_each_kind_is_reported_once_with_its_example(kind: str, tmp_path: Path) -> None:
    found = {w.kind: w for w in check_hierarchy(read_hierarchy(write(tmp_path, "tree.yaml", FILES[kind])))}
    assert kind in found
    assert found[kind].count == 1
    assert found[kind].message.startswith("1 ")
    assert len(found[kind].message.splitlines()) == 1
    example = found[kind].examples[0]
    expected = {
        "repeated-terms": "nodule (2 places: under opacity, under mass)",
        "conflicting-codes": "adenopathy ('(C0478664)  Localized enlarged lymph nodes' under finding, "
        "'(C0149711)  hilar adenopathy' under hilum)",
        "duplicate-edges": "finding -> effusion (listed 2 times among the children of finding)",
        "redundant-edges": "finding -> end on vessel (also via pseudonodule)",
        "disagreeing-subtrees": "upper lobe (under lobar: left upper lobe, right upper lobe; "
        "under upper lung field: left upper lobe, right upper lobe, apical)",
    }[kind]
    assert example == expected


def test_disagreeing_subtrees_say_the_union_was_taken(tmp_path: Path) -> None:
    reading = read_hierarchy(write(tmp_path, "tree.yaml", FILES["disagreeing-subtrees"]))
    (warning,) = [w for w in check_hierarchy(reading) if w.kind == "disagreeing-subtrees"]
    assert "the union of their children was taken" in warning.message
    assert reading.graph.children("upper lobe") == ("left upper lobe", "right upper lobe", "apical")


def test_a_bare_reference_agrees_with_any_children(tmp_path: Path) -> None:
    text = "- label: a\n  children:\n  - label: x\n    children: [y]\n- label: b\n  children: [x]\n"
    assert kinds(text, tmp_path) == {"repeated-terms": 1}


def test_duplicate_edges_in_the_edges_form(tmp_path: Path) -> None:
    assert kinds("edges: [[r, a], [r, a], [r, b]]\n", tmp_path) == {"duplicate-edges": 1}


def test_one_code_written_once_and_omitted_elsewhere_is_no_conflict(tmp_path: Path) -> None:
    text = "- label: a\n  children:\n  - {label: x, concept: C1}\n- label: b\n  children:\n  - {label: x}\n"
    assert kinds(text, tmp_path) == {"repeated-terms": 1}


def test_examples_are_capped_and_the_rest_counted(tmp_path: Path) -> None:
    text = "label: r\nchildren:\n" + "".join(f"- {{label: l{i}}}\n- {{label: l{i}}}\n" for i in range(5))
    (dup,) = [w for w in check_hierarchy(read_hierarchy(write(tmp_path, "t.yaml", text))) if w.kind == "duplicate-edges"]
    assert dup.count == 5
    assert len(dup.examples) == 3
    assert "(2 more)" in dup.message


def test_statistics() -> None:
    graph = LabelGraph(["r", "a", "b", "c", "z"], [("r", "a"), ("r", "b"), ("a", "c"), ("b", "c")])
    assert hierarchy_statistics(graph) == {
        "labels": 5, "edges": 4, "roots": 2, "leaves": 2, "max_depth": 2, "labels_with_several_parents": 1,
    }


# --------------------------------------------------------------------- CLI
def test_cli_prints_each_warning_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "dup.yaml", FILES["duplicate-edges"])
    code, out, err = run(["hierarchy", "check", str(path)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    # effusion is written twice under finding: a repeated term and a duplicate edge.
    assert lines[0].startswith("warning: 1 term written in more than one place: effusion")
    assert lines[1].startswith("warning: 1 duplicate edge: finding -> effusion")
    assert lines[-1].startswith(
        f"loaded with warnings (1 repeated-terms, 1 duplicate-edges): {path}: 3 labels, 2 edges"
    )
    assert err == ""


def test_strict_turns_warnings_into_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "dup.yaml", FILES["redundant-edges"])
    code, out, err = run(["hierarchy", "check", "--strict", str(path)], capsys)
    assert code == 2
    assert out.startswith("warning: 1 redundant edge")
    assert err.startswith("hmlc: error: ") and err.count("\n") == 1
    assert "--strict" in err and "1 redundant-edges" in err


def test_strict_on_a_clean_file_is_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["hierarchy", "check", "--strict", str(write(tmp_path, "c.yaml", CLEAN))], capsys)
    assert code == 0, err
    assert out.startswith("ok: ")


def test_cli_checks_a_registered_hierarchy_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    from hmlc.plugins import get_host, hookimpl

    class Trees:
        @hookimpl
        def hmlc_register_hierarchies(self, register: Callable[[str, Any], None]) -> None:
            register("dup-tree", yaml.safe_load(FILES["duplicate-edges"]))

    get_host().pm.register(Trees(), name="trees")
    code, out, err = run(["hierarchy", "check", "dup-tree"], capsys)
    assert code == 0, err
    assert "warning: 1 duplicate edge: finding -> effusion" in out
    assert out.splitlines()[-1].startswith("loaded with warnings (1 repeated-terms, 1 duplicate-edges): dup-tree: ")


# ---------------------------------------------------------------- PadChest
def _padchest_facts() -> dict[str, int]:
    """Each warning's count, from walking PadChest's YAML here (not through hmlc)."""
    docs = [d for d in yaml.safe_load_all(PADCHEST_TREE.read_text(encoding="utf-8")) if d]
    places: dict[str, list[dict]] = {}
    duplicates = 0
    edges = nx.DiGraph()

    def walk(node: dict) -> None:
        nonlocal duplicates
        children = node.get("children") or []
        places.setdefault(node["label"], []).append(node)
        duplicates += sum(n > 1 for n in Counter(c["label"] for c in children).values())
        for child in children:
            edges.add_edge(node["label"], child["label"])
            walk(child)

    for doc in docs:
        walk(doc)
    reduction = nx.transitive_reduction(edges)
    child_sets = {
        label: {frozenset(c["label"] for c in n["children"]) for n in nodes if n.get("children")}
        for label, nodes in places.items()
    }
    return {
        "repeated-terms": sum(len(nodes) > 1 for nodes in places.values()),
        "conflicting-codes": sum(len({n["concept"] for n in nodes if n.get("concept")}) > 1 for nodes in places.values()),
        "duplicate-edges": duplicates,
        "redundant-edges": sum(not reduction.has_edge(*e) for e in edges.edges),
        "disagreeing-subtrees": sum(len(sets) > 1 for sets in child_sets.values()),
        "labels": len(places),
        "edges": edges.number_of_edges(),
    }


@pytest.mark.realdata
@pytest.mark.skipif(not PADCHEST_TREE.is_file(), reason="PadChest trees_code.txt not in ../shared/data (optional real data)")
def test_padchest_warnings_match_an_independent_walk(capsys: pytest.CaptureFixture[str]) -> None:
    facts = _padchest_facts()
    reading = read_hierarchy(PADCHEST_TREE)
    found = {w.kind: w for w in check_hierarchy(reading)}
    assert list(found) == list(WARNING_KINDS)  # PadChest has every kind
    for kind in WARNING_KINDS:
        assert found[kind].count == facts[kind], kind
    # The facts the issue names, as the data README states them.
    assert facts["repeated-terms"] == 32
    assert found["conflicting-codes"].examples[0].startswith("adenopathy (")
    assert found["duplicate-edges"].examples == (
        "radiological finding -> pericardial effusion (listed 2 times among the children of radiological finding)",
    )
    assert "radiological finding -> end on vessel (also via pseudonodule)" in found["redundant-edges"].examples
    assert len(reading.graph) == facts["labels"] and len(reading.graph.edges) == facts["edges"]

    code, out, err = run(["hierarchy", "check", str(PADCHEST_TREE)], capsys)
    assert code == 0, err
    assert sum(line.startswith("warning: ") for line in out.splitlines()) == len(WARNING_KINDS)
    code, out, err = run(["hierarchy", "check", "--strict", str(PADCHEST_TREE)], capsys)
    assert code == 2 and err.startswith("hmlc: error: ")
