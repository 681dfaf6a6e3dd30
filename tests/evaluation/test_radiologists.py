"""Readers below the ROC curve: the implementation against an exact, independent one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hmlc.evaluation.radiologists import is_below_curve, operating_point, roc_counts

from .reference import below_curve_reference


def below(y: list[int], scores: list[float], reads: list[int]) -> bool:
    y_, s_ = np.array(y), np.array(scores, dtype=float)
    return is_below_curve(*roc_counts(y_, s_), operating_point(y_, np.array(reads)))


# y = [1, 1, 0, 0] with scores [0.9, 0.5, 0.5, 0.1]: the curve runs (0,0) -> (0,.5) -> (.5,1) -> (1,1).
Y = [1, 1, 0, 0]
S = [0.9, 0.5, 0.5, 0.1]


@pytest.mark.parametrize(
    ("reads", "expected", "why"),
    [
        ([1, 0, 0, 0], False, "on the vertex (0, .5): equal is not below"),
        ([0, 0, 0, 0], True, "at (0, 0): two curve points share FPR 0; the larger TPR, .5, counts"),
        ([1, 1, 1, 0], False, "at (.5, 1), a vertex"),
        ([1, 0, 1, 0], True, "at (.5, .5): the curve's TPR there is 1"),
        ([1, 1, 1, 1], False, "at (1, 1)"),
        ([0, 1, 1, 1], True, "at (1, .5)"),
    ],
)
def test_hand_built_cases(reads: list[int], expected: bool, why: str) -> None:
    assert below(Y, S, reads) is expected, why
    assert below_curve_reference(np.array(Y), np.array(S), np.array(reads)) is expected


def test_a_reader_exactly_on_a_sloped_segment_is_not_below() -> None:
    # 3 positives, 3 negatives, all tied: one segment from (0, 0) to (1, 1).
    y, s = [1, 1, 1, 0, 0, 0], [0.5] * 6
    assert not below(y, s, [1, 0, 0, 1, 0, 0])  # (1/3, 1/3) on the diagonal
    assert below(y, s, [0, 0, 0, 1, 0, 0])  # (1/3, 0)
    assert not below(y, s, [1, 1, 0, 1, 0, 0])  # (1/3, 2/3) above


def test_operating_point_counts_and_rates() -> None:
    point = operating_point(np.array([1, 1, 1, 0, 0]), np.array([1, 0, 1, 1, 0]))
    assert (point.true_positives, point.false_positives, point.n_pos, point.n_neg) == (2, 1, 3, 2)
    assert point.tpr == pytest.approx(2 / 3) and point.fpr == 0.5


def test_roc_counts_are_the_points_of_roc_curve() -> None:
    fp, tp = roc_counts(np.array(Y), np.array(S))
    assert fp.tolist() == [0, 0, 1, 2] and tp.tolist() == [0, 1, 2, 2]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_rule_matches_the_exact_reference(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 14))
    y = data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda v: 0 < sum(v) < len(v)))
    scores = data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))  # few values: ties, collinear points
    reads = data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    assert below(y, scores, reads) == below_curve_reference(np.array(y), np.array(scores), np.array(reads))
