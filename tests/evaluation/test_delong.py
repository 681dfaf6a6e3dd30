"""DeLong's test (fast midrank version) against the original structural components."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hmlc.evaluation.delong import delong_covariance, delong_test

from .reference import delong_reference


@pytest.mark.parametrize("seed", range(6))
def test_fast_delong_matches_the_quadratic_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(12, 60))
    y = (rng.random(n) < 0.4).astype(int)
    y[:2], y[2:4] = 1, 0
    s1 = y * 0.9 + rng.normal(0, 0.7, n)
    s2 = y * 0.5 + rng.normal(0, 0.7, n)
    if seed % 2:  # ties within and across classes
        s1, s2 = np.round(s1, 1), np.round(s2, 0)
    result = delong_test(y, s1, s2)
    auc1, auc2, p = delong_reference(y, s1, s2)
    assert result.auc == pytest.approx(auc1, abs=1e-12)
    assert result.other_auc == pytest.approx(auc2, abs=1e-12)
    assert result.auc == pytest.approx(roc_auc_score(y, s1), abs=1e-12)
    assert result.p == pytest.approx(p, rel=1e-9, abs=1e-14)


def test_the_test_is_symmetric_in_its_two_predictors() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(80) < 0.5).astype(int)
    s1, s2 = y + rng.normal(0, 1, 80), y + rng.normal(0, 2, 80)
    ab, ba = delong_test(y, s1, s2), delong_test(y, s2, s1)
    assert ab.p == pytest.approx(ba.p)
    assert ab.z == pytest.approx(-ba.z)


def test_identical_rankings_give_p_one_and_a_clear_winner_a_small_p() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(300) < 0.5).astype(int)
    good = y * 3 + rng.normal(0, 1, 300)
    assert delong_test(y, good, good * 2 + 1).p == 1.0  # same ranking, same AUC
    noise = rng.normal(0, 1, 300)
    assert delong_test(y, good, noise).p < 1e-6


def test_fewer_than_two_positives_gives_no_test() -> None:
    y = np.array([1, 0, 0, 0, 0])
    result = delong_test(y, np.arange(5.0), np.arange(5.0)[::-1])
    assert math.isnan(result.p) and math.isnan(result.z)


def test_covariance_diagonal_is_the_variance_of_each_auc() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(40) < 0.5).astype(int)
    s = y + rng.normal(0, 1, 40)
    aucs, cov = delong_covariance(y, s)
    assert aucs.shape == (1,) and cov.shape == (1, 1)
    assert aucs[0] == pytest.approx(roc_auc_score(y, s))
    assert cov[0, 0] > 0
