"""LabelGraph: validation, structure queries, identity and rendering."""

from __future__ import annotations

import numpy as np
import pytest

from hmlc.errors import HierarchyError
from hmlc.hierarchy import LabelGraph, graph_from_data

# A small DAG whose output order is deliberately not topological:
#   r -> a -> c -> d,  r -> b -> c,  r -> d  (c has two parents, d two parents
#   at different depths), and an isolated root s.
LABELS = ["d", "c", "s", "a", "b", "r"]
EDGES = [("r", "a"), ("r", "b"), ("a", "c"), ("b", "c"), ("c", "d"), ("r", "d")]


@pytest.fixture
def dag() -> LabelGraph:
    return LabelGraph(LABELS, EDGES, name="small")


# ------------------------------------------------------------------ validation
def test_labels_and_edges_keep_the_given_order(dag: LabelGraph) -> None:
    assert dag.labels == tuple(LABELS)
    assert dag.edges == tuple(EDGES)
    assert len(dag) == 6
    assert "c" in dag and "zz" not in dag
    assert list(dag) == LABELS
    assert dag.index("a") == 3


def test_repeated_edge_is_kept_once() -> None:
    g = LabelGraph(["a", "b"], [("a", "b"), ["a", "b"]])
    assert g.edges == (("a", "b"),)


def test_empty_graph_is_rejected() -> None:
    with pytest.raises(HierarchyError, match="no labels"):
        LabelGraph([], [])


def test_duplicate_label_is_rejected_and_named() -> None:
    with pytest.raises(HierarchyError, match=r"'b' is listed twice"):
        LabelGraph(["a", "b", "b"])


@pytest.mark.parametrize("bad", [3, None, "", "   ", ["x"]])
def test_label_that_is_not_a_non_empty_string_is_rejected(bad: object) -> None:
    with pytest.raises(HierarchyError, match="not a non-empty string"):
        LabelGraph(["a", bad])  # type: ignore[list-item]


@pytest.mark.parametrize("edge", [("a", "zz"), ("zz", "a")])
def test_edge_naming_an_unknown_label_is_rejected(edge: tuple[str, str]) -> None:
    with pytest.raises(HierarchyError, match=r"unknown label 'zz'"):
        LabelGraph(["a", "b"], [edge])


def test_self_loop_is_rejected() -> None:
    with pytest.raises(HierarchyError, match=r"'a' is its own parent \(self loop\)"):
        LabelGraph(["a", "b"], [("a", "b"), ("a", "a")])


def test_cycle_is_rejected_naming_every_label_on_it() -> None:
    with pytest.raises(HierarchyError, match="cycle") as info:
        LabelGraph(["x", "a", "b", "c"], [("x", "a"), ("a", "b"), ("b", "c"), ("c", "a")])
    message = str(info.value)
    path = message.split("cycle:")[1].split(";")[0].strip().split(" -> ")
    assert set(path) == {"a", "b", "c"}
    assert path[0] == path[-1]
    assert "\n" not in message


@pytest.mark.parametrize("edge", [("a",), ("a", "b", "c"), ()])
def test_edge_that_is_not_a_pair_is_rejected(edge: tuple[str, ...]) -> None:
    with pytest.raises(HierarchyError, match=r"not a \[parent, child\] pair"):
        LabelGraph(["a", "b", "c"], [edge])


@pytest.mark.parametrize("edge", [5, "ab"])
def test_edge_that_is_not_a_sequence_is_rejected(edge: object) -> None:
    with pytest.raises(HierarchyError, match="pair"):
        LabelGraph(["a", "b"], [edge])  # type: ignore[list-item]


def test_edge_end_that_is_a_list_is_rejected() -> None:
    with pytest.raises(HierarchyError):
        LabelGraph(["a", "b", "c"], [("a", ["b", "c"])])  # type: ignore[list-item]


def test_every_validation_error_is_one_line() -> None:
    cases = [
        lambda: LabelGraph([]),
        lambda: LabelGraph(["a", "a"]),
        lambda: LabelGraph(["a"], [("a", "b")]),
        lambda: LabelGraph(["a"], [("a", "a")]),
        lambda: LabelGraph(["a", "b"], [("a", "b"), ("b", "a")]),
        lambda: LabelGraph(["a", "b"], [("a",)]),
    ]
    for case in cases:
        with pytest.raises(HierarchyError) as info:
            case()
        assert "\n" not in str(info.value)


def test_name_appears_in_validation_errors() -> None:
    with pytest.raises(HierarchyError, match="'mytree'"):
        LabelGraph(["a", "a"], name="mytree")


# ------------------------------------------------------------------- structure
def test_parents_and_children_in_output_order(dag: LabelGraph) -> None:
    assert dag.parents("c") == ("a", "b")
    assert dag.parents("d") == ("c", "r")
    assert dag.parents("r") == ()
    assert dag.children("r") == ("d", "a", "b")
    assert dag.children("d") == ()


def test_ancestors_and_descendants(dag: LabelGraph) -> None:
    assert dag.ancestors("d") == ("c", "a", "b", "r")
    assert dag.ancestors("c") == ("a", "b", "r")
    assert dag.ancestors("s") == ()
    assert dag.descendants("r") == ("d", "c", "a", "b")
    assert dag.descendants("a") == ("d", "c")
    assert dag.descendants("d") == ()


def test_roots_and_leaves_in_output_order(dag: LabelGraph) -> None:
    assert dag.roots == ("s", "r")
    assert dag.leaves == ("d", "s")


def test_depth_is_the_longest_path_from_a_root(dag: LabelGraph) -> None:
    # d is a child of r (path length 1) and of c (r -> a -> c -> d: length 3).
    assert {l: dag.depth(l) for l in LABELS} == {"r": 0, "s": 0, "a": 1, "b": 1, "c": 2, "d": 3}
    assert dag.max_depth == 3


def test_topological_order_puts_parents_first_and_breaks_ties_by_output_order(dag: LabelGraph) -> None:
    assert dag.topological_order == ("s", "r", "a", "b", "c", "d")
    position = {l: i for i, l in enumerate(dag.topological_order)}
    for parent, child in EDGES:
        assert position[parent] < position[child]
    assert dag.topological_indices.dtype == np.int64
    assert [dag.labels[i] for i in dag.topological_indices] == list(dag.topological_order)


def test_index_views_agree_with_the_label_views(dag: LabelGraph) -> None:
    idx = {l: i for i, l in enumerate(LABELS)}
    assert dag.parent_indices[idx["c"]] == (idx["a"], idx["b"])
    assert dag.parent_indices[idx["r"]] == ()
    assert [tuple(row) for row in dag.edge_indices.tolist()] == [(idx[p], idx[c]) for p, c in EDGES]
    expected_adjacency = np.zeros((6, 6), dtype=bool)
    for p, c in EDGES:
        expected_adjacency[idx[p], idx[c]] = True
    np.testing.assert_array_equal(dag.adjacency, expected_adjacency)
    for label in LABELS:
        column = {LABELS[a] for a in np.flatnonzero(dag.ancestor_matrix[:, idx[label]])}
        assert column == set(dag.ancestors(label))


def test_edge_indices_of_a_graph_without_edges_has_shape_0_2() -> None:
    g = LabelGraph(["a", "b"])
    assert g.edge_indices.shape == (0, 2)
    assert not g.adjacency.any()
    assert g.roots == g.leaves == ("a", "b")


@pytest.mark.parametrize("query", ["parents", "children", "ancestors", "descendants", "depth", "index"])
def test_unknown_label_in_a_query_is_a_hierarchy_error(dag: LabelGraph, query: str) -> None:
    with pytest.raises(HierarchyError, match=r"unknown label 'nope'.*has: d, c, s"):
        getattr(dag, query)("nope")


# -------------------------------------------------------------------- identity
def test_content_hash_is_stable_across_instances_and_edge_order(dag: LabelGraph) -> None:
    again = LabelGraph(LABELS, list(reversed(EDGES)), name="other name")
    assert again.content_hash == dag.content_hash
    assert again == dag
    assert hash(again) == hash(dag)
    assert len(dag.content_hash) == 64
    int(dag.content_hash, 16)


def test_content_hash_is_a_fixed_value() -> None:
    # Checkpoints store this hash: it must not change between runs or releases.
    g = LabelGraph(["a", "b"], [("a", "b")])
    assert g.content_hash == LabelGraph(["a", "b"], [("a", "b")]).content_hash
    import hashlib

    payload = '{"edges":[["a","b"]],"labels":["a","b"]}'
    assert g.content_hash == hashlib.sha256(payload.encode()).hexdigest()


def test_content_hash_depends_on_label_order_and_edges(dag: LabelGraph) -> None:
    reordered = LabelGraph(list(reversed(LABELS)), EDGES)
    fewer_edges = LabelGraph(LABELS, EDGES[:-1])
    assert reordered.content_hash != dag.content_hash
    assert fewer_edges.content_hash != dag.content_hash
    assert reordered != dag


def test_same_graph_built_from_edges_and_from_nested_children_is_equal() -> None:
    by_edges = graph_from_data({"labels": ["r", "a", "b", "c"], "edges": [["r", "a"], ["r", "b"], ["a", "c"], ["b", "c"]]})
    nested = graph_from_data(
        {
            "labels": ["r", "a", "b", "c"],
            "nodes": [{"label": "r", "children": [{"label": "a", "children": ["c"]}, {"label": "b", "children": ["c"]}]}],
        }
    )
    assert by_edges.content_hash == nested.content_hash
    assert by_edges == nested


def test_to_dict_from_dict_round_trip(dag: LabelGraph) -> None:
    data = dag.to_dict()
    assert data == {"labels": LABELS, "edges": [list(e) for e in EDGES]}
    back = LabelGraph.from_dict(data, name="back")
    assert back.labels == dag.labels
    assert back.edges == dag.edges
    assert back.content_hash == dag.content_hash
    assert back.name == "back"


def test_to_json_round_trip(dag: LabelGraph) -> None:
    import json

    assert LabelGraph.from_dict(json.loads(dag.to_json())) == dag


def test_graph_property_is_a_copy(dag: LabelGraph) -> None:
    g = dag.graph
    g.add_edge("s", "r")
    assert dag.parents("r") == ()


# ------------------------------------------------------------------- rendering
def test_to_text_is_an_indented_tree_expanding_a_shared_child_once(dag: LabelGraph) -> None:
    assert dag.to_text() == (
        "s\n"
        "r\n"
        "├── d  (parents: c, r)\n"
        "├── a\n"
        "│   └── c  (parents: a, b)\n"
        "│       └── d  (parents: c, r)\n"
        "└── b\n"
        "    └── c  (parents: a, b)  [see above]\n"
    )


def test_to_dot_has_every_label_and_edge(dag: LabelGraph) -> None:
    dot = dag.to_dot()
    assert dot.startswith('digraph "small" {')
    assert dot.rstrip().endswith("}")
    for label in LABELS:
        assert f'  "{label}";' in dot
    for parent, child in EDGES:
        assert f'  "{parent}" -> "{child}";' in dot
    assert dot.count("->") == len(EDGES)


def test_to_dot_escapes_quotes() -> None:
    g = LabelGraph(['say "hi"', "b"], [('say "hi"', "b")])
    assert '"say \\"hi\\"" -> "b";' in g.to_dot()


# ------------------------------------------------------------ deep hierarchies
DEEP = 5000  # far beyond Python's default recursion limit (1000)


@pytest.fixture(scope="module")
def chain() -> LabelGraph:
    """A 5,000-deep chain c0 -> c1 -> ... with labels listed leaf first, plus one side leaf."""
    labels = [f"c{i}" for i in reversed(range(DEEP))] + ["side"]
    return LabelGraph(labels, [(f"c{i}", f"c{i + 1}") for i in range(DEEP - 1)] + [("c0", "side")])


def test_a_5000_deep_chain_walks_without_recursion(chain: LabelGraph) -> None:
    leaf = f"c{DEEP - 1}"
    assert chain.depth(leaf) == DEEP - 1 and chain.max_depth == DEEP - 1
    assert chain.roots == ("c0",) and set(chain.leaves) == {leaf, "side"}
    assert len(chain.ancestors(leaf)) == DEEP - 1 and len(chain.descendants("c0")) == DEEP
    assert chain.topological_order[:2] == ("c0", "c1")
    lines = chain.to_text().splitlines()
    assert len(lines) == DEEP + 1 and lines[0] == "c0" and lines[-1].strip().endswith("side")
    assert lines[DEEP - 1].endswith(f"└── {leaf}")
    assert LabelGraph.from_dict(chain.to_dict()) == chain
    assert chain.to_json() and chain.to_dot() and len(chain.content_hash) == 64
    m = chain.ancestor_matrix
    assert m.sum() == DEEP * (DEEP - 1) // 2 + 1  # every c_i above every c_j (i < j), and c0 above side
    assert len(chain.parent_groups) == DEEP - 1 and len(chain.child_groups) == DEEP - 1
    codes = np.full((2, len(chain)), np.nan, dtype=np.float32)
    codes[0, chain.index(leaf)] = 1
    codes[1, chain.index("c0")] = 0
    out = chain.closure(codes, negative_down=True).codes
    assert (out[0, : DEEP] == 1).all() and np.isnan(out[0, DEEP])  # positives up; side untouched
    assert (out[1] == 0).all()  # a negative root: everything below negative


def test_level_groups_cover_every_edge_once_in_dependency_order(dag: LabelGraph) -> None:
    for groups, edge_of in ((dag.parent_groups, lambda t, s: (s, t)), (dag.child_groups, lambda t, s: (t, s))):
        seen_edges = set()
        done = set(range(len(dag))) - {int(t) for g in groups for t in g.targets}
        for group in groups:
            for target, sources in zip(group.targets, group.sources, strict=True):
                assert set(sources.tolist()) <= done  # everything read is final
                seen_edges |= {edge_of(int(target), int(s)) for s in sources}
            done |= set(group.targets.tolist())
        assert seen_edges == {tuple(e) for e in dag.edge_indices.tolist()}
