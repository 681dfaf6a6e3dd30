"""Chain-rule probabilities, their coherence, and the log-space losses."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hmlc.chain_rule import (
    COLUMNS_MAX_LABELS,
    COMBINE_RULES,
    _sigmoid,
    ChainRule,
    chain_rule,
    log1mexp,
    log_chain_rule,
    masked_bce_with_logits,
    multiclass_ce,
    register_builtin_combine_rules,
    unconditional_bce,
)
from hmlc.errors import ConfigError
from hmlc.hierarchy import LabelGraph

from strategies import dags

EXTREMES = [-100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0]


def logits_for(data: st.DataObject, graph: LabelGraph, extremes: bool = True) -> torch.Tensor:
    elements = st.floats(-20, 20, width=32)
    if extremes:
        elements = st.one_of(st.sampled_from(EXTREMES), elements)
    rows = data.draw(st.integers(1, 6))
    return torch.from_numpy(data.draw(arrays(np.float32, (rows, len(graph)), elements=elements)))


def naive_probabilities(logits: torch.Tensor, graph: LabelGraph, combine: str) -> torch.Tensor:
    """Float64 reference: walk the labels in topological order, one column at a time."""
    cond = torch.sigmoid(logits.double())
    p: dict[str, torch.Tensor] = {}
    for label in graph.topological_order:
        parents = [p[q] for q in graph.parents(label)]
        if not parents:
            prior = torch.ones_like(cond[:, 0])
        elif combine == "product":
            prior = torch.stack(parents).prod(0)
        else:
            prior = torch.stack(parents).min(0).values
        p[label] = cond[:, graph.index(label)] * prior
    return torch.stack([p[label] for label in graph.labels], dim=1)


DIAMOND = LabelGraph(["a", "b", "c", "d"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])


@settings(max_examples=100, deadline=None)
@given(data=st.data(), combine=st.sampled_from(["product", "min"]))
def test_coherent_on_random_dags(data: st.DataObject, combine: str) -> None:
    graph = data.draw(dags())
    logits = logits_for(data, graph)
    p = chain_rule(logits, graph, combine)
    log_p, log_1mp = log_chain_rule(logits, graph, combine)
    assert p.dtype == torch.float32 and p.shape == logits.shape
    assert torch.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert torch.isfinite(log_p).all() and torch.isfinite(log_1mp).all()
    for parent, child in graph.edge_indices:
        assert (p[:, child] <= p[:, parent]).all()
        assert (log_p[:, child] <= log_p[:, parent]).all()
        assert (log_1mp[:, child] >= log_1mp[:, parent]).all()
    for root in graph.roots:
        k = graph.index(root)
        torch.testing.assert_close(p[:, k], torch.sigmoid(logits[:, k]))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), combine=st.sampled_from(["product", "min"]))
def test_matches_float64_reference(data: st.DataObject, combine: str) -> None:
    graph = data.draw(dags())
    logits = logits_for(data, graph, extremes=False).double()
    reference = naive_probabilities(logits, graph, combine)
    log_p, log_1mp = log_chain_rule(logits, graph, combine)
    torch.testing.assert_close(chain_rule(logits, graph, combine), reference)
    torch.testing.assert_close(log_p.exp(), reference)
    torch.testing.assert_close(-torch.expm1(log_1mp), reference)


def test_chain_is_the_product_of_sigmoids() -> None:
    graph = LabelGraph(["c", "a", "b"], [("a", "b"), ("b", "c")])  # output order differs from the chain
    logits = torch.randn(8, 3, dtype=torch.float64) * 3
    s = torch.sigmoid(logits)
    a, b, c = graph.index("a"), graph.index("b"), graph.index("c")
    expected = torch.empty_like(s)
    expected[:, a] = s[:, a]
    expected[:, b] = s[:, a] * s[:, b]
    expected[:, c] = s[:, a] * s[:, b] * s[:, c]
    for combine in ("product", "min"):  # one parent each: both rules agree
        torch.testing.assert_close(chain_rule(logits, graph, combine), expected)


def test_two_parent_rules() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0], [-2.0, 4.0, -0.5, -3.0]], dtype=torch.float64)
    s = torch.sigmoid(logits)
    pb, pc = s[:, 0] * s[:, 1], s[:, 0] * s[:, 2]
    p_min = chain_rule(logits, DIAMOND, "min")
    p_prod = chain_rule(logits, DIAMOND, "product")
    torch.testing.assert_close(p_min[:, 3], s[:, 3] * torch.minimum(pb, pc))
    torch.testing.assert_close(p_prod[:, 3], s[:, 3] * pb * pc)
    assert (p_prod[:, 3] <= p_min[:, 3]).all()


def naive_bce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, graph: LabelGraph, combine: str):
    p = naive_probabilities(logits, graph, combine)
    t, w = targets.double(), weights.double()
    loss = -(t * torch.log(p) + (1 - t) * torch.log1p(-p))
    return (w * loss).sum() / w.sum()


@pytest.mark.parametrize("combine", ["product", "min"])
def test_unconditional_bce_matches_naive_float64(combine: str) -> None:
    torch.manual_seed(0)
    logits = (torch.randn(16, 4) * 3).requires_grad_()
    targets = torch.rand(16, 4)  # soft targets, as LSR produces
    weights = (torch.rand(16, 4) > 0.3).float()
    loss = unconditional_bce(logits, targets, weights, DIAMOND, combine)
    loss.backward()
    reference_logits = logits.detach().double().requires_grad_()
    reference = naive_bce(reference_logits, targets, weights, DIAMOND, combine)
    reference.backward()
    torch.testing.assert_close(loss.double(), reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits.grad.double(), reference_logits.grad, rtol=1e-4, atol=1e-6)


def walked_bce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, graph: LabelGraph) -> torch.Tensor:
    """The stage-2 loss through the level-by-level log-space chain rule (exact near p = 1)."""
    log_p, log_1mp = log_chain_rule(logits, graph, "product")
    return (weights * -(targets * log_p + (1 - targets) * log_1mp)).sum() / weights.sum()


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_product_rule_loss_is_the_walked_loss(data: st.DataObject) -> None:
    # The product rule's loss is one sparse product of the log-sigmoids by the path counts;
    # its value and gradients are those of the level-by-level walk, extremes included.
    graph = data.draw(dags())
    logits = logits_for(data, graph)
    targets = torch.from_numpy(data.draw(arrays(np.float32, tuple(logits.shape), elements=st.sampled_from([0.0, 0.1, 1.0]))))
    weights = torch.ones_like(targets)
    fast, walked = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    loss = unconditional_bce(fast, targets, weights, graph, "product")
    reference = walked_bce(walked, targets, weights, graph)
    loss.backward()
    reference.backward()
    assert torch.isfinite(loss) and torch.isfinite(fast.grad).all()
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.grad, walked.grad, rtol=1e-4, atol=1e-6)


def test_product_rule_loss_where_p_rounds_to_one() -> None:
    # Logits of 1,000 along a path: 1 - p is below float64's range; the label's own term stands in.
    logits = torch.full((1, 4), 1000.0, requires_grad=True)
    loss = unconditional_bce(logits, torch.zeros(1, 4), torch.ones(1, 4), DIAMOND)
    loss.backward()
    assert loss.item() == pytest.approx(1000.0) and torch.isfinite(logits.grad).all()
    assert (logits.grad > 0).all()  # a confident wrong prediction is pushed down


def test_product_rule_loss_on_a_wide_dag_and_batch_shapes() -> None:
    g = np.random.default_rng(3)
    k = 300
    edges = {(int(a), int(b)) for b in range(1, k) for a in g.choice(b, size=min(b, int(g.integers(1, 4))), replace=False)}
    graph = LabelGraph([f"n{i}" for i in g.permutation(k)], [(f"n{a}", f"n{b}") for a, b in sorted(edges)])
    logits = torch.from_numpy(g.normal(0, 3, size=(2, 5, k)).astype(np.float32))
    targets = torch.from_numpy((g.random((2, 5, k)) < 0.1).astype(np.float32))
    weights = torch.from_numpy((g.random((2, 5, k)) < 0.8).astype(np.float32))
    fast, walked = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    unconditional_bce(fast, targets, weights, graph).backward()
    walked_bce(walked, targets, weights, graph).backward()
    torch.testing.assert_close(fast.grad, walked.grad, rtol=1e-4, atol=1e-7)
    with pytest.raises(ConfigError, match="300 labels"):
        unconditional_bce(logits[..., :-1], targets[..., :-1], weights[..., :-1], graph)


@pytest.mark.parametrize("combine", ["product", "min"])
@pytest.mark.parametrize("value", [100.0, -100.0])
@pytest.mark.parametrize("target", [0.0, 1.0])
def test_loss_finite_at_extreme_logits(combine: str, value: float, target: float) -> None:
    logits = torch.full((3, 4), value)
    logits[1, ::2] = -value  # mixed signs along the paths
    logits.requires_grad_()
    loss = unconditional_bce(logits, torch.full((3, 4), target), torch.ones(3, 4), DIAMOND, combine)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # a confident wrong prediction costs about |logit| per path step; never inf
    assert loss.item() < 1e3


def test_log_one_minus_p_stays_exact_near_one() -> None:
    # p(d) = 1 - ~3e-44 in float32: log(1 - p) must still be about -99, not -inf.
    log_p, log_1mp = log_chain_rule(torch.full((1, 4), 100.0), DIAMOND, "product")
    assert torch.isfinite(log_1mp).all()
    assert -101 < log_1mp[0, 3] < -97


def test_log1mexp_matches_float64() -> None:
    x = -torch.logspace(-30, 2.5, 200, dtype=torch.float64)
    reference = torch.log(-torch.expm1(x))
    torch.testing.assert_close(log1mexp(x), reference)
    torch.testing.assert_close(log1mexp(x.float()), reference.float(), rtol=1e-5, atol=1e-6)


def test_masked_bce_reduction() -> None:
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0], [0.3, 1.0]])
    weights = torch.tensor([[1.0, 0.0], [2.0, 0.5]])
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    expected = (per * weights).sum() / weights.sum()
    torch.testing.assert_close(masked_bce_with_logits(logits, targets, weights), expected)
    zero = masked_bce_with_logits(logits, targets, torch.zeros(2, 2))
    zero.backward()
    assert zero.item() == 0.0 and (logits.grad == 0).all()


def test_multiclass_ce_reduction() -> None:
    torch.manual_seed(1)
    logits3 = torch.randn(4, 2, 3)
    targets = torch.tensor([[0.0, 1.0], [2.0, 0.0], [1.0, 2.0], [0.0, 0.0]])
    weights = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    log_soft = torch.log_softmax(logits3, -1)
    per = -log_soft.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(multiclass_ce(logits3, targets, weights), (per * weights).sum() / weights.sum())


def test_module_equals_function_and_traces_and_scripts() -> None:
    torch.manual_seed(2)
    logits = torch.randn(5, 4) * 5
    for combine in ("product", "min"):
        module = ChainRule(DIAMOND, combine)
        assert module.state_dict() == {}  # structure comes from the graph, not from checkpoints
        expected = chain_rule(logits, DIAMOND, combine)
        torch.testing.assert_close(module(logits), expected, rtol=0, atol=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript deprecation notices
            traced = torch.jit.trace(module, logits, check_trace=False)  # as hmlc export traces
            scripted = torch.jit.script(module)
        other = torch.randn(7, 4) * 5  # a different batch size than the one traced
        torch.testing.assert_close(traced(other), module(other))
        torch.testing.assert_close(scripted(other), module(other))
        torch.testing.assert_close(scripted.log_forward(other)[0], log_chain_rule(other, DIAMOND, combine)[0])


def test_graph_without_edges_is_plain_sigmoid() -> None:
    graph = LabelGraph(["x", "y", "z"])
    logits = torch.randn(3, 3)
    torch.testing.assert_close(chain_rule(logits, graph), torch.sigmoid(logits))


def test_half_precision_is_computed_in_float32() -> None:
    logits = (torch.randn(4, 4) * 8).half()
    p = chain_rule(logits, DIAMOND)
    assert p.dtype == torch.float32
    torch.testing.assert_close(p, chain_rule(logits.float(), DIAMOND))


def test_combine_rules_are_pluggable() -> None:
    registered: dict[str, object] = {}
    register_builtin_combine_rules(lambda name, rule: registered.__setitem__(name, rule))
    assert registered == COMBINE_RULES and set(registered) == {"product", "min"}
    logits = torch.randn(3, 4)
    # a rule may be passed directly, as a plugin host resolving names would
    torch.testing.assert_close(chain_rule(logits, DIAMOND, COMBINE_RULES["min"]), chain_rule(logits, DIAMOND, "min"))


def test_errors() -> None:
    with pytest.raises(ConfigError, match="'product', 'min'"):
        chain_rule(torch.zeros(1, 4), DIAMOND, "max")
    with pytest.raises(ConfigError, match="'product', 'min'"):
        ChainRule(DIAMOND, "mean")
    with pytest.raises(ConfigError, match="3 columns but the hierarchy has 4 labels"):
        chain_rule(torch.zeros(2, 3), DIAMOND)


def test_coherence_holds_even_for_an_incoherent_custom_rule() -> None:
    def max_rule(log_p: torch.Tensor, log_1mp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return log_p.amax(-1), log_1mp.amin(-1)  # optimistic: ignores the weaker parent

    logits = torch.tensor([[5.0, 5.0, -5.0, 5.0], [0.0, 9.0, -9.0, 9.0]])
    p = chain_rule(logits, DIAMOND, max_rule)
    for parent, child in DIAMOND.edge_indices:
        assert (p[:, child] <= p[:, parent]).all()
    torch.testing.assert_close(p[:, 3], p[:, 2])  # clamped to the weaker parent c


@settings(max_examples=60, deadline=None)
@given(data=st.data(), combine=st.sampled_from(["product", "min"]))
def test_probability_path_equals_the_log_space_path(data: st.DataObject, combine: str) -> None:
    # The built-in rules compute probabilities directly; a rule passed as a new
    # callable takes the log-space path (the one that existed before). Same numbers.
    graph = data.draw(dags())
    logits = logits_for(data, graph)
    rule = COMBINE_RULES[combine]
    generic = chain_rule(logits, graph, lambda log_p, log_1mp: rule(log_p, log_1mp))
    torch.testing.assert_close(chain_rule(logits, graph, combine), generic, rtol=1e-5, atol=1e-30)


def test_large_batches_run_in_chunks() -> None:
    logits = torch.randn(30_000, 4) * 4
    with torch.no_grad():
        whole = ChainRule(DIAMOND)(logits)
        chunked = chain_rule(logits, DIAMOND)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=0)  # rows do not depend on their neighbours
    for parent, child in DIAMOND.edge_indices:
        assert (chunked[:, child] <= chunked[:, parent]).all()


def random_dag(k: int, n_edges: int, seed: int) -> LabelGraph:
    """Labels in a shuffled output order; each label below the first two has a random earlier parent, plus extra edges."""
    rng = np.random.default_rng(seed)
    edges = {(int(rng.integers(0, i)), i) for i in range(2, k)}
    while len(edges) < n_edges:
        child = int(rng.integers(3, k))
        edges.add((int(rng.integers(0, child)), child))
    names = [f"L{i}" for i in rng.permutation(k)]
    return LabelGraph(names, [(names[p], names[c]) for p, c in sorted(edges)])


@pytest.mark.parametrize("combine", ["product", "min"])
@pytest.mark.parametrize("k", [40, 300])  # folded column by column / label-major in chunks (hmlc.chain_rule.COLUMNS_MAX_LABELS)
def test_inference_gives_the_modules_numbers_bit_for_bit(k: int, combine: str, fold_walk: str) -> None:
    graph = random_dag(k, int(k * 1.6), seed=k)
    rows = 2 * (1 << 20) // k + 17  # three chunks, the last one short
    logits = torch.randn(rows, k) * 4
    with torch.no_grad():
        fast = chain_rule(logits, graph, combine)
        whole = ChainRule(graph, combine)(logits)
        torch.testing.assert_close(fast, whole, rtol=0, atol=0)
        # Any batch shape; and in place, into the logits themselves.
        batched = chain_rule(logits[:30].reshape(5, 6, k), graph, combine)
        torch.testing.assert_close(batched, whole[:30].reshape(5, 6, k), rtol=0, atol=0)
        again = logits.clone()
        assert chain_rule(again, graph, combine, out=again).data_ptr() == again.data_ptr()
        torch.testing.assert_close(again, whole, rtol=0, atol=0)
    for parent, child in graph.edge_indices:
        assert (fast[:, child] <= fast[:, parent]).all()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("k", [4, 300])  # column by column / label-major or compiled
def test_a_samples_probabilities_do_not_depend_on_its_place_in_the_batch(k: int, threads: int, fold_walk: str) -> None:
    # torch.sigmoid rounds the last elements of a call (and of each thread's share) with another
    # exp than the rest: one sample alone, or at the end of a batch, would get other last bits.
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        graph = random_dag(k, int(k * 1.6), seed=k) if k > 4 else DIAMOND
        logits = torch.randn(4 * (1 << 16) // k + 13, k, generator=torch.Generator().manual_seed(k)) * 6
        with torch.no_grad():
            whole = chain_rule(logits, graph)
            for i in [0, 1, len(logits) // 2, len(logits) - 2, len(logits) - 1]:
                torch.testing.assert_close(chain_rule(logits[i : i + 1], graph), whole[i : i + 1], rtol=0, atol=0)
                torch.testing.assert_close(ChainRule(graph)(logits[i:]), whole[i:], rtol=0, atol=0)
            torch.testing.assert_close(_sigmoid(logits[-3:]), _sigmoid(logits)[-3:], rtol=0, atol=0)
            # Still the sigmoid, to the last bit: wide, torch's where its kernel computes whole
            # vectors (a call on a multiple of 64 elements); narrow, exp, add and reciprocal.
            padded = logits.reshape(-1)[: -(-2 * k // 64) * 64]
            wide = torch.sigmoid(padded) if k > COLUMNS_MAX_LABELS else torch.reciprocal(torch.exp(-padded) + 1.0)
            torch.testing.assert_close(_sigmoid(logits[:2]), wide[: 2 * k].reshape(2, k), rtol=0, atol=0)
    finally:
        torch.set_num_threads(before)


def test_out_must_fit_and_is_for_inference() -> None:
    logits = torch.randn(5, 4)
    with pytest.raises(ValueError, match=r"out must be a contiguous torch.float32 tensor of shape \(5, 4\)"):
        chain_rule(logits, DIAMOND, out=torch.empty(5, 3))
    with pytest.raises(ValueError, match="not contiguous"):
        chain_rule(logits, DIAMOND, out=torch.empty(4, 5).t())
    with pytest.raises(ValueError, match="is for inference"):
        chain_rule(logits.requires_grad_(), DIAMOND, out=torch.empty(5, 4))


def test_a_5000_deep_chain() -> None:
    deep = 5000
    graph = LabelGraph([f"c{i}" for i in range(deep)], [(f"c{i}", f"c{i + 1}") for i in range(deep - 1)])
    logits = torch.full((2, deep), 8.0)
    logits[1, 10] = -3.0
    p = chain_rule(logits, graph)
    log_p, _ = log_chain_rule(logits, graph)
    s = torch.sigmoid(torch.tensor(8.0, dtype=torch.float64))
    # p(c_k) = s^(k+1) on row 0; row 1 drops by sigmoid(-3) from c10 on.
    expected = s ** torch.arange(1, deep + 1, dtype=torch.float64)
    torch.testing.assert_close(p[0].double(), expected, rtol=1e-3, atol=0)
    torch.testing.assert_close(log_p[0].double(), expected.log(), rtol=1e-4, atol=0)
    assert (p[:, 1:] <= p[:, :-1]).all()
    ratio = torch.sigmoid(torch.tensor(-3.0, dtype=torch.float64)) / s
    torch.testing.assert_close(p[1, 10:].double() / p[0, 10:].double(), ratio.expand(deep - 10), rtol=1e-4, atol=0)
