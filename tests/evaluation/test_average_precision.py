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
