"""Scoring one model on one split (micro/macro AU(PRC) and per-label AUC): sorted keys against argsort.

The HMC suite scores every unit four times (three points of the search on valid, then test), and
``hmlc evaluate`` computes the same numbers. hmlc scores float32 probabilities (one model's) by
sorting each label's scores and looking only the positives up in them; anything else (an
ensemble's mean, a predictions CSV read back as float64, NaN) takes the argsort path it used
before. This script times ``protocol_scores`` on the same float32 matrix both ways, alternating
calls in one process, checks both give the same numbers, and prints the best of ``--repeat``
wall times and their ratio.

Shapes (rows x labels, positive rate): the Gene Ontology test split of seq_GO (1,328 x 4,125, about
1 % positive after closure), FunCat's (1,328 x 500, 2 %), and CheXpert's validation split scaled up
(200,000 x 14, 20 %).

    python benchmarks/protocol_scores.py [--scale 1.0] [--repeat 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from hmlc.benchmark.suite import protocol_scores
from hmlc.evaluation import metrics

SHAPES = [  # name, rows, labels, positive rate
    ("GO (seq_GO test)", 1328, 4125, 0.01),
    ("FunCat (seq_FUN test)", 1328, 500, 0.02),
    ("CheXpert-like", 200_000, 14, 0.20),
]


def _best(fn: Callable[[], dict], repeat: int) -> tuple[float, dict]:
    best, out = float("inf"), {}
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="rows x this (default 1.0)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch/numpy threads (numpy sorts on one anyway)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    fast_path = metrics._as_float32
    print(f"{'shape':<24} {'rows x labels':>16} {'sorted keys':>12} {'argsort':>10} {'ratio':>7}  max diff")
    for name, rows, labels, rate in SHAPES:
        rows = max(20, int(rows * args.scale))
        codes = (rng.random((rows, labels)) < rate).astype(np.float64)
        codes[:, 0] = 1.0  # a root: excluded from the scores, as the protocol does
        probs = np.clip(codes * 0.3 + rng.random((rows, labels)) * 0.7, 0, 1).astype(np.float32)
        probs = np.round(probs, 4)  # ties, as a model's saturated outputs make
        names = [f"L{k}" for k in range(labels)]

        def run(argsort: bool) -> dict:
            metrics._as_float32 = (lambda scores: None) if argsort else fast_path
            try:
                return protocol_scores(codes, probs, names, ["L0"])
            finally:
                metrics._as_float32 = fast_path

        fast_s, slow_s, fast, slow = float("inf"), float("inf"), {}, {}
        for _ in range(args.repeat):  # alternating: both see the same machine
            t, fast = _best(lambda: run(False), 1)
            fast_s = min(fast_s, t)
            t, slow = _best(lambda: run(True), 1)
            slow_s = min(slow_s, t)
        diff = max(abs(fast[k] - slow[k]) for k in ("micro_auprc", "macro_auprc", "mean_auc"))
        print(f"{name:<24} {f'{rows} x {labels}':>16} {fast_s:>11.3f}s {slow_s:>9.3f}s {slow_s / fast_s:>6.1f}x  "
              f"max diff {diff:.1e}")


if __name__ == "__main__":
    main()
