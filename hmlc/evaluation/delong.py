"""DeLong's test of the difference of two correlated ROC AUCs.

DeLong, DeLong & Clarke-Pearson (1988) estimate the covariance of AUCs
measured on the same samples from their structural components; Sun & Xu
(2014, IEEE Signal Processing Letters 21(11)) compute those components from
midranks in O(n log n) instead of comparing every positive with every negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

__all__ = ["DeLongResult", "delong_covariance", "delong_test"]


@dataclass(frozen=True)
class DeLongResult:
    auc: float  # AUC of the first scores
    other_auc: float  # AUC of the second scores
    z: float
    p: float  # two-sided; NaN when the test is undefined (fewer than 2 positives or negatives)


def delong_covariance(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their DeLong covariance (k, k) for ``scores`` (k, n) against 0/1 ``y`` (n,)."""
    y = np.asarray(y)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    pos = y == 1
    m, n = int(pos.sum()), int((~pos).sum())
    if m < 2 or n < 2:
        k = scores.shape[0]
        return np.full(k, math.nan), np.full((k, k), math.nan)
    x, z = scores[:, pos], scores[:, ~pos]
    rank_all = rankdata(scores, axis=1)
    rank_x, rank_z = rankdata(x, axis=1), rankdata(z, axis=1)
    # Sun & Xu: midrank among all minus midrank among positives = negatives below (+ half ties).
    v10 = (rank_all[:, pos] - rank_x) / n  # per positive: share of negatives it beats
    v01 = 1.0 - (rank_all[:, ~pos] - rank_z) / m  # per negative: share of positives beating it
    aucs = v10.mean(axis=1)
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def delong_test(y: np.ndarray, scores: np.ndarray, other_scores: np.ndarray) -> DeLongResult:
    """Two-sided DeLong test of AUC(scores) = AUC(other_scores) on the same samples ``y``."""
    aucs, cov = delong_covariance(y, np.vstack([scores, other_scores]))
    if not np.isfinite(cov).all():
        return DeLongResult(float(aucs[0]), float(aucs[1]), math.nan, math.nan)
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    if var <= 1e-15:
        # The two AUCs move together exactly (e.g. identical rankings): no evidence of a
        # difference when they are equal, a certain one otherwise.
        if abs(diff) < 1e-12:
            return DeLongResult(float(aucs[0]), float(aucs[1]), 0.0, 1.0)
        return DeLongResult(float(aucs[0]), float(aucs[1]), math.copysign(math.inf, diff), 0.0)
    zscore = diff / math.sqrt(var)
    return DeLongResult(float(aucs[0]), float(aucs[1]), zscore, float(2.0 * norm.sf(abs(zscore))))
