"""Uncertainty policies: targets, weights, blanks, LSR draws, U-MultiClass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hmlc.errors import ConfigError, DataError, HmlcError
from hmlc.policies import (
    BUILTIN_POLICIES,
    UncertaintyPolicy,
    encode_labels,
    is_multiclass,
    multiclass_probability,
    register_builtin_policies,
)

NAN = np.nan
# One column of codes covering every case: positive, negative, uncertain, blank.
CODES = np.array([[1.0], [0.0], [-1.0], [NAN]])


def policy(name: str, **params) -> UncertaintyPolicy:
    return BUILTIN_POLICIES[name](**params)


def encode_one(name: str, blank: str, **params) -> tuple[np.ndarray, np.ndarray]:
    t, w = encode_labels(CODES, ["x"], {"x": policy(name, **params)}, blank=blank, seed=0)
    assert t.dtype == np.float32 and w.dtype == np.float32
    return t[:, 0], w[:, 0]


@pytest.mark.parametrize(
    ("name", "blank", "targets", "weights"),
    [
        ("u-ignore", "negative", [1, 0, 0, 0], [1, 1, 0, 1]),
        ("u-ignore", "ignore", [1, 0, 0, 0], [1, 1, 0, 0]),
        ("u-zeros", "negative", [1, 0, 0, 0], [1, 1, 1, 1]),
        ("u-zeros", "ignore", [1, 0, 0, 0], [1, 1, 1, 0]),
        ("u-ones", "negative", [1, 0, 1, 0], [1, 1, 1, 1]),
        ("u-ones", "ignore", [1, 0, 1, 0], [1, 1, 1, 0]),
        ("u-multiclass", "negative", [1, 0, 2, 0], [1, 1, 1, 1]),
        ("u-multiclass", "ignore", [1, 0, 2, 0], [1, 1, 1, 0]),
    ],
)
def test_deterministic_policies(name: str, blank: str, targets: list[float], weights: list[float]) -> None:
    t, w = encode_one(name, blank)
    np.testing.assert_array_equal(t, targets)
    np.testing.assert_array_equal(w, weights)


@pytest.mark.parametrize(("name", "low", "high"), [("u-zeros-lsr", 0.0, 0.3), ("u-ones-lsr", 0.55, 0.85)])
@pytest.mark.parametrize("blank", ["negative", "ignore"])
def test_lsr_defaults_and_blanks(name: str, low: float, high: float, blank: str) -> None:
    p = policy(name)
    assert p.params == {"low": low, "high": high}
    t, w = encode_one(name, blank)
    assert t[0] == 1 and t[1] == 0 and t[3] == 0
    assert low <= t[2] <= high
    np.testing.assert_array_equal(w, [1, 1, 1, 0 if blank == "ignore" else 1])


def test_lsr_draws_are_in_interval_reproducible_and_only_on_uncertain() -> None:
    rng = np.random.default_rng(1)
    codes = rng.choice([1.0, 0.0, -1.0, NAN], size=(500, 3))
    labels = ["a", "b", "c"]
    policies = {label: policy("u-ones-lsr", low=0.6, high=0.7) for label in labels}
    t1, _ = encode_labels(codes, labels, policies, blank="negative", seed=7)
    t2, _ = encode_labels(codes, labels, policies, blank="negative", seed=7)
    t3, _ = encode_labels(codes, labels, policies, blank="negative", seed=8)
    np.testing.assert_array_equal(t1, t2)
    unc = codes == -1
    assert ((t1[unc] >= np.float32(0.6)) & (t1[unc] <= np.float32(0.7))).all()
    assert not np.array_equal(t1[unc], t3[unc])
    np.testing.assert_array_equal(t1[~unc], np.nan_to_num(codes[~unc]))
    # Labels draw from independent streams: same codes, different draws.
    same = np.repeat(codes[:, :1], 2, axis=1)
    ts, _ = encode_labels(same, ["a", "b"], policies, blank="negative", seed=7)
    assert not np.array_equal(ts[:, 0][same[:, 0] == -1], ts[:, 1][same[:, 0] == -1])


def test_lsr_draw_of_a_sample_does_not_depend_on_other_samples() -> None:
    codes = np.full((50, 1), -1.0)
    other = codes.copy()
    other[::2] = 1.0  # change every other sample
    p = {"x": policy("u-zeros-lsr")}
    t, _ = encode_labels(codes, ["x"], p, blank="negative", seed=3)
    u, _ = encode_labels(other, ["x"], p, blank="negative", seed=3)
    np.testing.assert_array_equal(t[1::2], u[1::2])


def test_lsr_fixed_across_epochs_unless_redraw() -> None:
    codes = np.full((100, 2), -1.0)
    policies = {"a": policy("u-ones-lsr"), "b": policy("u-zeros-lsr")}
    kw = dict(labels=["a", "b"], policies=policies, blank="negative", seed=11)
    fixed0, _ = encode_labels(codes, epoch=0, **kw)
    fixed3, _ = encode_labels(codes, epoch=3, **kw)
    np.testing.assert_array_equal(fixed0, fixed3)
    redraw1, _ = encode_labels(codes, epoch=1, redraw=True, **kw)
    redraw1b, _ = encode_labels(codes, epoch=1, redraw=True, **kw)
    redraw2, _ = encode_labels(codes, epoch=2, redraw=True, **kw)
    np.testing.assert_array_equal(redraw1, redraw1b)
    assert not np.array_equal(redraw1, redraw2)
    assert ((redraw2[:, 0] >= 0.55) & (redraw2[:, 0] <= 0.85)).all()
    assert ((redraw2[:, 1] >= 0.0) & (redraw2[:, 1] <= 0.3)).all()


@pytest.mark.parametrize(
    "params",
    [{"low": 0.5, "high": 0.4}, {"low": -0.1, "high": 0.3}, {"low": 0.2, "high": 1.5}, {"low": "a", "high": 0.3}],
)
def test_lsr_parameters_are_validated(params: dict) -> None:
    with pytest.raises(ConfigError, match="u-ones-lsr"):
        policy("u-ones-lsr", **params)


def test_lsr_accepts_a_degenerate_interval() -> None:
    t, _ = encode_labels(np.array([[-1.0]]), ["x"], {"x": policy("u-zeros-lsr", low=0.2, high=0.2)}, "negative", 0)
    assert t[0, 0] == np.float32(0.2)


def test_unknown_policy_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="u-zeros.*no parameter colour"):
        policy("u-zeros", colour=1)
    with pytest.raises(ConfigError, match="low, high"):
        policy("u-ones-lsr", width=0.1)


def test_register_builtin_policies_registers_every_policy_by_name() -> None:
    registered: dict[str, object] = {}
    register_builtin_policies(lambda name, factory: registered.__setitem__(name, factory))
    assert set(registered) == {"u-ignore", "u-zeros", "u-ones", "u-zeros-lsr", "u-ones-lsr", "u-multiclass"}
    for name, factory in registered.items():
        p = factory()
        assert isinstance(p, UncertaintyPolicy) and p.name == name
        assert p.multiclass == (name == "u-multiclass")
        # params round-trip through the factory
        assert factory(**p.params) == p


def test_multiclass_is_all_or_none() -> None:
    assert is_multiclass({"a": policy("u-multiclass"), "b": policy("u-multiclass")})
    assert not is_multiclass({"a": policy("u-ones"), "b": policy("u-zeros-lsr")})
    with pytest.raises(ConfigError, match="u-multiclass for all labels or for none"):
        is_multiclass({"a": policy("u-multiclass"), "b": policy("u-ones")})
    with pytest.raises(ConfigError):
        encode_labels(
            np.zeros((2, 2)), ["a", "b"], {"a": policy("u-multiclass"), "b": policy("u-ones")}, "negative", 0
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"codes": np.zeros((3, 2))}, DataError, r"shape \(N, 1\)"),
        ({"codes": np.array([[2.0]])}, DataError, "label 'x' has code 2"),
        ({"labels": ["y"]}, ConfigError, "no uncertainty policy for label.*y"),
        ({"blank": "zero"}, ConfigError, "negative, ignore"),
        ({"seed": -1}, ConfigError, "seed"),
        ({"epoch": -1}, ConfigError, "epoch"),
    ],
)
def test_encode_labels_rejects_bad_input(kwargs: dict, error: type[HmlcError], match: str) -> None:
    args = dict(codes=np.zeros((3, 1)), labels=["x"], policies={"x": policy("u-ones")}, blank="negative", seed=0)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        encode_labels(**args)


BINARY = ["u-ignore", "u-zeros", "u-ones", "u-zeros-lsr", "u-ones-lsr"]


@settings(max_examples=60, deadline=None)
@given(
    codes=arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 4)), elements=st.sampled_from([1.0, 0.0, -1.0, NAN])),
    names=st.lists(st.sampled_from(BINARY), min_size=4, max_size=4),
    blank=st.sampled_from(["negative", "ignore"]),
    seed=st.integers(0, 2**32),
)
def test_binary_policies_invariants(codes: np.ndarray, names: list[str], blank: str, seed: int) -> None:
    labels = [f"l{j}" for j in range(codes.shape[1])]
    policies = {label: policy(name) for label, name in zip(labels, names)}
    t, w = encode_labels(codes, labels, policies, blank=blank, seed=seed)
    assert t.shape == w.shape == codes.shape
    assert ((t >= 0) & (t <= 1)).all() and np.isin(w, (0.0, 1.0)).all()
    known = (codes == 1) | (codes == 0)
    np.testing.assert_array_equal(t[known], codes[known])
    assert (w[known] == 1).all()
    blanks = np.isnan(codes)
    if blank == "ignore":
        assert (w[blanks] == 0).all() and (t[blanks] == 0).all()
    else:
        assert (t[blanks] == 0).all()
    # uncertain samples are weighted out only under u-ignore
    for j, name in enumerate(names[: codes.shape[1]]):
        unc = codes[:, j] == -1
        assert (w[unc, j] == (0.0 if name == "u-ignore" else 1.0)).all()


def test_multiclass_probability_matches_reference() -> None:
    torch.manual_seed(0)
    logits = torch.randn(16, 5, 3, dtype=torch.float64) * 4
    soft = torch.softmax(logits, dim=-1)
    reference = soft[..., 1] / (soft[..., 0] + soft[..., 1])
    torch.testing.assert_close(multiclass_probability(logits), reference)
    extreme = torch.tensor([[[100.0, -100.0, 100.0], [-100.0, 100.0, 200.0], [0.0, 0.0, 500.0]]])
    p = multiclass_probability(extreme)
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p, torch.tensor([[0.0, 1.0, 0.5]]))


@pytest.mark.parametrize("blank", ["negative", "ignore"])
def test_labels_of_elementwise_policies_encoded_at_once_equal_label_by_label(blank: str) -> None:
    """U-Ignore/U-Zeros/U-Ones get all their labels' codes in one call; the result is the label-by-label
    encoding (each column through the policy with its own seeded stream), mixed with LSR labels."""
    rng = np.random.default_rng(4)
    codes = rng.choice([1.0, 0.0, -1.0, NAN], size=(50, 12))
    names = ["u-zeros", "u-ones-lsr", "u-ignore", "u-ones", "u-zeros", "u-zeros-lsr"] * 2
    labels = [f"l{j}" for j in range(12)]
    policies = {label: policy(name) for label, name in zip(labels, names)}
    t, w = encode_labels(codes, labels, policies, blank=blank, seed=9)
    for j, label in enumerate(labels):
        column = np.where(np.isnan(codes[:, j]), 0.0, codes[:, j])
        tj, wj = policies[label].encode(column, np.random.default_rng([9, j, 0]))
        if blank == "ignore":
            tj, wj = np.where(np.isnan(codes[:, j]), 0, tj), np.where(np.isnan(codes[:, j]), 0, wj)
        np.testing.assert_array_equal(t[:, j], tj)
        np.testing.assert_array_equal(w[:, j], wj)


def test_an_elementwise_plugin_policy_that_returns_one_column_is_a_plugin_error() -> None:
    from hmlc.errors import PluginError

    class FirstColumn(UncertaintyPolicy):
        name = "first-column"
        elementwise = True

        def encode(self, codes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            column = np.atleast_2d(codes.T)[0]  # written for one label's (N,) codes only
            return column.astype(np.float32), np.ones_like(column, dtype=np.float32)

    shared = FirstColumn()
    with pytest.raises(PluginError, match=r"'first-column' returned shapes \(4,\).*expected \(4, 3\)"):
        encode_labels(np.zeros((4, 3)), ["a", "b", "c"], {k: shared for k in "abc"}, "negative", 0)
