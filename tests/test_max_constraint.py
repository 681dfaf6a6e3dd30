"""The max-constraint module and MCLoss against loop-based versions of the paper's formulas."""

from __future__ import annotations

import gzip
import math
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hmlc.errors import ConfigError
from hmlc.hierarchy import LabelGraph
from hmlc.max_constraint import MaxConstraint, max_constraint, mc_loss

from strategies import dags

# Output order differs from any topological order; d has two parents, e three ancestors' paths.
GRAPH = LabelGraph(
    ["d", "a", "e", "b", "c", "r", "s"],
    [("r", "a"), ("r", "b"), ("a", "c"), ("b", "c"), ("c", "d"), ("a", "e"), ("s", "e"), ("b", "d")],
)


def descendants_or_self(graph: LabelGraph) -> list[list[int]]:
    """Per output index, the indices of the label and all its descendants, from networkx."""
    g = nx.DiGraph(list(graph.edges))
    g.add_nodes_from(graph.labels)
    return [[graph.labels.index(b) for b in {a, *nx.descendants(g, a)}] for a in graph.labels]


def reference_mcm(logits: torch.Tensor, graph: LabelGraph) -> torch.Tensor:
    """h_A = max_{B in D_A ∪ {A}} sigmoid(x_B), one sample and one label at a time."""
    f = torch.sigmoid(logits.double())
    sets = descendants_or_self(graph)
    rows = []
    for n in range(f.shape[0]):
        rows.append(torch.stack([torch.stack([f[n, b] for b in sets[a]]).max() for a in range(len(graph))]))
    return torch.stack(rows)


def reference_mc_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, graph: LabelGraph):
    """The paper's MCLoss with plain loops, float64, weighted mean over (sample, label)."""
    f = torch.sigmoid(logits.double())
    y, w = targets.double(), weights.double()
    sets = descendants_or_self(graph)
    total = torch.zeros((), dtype=torch.float64)
    for n in range(f.shape[0]):
        for a in range(len(graph)):
            if w[n, a] == 0:
                continue
            known = [b for b in sets[a] if y[n, b] > 0 and w[n, b] > 0]
            loss = -(1 - y[n, a]) * torch.log(1 - torch.stack([f[n, b] for b in sets[a]]).max())
            if y[n, a] > 0:
                loss = loss - y[n, a] * torch.log(torch.stack([y[n, b] * f[n, b] for b in known]).max())
            total = total + w[n, a] * loss
    return total / w.sum()


def test_mcm_matches_the_definition() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, len(GRAPH), dtype=torch.float64) * 3
    torch.testing.assert_close(max_constraint(logits, GRAPH), reference_mcm(logits, GRAPH), rtol=1e-15, atol=0)
    # Worked case: d is a leaf under c and b; c's value is the max over {c, d}.
    x = torch.zeros(1, len(GRAPH), dtype=torch.float64)
    x[0, GRAPH.index("d")] = 4.0
    h = max_constraint(x, GRAPH)[0]
    for label in ("d", "c", "b", "a", "r"):
        assert h[GRAPH.index(label)] == torch.sigmoid(torch.tensor(4.0, dtype=torch.float64))
    assert h[GRAPH.index("e")] == h[GRAPH.index("s")] == 0.5


@pytest.mark.parametrize("soft", [False, True])
def test_mc_loss_and_its_gradient_match_the_definition(soft: bool) -> None:
    torch.manual_seed(1 + soft)
    logits = (torch.randn(8, len(GRAPH)) * 3).requires_grad_()
    targets = (torch.rand(8, len(GRAPH)) > 0.5).float()
    if soft:  # LSR-style soft targets
        targets = torch.where(targets > 0, 0.55 + 0.3 * torch.rand_like(targets), 0.3 * torch.rand_like(targets))
    weights = (torch.rand(8, len(GRAPH)) > 0.25).float() * (1 + torch.rand(8, len(GRAPH)))
    loss = mc_loss(logits, targets, weights, GRAPH)
    loss.backward()
    reference_logits = logits.detach().double().requires_grad_()
    reference = reference_mc_loss(reference_logits, targets, weights, GRAPH)
    reference.backward()
    torch.testing.assert_close(loss.double(), reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits.grad.double(), reference_logits.grad, rtol=1e-4, atol=1e-6)
    # Gradient sanity: masked entries receive nothing, a positive label pushes its best positive up.
    assert torch.isfinite(logits.grad).all()


def test_mc_loss_gradient_flows_only_through_the_maxima() -> None:
    # r -> a; a positive with target 1 and a positive child: only the larger of the two is pushed up.
    graph = LabelGraph(["r", "a"], [("r", "a")])
    logits = torch.tensor([[-2.0, 1.0]], requires_grad=True)
    mc_loss(logits, torch.tensor([[1.0, 1.0]]), torch.ones(1, 2), graph).backward()
    assert logits.grad[0, 0] == 0 and logits.grad[0, 1] < 0  # r's term uses f_a = max(f_r, f_a)
    logits.grad = None
    # Negative r (a ignored) with a likelier child a: ln(1 - max) pushes the child down, not r.
    mc_loss(logits, torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), graph).backward()
    assert logits.grad[0, 0] == 0 and logits.grad[0, 1] > 0


@pytest.mark.parametrize("value", [100.0, -100.0])
@pytest.mark.parametrize("target", [0.0, 1.0])
def test_mc_loss_finite_at_extreme_logits(value: float, target: float) -> None:
    logits = torch.full((3, len(GRAPH)), value)
    logits[1, ::2] = -value
    logits.requires_grad_()
    weights = torch.ones(3, len(GRAPH))
    weights[2, 0] = 0
    loss = mc_loss(logits, torch.full((3, len(GRAPH)), target), weights, GRAPH)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert loss.item() < 1e3


def test_mc_loss_with_zero_weights_is_zero() -> None:
    logits = torch.randn(2, len(GRAPH), requires_grad=True)
    loss = mc_loss(logits, torch.ones(2, len(GRAPH)), torch.zeros(2, len(GRAPH)), GRAPH)
    loss.backward()
    assert loss.item() == 0.0 and (logits.grad == 0).all()


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_mcm_is_coherent_on_random_dags(data: st.DataObject) -> None:
    graph = data.draw(dags())
    elements = st.one_of(st.sampled_from([-100.0, -30.0, 0.0, 30.0, 100.0]), st.floats(-20, 20, width=32))
    rows = data.draw(st.integers(1, 5))
    logits = torch.from_numpy(data.draw(arrays(np.float32, (rows, len(graph)), elements=elements)))
    h = max_constraint(logits, graph)
    assert h.dtype == torch.float32 and h.shape == logits.shape
    for parent, child in graph.edge_indices:
        assert (h[:, parent] >= h[:, child]).all()
    assert (h >= torch.sigmoid(logits) * (1 - 1e-6)).all()  # a label never goes below its own output
    torch.testing.assert_close(h.double(), reference_mcm(logits, graph), rtol=0, atol=1e-7)


def test_module_traces_and_scripts_and_keeps_leading_dimensions() -> None:
    module = MaxConstraint(GRAPH)
    assert module.state_dict() == {}
    logits = torch.randn(5, len(GRAPH)) * 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, logits, check_trace=False)  # as hmlc export traces
        scripted = torch.jit.script(module)
    other = torch.randn(7, len(GRAPH)) * 4
    expected = max_constraint(other, GRAPH)
    torch.testing.assert_close(traced(other), expected, rtol=0, atol=0)
    torch.testing.assert_close(scripted(other), expected, rtol=0, atol=0)
    batched = torch.randn(2, 3, len(GRAPH))
    torch.testing.assert_close(module(batched), module(batched.reshape(6, -1)).reshape(2, 3, -1))
    assert module(logits.half()).dtype == torch.float32


def test_large_batches_run_in_chunks_with_the_same_result() -> None:
    logits = torch.randn(20_000, len(GRAPH)) * 3
    with torch.no_grad():
        whole = MaxConstraint(GRAPH)(logits)
        chunked = max_constraint(logits, GRAPH)
    # Bitwise equal: a row's result does not depend on the rows beside it; and coherent.
    torch.testing.assert_close(chunked, whole, rtol=0, atol=0)
    for parent, child in GRAPH.edge_indices:
        assert (chunked[:, parent] >= chunked[:, child]).all()


@pytest.mark.parametrize("k", [30, 200])  # folded column by column / label-major in chunks
def test_inference_gives_the_modules_numbers_in_place_too(k: int, fold_walk: str) -> None:
    rng = np.random.default_rng(k)
    edges = {(int(rng.integers(0, i)), i) for i in range(1, k)} | {(int(rng.integers(0, i)), i) for i in range(2, k, 3)}
    graph = LabelGraph([f"n{i}" for i in range(k)], [(f"n{p}", f"n{c}") for p, c in sorted(edges)])
    logits = torch.randn(2 * (1 << 20) // k + 5, k) * 3
    with torch.no_grad():
        whole = MaxConstraint(graph)(logits)
        torch.testing.assert_close(max_constraint(logits, graph), whole, rtol=0, atol=0)
        again = logits.clone()
        max_constraint(again, graph, out=again)
        torch.testing.assert_close(again, whole, rtol=0, atol=0)
    with pytest.raises(ValueError, match="is for inference"):
        max_constraint(logits[:2].clone().requires_grad_(), graph, out=torch.empty(2, k))


def test_wrong_width_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="3 columns but the hierarchy has 7 labels"):
        max_constraint(torch.zeros(2, 3), GRAPH)
    with pytest.raises(ConfigError, match="3 columns but the hierarchy has 7 labels"):
        mc_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3), GRAPH)


# ------------------------------------------------------------- real GO DAG
def shared_data() -> Path | None:
    """../shared/data beside the project root (for a git worktree, beside the worktree folder's parent)."""
    root = Path(__file__).resolve().parents[1]
    for base in (root.parent, root.parent.parent):
        if (base / "shared" / "data").is_dir():
            return base / "shared" / "data"
    return None


CELLCYCLE_GO = (shared_data() or Path("/nonexistent")) / "hmc/GO/cellcycle_GO/cellcycle_GO.train.arff.gz"


def go_graph_from_arff(path: Path) -> LabelGraph:
    """The Gene Ontology DAG of an HMC benchmark ARFF header: `parent/child` edges below `root`."""
    with gzip.open(path, "rt") as fh:
        for line in fh:
            if line.lower().startswith("@attribute class"):
                spec = line.split()[-1]
                break
    edges = [tuple(edge.split("/")) for edge in spec.split(",")]
    edges = [e for e in edges if e[0] != "root"]
    labels = list(dict.fromkeys(label for edge in edges for label in edge))
    return LabelGraph(labels, edges, name="cellcycle_GO")


@pytest.mark.skipif(not CELLCYCLE_GO.is_file(), reason="cellcycle_GO not in ../shared/data (optional real data)")
def test_mcm_on_the_cellcycle_go_dag() -> None:
    graph = go_graph_from_arff(CELLCYCLE_GO)
    assert (len(graph), len(graph.edges)) == (4125, 5824)  # the facts of shared/data/README.md
    assert sum(len(p) >= 2 for p in graph.parent_indices) == 1477
    logits = torch.randn(64, len(graph), generator=torch.Generator().manual_seed(0)) * 4
    h = max_constraint(logits, graph)
    edges = graph.edge_indices
    assert (h[:, edges[:, 0]] >= h[:, edges[:, 1]]).all()
    # Three samples against the definition, with descendant sets from networkx.
    f = torch.sigmoid(logits[:3]).numpy()
    expected = np.array([[f[n, b].max() for b in descendants_or_self(graph)] for n in range(3)])
    np.testing.assert_allclose(h[:3].numpy(), expected, rtol=3e-7, atol=0)  # sigmoids may differ in the last bit
    targets = (torch.rand(64, len(graph), generator=torch.Generator().manual_seed(1)) > 0.9).float()
    loss = mc_loss(logits.requires_grad_(), targets, torch.ones_like(targets), graph)
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(logits.grad).all()


def test_a_5000_deep_chain() -> None:
    deep = 5000
    graph = LabelGraph([f"c{i}" for i in range(deep)], [(f"c{i}", f"c{i + 1}") for i in range(deep - 1)])
    logits = torch.full((2, deep), -5.0)
    logits[0, deep - 1] = 3.0  # the deepest label lifts every ancestor
    logits[1, 7] = 1.0
    h = max_constraint(logits, graph)
    torch.testing.assert_close(h[0], torch.full((deep,), float(torch.sigmoid(torch.tensor(3.0)))))
    assert (h[1, :8] == torch.sigmoid(torch.tensor(1.0))).all()
    assert (h[1, 8:] == torch.sigmoid(torch.tensor(-5.0))).all()
    loss = mc_loss(logits.requires_grad_(), torch.ones(2, deep), torch.ones(2, deep), graph)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
