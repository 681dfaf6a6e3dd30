"""Per-label ROC AUC, micro/macro average precision on raw label codes (uncertain and blank excluded),
and the check for predictions that do not vary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

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


def _tie_groups(ranked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of sorted ``ranked``: each position's tie group's first and last position (0-based)."""
    n = ranked.shape[1]
    at = np.arange(n, dtype=np.int32)
    first = np.ones(ranked.shape, dtype=bool)
    first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    last = np.ones(ranked.shape, dtype=bool)
    last[:, :-1] = first[:, 1:]
    start = np.maximum.accumulate(np.where(first, at, 0), axis=1)
    end = np.minimum.accumulate(np.where(last, at, n)[:, ::-1], axis=1)[:, ::-1]
    return start, end


def _as_float32(scores: np.ndarray) -> np.ndarray | None:
    """``scores`` as float32 when that loses nothing and none is NaN (the fast exact path), else None."""
    if scores.dtype == np.float32:
        return None if np.isnan(scores).any() else scores
    if scores.dtype == np.float64:
        narrow = scores.astype(np.float32)
        return narrow if np.array_equal(narrow, scores) else None  # NaN never equals: None
    return None


def _keys(scores: np.ndarray, rows: np.ndarray, signed: bool) -> np.ndarray:
    """float32 ``scores`` (no NaN) of rows ``rows`` as uint64 keys that sort as (row, score); the equal
    scores of a row (+0.0 and -0.0 too) get one key. ``signed``: some score of the matrix is negative
    (the keys of one matrix must all be made one way)."""
    bits = (scores + np.float32(0.0)).view(np.uint32)  # + 0.0: -0.0 becomes +0.0
    if signed:  # negative floats order backwards as integers: flip them, and put them below the others
        bits = np.where(bits >> np.uint32(31) == 1, ~bits, bits | np.uint32(0x80000000))
    halves = np.empty(bits.shape + (2,), dtype=np.uint32)  # the low and high half of each little-endian key
    halves[..., 0] = bits
    halves[..., 1] = rows
    return halves.view(np.uint64)[..., 0]


def _positive_ranks(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per positive of ``scores`` (rows, samples; float32, no NaN), in the order (row, score): its row, the
    number of its row's scores below it and at most it, and of its row's positives below it; and the
    positives per row.

    Sorting the scores of each row (not their order: ``argsort``) and looking only the positives up in
    them is several times faster where positives are few (the Gene Ontology: about 1 %) and exact.
    """
    n_rows, n_cols = scores.shape
    ordered = np.sort(scores, axis=1)
    signed = bool(ordered.size) and bool(ordered[:, 0].min() < 0)
    ranked = _keys(ordered, np.arange(n_rows, dtype=np.uint32)[:, None], signed).ravel()
    keys = np.sort(_keys(scores[positive], np.nonzero(positive)[0].astype(np.uint32), signed))
    row = (keys >> np.uint64(32)).astype(np.int64)
    base = row * n_cols
    below = np.searchsorted(ranked, keys, side="left") - base
    upto = np.searchsorted(ranked, keys, side="right") - base
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    at = np.arange(len(keys))
    tie_start = np.maximum.accumulate(np.where(first, at, 0)) if len(keys) else at
    per_row = np.bincount(row, minlength=n_rows)
    positives_below = tie_start - (np.cumsum(per_row) - per_row)[row]
    return row, below, upto, positives_below, per_row


def _positive_rank_sums(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Per row of ``scores`` (labels, samples): the sum of the positives' midranks (1-based, ties averaged)."""
    narrow = _as_float32(scores)
    if narrow is not None:
        row, below, upto, _, _ = _positive_ranks(narrow, positive)
        return np.bincount(row, weights=(below + upto + 1) / 2, minlength=len(scores))
    order = np.argsort(scores, axis=1)  # any order of ties: their ranks are averaged
    start, end = _tie_groups(np.take_along_axis(scores, order, axis=1))
    midrank = (start + end) / 2 + 1
    return (midrank * np.take_along_axis(positive, order, axis=1)).sum(axis=1)


def _average_precisions(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Per row of ``scores`` (labels, samples): scikit-learn's ``average_precision_score``; 0 without positives.

    AP = sum over thresholds t (scores descending) of (R_t - R_t-1) P_t: each positive adds
    precision / n_pos at the last position of its tie group, the group counted as one threshold.
    """
    narrow = _as_float32(scores)
    if narrow is not None:  # the precision at a positive: positives scored at least as high / all scored so
        row, below, _, positives_below, n_pos = _positive_ranks(narrow, positive)
        precision = (n_pos[row] - positives_below) / (scores.shape[1] - below)
        gained = np.bincount(row, weights=precision, minlength=len(scores))
        return np.divide(gained, n_pos, out=np.zeros(len(scores)), where=n_pos > 0)
    order = np.argsort(-scores, axis=1)  # ties form one threshold: their order does not matter
    _, end = _tie_groups(np.take_along_axis(scores, order, axis=1))
    hits = np.take_along_axis(positive, order, axis=1)
    tps = np.cumsum(hits, axis=1, dtype=np.float64)
    precision = np.take_along_axis(tps / np.arange(1, scores.shape[1] + 1), end, axis=1)
    n_pos = tps[:, -1] if scores.shape[1] else np.zeros(len(scores))
    gained = np.where(hits, precision, 0.0).sum(axis=1)
    return np.divide(gained, n_pos, out=np.zeros(len(scores)), where=n_pos > 0)


def per_label_auc(codes: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> list[LabelAUC]:
    """AUC of ``probs[:, k]`` against ``codes[:, k]`` where the code is 0 or 1.

    The AUC is the Mann-Whitney statistic on midranks (ties count one half), the value of
    scikit-learn's ``roc_auc_score``; labels whose rows are all known share one ranking of
    the columns, so thousands of labels (the Gene Ontology) cost one vectorised sort.
    """
    codes = np.asarray(codes)
    probs = np.asarray(probs)
    known = (codes == 0) | (codes == 1)
    positive = codes == 1
    n_pos = (positive & known).sum(axis=0)
    n_neg = known.sum(axis=0) - n_pos
    full = known.all(axis=0) & (n_pos > 0) & (n_neg > 0) & ~np.isnan(probs).any(axis=0)
    aucs = np.full(len(labels), math.nan)
    if full.any():
        rank_sum = _positive_rank_sums(probs[:, full].T, positive[:, full].T)
        pos, neg = n_pos[full].astype(np.float64), n_neg[full].astype(np.float64)
        aucs[full] = (rank_sum - pos * (pos + 1) / 2) / (pos * neg)
    for k in np.flatnonzero(~full & (n_pos > 0) & (n_neg > 0)):  # some rows unknown (or NaN): scikit-learn
        aucs[k] = roc_auc_score(codes[known[:, k], k], probs[known[:, k], k])
    excluded = len(codes) - known.sum(axis=0)
    return [
        LabelAUC(label, float(auc), int(p), int(n), int(e))
        for label, auc, p, n, e in zip(labels, aucs.tolist(), n_pos.tolist(), n_neg.tolist(), excluded.tolist())
    ]


def mean_auc(aucs: Sequence[LabelAUC], labels: Sequence[str] | None = None) -> float:
    """Mean AUC over ``labels`` (default: every label with both classes)."""
    wanted = None if labels is None else set(labels)
    chosen = [a for a in aucs if (wanted is None or a.label in wanted) and not math.isnan(a.auc)]
    return float(np.mean([a.auc for a in chosen])) if chosen else math.nan


@dataclass(frozen=True)
class AveragePrecision:
    """Micro- and macro-averaged average precision (AU(PRC)) over ``labels``."""

    micro: float  # NaN when the pooled pairs hold no positive
    macro: float  # NaN when no label has a known code
    labels: tuple[str, ...]  # the labels averaged over
    excluded: tuple[str, ...]  # evaluated labels left out (e.g. the hierarchy's roots)
    without_positives: tuple[str, ...]  # labels with no positive: AP 0 in the macro mean, as scikit-learn


def average_precision(
    codes: np.ndarray, probs: np.ndarray, labels: Sequence[str], exclude: Sequence[str] = ()
) -> AveragePrecision:
    """``average_precision_score(average="micro"/"macro")`` over ``labels`` minus ``exclude``.

    Per label only the rows coded 0 or 1 count: micro pools those (row, label) pairs, macro
    is the mean of the labels' AP, a label without positives counting 0. Without uncertain or
    blank codes both equal scikit-learn on the (rows, labels) matrices (to rounding: sums
    run in another order). Labels whose rows are all known share one vectorised sort.
    """
    codes, probs = np.asarray(codes), np.asarray(probs)
    dropped = set(exclude)
    kept = np.array([k for k, label in enumerate(labels) if label not in dropped], dtype=np.int64)
    known = (codes[:, kept] == 0) | (codes[:, kept] == 1)
    positive = codes[:, kept] == 1
    scored = known.any(axis=0)
    full = known.all(axis=0)
    per_label = np.zeros(len(kept))
    if full.any():
        per_label[full] = _average_precisions(probs[:, kept[full]].T, positive[:, full].T)
    for j in np.flatnonzero(scored & ~full):  # some rows uncertain or blank: this label's known rows
        rows = known[:, j]
        per_label[j] = _average_precisions(probs[rows, kept[j]][None], positive[rows, j][None])[0]
    has_positive = (positive & known).any(axis=0)
    micro = math.nan
    if has_positive.any():
        pooled = known[:, scored].T  # label by label, as the pairs are pooled
        pooled_p = probs[:, kept[scored]].T[pooled]
        pooled_y = positive[:, scored].T[pooled]
        micro = float(_average_precisions(pooled_p[None], pooled_y[None])[0])
    return AveragePrecision(
        micro=micro,
        macro=float(np.mean(per_label[scored])) if scored.any() else math.nan,
        labels=tuple(labels[k] for k in kept),
        excluded=tuple(label for label in labels if label in dropped),
        without_positives=tuple(labels[k] for k in kept[scored & ~has_positive]),
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
