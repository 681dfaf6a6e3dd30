"""The compiled level walk (hmlc.fold_kernel) against the torch walk it replaces on the CPU."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from hmlc import fold_kernel
from hmlc.chain_rule import ChainRule, chain_rule
from hmlc.hierarchy import LabelGraph
from hmlc.max_constraint import MaxConstraint, max_constraint

pytest.importorskip("numba", reason="the compiled walk needs numba (pip install hmlc[fast])")


def wide_dag(k: int, seed: int) -> LabelGraph:
    """k labels in shuffled output order: a random tree plus extra parents (up to 7 per label) and a few wide parents."""
    rng = np.random.default_rng(seed)
    edges = {(int(rng.integers(0, i)), i) for i in range(1, k)}
    for child in rng.choice(np.arange(10, k), size=k // 3, replace=False):
        for parent in rng.choice(int(child), size=int(rng.integers(1, 7)), replace=False):
            edges.add((int(parent), int(child)))
    names = [f"L{i}" for i in rng.permutation(k)]
    return LabelGraph(names, [(names[p], names[c]) for p, c in sorted(edges)])


GRAPH = wide_dag(300, seed=3)


@pytest.fixture
def switch(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A function turning the compiled walk on or off (it is on when the test starts)."""

    def use(compiled: bool) -> None:
        monkeypatch.setenv("HMLC_NUMBA", "1" if compiled else "0")
        monkeypatch.setattr(fold_kernel, "_state", {})
        assert fold_kernel.available() == compiled

    threads = torch.get_num_threads()
    use(True)
    yield use
    torch.set_num_threads(threads)


def logits_with_specials(rows: int, k: int, dtype: torch.dtype) -> torch.Tensor:
    x = torch.randn(rows, k, generator=torch.Generator().manual_seed(rows), dtype=dtype) * 4
    x[3, :40] = float("nan")  # NaN must spread as in torch.maximum / amin / prod
    x[4, ::3] = float("inf")
    x[5, ::2] = -float("inf")
    x[6] = 0.0  # ties everywhere
    x[7, 1::2] = 80.0  # sigmoid rounds to exactly 1
    return x


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["product", "min", "max"])
def test_the_compiled_walk_gives_the_torch_walks_numbers_bit_for_bit(kind: str, dtype: torch.dtype, threads: int, switch) -> None:
    torch.set_num_threads(threads)
    logits = logits_with_specials(3 * fold_kernel.MIN_ROWS_PER_THREAD * threads + 37, len(GRAPH), dtype)

    def run() -> torch.Tensor:
        with torch.no_grad():
            return max_constraint(logits, GRAPH) if kind == "max" else chain_rule(logits, GRAPH, kind)

    compiled = run()
    switch(False)
    walked = run()
    module = MaxConstraint(GRAPH) if kind == "max" else ChainRule(GRAPH, kind)
    with torch.no_grad():
        whole = module(logits)
    assert compiled.dtype == dtype
    torch.testing.assert_close(compiled, walked, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(compiled, whole, rtol=0, atol=0, equal_nan=True)
    # NaN reached the labels it should, and every other row is coherent.
    assert compiled[3].isnan().any() and not compiled[[0, 1, 2, 4, 5, 6, 7]].isnan().any()
    edges = GRAPH.edge_indices
    rest = torch.cat([compiled[:3], compiled[4:]])
    assert (rest[:, edges[:, 0]] >= rest[:, edges[:, 1]]).all()


@pytest.mark.parametrize("direction", ["parents", "children"])
def test_the_program_lists_every_label_with_its_sources_once(direction: str, switch) -> None:
    """The chain rule's program reads each label's parents, the max-constraint module's its children
    (their level groups pad a label with few children; the program drops the padding)."""
    k = len(GRAPH)
    edges = GRAPH.edge_indices
    column = 0 if direction == "parents" else 1  # edges are (parent, child)
    sources = {i: sorted(edges[edges[:, 1 - column] == i, column].tolist()) for i in range(k)}
    module = ChainRule(GRAPH) if direction == "parents" else MaxConstraint(GRAPH)
    program = module.levels.program()
    assert sorted(program.targets.tolist()) == [i for i in range(k) if sources[i]]
    assert program.offsets[0] == 0 and program.offsets[-1] == len(program.sources)
    done: set[int] = {i for i in range(k) if not sources[i]}
    for j, target in enumerate(program.targets.tolist()):
        read = program.sources[program.offsets[j] : program.offsets[j + 1]].tolist()
        assert sorted(read) == sources[target]  # each source exactly once
        assert set(read) <= done  # and final before it is read
        done.add(target)


def test_without_numba_or_with_HMLC_NUMBA_0_the_walk_says_what_to_install(switch) -> None:
    switch(False)
    program = ChainRule(GRAPH).levels.program()
    with pytest.raises(RuntimeError, match=r"pip install hmlc\[fast\]"):
        fold_kernel.walk(np.zeros((2, len(GRAPH)), np.float32), program, 1)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork only")
def test_a_forked_child_walks_on_threads_of_its_own(switch) -> None:
    """A forked process inherits the parent's pool object but none of its threads.

    (The walk alone: torch's own intra-op threads are not fork-safe, which is why
    DataLoader workers run on one.)
    """
    import multiprocessing

    program = ChainRule(GRAPH).levels.program()
    values = np.random.default_rng(0).random((4 * fold_kernel.MIN_ROWS_PER_THREAD, len(GRAPH)), dtype=np.float32)
    expected = values.copy()
    fold_kernel.walk(expected, program, 1, threads=2)  # the parent's pool now exists
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_walk_on_two_threads, (values, program)).get(timeout=120)
    np.testing.assert_array_equal(got, expected)


def _walk_on_two_threads(values: np.ndarray, program: fold_kernel.Program) -> np.ndarray:
    fold_kernel.walk(values, program, 1, threads=2)
    return values


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mc_loss_winners_and_gradients_are_the_torch_walks(dtype: torch.dtype, threads: int, switch) -> None:
    """MCLoss's argmax walk (hmlc.max_constraint._winners), compiled: the same winners, so the same loss and gradients."""
    from hmlc.max_constraint import _module_for, _winners, mc_loss

    torch.set_num_threads(threads)
    k = len(GRAPH)
    values = logits_with_specials(2 * fold_kernel.MIN_ROWS_PER_THREAD * threads + 5, k, dtype)
    values[8, ::5] = -float("inf")  # MCLoss's "no positive below" entries
    values[9] = torch.randint(0, 3, (k,)).to(dtype)  # ties between a label and its descendants
    levels = _module_for(values, GRAPH).levels
    compiled = _winners(levels, values)
    logits = (torch.randn(64, k, dtype=dtype) * 3).requires_grad_()
    targets = (torch.rand(64, k) < 0.1).to(dtype)
    weights = (torch.rand(64, k) < 0.9).to(dtype)
    loss = mc_loss(logits, targets, weights, GRAPH)
    (grad,) = torch.autograd.grad(loss, logits)
    switch(False)
    torch.testing.assert_close(compiled, _winners(levels, values), rtol=0, atol=0)
    assert compiled.dtype == torch.int64 and compiled.is_contiguous()
    walked = mc_loss(logits, targets, weights, GRAPH)
    torch.testing.assert_close(loss, walked, rtol=0, atol=0)
    torch.testing.assert_close(grad, torch.autograd.grad(walked, logits)[0], rtol=0, atol=0)


def test_without_a_writable_cache_folder_the_kernels_compile_each_time(monkeypatch: pytest.MonkeyPatch, switch) -> None:
    """numba refuses cache=True when it finds no folder to write (a read-only install and home)."""
    import numba

    real = numba.njit

    def njit(*args, cache: bool = False, **kwargs):
        if cache:
            raise RuntimeError("cannot cache function 'fold_rows': no locator available for file 'fold_kernel.py'")
        return real(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", njit)
    monkeypatch.setattr(fold_kernel, "_state", {})
    logits = logits_with_specials(40, len(GRAPH), torch.float32)
    with torch.no_grad():
        compiled = chain_rule(logits, GRAPH)
        assert fold_kernel.available()
        with fold_kernel.torch_walk():
            walked = chain_rule(logits, GRAPH)
    torch.testing.assert_close(compiled, walked, rtol=0, atol=0, equal_nan=True)
