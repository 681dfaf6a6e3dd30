"""per_label_auc (vectorised midranks for fully known labels) against scikit-learn label by label."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score

from hmlc.evaluation.metrics import per_label_auc


def test_per_label_auc_equals_scikit_learn_with_ties_unknown_codes_and_one_class_labels() -> None:
    rng = np.random.default_rng(0)
    n, k = 300, 40
    codes = (rng.random((n, k)) < rng.uniform(0.02, 0.5, k)).astype(np.float32)
    codes[:, 0] = 0  # no positive: NaN
    codes[:, 1] = 1  # no negative: NaN
    codes[rng.random(n) < 0.2, 2] = -1  # uncertain rows left out
    codes[rng.random(n) < 0.2, 3] = np.nan  # blank rows left out
    probs = np.round(rng.random((n, k)), 1).astype(np.float32)  # many ties
    probs[:, 4] = 0.5  # a constant score: 0.5
    labels = [f"L{j}" for j in range(k)]
    got = per_label_auc(codes, probs, labels)
    assert [a.label for a in got] == labels
    for j, a in enumerate(got):
        y = codes[:, j]
        known = (y == 0) | (y == 1)
        assert (a.n_pos, a.n_neg, a.n_excluded) == (int((y == 1).sum()), int((y == 0).sum()), int((~known).sum()))
        if a.n_pos and a.n_neg:
            assert math.isclose(a.auc, roc_auc_score(y[known], probs[known, j]), rel_tol=0, abs_tol=1e-12)
        else:
            assert math.isnan(a.auc)
    assert got[4].auc == 0.5


def test_per_label_auc_equals_scikit_learn_for_logits_zeros_of_both_signs_and_infinities() -> None:
    """float32 logits take the sorted-keys path: -0.0 ties with +0.0, infinities rank at the ends."""
    rng = np.random.default_rng(5)
    n, k = 250, 10
    codes = (rng.random((n, k)) < rng.uniform(0.02, 0.5, k)).astype(np.float32)
    codes[:3, :] = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]  # both classes in every label
    codes[3:6, :] = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    special = rng.choice(np.array([-np.inf, -2.0, -0.0, 0.0, 1.5, np.inf]), size=(n, k))
    for probs in (np.where(rng.random((n, k)) < 0.5, special, rng.normal(size=(n, k))).astype(np.float32),
                  rng.normal(size=(n, k))):  # and float64 that float32 would round: the argsort path
        got = per_label_auc(codes, probs, [f"L{j}" for j in range(k)])
        for j, a in enumerate(got):
            finite = np.clip(probs[:, j], -1e30, 1e30)  # scikit-learn refuses infinities; the order is the same
            assert math.isclose(a.auc, roc_auc_score(codes[:, j], finite), rel_tol=0, abs_tol=1e-12)


def test_per_label_auc_of_positives_above_zero_among_negative_logits() -> None:
    rng = np.random.default_rng(0)
    probs = rng.normal(size=(200, 2)).astype(np.float32)
    codes = (probs > 0.5).astype(np.float32)  # every positive above zero, negatives on both sides
    for j, a in enumerate(per_label_auc(codes, probs, ["a", "b"])):
        assert math.isclose(a.auc, roc_auc_score(codes[:, j], probs[:, j]), rel_tol=0, abs_tol=1e-12)
