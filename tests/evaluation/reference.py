"""Slow, independent implementations the evaluation is checked against (exact or O(n^2))."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def below_curve_reference(y: np.ndarray, scores: np.ndarray, reads: np.ndarray) -> bool:
    """The rule of issue 5 in exact fractions, with the ROC curve built from scratch and a loop over segments."""
    y, scores, reads = list(map(int, y)), list(map(float, scores)), list(map(int, reads))
    n_pos, n_neg = sum(y), len(y) - sum(y)
    points = [(Fraction(0), Fraction(0))]  # roc_curve's first point, threshold +inf
    for threshold in sorted(set(scores), reverse=True):
        tp = sum(1 for yi, si in zip(y, scores) if si >= threshold and yi == 1)
        fp = sum(1 for yi, si in zip(y, scores) if si >= threshold and yi == 0)
        points.append((Fraction(fp, n_neg), Fraction(tp, n_pos)))
    reader_fpr = Fraction(sum(1 for yi, ri in zip(y, reads) if ri == 1 and yi == 0), n_neg)
    reader_tpr = Fraction(sum(1 for yi, ri in zip(y, reads) if ri == 1 and yi == 1), n_pos)
    same = [tpr for fpr, tpr in points if fpr == reader_fpr]
    if same:
        curve = max(same)
    else:
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            if x0 < reader_fpr < x1:
                curve = y0 + (y1 - y0) * (reader_fpr - x0) / (x1 - x0)
                break
        else:  # pragma: no cover - the curve spans FPR 0 to 1
            raise AssertionError("no segment contains the reader's FPR")
    return curve > reader_tpr


def delong_reference(y: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[float, float, float]:
    """DeLong et al. (1988) from the structural components, every positive against every negative.

    Returns (auc1, auc2, two-sided p).
    """
    pos = [i for i in range(len(y)) if y[i] == 1]
    neg = [j for j in range(len(y)) if y[j] != 1]
    m, n = len(pos), len(neg)

    def psi(a: float, b: float) -> float:
        return 1.0 if a > b else 0.5 if a == b else 0.0

    v10, v01, aucs = [], [], []
    for s in (s1, s2):
        v10.append([sum(psi(s[i], s[j]) for j in neg) / n for i in pos])
        v01.append([sum(psi(s[i], s[j]) for i in pos) / m for j in neg])
        aucs.append(sum(v10[-1]) / m)

    def cov(v: list[list[float]], r: int, t: int, count: int) -> float:
        mean_r, mean_t = sum(v[r]) / count, sum(v[t]) / count
        return sum((a - mean_r) * (b - mean_t) for a, b in zip(v[r], v[t])) / (count - 1)

    var = sum(
        sign * (cov(v10, r, t, m) / m + cov(v01, r, t, n) / n)
        for r, t, sign in ((0, 0, 1), (1, 1, 1), (0, 1, -2))
    )
    z = (aucs[0] - aucs[1]) / math.sqrt(var)
    return aucs[0], aucs[1], math.erfc(abs(z) / math.sqrt(2))
