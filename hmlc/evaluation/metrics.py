"""Per-label ROC AUC on raw label codes (uncertain and blank codes excluded)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = ["LabelAUC", "per_label_auc", "mean_auc"]


@dataclass(frozen=True)
class LabelAUC:
    label: str
    auc: float  # NaN when the label lacks positives or negatives
    n_pos: int
    n_neg: int
    n_excluded: int


def per_label_auc(codes: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> list[LabelAUC]:
    """AUC of ``probs[:, k]`` against ``codes[:, k]`` where the code is 0 or 1."""
    out = []
    for k, label in enumerate(labels):
        y = codes[:, k]
        known = (y == 0) | (y == 1)
        yk, pk = y[known], probs[known, k]
        n_pos, n_neg = int((yk == 1).sum()), int((yk == 0).sum())
        auc = float(roc_auc_score(yk, pk)) if n_pos and n_neg else math.nan
        out.append(LabelAUC(label, auc, n_pos, n_neg, int((~known).sum())))
    return out


def mean_auc(aucs: Sequence[LabelAUC], labels: Sequence[str] | None = None) -> float:
    """Mean AUC over ``labels`` (default: every label with both classes)."""
    chosen = [a for a in aucs if (labels is None or a.label in labels) and not math.isnan(a.auc)]
    return float(np.mean([a.auc for a in chosen])) if chosen else math.nan
