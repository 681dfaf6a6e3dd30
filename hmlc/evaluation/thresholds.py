"""Operating thresholds of a score: sensitivity and specificity where a clinician would cut.

Two rules, both on the points of ``roc_curve(y, scores, drop_intermediate=False)``
of a label with both classes
(a sample is called positive when its score is >= the threshold):

- ``youden``: the threshold maximising Youden's J = sensitivity + specificity - 1
  (the highest such threshold when several tie);
- ``sensitivity>=S``: the highest threshold whose sensitivity is at least S, i.e.
  the most specific cut that still finds a share S of the positives.

Their bootstrap intervals keep the threshold fixed (chosen on all samples) and
recount sensitivity and specificity on every resample: they describe the
uncertainty of the rates at that cut, not of where the cut would fall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hmlc.evaluation.bootstrap import percentile_ci

__all__ = ["OperatingThreshold", "youden_threshold", "sensitivity_threshold", "rate_weights", "rate_intervals", "rule_name"]


@dataclass(frozen=True)
class OperatingThreshold:
    """Sensitivity and specificity at one threshold of one label, with bootstrap intervals."""

    rule: str  # "youden" or "sensitivity>=0.90"
    threshold: float
    sensitivity: float
    specificity: float
    sensitivity_ci: tuple[float, float] = (math.nan, math.nan)
    specificity_ci: tuple[float, float] = (math.nan, math.nan)


def rule_name(sensitivity: float) -> str:
    """The name of the fixed-sensitivity rule, e.g. ``sensitivity>=0.90``."""
    return f"sensitivity>={sensitivity:.2f}"


def youden_threshold(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray) -> OperatingThreshold:
    """The threshold of largest sensitivity + specificity - 1, from ``roc_curve``'s output."""
    # point 0 of roc_curve is (0, 0) at threshold +inf, "call nothing positive": not a cut
    j = tpr[1:] - fpr[1:]
    best = 1 + int(np.argmax(j))  # the first maximum: the highest threshold among ties
    return OperatingThreshold("youden", float(thresholds[best]), float(tpr[best]), float(1 - fpr[best]))


def sensitivity_threshold(
    fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray, sensitivity: float
) -> OperatingThreshold:
    """The highest threshold whose sensitivity reaches ``sensitivity``, from ``roc_curve``'s output."""
    at = 1 + int(np.flatnonzero(tpr[1:] >= sensitivity - 1e-12)[0])  # tpr ends at 1: there is one
    return OperatingThreshold(rule_name(sensitivity), float(thresholds[at]), float(tpr[at]), float(1 - fpr[at]))


def rate_weights(n: int, rows: np.ndarray, y: np.ndarray, called: np.ndarray) -> np.ndarray:
    """Weights of the ``n`` rows whose resampled sums give sensitivity and specificity: (n, 2 + 2P).

    ``rows`` (of the n) are the label's rows, ``y`` their 0/1 truth and ``called``
    (len(rows), P) whether each is called positive at each of P thresholds. Columns:
    positives, negatives, then per threshold true positives and true negatives.
    """
    positive = (np.asarray(y) == 1).astype(float)
    called = np.asarray(called, dtype=float).reshape(len(rows), -1)
    weights = np.zeros((n, 2 + 2 * called.shape[1]))
    weights[rows, 0] = positive
    weights[rows, 1] = 1 - positive
    weights[rows, 2::2] = positive[:, None] * called
    weights[rows, 3::2] = (1 - positive)[:, None] * (1 - called)
    return weights


def rate_intervals(sums: np.ndarray, level: float) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Per threshold, the percentile intervals of (sensitivity, specificity) from resampled ``sums``.

    ``sums`` (B, 2 + 2P) are :func:`rate_weights` summed over each resample's draws.
    """
    out = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for p in range((sums.shape[1] - 2) // 2):
            sensitivity = sums[:, 2 + 2 * p] / sums[:, 0]
            specificity = sums[:, 3 + 2 * p] / sums[:, 1]
            out.append((percentile_ci(sensitivity, level), percentile_ci(specificity, level)))
    return out
