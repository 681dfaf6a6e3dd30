"""ECE and the coherence rate on data small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hmlc.evaluation.calibration import expected_calibration_error, reliability_bins
from hmlc.evaluation.coherence import coherence_rate
from hmlc.hierarchy import LabelGraph


def test_ece_by_hand() -> None:
    # bin [0, 1/15): p = .02, .04 (mean .03), outcomes 0, 1 (freq .5) -> gap .47, weight 2/6
    # bin [9/15, 10/15): p = .62, .64 (mean .63), outcomes 1, 1 (freq 1) -> gap .37, weight 2/6
    # last bin [14/15, 1]: p = .95, 1.0 (mean .975), outcomes 1, 1 -> gap .025, weight 2/6
    p = np.array([0.02, 0.04, 0.62, 0.64, 0.95, 1.0])
    y = np.array([0, 1, 1, 1, 1, 1])
    assert expected_calibration_error(y, p) == pytest.approx((0.47 + 0.37 + 0.025) / 3)
    bins = reliability_bins(y, p)
    assert bins.count.tolist() == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2]
    assert bins.confidence[9] == pytest.approx(0.63) and bins.frequency[0] == 0.5
    assert math.isnan(bins.confidence[1])


def test_ece_weights_each_bin_by_its_pairs_and_takes_any_shape() -> None:
    p = np.array([[0.25, 0.25], [0.25, 0.25], [0.8, 0.8], [0.8, 0.8], [0.8, 0.8]])
    y = np.array([[1, 0], [0, 0], [1, 1], [1, 1], [0, 1]])  # .25: 1 of 4 (calibrated); .8: 5 of 6
    assert expected_calibration_error(y, p) == pytest.approx(6 / 10 * abs(5 / 6 - 0.8))
    assert expected_calibration_error(np.array([1, 0, 0, 0]), np.full(4, 0.25)) == pytest.approx(0.0)


def test_ece_of_nothing_is_nan() -> None:
    assert math.isnan(expected_calibration_error(np.array([]), np.array([])))


def test_coherence_by_hand() -> None:
    graph = LabelGraph(["A", "B", "C", "D"], [("A", "B"), ("B", "C"), ("A", "D")])
    # columns in another order than the graph, and without D: only edges A->B and B->C count
    labels = ["C", "A", "B"]
    probs = np.array([
        [0.1, 0.9, 0.5],  # B <= A, C <= B: both coherent
        [0.6, 0.9, 0.5],  # C > B: one violation
        [0.5, 0.4, 0.5],  # B > A: one violation; C == B is coherent
    ])
    result = coherence_rate(probs, labels, graph)
    assert result.edges == (("A", "B"), ("B", "C"))
    assert (result.pairs, result.violations) == (6, 2)
    assert result.rate == pytest.approx(4 / 6)


def test_coherence_without_a_predicted_edge_is_nan() -> None:
    graph = LabelGraph(["A", "B"], [("A", "B")])
    result = coherence_rate(np.array([[0.2]]), ["A"], graph)
    assert math.isnan(result.rate) and result.pairs == 0
