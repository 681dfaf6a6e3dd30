"""hmlc's vectorised average precision against scikit-learn's, label by label and pooled."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from hmlc.evaluation.metrics import average_precision


def _sklearn(codes: np.ndarray, probs: np.ndarray, labels: list[str], exclude: list[str]) -> tuple[float, float, list[str]]:
    per_label, pooled_y, pooled_p, empty = [], [], [], []
    for k, label in enumerate(labels):
        if label in exclude:
            continue
        y = codes[:, k]
        known = (y == 0) | (y == 1)
        if not known.any():
            continue
        pooled_y.append(y[known])
        pooled_p.append(probs[known, k])
        if (y[known] == 1).any():
            per_label.append(average_precision_score(y[known], probs[known, k]))
        else:
            per_label.append(0.0)
            empty.append(label)
    y_all = np.concatenate(pooled_y) if pooled_y else np.zeros(0)
    micro = average_precision_score(y_all, np.concatenate(pooled_p)) if (y_all == 1).any() else math.nan
    return micro, float(np.mean(per_label)) if per_label else math.nan, empty


@pytest.mark.parametrize("seed", range(40))
def test_average_precision_equals_scikit_learn_with_ties_unknown_codes_and_empty_labels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 30)), int(rng.integers(1, 6))
    if seed % 2:  # uncertain (-1) and blank (NaN) codes: each label scored on its known rows
        codes = rng.choice([0.0, 1.0, -1.0, np.nan], size=(n, k), p=[0.5, 0.3, 0.1, 0.1])
    else:
        codes = rng.choice([0.0, 1.0], size=(n, k), p=[0.7, 0.3])
    # Coarse scores on every third seed: many ties, each tie group one threshold.
    probs = (rng.integers(0, 4, (n, k)) / 3 if seed % 3 == 0 else rng.random((n, k))).astype(np.float32)
    labels = [f"L{i}" for i in range(k)]
    exclude = labels[:1] if seed % 5 == 0 else []
    got = average_precision(codes, probs, labels, exclude)
    micro, macro, empty = _sklearn(codes, probs, labels, exclude)
    for ours, theirs in ((got.micro, micro), (got.macro, macro)):
        assert (math.isnan(ours) and math.isnan(theirs)) or ours == pytest.approx(theirs, abs=1e-12)
    assert list(got.without_positives) == empty
    assert got.excluded == tuple(exclude)


def _scores(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> np.ndarray:
    """Scores that take each path of the metrics: float32 (sorted keys), float64 that float32 holds exactly
    (the same), float64 that it does not (argsort); logits with -0.0, +0.0, infinities and ties."""
    if kind == "logits32":
        values = rng.choice(np.array([-np.inf, -3.5, -1.0, -0.0, 0.0, 0.25, 2.0, np.inf]), size=shape)
        return np.where(rng.random(shape) < 0.5, values, rng.normal(size=shape)).astype(np.float32)
    if kind == "float64-exact":
        return rng.random(shape).astype(np.float32).astype(np.float64)
    return rng.random(shape)  # float64 that float32 would round


@pytest.mark.parametrize("kind", ["logits32", "float64-exact", "float64"])
def test_average_precision_equals_scikit_learn_for_every_score_type(kind: str) -> None:
    rng = np.random.default_rng(7)
    n, k = 200, 12
    codes = (rng.random((n, k)) < rng.uniform(0.01, 0.5, k)).astype(np.float64)
    codes[:, 0] = 0  # no positive
    codes[:, 1] = 1  # every row positive
    codes[rng.random(n) < 0.2, 2] = -1  # uncertain rows left out
    probs = _scores(rng, (n, k), kind)
    labels = [f"L{i}" for i in range(k)]
    got = average_precision(codes, probs, labels)
    finite = np.clip(probs, -1e30, 1e30)  # scikit-learn refuses infinities; the order is the same
    micro, macro, _ = _sklearn(codes, finite, labels, [])
    assert got.micro == pytest.approx(micro, abs=1e-12)
    assert got.macro == pytest.approx(macro, abs=1e-12)


def test_average_precision_of_the_gene_ontology_shape_matches_the_argsort_path() -> None:
    """Thousands of labels with about 1 % positives (the GO datasets' test split): the fast exact path and
    the general one (the same scores as float64 that float32 does not hold, offset below float32's
    resolution so the order is unchanged) agree to rounding, label by label."""
    rng = np.random.default_rng(3)
    n, k = 400, 1500
    codes = (rng.random((n, k)) < 0.01).astype(np.float64)
    probs = np.round(rng.random((n, k)), 3).astype(np.float32)  # ties within labels and across them
    fast = average_precision(codes, probs, [f"L{i}" for i in range(k)])
    general = average_precision(codes, probs.astype(np.float64) * (1 + 1e-12), [f"L{i}" for i in range(k)])
    assert fast.micro == pytest.approx(general.micro, abs=1e-12)
    assert fast.macro == pytest.approx(general.macro, abs=1e-12)
    assert fast.micro == pytest.approx(_sklearn(codes, probs, [f"L{i}" for i in range(k)], [])[0], abs=1e-12)


def test_positives_all_above_zero_among_negative_scores_rank_where_they_are() -> None:
    """Logits where only negatives fall below zero: the positives' keys are made the same way as
    the rest of the matrix's (a mix gave 0.0275 for 0.158 here)."""
    rng = np.random.default_rng(0)
    probs = rng.normal(size=(200, 1)).astype(np.float32)
    codes = np.zeros((200, 1))
    codes[np.flatnonzero(probs[:, 0] > 0.5)[:10], 0] = 1
    got = average_precision(codes, probs, ["L0"])
    assert got.micro == pytest.approx(average_precision_score(codes[:, 0], probs[:, 0]), abs=1e-12)
    assert got.macro == pytest.approx(got.micro, abs=1e-12)
