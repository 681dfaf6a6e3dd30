"""Per-label ROC AUC, micro/macro average precision on raw label codes (uncertain and blank excluded),
and the check for predictions that do not vary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "LabelAUC", "per_label_auc", "mean_auc", "AveragePrecision", "average_precision", "constant_prediction_labels"
]


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


@dataclass(frozen=True)
class AveragePrecision:
    """Micro- and macro-averaged average precision (AU(PRC)) over ``labels``."""

    micro: float  # NaN when the pooled pairs hold no positive
    macro: float  # NaN when no label has a known code
    labels: tuple[str, ...]  # the labels averaged over
    excluded: tuple[str, ...]  # evaluated labels left out (e.g. the hierarchy's roots)
    without_positives: tuple[str, ...]  # labels with no positive: AP 0 in the macro mean, as scikit-learn


def _ap(y: np.ndarray, p: np.ndarray) -> float:
    # scikit-learn's value for a label without positives is 0 (after a warning): say it without the warning
    return float(average_precision_score(y, p)) if (y == 1).any() else 0.0


def average_precision(
    codes: np.ndarray, probs: np.ndarray, labels: Sequence[str], exclude: Sequence[str] = ()
) -> AveragePrecision:
    """``average_precision_score(average="micro"/"macro")`` over ``labels`` minus ``exclude``.

    Per label only the rows coded 0 or 1 count: micro pools those (row, label) pairs, macro
    is the mean of the labels' AP, a label without positives counting 0. Without uncertain or
    blank codes both equal scikit-learn on the (rows, labels) matrices.
    """
    kept = [k for k, label in enumerate(labels) if label not in exclude]
    pooled_y, pooled_p, per_label, empty = [], [], [], []
    for k in kept:
        y = codes[:, k]
        known = (y == 0) | (y == 1)
        if not known.any():
            continue
        pooled_y.append(y[known])
        pooled_p.append(probs[known, k])
        per_label.append(_ap(y[known], probs[known, k]))
        if not (y[known] == 1).any():
            empty.append(labels[k])
    micro = math.nan
    if pooled_y and any((y == 1).any() for y in pooled_y):
        micro = float(average_precision_score(np.concatenate(pooled_y), np.concatenate(pooled_p)))
    return AveragePrecision(
        micro=micro,
        macro=float(np.mean(per_label)) if per_label else math.nan,
        labels=tuple(labels[k] for k in kept),
        excluded=tuple(label for label in labels if label in exclude),
        without_positives=tuple(empty),
    )


def constant_prediction_labels(probs: np.ndarray, labels: Sequence[str]) -> list[str]:
    """The labels whose predicted probabilities are one and the same value on every row.

    Such a column ranks nothing (its AUC is 0.5): the model did not learn the label, or
    the checkpoint is not the trained one.
    """
    probs = np.asarray(probs, dtype=float)
    if not len(probs):
        return []
    same = np.all(probs == probs[:1], axis=0)
    return [label for label, flat in zip(labels, same) if flat]
