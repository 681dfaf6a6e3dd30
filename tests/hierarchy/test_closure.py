"""Label closure: worked examples and invariants on random DAGs and random codes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hmlc.errors import HierarchyError
from hmlc.hierarchy import LabelGraph

NAN = np.nan
CODE_VALUES = [1.0, 0.0, -1.0, NAN]


def same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cell-wise equality where NaN equals NaN."""
    return (a == b) | (np.isnan(a) & np.isnan(b))


def ancestors_by_search(graph: LabelGraph) -> dict[int, set[int]]:
    """Proper ancestors of each output index, from the edge list alone (no graph methods)."""
    index = {label: i for i, label in enumerate(graph.labels)}
    parents: dict[int, set[int]] = {i: set() for i in range(len(graph.labels))}
    for p, c in graph.edges:
        parents[index[c]].add(index[p])
    out: dict[int, set[int]] = {}
    for k in parents:
        seen: set[int] = set()
        stack = list(parents[k])
        while stack:
            a = stack.pop()
            if a not in seen:
                seen.add(a)
                stack.extend(parents[a])
        out[k] = seen
    return out


def expected_closure(graph: LabelGraph, codes: np.ndarray, negative_down: bool) -> np.ndarray:
    """Closure written from its definition, one cell at a time."""
    anc = ancestors_by_search(graph)
    k = codes.shape[1]
    desc = {d: {c for c in range(k) if d in anc[c]} for d in range(k)}
    up = codes.astype(float).copy()
    for i in range(codes.shape[0]):
        for d in range(k):
            if codes[i, d] == 1 or any(codes[i, c] == 1 for c in desc[d]):
                up[i, d] = 1
    if not negative_down:
        return up
    out = up.copy()
    for i in range(codes.shape[0]):
        for d in range(k):
            negative_above = up[i, d] == 0 or any(up[i, a] == 0 for a in anc[d])
            if negative_above and up[i, d] != 1:
                out[i, d] = 0
    return out


@st.composite
def dags_with_codes(draw: st.DrawFn) -> tuple[LabelGraph, np.ndarray]:
    """A random DAG over K <= 8 labels (edges i -> j with i < j), output order shuffled, and codes."""
    k = draw(st.integers(1, 8))
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    edges = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs))) if pairs else []
    # Shuffle the output order so that it differs from the topological order.
    order = draw(st.permutations(range(k)))
    names = [f"L{i}" for i in range(k)]
    graph = LabelGraph([names[i] for i in order], [(names[i], names[j]) for i, j in edges])
    n = draw(st.integers(1, 12))
    codes = draw(arrays(np.float64, (n, k), elements=st.sampled_from(CODE_VALUES)))
    return graph, codes


# ------------------------------------------------------------ worked examples
@pytest.fixture
def tree() -> LabelGraph:
    # EC -> CM; LO -> {Edema, Cons}; Cons -> Pneu; Cons also under a second parent X.
    return LabelGraph(
        ["EC", "CM", "LO", "Edema", "Cons", "Pneu", "X"],
        [("EC", "CM"), ("LO", "Edema"), ("LO", "Cons"), ("Cons", "Pneu"), ("X", "Cons")],
    )


def test_positive_child_makes_every_ancestor_positive(tree: LabelGraph) -> None:
    codes = np.array(
        [
            #  EC   CM   LO  Edema Cons Pneu  X
            [NAN, 1.0, NAN, NAN, NAN, NAN, NAN],
            [0.0, -1, -1.0, 0.0, NAN, 1.0, 0.0],
            [NAN, NAN, NAN, NAN, NAN, NAN, NAN],
        ]
    )
    result = tree.closure(codes)
    np.testing.assert_array_equal(
        result.codes,
        np.array(
            [
                [1.0, 1.0, NAN, NAN, NAN, NAN, NAN],
                [0.0, -1, 1.0, 0.0, 1.0, 1.0, 1.0],
                [NAN, NAN, NAN, NAN, NAN, NAN, NAN],
            ]
        ),
    )
    assert result.changed == {"EC": 1, "CM": 0, "LO": 1, "Edema": 0, "Cons": 1, "Pneu": 0, "X": 1}
    assert tree.coherence_violations(codes).tolist() == [1, 1, 0]
    assert tree.coherence_violations(result.codes).tolist() == [0, 0, 0]


def test_negative_down_makes_descendants_negative_unless_positive(tree: LabelGraph) -> None:
    codes = np.array(
        [
            #  EC   CM   LO  Edema Cons Pneu  X
            [0.0, -1, 0.0, NAN, -1.0, NAN, NAN],
            [NAN, NAN, 0.0, NAN, NAN, 1.0, NAN],
        ]
    )
    plain = tree.closure(codes)
    down = tree.closure(codes, negative_down=True)
    # Without negative_down nothing changes in row 0.
    np.testing.assert_array_equal(plain.codes[0], codes[0])
    np.testing.assert_array_equal(down.codes[0], [0, 0, 0, 0, 0, 0, NAN])
    # Row 1: the positive Pneumonia first makes Lung Opacity positive, so no negative flows down.
    np.testing.assert_array_equal(down.codes[1], [NAN, NAN, 1, NAN, 1, 1, 1])
    assert down.changed == {"EC": 0, "CM": 1, "LO": 1, "Edema": 1, "Cons": 2, "Pneu": 1, "X": 1}


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_closure_does_not_modify_its_input(tree: LabelGraph, order: str, dtype: type) -> None:
    # Column-major float32 codes (a transposed table) once came back modified in place.
    codes = np.full((2, 7), NAN, dtype=dtype, order=order)
    codes[:, 1] = 1
    codes[0, 0] = 0
    before = codes.copy()
    out = tree.closure(codes, negative_down=True).codes
    np.testing.assert_array_equal(codes, before)
    assert not np.shares_memory(out, codes)


def test_closure_rejects_codes_of_the_wrong_shape(tree: LabelGraph) -> None:
    with pytest.raises(HierarchyError, match=r"shape \(N, 7\)"):
        tree.closure(np.zeros((3, 6)))
    with pytest.raises(HierarchyError, match=r"shape \(N, 7\)"):
        tree.closure(np.zeros(7))


def test_closure_of_zero_rows(tree: LabelGraph) -> None:
    result = tree.closure(np.zeros((0, 7)))
    assert result.codes.shape == (0, 7)
    assert set(result.changed.values()) == {0}


# ------------------------------------------------------------------ invariants
@settings(max_examples=200, deadline=None)
@given(case=dags_with_codes(), negative_down=st.booleans())
def test_closure_matches_its_definition(case: tuple[LabelGraph, np.ndarray], negative_down: bool) -> None:
    graph, codes = case
    result = graph.closure(codes, negative_down=negative_down)
    assert result.codes.shape == codes.shape
    assert np.all(same(result.codes, expected_closure(graph, codes, negative_down)))


@settings(max_examples=200, deadline=None)
@given(case=dags_with_codes(), negative_down=st.booleans())
def test_closure_is_idempotent(case: tuple[LabelGraph, np.ndarray], negative_down: bool) -> None:
    graph, codes = case
    once = graph.closure(codes, negative_down=negative_down)
    twice = graph.closure(once.codes, negative_down=negative_down)
    assert np.all(same(once.codes, twice.codes))
    assert set(twice.changed) == set(graph.labels)
    assert all(n == 0 for n in twice.changed.values())


@settings(max_examples=200, deadline=None)
@given(case=dags_with_codes(), negative_down=st.booleans())
def test_no_positive_child_under_a_non_positive_parent_after_closure(
    case: tuple[LabelGraph, np.ndarray], negative_down: bool
) -> None:
    graph, codes = case
    out = graph.closure(codes, negative_down=negative_down).codes
    assert graph.coherence_violations(out).sum() == 0
    # And independently of coherence_violations: every edge, every row.
    for parent, child in graph.edges:
        p, c = graph.index(parent), graph.index(child)
        assert not np.any((out[:, c] == 1) & (out[:, p] != 1))


@settings(max_examples=200, deadline=None)
@given(case=dags_with_codes(), negative_down=st.booleans())
def test_closure_only_changes_codes_in_the_allowed_direction(
    case: tuple[LabelGraph, np.ndarray], negative_down: bool
) -> None:
    graph, codes = case
    out = graph.closure(codes, negative_down=negative_down).codes
    differs = ~same(out, codes)
    allowed = {1.0, 0.0} if negative_down else {1.0}
    assert set(np.unique(out[differs]).tolist()) <= allowed
    # A positive stays positive, with or without negative_down.
    assert np.all(out[codes == 1] == 1)


@settings(max_examples=200, deadline=None)
@given(case=dags_with_codes(), negative_down=st.booleans())
def test_changed_counts_are_the_differing_cells_per_label(
    case: tuple[LabelGraph, np.ndarray], negative_down: bool
) -> None:
    graph, codes = case
    result = graph.closure(codes, negative_down=negative_down)
    for k, label in enumerate(graph.labels):
        differing = sum(
            1
            for i in range(codes.shape[0])
            if not (codes[i, k] == result.codes[i, k] or (np.isnan(codes[i, k]) and np.isnan(result.codes[i, k])))
        )
        assert result.changed[label] == differing
