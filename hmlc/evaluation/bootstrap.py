"""Bootstrap confidence intervals of AUCs, vectorised over resamples.

One (B, n) matrix of row indices is drawn once per evaluation; every label
uses the same resamples, so the mean AUC of resample b is the mean over labels
of their AUCs on resample b (a paired bootstrap of the mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["bootstrap_indices", "resample_counts", "bootstrap_auc", "paired_bootstrap_aucs", "percentile_ci"]

# Resamples handled at once: bounds memory to a few (chunk, n) int64 arrays beside the index matrix.
_CELLS_PER_CHUNK = 4_000_000


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """A (n_boot, n) matrix of row indices drawn uniformly with replacement, reproducible for ``seed``."""
    rng = np.random.default_rng(seed)
    dtype = np.int32 if n < 2**31 else np.int64
    return rng.integers(0, n, size=(n_boot, n), dtype=dtype)


def resample_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each of the ``n`` rows is drawn in each resample: (B, n) int32."""
    counts = np.empty((indices.shape[0], n), dtype=np.int32)
    for b, row in enumerate(indices):  # one bincount per resample: its output stays in cache
        counts[b] = np.bincount(row, minlength=n)
    return counts


def bootstrap_auc(y: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC of every resample: (B,), NaN where a resample lacks positives or negatives.

    ``y`` (0/1) and ``scores`` are the rows of one label, ``counts`` (B, len(y))
    how often each row is drawn. A row drawn c times counts c times, so the
    result equals ``roc_auc_score(y[idx], scores[idx])`` on the drawn indices.
    """
    y = np.asarray(y) == 1
    scores = np.asarray(scores, dtype=float)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    neg = neg[np.argsort(scores[neg], kind="stable")]
    neg_scores = scores[neg]
    # Mann-Whitney with midranks: positive i beats the drawn negatives scored below it and ties
    # with those scored equal, so twice its wins are C[lo_i] + C[hi_i] with C the cumulative
    # draw counts of the sorted negatives. Everything stays in integers until the division.
    lo = np.searchsorted(neg_scores, scores[pos], side="left")
    hi = np.searchsorted(neg_scores, scores[pos], side="right")
    out = np.empty(counts.shape[0])
    chunk = max(1, _CELLS_PER_CHUNK // max(1, len(y)))
    for start in range(0, counts.shape[0], chunk):
        block = counts[start : start + chunk]
        c_pos = block[:, pos].astype(np.int64)
        # one row per resample; int64 sums are exact for any realistic n
        cumulative = np.zeros((block.shape[0], len(neg) + 1), dtype=np.int64)
        np.cumsum(block[:, neg], axis=1, dtype=np.int64, out=cumulative[:, 1:])
        twice_wins = np.einsum("bi,bi->b", c_pos, cumulative[:, lo] + cumulative[:, hi])
        n_pos, n_neg = c_pos.sum(axis=1), cumulative[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + chunk] = np.where(
                (n_pos > 0) & (n_neg > 0), twice_wins / (2.0 * n_pos * n_neg), np.nan
            )
    return out


def paired_bootstrap_aucs(
    indices: np.ndarray, n: int, labels: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> np.ndarray:
    """(L, B) AUCs of every label on every resample of ``indices`` (B, n).

    Each label is ``(rows, y, scores)``: the rows (of the n) it is evaluated on and their
    0/1 truth and scores; a drawn row outside ``rows`` does not count for that label.
    """
    out = np.empty((len(labels), indices.shape[0]))
    chunk = max(1, _CELLS_PER_CHUNK // max(1, n))
    for lo in range(0, indices.shape[0], chunk):
        counts = resample_counts(indices[lo : lo + chunk], n)
        for k, (rows, y, scores) in enumerate(labels):
            out[k, lo : lo + chunk] = bootstrap_auc(y, scores, counts[:, rows])
    return out


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite ``values`` (NaN, NaN when there are none)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return (math.nan, math.nan)
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return (float(lo), float(hi))
