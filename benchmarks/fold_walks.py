"""The compiled walks of hmlc.fold_kernel against their version at an earlier git revision, same process.

Times the kernel alone (no sigmoid, no threads) over the Gene Ontology DAG of the HMC
benchmarks (cellcycle_GO: 4,125 labels, 5,824 edges; a generated DAG of the same size when
../shared/data is absent) for each rule: the product (chain rule), the min (chain rule,
``combine="min"``) and the max (the max-constraint module), plus the argmax walk of MCLoss. The
earlier kernel is hmlc/fold_kernel.py as it was at ``--previous REV`` (``git show``
and compiled beside this one); calls alternate, on a warm copy of the same scores, the best counts; both must give the same
bits.

    python benchmarks/fold_walks.py [--previous REV] [--n 20000] [--repeat 3]

Needs numba (``pip install hmlc[fast]``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dag_scale import go_graph, module_at
from hmlc import fold_kernel
from hmlc.chain_rule import ChainRule
from hmlc.max_constraint import MaxConstraint


def kernels_at(rev: str) -> tuple:
    """(fold_rows, winner_rows) of hmlc/fold_kernel.py at git revision ``rev``, compiled now."""
    return module_at(rev, "hmlc/fold_kernel.py")["_compile"]()


def alternating(ours, theirs, scores: np.ndarray, repeat: int) -> tuple[float, float]:
    """Best seconds of ``ours(values)`` and ``theirs(values)``, called in turn on a fresh copy of ``scores``
    (copied into one warm buffer before the clock starts)."""
    values = scores.copy()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, got in zip((ours, theirs), times):
            np.copyto(values, scores)
            start = time.perf_counter()
            fn(values)
            got.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def row(name: str, ours: float, theirs: float, rev: str, same: bool) -> None:
    print(f"{name:<24} hmlc {ours:7.3f} s | {rev} {theirs:7.3f} s | ratio {theirs / ours:5.2f}x | same bits {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--previous", default="92edff6", metavar="REV", help="the git revision to compare with")
    ap.add_argument("--n", type=int, default=20_000, help="rows (samples)")
    ap.add_argument("--repeat", type=int, default=3, help="calls of each; the best counts")
    args = ap.parse_args()
    if not fold_kernel.available():
        raise SystemExit("fold_walks.py: the compiled walk needs numba: pip install hmlc[fast]")
    torch.set_num_threads(1)
    old_fold, old_winners = kernels_at(args.previous)
    new_fold, new_winners = fold_kernel._kernel()
    graph, source = go_graph()
    print(f"GO DAG: {source}: {len(graph)} labels; {args.n} rows, one thread, best of {args.repeat}")
    g = torch.Generator().manual_seed(0)
    scores = torch.sigmoid(torch.randn(args.n, len(graph), generator=g) * 3).numpy()
    scores[1, :7] = np.nan  # NaN must travel the same way in both
    rules = [
        ("product (chain rule)", 1, ChainRule(graph, "product").levels.program()),
        ("min (chain rule, min)", 2, ChainRule(graph, "min").levels.program()),
        ("max (max-constraint)", 3, MaxConstraint(graph).levels.program()),
    ]
    for name, kind, p in rules:
        a, b = scores.copy(), scores.copy()
        new_fold(a, p.targets, p.offsets, p.sources, kind)
        old_fold(b, p.targets, p.offsets, p.sources, kind)
        same = np.array_equal(a.view(np.uint32), b.view(np.uint32))
        ours, theirs = alternating(
            lambda v: new_fold(v, p.targets, p.offsets, p.sources, kind),
            lambda v: old_fold(v, p.targets, p.offsets, p.sources, kind), scores, args.repeat,
        )
        row(name, ours, theirs, args.previous, same)
    p = rules[2][2]
    outs = []
    for kernel in (new_winners, old_winners):
        values, out = scores.copy(), np.empty(scores.shape, dtype=np.int64)
        kernel(values, p.targets, p.offsets, p.sources, out)
        outs.append((values, out))
    (new_max, new_arg), (old_max, old_arg) = outs
    same = np.array_equal(new_max.view(np.uint32), old_max.view(np.uint32)) and np.array_equal(new_arg, old_arg)
    arg = np.empty(scores.shape, dtype=np.int64)
    ours, theirs = alternating(
        lambda v: new_winners(v, p.targets, p.offsets, p.sources, arg),
        lambda v: old_winners(v, p.targets, p.offsets, p.sources, arg), scores, args.repeat,
    )
    row("argmax (MCLoss)", ours, theirs, args.previous, same)


if __name__ == "__main__":
    main()
