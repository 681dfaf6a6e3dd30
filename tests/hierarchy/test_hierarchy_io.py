"""load_hierarchy: YAML (both forms, multi-document), JSON, Python sources, errors."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

from hmlc.errors import HierarchyError, HmlcError
from hmlc.hierarchy import LabelGraph, graph_from_data, load_hierarchy, read_hierarchy
from hmlc.hierarchy.io import WrittenNode

PADCHEST_TREE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "padchest" / "trees_code.txt"

# One tree, r -> {a, b}, a -> c, b -> c, written in every supported form.
LABELS = ("r", "a", "b", "c")
EDGES = (("r", "a"), ("r", "b"), ("a", "c"), ("b", "c"))
EXPECTED = LabelGraph(LABELS, EDGES)

NESTED_YAML = """\
nodes:
  - label: r
    children:
      - label: a
        children: [c]
      - label: b
        children:
          - c
"""

EDGES_YAML = """\
labels: [r, a, b, c]
edges:
  - [r, a]
  - [r, b]
  - [a, c]
  - [b, c]
"""

# PadChest's layout: one root node per YAML document, extra keys per node.
MULTI_DOC_YAML = """\
label: r
concept: (C000)  Root
children:
- label: a
  children:
  - label: c
- label: b
  concept: (C001)  Bee
  children:
  - label: c
---
label: lonely
single_label: Y
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def unique_module_name() -> str:
    return f"hmlc_test_tree_{uuid.uuid4().hex[:10]}"


# ----------------------------------------------------------------- data forms
def test_nested_yaml(tmp_path: Path) -> None:
    g = load_hierarchy(write(tmp_path, "tree.yaml", NESTED_YAML))
    # Without `labels:` the order is that of first appearance, depth first.
    assert g.labels == ("r", "a", "c", "b")
    assert set(g.edges) == set(EDGES)
    assert g.name == "tree"


def test_edges_yaml(tmp_path: Path) -> None:
    g = load_hierarchy(write(tmp_path, "tree.yml", EDGES_YAML))
    assert g.labels == LABELS
    assert set(g.edges) == set(EDGES)
    assert g == EXPECTED


def test_edges_form_without_labels_orders_by_first_appearance() -> None:
    g = graph_from_data({"edges": [["b", "c"], ["a", "c"], ["r", "a"]]})
    assert g.labels == ("b", "c", "a", "r")


def test_name_in_the_file_wins_over_the_file_name(tmp_path: Path) -> None:
    g = load_hierarchy(write(tmp_path, "tree.yaml", "name: mine\n" + EDGES_YAML))
    assert g.name == "mine"


def test_json_file(tmp_path: Path) -> None:
    g = load_hierarchy(write(tmp_path, "tree.json", json.dumps({"labels": list(LABELS), "edges": [list(e) for e in EDGES]})))
    assert g == EXPECTED


def test_json_file_in_the_nested_form(tmp_path: Path) -> None:
    data = {"nodes": [{"label": "r", "children": [{"label": "a", "children": ["c"]}, {"label": "b", "children": ["c"]}]}]}
    g = load_hierarchy(write(tmp_path, "tree.json", json.dumps(data)))
    assert g.labels == ("r", "a", "c", "b")
    assert set(g.edges) == set(EDGES)


def test_multi_document_yaml_makes_one_root_per_document(tmp_path: Path) -> None:
    g = load_hierarchy(write(tmp_path, "trees_code.txt", MULTI_DOC_YAML))
    assert g.labels == ("r", "a", "c", "b", "lonely")
    assert set(g.edges) == set(EDGES)
    assert g.roots == ("r", "lonely")
    assert g.parents("c") == ("a", "b")


def test_labels_key_fixes_the_output_order_of_the_nested_form(tmp_path: Path) -> None:
    text = "labels: [c, b, a, r]\n" + NESTED_YAML
    g = load_hierarchy(write(tmp_path, "tree.yaml", text))
    assert g.labels == ("c", "b", "a", "r")
    assert set(g.edges) == set(EDGES)


def test_labels_key_must_list_every_label_of_the_tree(tmp_path: Path) -> None:
    with pytest.raises(HierarchyError, match=r"misses \['c'\]"):
        load_hierarchy(write(tmp_path, "tree.yaml", "labels: [r, a, b]\n" + NESTED_YAML))


def test_labels_key_with_a_duplicate_is_rejected_in_the_nested_form(tmp_path: Path) -> None:
    with pytest.raises(HierarchyError, match="twice"):
        load_hierarchy(write(tmp_path, "tree.yaml", "labels: [r, a, b, c, a]\n" + NESTED_YAML))


def test_labels_key_with_a_duplicate_is_rejected_in_the_edges_form() -> None:
    with pytest.raises(HierarchyError, match="twice"):
        graph_from_data({"labels": ["r", "a", "r"], "edges": [["r", "a"]]})


def test_top_level_list_and_single_node() -> None:
    assert graph_from_data(["x", {"label": "y", "children": ["z"]}]).edges == (("y", "z"),)
    assert graph_from_data({"label": "y", "children": ["z"]}).labels == ("y", "z")


def test_dict_and_callable_and_graph_sources() -> None:
    data = {"labels": list(LABELS), "edges": [list(e) for e in EDGES]}
    assert load_hierarchy(data) == EXPECTED
    assert load_hierarchy(lambda: data) == EXPECTED
    assert load_hierarchy(EXPECTED) is EXPECTED


# ---------------------------------------------------------- malformed content
@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"edges": "r -> a"}, "must be a list"),
        ({"edges": ["r"]}, "not a \\[parent, child\\] pair"),
        ({"edges": [["r", "a", "b"]]}, "not a \\[parent, child\\] pair"),
        ({"labels": "r, a", "edges": [["r", "a"]]}, "'labels' must be a list"),
        ({"edges": [["r", "a"]], "colour": "red"}, "unknown key"),
        ({"nodes": ["r"], "colour": "red"}, "unknown key"),
        ({"nodes": [{"children": ["a"]}]}, "has no 'label'"),
        ({"nodes": [{"label": "r", "children": "a"}]}, "must be a list"),
        ({"nodes": [{"label": 3}]}, "not a non-empty string"),
        ({"nodes": [7]}, "must be a label or a mapping"),
        ({"colour": "red"}, "expected 'edges', 'nodes'"),
        (42, "cannot read a hierarchy from a int"),
    ],
)
def test_malformed_data_is_a_hierarchy_error(data: object, match: str) -> None:
    with pytest.raises(HierarchyError, match=match):
        graph_from_data(data)


def test_cycle_in_a_yaml_file_names_the_labels(tmp_path: Path) -> None:
    path = write(tmp_path, "cyc.yaml", "edges:\n  - [a, b]\n  - [b, c]\n  - [c, a]\n")
    with pytest.raises(HierarchyError, match="cycle") as info:
        load_hierarchy(path)
    assert set(str(info.value).split("cycle:")[1].split(";")[0].strip().split(" -> ")) == {"a", "b", "c"}


def test_a_label_under_its_own_descendant_is_a_cycle_in_the_nested_form() -> None:
    with pytest.raises(HierarchyError, match="cycle"):
        graph_from_data({"nodes": [{"label": "a", "children": [{"label": "b", "children": ["a"]}]}]})


def test_edge_with_a_list_end_in_a_yaml_file_is_a_hierarchy_error(tmp_path: Path) -> None:
    with pytest.raises(HierarchyError):
        load_hierarchy(write(tmp_path, "tree.yaml", "edges:\n  - [a, [b, c]]\n"))


# --------------------------------------------------------------- file errors
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(HierarchyError, match="does not exist"):
        load_hierarchy(tmp_path / "nope.yaml")


def test_folder_is_not_a_hierarchy_file(tmp_path: Path) -> None:
    with pytest.raises(HierarchyError, match="is a folder"):
        load_hierarchy(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(HierarchyError, match="empty"):
        load_hierarchy(write(tmp_path, "tree.yaml", "# nothing here\n"))


def test_bad_yaml_reports_the_line(tmp_path: Path) -> None:
    text = "nodes:\n  - r\n  - label: a\n    children: [b, c\n  - d\n"
    with pytest.raises(HierarchyError, match=r"not valid YAML: .*\(line \d+\)") as info:
        load_hierarchy(write(tmp_path, "tree.yaml", text))
    assert "\n" not in str(info.value)


def test_bad_yaml_line_number_points_at_the_problem(tmp_path: Path) -> None:
    text = "labels: [a, b]\nedges:\n  - [a, b]\n  bad: : x\n"
    with pytest.raises(HierarchyError, match=r"\(line 4\)"):
        load_hierarchy(write(tmp_path, "tree.yaml", text))


def test_bad_json_reports_the_line(tmp_path: Path) -> None:
    with pytest.raises(HierarchyError, match=r"not valid JSON: .*\(line 3\)"):
        load_hierarchy(write(tmp_path, "tree.json", '{\n "edges": [["a", "b"]],\n}\n'))


# ------------------------------------------------------------ Python sources
def test_python_module_attribute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = unique_module_name()
    write(tmp_path, f"{name}.py", f"from hmlc.hierarchy import LabelGraph\ntree = LabelGraph({list(LABELS)!r}, {list(EDGES)!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert load_hierarchy(f"{name}:tree") == EXPECTED
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    "body",
    [
        "tree = {'labels': %r, 'edges': %r}\n" % (list(LABELS), [list(e) for e in EDGES]),
        "def tree():\n    return {'labels': %r, 'edges': %r}\n" % (list(LABELS), [list(e) for e in EDGES]),
    ],
    ids=["dict", "callable"],
)
def test_python_module_attribute_may_be_data_or_a_callable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    name = unique_module_name()
    write(tmp_path, f"{name}.py", body)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert load_hierarchy(f"{name}:tree") == EXPECTED
    finally:
        sys.modules.pop(name, None)


def test_python_file_defining_hierarchy(tmp_path: Path) -> None:
    path = write(tmp_path, "mytree.py", "hierarchy = {'nodes': [{'label': 'r', 'children': ['a', 'b']}]}\n")
    g = load_hierarchy(str(path))
    assert g.labels == ("r", "a", "b")
    assert g.edges == (("r", "a"), ("r", "b"))


def test_python_file_errors(tmp_path: Path) -> None:
    with pytest.raises(HierarchyError, match="does not exist"):
        load_hierarchy(str(tmp_path / "missing.py"))
    with pytest.raises(HierarchyError, match="defines no 'hierarchy'"):
        load_hierarchy(str(write(tmp_path, "none.py", "tree = 1\n")))
    with pytest.raises(HierarchyError, match="failed to run: RuntimeError: boom"):
        load_hierarchy(str(write(tmp_path, "boom.py", "raise RuntimeError('boom')\n")))


def test_python_module_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(HierarchyError, match="cannot import 'hmlc_no_such_module_xyz'"):
        load_hierarchy("hmlc_no_such_module_xyz:tree")
    name = unique_module_name()
    write(tmp_path, f"{name}.py", "other = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(HierarchyError, match="defines no 'tree'"):
            load_hierarchy(f"{name}:tree")
    finally:
        sys.modules.pop(name, None)


def test_python_module_that_fails_to_import_is_a_hierarchy_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = unique_module_name()
    write(tmp_path, f"{name}.py", "raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(HierarchyError, match="boom"):
            load_hierarchy(f"{name}:tree")
    finally:
        sys.modules.pop(name, None)


def test_python_callable_that_raises_is_a_hierarchy_error(tmp_path: Path) -> None:
    path = write(tmp_path, "lazy.py", "def hierarchy():\n    raise RuntimeError('inner')\n")
    with pytest.raises(HierarchyError, match="inner"):
        load_hierarchy(str(path))


# ------------------------------------------------------- what the file wrote
def test_read_hierarchy_records_every_place_a_label_is_written(tmp_path: Path) -> None:
    reading = read_hierarchy(write(tmp_path, "multi.yaml", MULTI_DOC_YAML))
    assert reading.form == "nested"
    assert reading.graph == load_hierarchy(write(tmp_path, "again.yaml", MULTI_DOC_YAML))
    assert reading.nodes == (
        WrittenNode("r", (), ("a", "b"), "(C000)  Root"),
        WrittenNode("a", ("r",), ("c",), None),
        WrittenNode("c", ("r", "a"), (), None),
        WrittenNode("b", ("r",), ("c",), "(C001)  Bee"),
        WrittenNode("c", ("r", "b"), (), None),
        WrittenNode("lonely", (), (), None, "Y"),
    )


def test_read_hierarchy_keeps_repeated_edges_of_the_edges_form() -> None:
    reading = read_hierarchy({"edges": [["r", "a"], ["r", "a"]]})
    assert reading.form == "edges"
    assert reading.written_edges == (("r", "a"), ("r", "a"))
    assert reading.graph.edges == (("r", "a"),)


def test_code_key_is_read_like_concept() -> None:
    reading = read_hierarchy({"nodes": [{"label": "x", "code": "C1"}]})
    assert reading.nodes[0].code == "C1"


def test_a_deep_nested_file_loads_without_recursion(tmp_path: Path) -> None:
    depth = 3000
    node: dict = {"label": f"l{depth}"}
    for i in range(depth - 1, -1, -1):
        node = {"label": f"l{i}", "children": [node]}
    graph = graph_from_data({"nodes": [node]})
    assert len(graph) == depth + 1
    assert graph.parents(f"l{depth}") == (f"l{depth - 1}",)


def test_a_yaml_alias_of_a_node_inside_itself_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "loop.yaml", "&a\nlabel: a\nchildren:\n- *a\n")
    with pytest.raises(HmlcError, match="recursive alias"):
        load_hierarchy(path)


# -------------------------------------------------------------------- PadChest
@pytest.mark.realdata
@pytest.mark.skipif(not PADCHEST_TREE.is_file(), reason="PadChest trees_code.txt not in ../shared/data (optional real data)")
def test_padchest_tree_loads_as_a_dag() -> None:
    g = load_hierarchy(PADCHEST_TREE)
    assert 280 <= len(g) <= 320
    assert g.max_depth == 5
    assert g.parents("calcified granuloma") == ("calcified densities", "granuloma")
    assert {"radiological finding", "differential diagnosis", "localization", "normal", "exclude", "suboptimal study"} <= set(g.roots)
    assert g.labels[:3] == ("normal", "exclude", "suboptimal study")
    multi = [label for label in g.labels if len(g.parents(label)) > 1]
    assert "calcified granuloma" in multi
    # The same file loads to the same graph every time.
    assert load_hierarchy(PADCHEST_TREE).content_hash == g.content_hash
