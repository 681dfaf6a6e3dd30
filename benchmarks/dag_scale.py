"""The hierarchy core at DAG scale against straightforward per-label loops, same process.

Times, on the Gene Ontology DAG of the HMC benchmarks (cellcycle_GO: 4,125
labels, 5,824 edges, read from the ARFF header in ../shared/data when present,
else a generated DAG of the same size) and on the 14-label CheXpert tree:

- the chain rule (probabilities of conditional logits, product rule),
- the max-constraint module (C-HMCNN),
- the CT stage-2 loss forward and backward at batch 64 (a training step's loss: one sparse
  product for the product rule, against the level-by-level log-space walk of the other rules),
- label closure (positives up, negatives down),
- the conditional masks of CT stage 1,

each against a plain loop over labels in topological order computing the same
thing, checks that both agree, and prints wall and CPU seconds and the ratio
baseline / hmlc. On a machine shared with other work, CPU seconds are the
steadier figure.

    python benchmarks/dag_scale.py [--n 100000] [--n-tree 1000000] [--n-codes 20000] [--threads 1] [--repeat 3]
                                   [--previous REV]

With numba installed (``pip install hmlc[fast]``) inference walks the levels compiled
(hmlc.fold_kernel); the rows against ``torch walk`` time it against the torch walk it
replaces, alternating calls (``HMLC_NUMBA=0`` times the torch walk everywhere).

Rows marked ``out=`` write into a buffer the caller already has (``chain_rule(..., out=buf)``);
the difference is the page faults of a new result, printed after them: on our sandboxed
development machine they cost about 0.3-0.5 ms per MiB, 0.5-0.85 s for 100,000 x 4,125 floats.
The previous call's result is freed before each call is timed.

``--previous REV`` also times the chain rule (a new result, and ``out=`` where REV has it) of
hmlc/chain_rule.py and MCLoss (forward and backward at batch 64, a C-HMCNN training step's
loss) of hmlc/max_constraint.py as they were at git revision REV (e.g. 12961d2, before this
benchmark), read with ``git show``.
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hmlc import fold_kernel
from hmlc.chain_rule import LOSS_EPS, chain_rule, log_chain_rule, unconditional_bce
from hmlc.conditional import conditional_mask
from hmlc.hierarchy import LabelGraph, load_hierarchy
from hmlc.max_constraint import max_constraint, mc_loss

ROOT = Path(__file__).resolve().parents[1]
CHEXPERT_TREE = ROOT / "plugins" / "chexpert" / "hmlc_chexpert" / "hierarchy.yaml"


def _shared_data() -> Path | None:
    for base in (ROOT.parent, ROOT.parent.parent):  # beside the repository, or beside a worktree folder
        if (base / "shared" / "data").is_dir():
            return base / "shared" / "data"
    return None


def go_graph() -> tuple[LabelGraph, str]:
    """cellcycle_GO's DAG from its ARFF header (edges below `root`), or a generated one of the same size."""
    data = _shared_data()
    path = data / "hmc" / "GO" / "cellcycle_GO" / "cellcycle_GO.train.arff.gz" if data else None
    if path is not None and path.is_file():
        with gzip.open(path, "rt") as fh:
            spec = next(line for line in fh if line.lower().startswith("@attribute class")).split()[-1]
        edges = [tuple(e.split("/")) for e in spec.split(",")]
        edges = [e for e in edges if e[0] != "root"]
        labels = list(dict.fromkeys(label for e in edges for label in e))
        return LabelGraph(labels, edges, name="cellcycle_GO"), f"cellcycle_GO from {path}"
    return generated_dag(4125, 5824, roots=3, seed=0), "a generated DAG of the same size (cellcycle_GO not found)"


def generated_dag(k: int, n_edges: int, roots: int, seed: int) -> LabelGraph:
    """Labels 0..k-1 in topological order, one random earlier parent each, extra parents up to n_edges."""
    rng = np.random.default_rng(seed)
    edges = {(int(rng.integers(0, i)), i) for i in range(roots, k)}
    while len(edges) < n_edges:
        child = int(rng.integers(roots + 1, k))
        edges.add((int(rng.integers(0, child)), child))
    order = rng.permutation(k)  # output order unrelated to the topological one
    return LabelGraph([f"L{i}" for i in order], [(f"L{p}", f"L{c}") for p, c in sorted(edges)], name="generated")


# ------------------------------------------------------------- baselines
def loop_chain_rule(logits: torch.Tensor, graph: LabelGraph) -> torch.Tensor:
    """p(k) = sigmoid(x_k) * prod p(parents), one label at a time in topological order."""
    p = torch.sigmoid(logits)
    for k in graph.topological_indices:
        parents = list(graph.parent_indices[k])
        if parents:
            p[:, k] *= p[:, parents].prod(1)
    return p


def loop_max_constraint(logits: torch.Tensor, graph: LabelGraph) -> torch.Tensor:
    """h(k) = max(f_k, max h(children)), one label at a time in reverse topological order."""
    h = torch.sigmoid(logits)
    children: list[list[int]] = [[] for _ in graph.labels]
    for p, c in graph.edge_indices:
        children[p].append(int(c))
    for k in graph.topological_indices[::-1]:
        if children[k]:
            h[:, k] = torch.maximum(h[:, k], h[:, children[k]].amax(1))
    return h


def loop_closure(graph: LabelGraph, codes: np.ndarray) -> np.ndarray:
    """Positives up and negatives down, one edge at a time."""
    out = codes.astype(np.float32, copy=True)
    pos = out == 1
    for c in graph.topological_indices[::-1]:
        for p in graph.parent_indices[c]:
            pos[:, p] |= pos[:, c]
    out[pos] = 1
    neg = out == 0
    for c in graph.topological_indices:
        for p in graph.parent_indices[c]:
            neg[:, c] |= neg[:, p]
    out[neg & ~pos] = 0
    return out


def loop_conditional_mask(graph: LabelGraph, codes: np.ndarray) -> np.ndarray:
    positive = codes == 1
    mask = np.ones(codes.shape, dtype=bool)
    for k, parents in enumerate(graph.parent_indices):
        if parents:
            mask[:, k] = positive[:, list(parents)].all(axis=1)
    return mask


def module_at(rev: str, path: str) -> dict[str, Any]:
    """The namespace of the hmlc source file ``path`` as it was at git revision ``rev`` (read with ``git show``)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    namespace: dict[str, Any] = {"__name__": f"{Path(path).stem}_at_{rev}"}
    exec(compile(source, f"{rev}:{path}", "exec"), namespace)  # noqa: S102 - our own history
    return namespace


def previous_chain_rule(rev: str) -> Callable[[torch.Tensor, LabelGraph], torch.Tensor]:
    """``chain_rule`` of hmlc/chain_rule.py at git revision ``rev``."""
    return module_at(rev, "hmlc/chain_rule.py")["chain_rule"]


def walk_unconditional_bce(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, graph: LabelGraph
) -> torch.Tensor:
    """The stage-2 loss through the level-by-level log-space chain rule (what every rule but the product walks)."""
    log_p, log_1mp = log_chain_rule(logits, graph, "product")
    loss = -(targets * log_p + (1 - targets) * log_1mp)
    return (loss * weights).sum() / weights.sum().clamp_min(LOSS_EPS)


def loss_steps(loss: Callable[..., torch.Tensor], graph: LabelGraph, batch: int, steps: int) -> Callable[[], torch.Tensor]:
    """``steps`` forward and backward passes of ``loss`` (MCLoss, stage 2) on (batch, labels) logits; the last gradient."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, len(graph), generator=g) * 3
    targets = (torch.rand(batch, len(graph), generator=g) < 0.05).float()
    weights = torch.ones_like(targets)

    def run() -> torch.Tensor:
        for _ in range(steps):
            logits = x.clone().requires_grad_()
            loss(logits, targets, weights, graph).backward()
        return logits.grad

    return run


# ------------------------------------------------------------- measuring
def torch_walk(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run with the torch level walk in place of the compiled one."""

    def run() -> Any:
        with fold_kernel.torch_walk():
            return fn()

    return run


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Best wall and CPU seconds over ``repeat`` calls, and the last result."""
    best_wall = best_cpu = float("inf")
    result = None
    for _ in range(repeat):
        result = None  # the previous result freed before the clock starts, not inside the next call's time
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best_wall, best_cpu, result


def compare(
    name: str, ours: Callable[[], Any], base: Callable[[], Any], repeat: int, target: float | None = None,
    baseline: str = "loop",
) -> None:
    ours()  # warm-up: builds the cached modules
    if baseline == "loop":
        wall, cpu, got = timed(ours, repeat)
        base_wall, base_cpu, expected = timed(base, 1)
    else:  # an earlier revision: as many calls, alternating, so a change of load hits both alike
        base()
        wall = cpu = base_wall = base_cpu = float("inf")
        for _ in range(repeat):
            got = expected = None  # one result of each alive at a time: they are large
            w, c, got = timed(ours, 1)
            bw, bc, expected = timed(base, 1)
            wall, cpu, base_wall, base_cpu = min(wall, w), min(cpu, c), min(base_wall, bw), min(base_cpu, bc)
    if isinstance(got, torch.Tensor):
        diff = float((got.double() - expected.double()).abs().max())
    else:
        diff = float(np.nanmax(np.abs(np.where(np.isnan(got), 0, got).astype(float) - np.where(np.isnan(expected), 0, expected).astype(float))))
    goal = "" if target is None else f"  target < {target:g} s: {'met' if wall < target else 'NOT met'} (wall)"
    print(
        f"{name:<44} hmlc {wall:7.3f} s wall {cpu:7.3f} s cpu | {baseline} {base_wall:7.3f} s wall {base_cpu:7.3f} s cpu"
        f" | ratio {base_wall / wall:6.1f}x wall {base_cpu / max(cpu, 1e-9):6.1f}x cpu | max diff {diff:.1e}{goal}"
    )


def first_touch(like: torch.Tensor) -> None:
    """Print what a new tensor of ``like``'s size costs before anything is computed: the kernel's page faults."""
    wall, _, _ = timed(lambda: torch.empty_like(like).fill_(0.0), 3)
    warm = torch.empty_like(like).fill_(0.0)
    fill, _, _ = timed(lambda: warm.fill_(1.0), 3)
    mb = like.numel() * like.element_size() / 2**20
    print(f"{'  (a new ' + format(mb, ',.0f') + ' MiB result: first touch)':<44} {wall - fill:7.3f} s wall of the call above without out=")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="samples on the GO DAG")
    ap.add_argument("--n-tree", type=int, default=1_000_000, help="samples on the CheXpert tree")
    ap.add_argument("--n-codes", type=int, default=20_000, help="label rows for closure and masks")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the compiled walk uses as many)")
    ap.add_argument("--repeat", type=int, default=3, help="calls of hmlc's version; the best counts")
    ap.add_argument("--previous", metavar="REV", help="also compare the chain rule with its version at this git revision")
    args = ap.parse_args()
    previous = previous_chain_rule(args.previous) if args.previous else None
    previous_mc_loss = module_at(args.previous, "hmlc/max_constraint.py")["mc_loss"] if args.previous else None
    torch.set_num_threads(args.threads)
    go, source = go_graph()
    tree = load_hierarchy(CHEXPERT_TREE)
    print(f"GO DAG: {source}: {len(go)} labels, {len(go.edges)} edges, depth {go.max_depth}")
    walk = "compiled (numba)" if fold_kernel.available() else "torch (numba not installed, or HMLC_NUMBA=0)"
    print(f"torch {torch.__version__}, {args.threads} thread(s), level walk for inference: {walk}")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x = torch.randn(args.n, len(go), generator=g) * 3
        compare(f"chain rule, GO, {args.n} x {len(go)}", lambda: chain_rule(x, go), lambda: loop_chain_rule(x, go), args.repeat, 2.0)
        if previous is not None:
            compare(
                f"chain rule, GO, {args.n} x {len(go)}", lambda: chain_rule(x, go), lambda: previous(x, go),
                args.repeat, 2.0, baseline=args.previous,
            )
        buf, other = torch.empty_like(x), torch.empty_like(x)  # the baseline writes into its own buffer
        compare(
            f"chain rule, GO, {args.n} x {len(go)}, out=", lambda: chain_rule(x, go, out=buf),
            lambda: loop_chain_rule(x, go), args.repeat, 2.0,
        )
        if previous is not None and "out" in inspect.signature(previous).parameters:
            compare(
                f"chain rule, GO, {args.n} x {len(go)}, out=", lambda: chain_rule(x, go, out=buf),
                lambda: previous(x, go, out=other), args.repeat, 2.0, baseline=args.previous,
            )
        if fold_kernel.available():  # the compiled walk (numba) against the torch walk, alternating
            compare(
                f"chain rule, GO, {args.n} x {len(go)}, out=", lambda: chain_rule(x, go, out=buf),
                torch_walk(lambda: chain_rule(x, go, out=other)), args.repeat, 2.0, baseline="torch walk",
            )
        compare(
            f"max-constraint module, GO, {args.n} x {len(go)}",
            lambda: max_constraint(x, go), lambda: loop_max_constraint(x, go), args.repeat,
        )
        if fold_kernel.available():
            compare(
                f"max-constraint module, GO, {args.n} x {len(go)}, out=", lambda: max_constraint(x, go, out=buf),
                torch_walk(lambda: max_constraint(x, go, out=other)), args.repeat, baseline="torch walk",
            )
        first_touch(x)
        del x, buf, other
    if previous_mc_loss is not None:  # a training step's loss: 20 steps at C-HMCNN's batch size
        compare(
            f"MCLoss forward+backward, GO, 20 x (64 x {len(go)})", loss_steps(mc_loss, go, 64, 20),
            loss_steps(previous_mc_loss, go, 64, 20), args.repeat, baseline=args.previous,
        )
    compare(  # a CT stage-2 training step's loss
        f"CT stage-2 loss fwd+bwd, GO, 20 x (64 x {len(go)})", loss_steps(unconditional_bce, go, 64, 20),
        loss_steps(walk_unconditional_bce, go, 64, 20), args.repeat, baseline="level walk",
    )
    with torch.no_grad():
        xt = torch.randn(args.n_tree, len(tree), generator=g) * 3
        compare(
            f"chain rule, CheXpert tree, {args.n_tree} x {len(tree)}",
            lambda: chain_rule(xt, tree), lambda: loop_chain_rule(xt, tree), args.repeat, 0.1,
        )
        if previous is not None:
            compare(
                f"chain rule, CheXpert tree, {args.n_tree} x {len(tree)}", lambda: chain_rule(xt, tree),
                lambda: previous(xt, tree), args.repeat, 0.1, baseline=args.previous,
            )
        buf = torch.empty_like(xt)
        compare(
            f"chain rule, CheXpert tree, {args.n_tree} x {len(tree)}, out=", lambda: chain_rule(xt, tree, out=buf),
            lambda: loop_chain_rule(xt, tree), args.repeat, 0.1,
        )
        first_touch(xt)
        del xt, buf
    rng = np.random.default_rng(0)
    codes = rng.choice(np.array([1.0, 0.0, -1.0, np.nan], dtype=np.float32), size=(args.n_codes, len(go)), p=[0.02, 0.5, 0.03, 0.45])
    compare(
        f"closure (both ways), GO, {args.n_codes} x {len(go)}",
        lambda: go.closure(codes, negative_down=True).codes, lambda: loop_closure(go, codes), args.repeat,
    )
    compare(
        f"conditional mask, GO, {args.n_codes} x {len(go)}",
        lambda: conditional_mask(go, codes), lambda: loop_conditional_mask(go, codes), args.repeat,
    )


if __name__ == "__main__":
    main()
