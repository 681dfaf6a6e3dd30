"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from hypothesis import strategies as st

from hmlc.hierarchy import LabelGraph


@st.composite
def dags(draw: st.DrawFn, max_labels: int = 7) -> LabelGraph:
    """Random DAGs: edges (i, j) with i < j, labels listed in a shuffled output order."""
    k = draw(st.integers(1, max_labels))
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    edges = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs))) if pairs else []
    order = draw(st.permutations(range(k)))
    return LabelGraph([f"n{i}" for i in order], [(f"n{i}", f"n{j}") for i, j in edges])
