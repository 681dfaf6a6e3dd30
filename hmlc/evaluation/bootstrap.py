"""Bootstrap confidence intervals of AUCs, vectorised over resamples.

One (B, n) matrix of row indices is drawn once per evaluation; every label
uses the same resamples, so the mean AUC of resample b is the mean over labels
of their AUCs on resample b (a paired bootstrap of the mean).

The resamples are held as draw counts laid out (rows, resamples): selecting a
label's rows, sorting them by score and cumulating over them then touch
contiguous rows of B counts, which is what makes all resamples cheap at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hmlc.errors import ConfigError

__all__ = [
    "MAX_RESAMPLES",
    "check_resamples",
    "bootstrap_indices",
    "resample_counts",
    "bootstrap_auc",
    "paired_bootstrap_aucs",
    "bootstrap_sums",
    "percentile_ci",
]

#: The most resamples ``hmlc evaluate`` draws (the index matrix alone is 4 x B x n bytes).
MAX_RESAMPLES = 100_000
# The index matrix is (B, n) int32: refuse one larger than this rather than exhaust memory.
_MAX_INDEX_BYTES = 2 * 1024**3
# Resamples handled at once: bounds memory to a few (n, chunk) int64 arrays beside the index matrix.
_CELLS_PER_CHUNK = 4_000_000


def check_resamples(n_boot: int, n: int) -> None:
    """Raise :class:`ConfigError` unless ``n_boot`` resamples of ``n`` rows are drawable here."""
    if n_boot < 0:
        raise ConfigError(f"--bootstrap {n_boot}: give 0 (no intervals) or a number of resamples")
    if n_boot > MAX_RESAMPLES:
        raise ConfigError(
            f"--bootstrap {n_boot} is more than the {MAX_RESAMPLES:,} resamples hmlc draws; "
            f"give at most {MAX_RESAMPLES} (the default, 2000, is the usual choice)"
        )
    if 4 * n_boot * n > _MAX_INDEX_BYTES:
        fits = _MAX_INDEX_BYTES // (4 * max(n, 1))
        raise ConfigError(
            f"--bootstrap {n_boot} on {n:,} rows needs {4 * n_boot * n / 1024**3:.1f} GiB of resample indices; "
            f"give at most {fits:,}"
        )


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """A (n_boot, n) matrix of row indices drawn uniformly with replacement, reproducible for ``seed``."""
    rng = np.random.default_rng(seed)
    dtype = np.int32 if n < 2**31 else np.int64
    return rng.integers(0, n, size=(n_boot, n), dtype=dtype)


def resample_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each of the ``n`` rows is drawn in each resample of ``indices`` (B, n): (n, B) int32."""
    n_boot = indices.shape[0]
    # cell (row, b) of the (n, B) result is flat position row * B + b: one bincount for all resamples
    flat = indices.astype(np.int64) * n_boot + np.arange(n_boot, dtype=np.int64)[:, None]
    return np.bincount(flat.ravel(), minlength=n * n_boot).astype(np.int32).reshape(n, n_boot)


def bootstrap_auc(y: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC of every resample: (B,), NaN where a resample lacks positives or negatives.

    ``y`` (0/1) and ``scores`` are the rows of one label, ``counts`` (len(y), B)
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
    n_boot = counts.shape[1]
    out = np.empty(n_boot)
    chunk = max(1, _CELLS_PER_CHUNK // max(1, len(y)))
    for start in range(0, n_boot, chunk):
        block = counts[:, start : start + chunk]
        c_pos = block[pos].astype(np.int64)
        cumulative = np.zeros((len(neg) + 1, block.shape[1]), dtype=np.int64)
        np.cumsum(block[neg], axis=0, dtype=np.int64, out=cumulative[1:])
        twice_wins = np.einsum("ib,ib->b", c_pos, cumulative[lo] + cumulative[hi])
        n_pos, n_neg = c_pos.sum(axis=0), cumulative[-1]
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
            out[k, lo : lo + chunk] = bootstrap_auc(y, scores, counts[rows])
    return out


def bootstrap_sums(indices: np.ndarray, n: int, weights: np.ndarray) -> np.ndarray:
    """(B, W): for each resample of ``indices`` (B, n), the sum over its draws of ``weights`` (n, W)."""
    out = np.empty((indices.shape[0], weights.shape[1]))
    chunk = max(1, _CELLS_PER_CHUNK // max(1, n))
    for lo in range(0, indices.shape[0], chunk):
        out[lo : lo + chunk] = resample_counts(indices[lo : lo + chunk], n).T @ weights
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
