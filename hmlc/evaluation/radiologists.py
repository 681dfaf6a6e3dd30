"""Readers' operating points and whether they lie below a model's ROC curve.

The rule (issue 5, as on the CheXpert leaderboard's "radiologists under the
curve"): the ROC curve is piecewise linear through every point of
``sklearn.metrics.roc_curve(y, scores, drop_intermediate=False)``; where
several points share the reader's FPR the curve's TPR there is the largest of
theirs; a reader is below when that TPR (else the linear interpolation at the
reader's FPR) is strictly greater than the reader's TPR.

The comparison is made exactly, in counts: every curve point is
(false positives, true positives) among the same rows as the reader's, so
interpolation and "strictly greater" need no floating-point tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_curve

__all__ = ["OperatingPoint", "operating_point", "roc_counts", "is_below_curve"]


@dataclass(frozen=True)
class OperatingPoint:
    """A reader's binary reads summarised against the truth of the same rows."""

    true_positives: int
    false_positives: int
    n_pos: int
    n_neg: int

    @property
    def tpr(self) -> float:
        return self.true_positives / self.n_pos

    @property
    def fpr(self) -> float:
        return self.false_positives / self.n_neg


def operating_point(y: np.ndarray, reads: np.ndarray) -> OperatingPoint:
    """TP and FP counts of 0/1 ``reads`` against 0/1 ``y`` (same rows)."""
    y = np.asarray(y) == 1
    reads = np.asarray(reads) == 1
    return OperatingPoint(int((reads & y).sum()), int((reads & ~y).sum()), int(y.sum()), int((~y).sum()))


def roc_counts(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points of ``roc_curve(drop_intermediate=False)`` as integer (false, true) positive counts."""
    y = np.asarray(y)
    fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=False)
    n_pos, n_neg = int((y == 1).sum()), int((y != 1).sum())
    # roc_curve divides integer counts by n_pos / n_neg; rounding back recovers them exactly.
    return np.rint(fpr * n_neg).astype(np.int64), np.rint(tpr * n_pos).astype(np.int64)


def is_below_curve(fp_curve: np.ndarray, tp_curve: np.ndarray, point: OperatingPoint) -> bool:
    """Whether ``point`` lies strictly below the curve through (``fp_curve``, ``tp_curve``) counts."""
    fp, tp = point.false_positives, point.true_positives
    at = np.flatnonzero(fp_curve == fp)
    if at.size:
        return bool(tp_curve[at].max() > tp)
    # Curve points come in order of increasing FPR: the segment around fp joins the last point
    # left of it to the first point right of it (the curve runs from (0, 0) to (n_neg, n_pos)).
    right = int(np.searchsorted(fp_curve, fp, side="right"))
    x0, y0 = int(fp_curve[right - 1]), int(tp_curve[right - 1])
    x1, y1 = int(fp_curve[right]), int(tp_curve[right])
    # y0 + (y1 - y0) * (fp - x0) / (x1 - x0) > tp, multiplied through by x1 - x0 > 0.
    return y0 * (x1 - x0) + (y1 - y0) * (fp - x0) > tp * (x1 - x0)
