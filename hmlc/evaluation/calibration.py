"""Calibration: expected calibration error and the reliability diagram's bins."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ReliabilityBins", "reliability_bins", "expected_calibration_error"]

#: Number of equal-width probability bins (Guo et al. 2017 use 15).
N_BINS = 15


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width bins over [0, 1]: bin b is [edges[b], edges[b+1]), the last one closed."""

    edges: np.ndarray  # (B+1,)
    count: np.ndarray  # (B,) pairs in each bin
    confidence: np.ndarray  # (B,) mean predicted probability; NaN for empty bins
    frequency: np.ndarray  # (B,) share of positives; NaN for empty bins

    @property
    def ece(self) -> float:
        """sum_b (n_b / N) |frequency_b - confidence_b| over non-empty bins."""
        total = int(self.count.sum())
        if not total:
            return math.nan
        full = self.count > 0
        gaps = np.abs(self.frequency[full] - self.confidence[full])
        return float((self.count[full] / total * gaps).sum())


def reliability_bins(y: np.ndarray, probs: np.ndarray, n_bins: int = N_BINS) -> ReliabilityBins:
    """Bin 0/1 outcomes ``y`` by predicted probability ``probs`` (same shape, any shape)."""
    y = np.asarray(y, dtype=float).ravel()
    probs = np.asarray(probs, dtype=float).ravel()
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Interior edges only: p < edges[1] -> bin 0, ..., p >= edges[-2] (1.0 included) -> last bin.
    which = np.digitize(probs, edges[1:-1], right=False)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=probs, minlength=n_bins) / count
        frequency = np.bincount(which, weights=y, minlength=n_bins) / count
    return ReliabilityBins(edges, count, confidence, frequency)


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE of ``probs`` against 0/1 ``y`` with ``n_bins`` equal-width bins (NaN when empty)."""
    return reliability_bins(y, probs, n_bins).ece
