"""Bootstrap AUC intervals of ``hmlc evaluate``: hmlc's implementation against the previous one, same process.

Both compute the AUC of every label on every resample of the same (B, n) index
matrix (the work behind ``auc_ci`` and ``mean_auc_ci``); the baseline is the
implementation hmlc shipped before, kept here verbatim: draw counts laid out
(resamples, rows). The script checks that both give identical AUCs, then prints
the best of ``--repeat`` wall times of each and their ratio, and, for information, the time of
the whole ``evaluate()`` on the same rows (everything ``hmlc evaluate`` computes).

    python benchmarks/evaluate_bootstrap.py [--n 500] [--labels 14] [--resamples 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import numpy as np

from hmlc.evaluation.bootstrap import bootstrap_indices, paired_bootstrap_aucs
from hmlc.evaluation.evaluator import evaluate
from hmlc.evaluation.io import EvaluationData

_CELLS_PER_CHUNK = 4_000_000


# ------------------------------------------------------------ the baseline (hmlc before issue 12)
def baseline_counts(indices: np.ndarray, n: int) -> np.ndarray:
    counts = np.empty((indices.shape[0], n), dtype=np.int32)
    for b, row in enumerate(indices):
        counts[b] = np.bincount(row, minlength=n)
    return counts


def baseline_auc(y: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    y = np.asarray(y) == 1
    scores = np.asarray(scores, dtype=float)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    neg = neg[np.argsort(scores[neg], kind="stable")]
    neg_scores = scores[neg]
    lo = np.searchsorted(neg_scores, scores[pos], side="left")
    hi = np.searchsorted(neg_scores, scores[pos], side="right")
    out = np.empty(counts.shape[0])
    chunk = max(1, _CELLS_PER_CHUNK // max(1, len(y)))
    for start in range(0, counts.shape[0], chunk):
        block = counts[start : start + chunk]
        c_pos = block[:, pos].astype(np.int64)
        cumulative = np.zeros((block.shape[0], len(neg) + 1), dtype=np.int64)
        np.cumsum(block[:, neg], axis=1, dtype=np.int64, out=cumulative[:, 1:])
        twice_wins = np.einsum("bi,bi->b", c_pos, cumulative[:, lo] + cumulative[:, hi])
        n_pos, n_neg = c_pos.sum(axis=1), cumulative[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + chunk] = np.where(
                (n_pos > 0) & (n_neg > 0), twice_wins / (2.0 * n_pos * n_neg), np.nan
            )
    return out


def baseline_paired(
    indices: np.ndarray, n: int, labels: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> np.ndarray:
    out = np.empty((len(labels), indices.shape[0]))
    chunk = max(1, _CELLS_PER_CHUNK // max(1, n))
    for lo in range(0, indices.shape[0], chunk):
        counts = baseline_counts(indices[lo : lo + chunk], n)
        for k, (rows, y, scores) in enumerate(labels):
            out[k, lo : lo + chunk] = baseline_auc(y, scores, counts[:, rows])
    return out


# ------------------------------------------------------------ the benchmark
def synthetic_labels(n: int, n_labels: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rows, y, scores) per label as ``evaluate`` builds them: ~10 % of rows uncertain or blank, tied scores."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_labels):
        y = (rng.random(n) < rng.uniform(0.15, 0.5)).astype(float)
        scores = 1 / (1 + np.exp(-(y * rng.uniform(0.8, 2.5) + rng.normal(0, 1, n) - 1)))
        if k % 3 == 0:
            scores = np.round(scores, 2)
        rows = np.flatnonzero(rng.random(n) > 0.1)
        out.append((rows, y[rows], scores[rows]))
    return out


def evaluation_data(n: int, labels: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> EvaluationData:
    """The same labels as :class:`EvaluationData` (rows outside a label's ``rows`` coded blank)."""
    codes = np.full((n, len(labels)), np.nan)
    probs = np.random.default_rng(1).random((n, len(labels)))
    for k, (rows, y, scores) in enumerate(labels):
        codes[rows, k] = y
        probs[rows, k] = scores
    names = tuple(f"label{k}" for k in range(len(labels)))
    return EvaluationData("Study", np.array([f"s{i:05d}" for i in range(n)], dtype=object), names, codes, probs,
                          names, probs)


def best_time(fn: Callable[[], np.ndarray], repeat: int) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="rows (studies)")
    parser.add_argument("--labels", type=int, default=14)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    labels = synthetic_labels(args.n, args.labels)
    indices = bootstrap_indices(args.n, args.resamples, seed=0)
    t_old, old = best_time(lambda: baseline_paired(indices, args.n, labels), args.repeat)
    t_new, new = best_time(lambda: paired_bootstrap_aucs(indices, args.n, labels), args.repeat)
    same = np.array_equal(old, new, equal_nan=True)
    t_all, _ = best_time(lambda: evaluate(evaluation_data(args.n, labels), n_boot=args.resamples), args.repeat)
    print(f"{args.resamples} resamples, {args.n} rows x {args.labels} labels, best of {args.repeat}")
    print(f"baseline (counts by resample) {t_old:.3f} s")
    print(f"hmlc     (counts by row)      {t_new:.3f} s")
    print(f"speed-up {t_old / t_new:.1f}x, identical AUCs on every resample: {same}")
    print(f"whole evaluate() (AUCs and CIs, operating points and CIs, AP, curves, ECE): {t_all:.3f} s")
    if not same:
        raise SystemExit("the two implementations disagree")


if __name__ == "__main__":
    main()
