"""The inference path of the level walk (``_Levels.fold_rows``) against the autograd path.

Without autograd, the chain rule and the max-constraint module take ``fold_rows`` (the sigmoid
in place on the label-major copy, the walk in place); with autograd, tracing or TorchScript
they take ``rows``, ``fold`` on a copy and ``values``. Both must give the same floats, bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hmlc.chain_rule import ChainRule
from hmlc.hierarchy import LabelGraph
from hmlc.max_constraint import MaxConstraint

from strategies import dags


def _both(module: torch.nn.Module, x: torch.Tensor, fn: str = "forward") -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        fast = getattr(module, fn)(x)
    with torch.enable_grad():
        slow = getattr(module, fn)(x.clone().requires_grad_(True)).detach()
    return fast, slow


def _wide_dag(k: int, extra: int, seed: int) -> LabelGraph:
    """Labels in a random order, one earlier parent each, ``extra`` more edges: groups of mixed widths."""
    rng = np.random.default_rng(seed)
    edges = {(int(rng.integers(0, i)), i) for i in range(2, k)}
    while len(edges) < k - 2 + extra:
        child = int(rng.integers(3, k))
        edges.add((int(rng.integers(0, child)), child))
    names = [f"L{i}" for i in rng.permutation(k)]
    return LabelGraph(names, [(names[p], names[c]) for p, c in sorted(edges)])


@settings(max_examples=60, deadline=None)
@given(graph=dags(), rows=st.integers(1, 9), seed=st.integers(0, 2**16), combine=st.sampled_from(["product", "min"]))
def test_fast_path_is_bitwise_the_group_walk(graph: LabelGraph, rows: int, seed: int, combine: str) -> None:
    x = torch.randn(rows, len(graph), generator=torch.Generator().manual_seed(seed)) * 6
    given_x = x.clone()
    fast, slow = _both(ChainRule(graph, combine), x)
    assert torch.equal(x, given_x)  # the in-place sigmoid works on a copy, even for one row or one label
    assert torch.equal(fast, slow)
    fast, slow = _both(MaxConstraint(graph), x)
    assert torch.equal(fast, slow)
    fast, slow = _both(MaxConstraint(graph), x, "propagate")
    assert torch.equal(fast, slow)


def test_fast_path_on_a_wide_dag_with_several_parents_per_level() -> None:
    graph = _wide_dag(600, 500, seed=3)  # several parents, many children: groups of mixed widths
    x = torch.randn(3, 5, len(graph), generator=torch.Generator().manual_seed(0)) * 4  # leading dimensions kept
    for module in (ChainRule(graph, "product"), ChainRule(graph, "min"), MaxConstraint(graph)):
        fast, slow = _both(module, x)
        assert fast.shape == x.shape
        assert torch.equal(fast, slow)
    assert max(ChainRule(graph).levels.widths) >= 3
