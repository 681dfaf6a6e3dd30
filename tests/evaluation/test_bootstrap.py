"""The vectorised bootstrap equals a plain loop over the same resamples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from hmlc.evaluation.bootstrap import bootstrap_auc, bootstrap_indices, percentile_ci, resample_counts


def loop_aucs(y: np.ndarray, scores: np.ndarray, indices: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """sklearn's AUC of every resample, NaN where it lacks a class."""
    out = []
    for idx in indices:
        yb = y[idx]
        out.append(roc_auc_score(yb, scores[idx]) if 0 < (yb == 1).sum() < len(yb) else math.nan)
    return np.array(out)


def test_indices_are_reproducible_for_a_seed_and_differ_across_seeds() -> None:
    a, b, c = bootstrap_indices(50, 30, seed=7), bootstrap_indices(50, 30, seed=7), bootstrap_indices(50, 30, seed=8)
    assert a.shape == (30, 50)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() < 50


def test_counts_are_how_often_each_row_is_drawn() -> None:
    indices = np.array([[0, 0, 2], [1, 2, 2]])
    # one row per data row, one column per resample
    assert resample_counts(indices, 4).tolist() == [[2, 0], [0, 1], [1, 2], [0, 0]]


def test_bootstrap_auc_equals_sklearn_on_every_resample() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(120) < 0.3).astype(float)
    scores = np.round(y * 0.8 + rng.normal(0, 0.6, 120), 1)  # rounded: many ties
    indices = bootstrap_indices(120, 200, seed=3)
    fast = bootstrap_auc(y, scores, resample_counts(indices, 120))
    np.testing.assert_allclose(fast, loop_aucs(y, scores, indices), rtol=0, atol=1e-12)


def test_resamples_without_both_classes_are_nan_and_left_out_of_the_interval() -> None:
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0], dtype=float)  # one positive: many resamples miss it
    scores = np.linspace(0.9, 0.1, 8)
    indices = bootstrap_indices(8, 200, seed=1)
    fast = bootstrap_auc(y, scores, resample_counts(indices, 8))
    slow = loop_aucs(y, scores, indices)
    assert np.array_equal(np.isnan(fast), np.isnan(slow))
    assert 20 < np.isnan(fast).sum() < 180
    lo, hi = percentile_ci(fast)
    np.testing.assert_allclose((lo, hi), np.percentile(slow[~np.isnan(slow)], [2.5, 97.5]), atol=1e-12)


def test_percentile_ci_of_nothing_is_nan_and_the_level_sets_the_tails() -> None:
    assert all(math.isnan(x) for x in percentile_ci(np.array([math.nan, math.nan])))
    values = np.arange(101, dtype=float)
    assert percentile_ci(values, 0.9) == pytest.approx((5.0, 95.0))


def test_large_resample_counts_are_processed_in_chunks_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from hmlc.evaluation import bootstrap

    rng = np.random.default_rng(5)
    y = (rng.random(60) < 0.5).astype(float)
    scores = rng.random(60)
    counts = resample_counts(bootstrap_indices(60, 50, seed=0), 60)
    whole = bootstrap_auc(y, scores, counts)
    monkeypatch.setattr(bootstrap, "_CELLS_PER_CHUNK", 60 * 7)  # 7 resamples at a time
    np.testing.assert_array_equal(bootstrap.bootstrap_auc(y, scores, counts), whole)


def test_paired_aucs_equal_the_previous_implementation_on_the_same_seed() -> None:
    """Same seed, same resamples, same AUCs as the implementation before issue 12 (kept in the benchmark)."""
    import importlib.util
    from pathlib import Path

    from hmlc.evaluation.bootstrap import paired_bootstrap_aucs

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "evaluate_bootstrap.py"
    spec = importlib.util.spec_from_file_location("evaluate_bootstrap", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    labels = benchmark.synthetic_labels(90, 4, seed=2)
    indices = bootstrap_indices(90, 150, seed=4)
    new = paired_bootstrap_aucs(indices, 90, labels)
    np.testing.assert_array_equal(new, benchmark.baseline_paired(indices, 90, labels))
    for k, (rows, y, scores) in enumerate(labels):  # and both equal sklearn on the drawn rows
        kept = [idx[np.isin(idx, rows)] for idx in indices]
        position = {r: i for i, r in enumerate(rows)}
        slow = loop_aucs(y, scores, [np.array([position[r] for r in idx]) for idx in kept])
        np.testing.assert_allclose(new[k], slow, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_boot", [-1, 1_000_000_000, 100_001])
def test_impossible_resample_counts_are_refused_with_a_clear_error(n_boot: int) -> None:
    from hmlc.errors import ConfigError
    from hmlc.evaluation.bootstrap import check_resamples

    with pytest.raises(ConfigError, match="--bootstrap"):
        check_resamples(n_boot, 500)
    check_resamples(2000, 500)
    with pytest.raises(ConfigError, match="GiB"):  # allowed count, but too many cells for memory
        check_resamples(100_000, 10_000)


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 1), min_size=2, max_size=25),
    data=st.data(),
)
def test_weighted_midrank_auc_is_the_auc_of_the_drawn_sample(labels: list[int], data: st.DataObject) -> None:
    n = len(labels)
    scores = np.array(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=float)
    indices = np.array(data.draw(st.lists(st.lists(st.integers(0, n - 1), min_size=n, max_size=n),
                                          min_size=1, max_size=5)))
    y = np.array(labels, dtype=float)
    fast = bootstrap_auc(y, scores, resample_counts(indices, n))
    np.testing.assert_allclose(fast, loop_aucs(y, scores, indices), rtol=0, atol=1e-12)
