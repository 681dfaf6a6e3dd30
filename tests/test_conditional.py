"""Conditional-training masks and the conditional-subset sampler."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch.utils.data import DataLoader

from hmlc.conditional import ConditionalSubsetSampler, conditional_mask, contributing_samples
from hmlc.errors import ConfigError, DataError
from hmlc.hierarchy import LabelGraph

from strategies import dags

NAN = np.nan


def test_mask_on_a_small_dag() -> None:
    # a -> b -> d, a -> c -> d, e alone
    g = LabelGraph(["a", "b", "c", "d", "e"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    codes = np.array(
        [
            [1, 1, 1, 0, 0],  # all parents of d positive
            [1, 1, -1, 1, NAN],  # c uncertain: d does not count
            [0, NAN, 0, 0, 1],  # a negative: b, c, d do not count
            [-1, 0, 0, 0, 0],  # a uncertain is not positive
            [1, 0, 1, 0, 1],  # b negative: d does not count
        ]
    )
    expected = np.array(
        [
            [1, 1, 1, 1, 1],
            [1, 1, 1, 0, 1],
            [1, 0, 0, 0, 1],
            [1, 0, 0, 0, 1],
            [1, 1, 1, 0, 1],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(conditional_mask(g, codes), expected)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_mask_agrees_with_the_hierarchy(data: st.DataObject) -> None:
    g = data.draw(dags())
    n = data.draw(st.integers(0, 12))
    codes = data.draw(arrays(np.float64, (n, len(g)), elements=st.sampled_from([1.0, 0.0, -1.0, NAN])))
    mask = conditional_mask(g, codes)
    assert mask.dtype == bool and mask.shape == codes.shape
    for k, label in enumerate(g.labels):
        parents = [g.index(p) for p in g.parents(label)]
        for row in range(n):
            assert mask[row, k] == all(codes[row, p] == 1 for p in parents)


def test_mask_rejects_wrong_shape() -> None:
    g = LabelGraph(["a", "b"], [("a", "b")])
    with pytest.raises(DataError, match=r"\(N, 2\)"):
        conditional_mask(g, np.zeros((3, 3)))


def test_contributing_samples() -> None:
    mask = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=bool)
    weights = np.array([[0, 1], [1, 0], [0, 0.5], [1, 1]], dtype=np.float32)
    np.testing.assert_array_equal(contributing_samples(mask, weights), [False, False, True, False])
    with pytest.raises(DataError):
        contributing_samples(mask, weights[:, :1])


CONTRIBUTES = np.array([True, False, True, True, False, False, True, True, False, True, True])
SUBSET = np.flatnonzero(CONTRIBUTES)


def test_sampler_yields_exactly_the_contributing_indices() -> None:
    ordered = ConditionalSubsetSampler(CONTRIBUTES, shuffle=False)
    assert list(ordered) == SUBSET.tolist() and len(ordered) == SUBSET.size
    shuffled = ConditionalSubsetSampler(CONTRIBUTES, seed=3)
    assert sorted(shuffled) == SUBSET.tolist() and len(shuffled) == SUBSET.size
    loader = DataLoader(list(range(CONTRIBUTES.size)), batch_size=4, sampler=shuffled)
    assert sorted(int(i) for batch in loader for i in batch) == SUBSET.tolist()


def test_sampler_is_deterministic_per_seed_and_epoch() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        s = ConditionalSubsetSampler(np.ones(200, dtype=bool), seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert order(0, 0) == order(0, 0)
    assert order(0, 1) == order(0, 1)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)
    assert order(0, 1) != order(1, 0)  # seed and epoch are not simply added
    assert order(0, 0) != list(range(200))


@settings(max_examples=80, deadline=None)
@given(
    contributes=arrays(bool, st.integers(1, 40)).filter(lambda a: a.any()),
    replicas=st.integers(1, 5),
    shuffle=st.booleans(),
    drop_last=st.booleans(),
    epoch=st.integers(0, 3),
)
def test_sampler_shards(contributes: np.ndarray, replicas: int, shuffle: bool, drop_last: bool, epoch: int) -> None:
    subset = np.flatnonzero(contributes)
    if drop_last and subset.size < replicas:
        with pytest.raises(DataError):
            ConditionalSubsetSampler(contributes, num_replicas=replicas, rank=0, drop_last=True)
        return
    shards = []
    for rank in range(replicas):
        s = ConditionalSubsetSampler(
            contributes, shuffle=shuffle, seed=5, num_replicas=replicas, rank=rank, drop_last=drop_last
        )
        s.set_epoch(epoch)
        shards.append(list(s))
        assert len(shards[-1]) == len(s)
    sizes = {len(shard) for shard in shards}
    assert len(sizes) == 1
    size = sizes.pop()
    everything = [i for shard in shards for i in shard]
    counts = Counter(everything)
    assert set(counts) <= set(subset.tolist())
    if drop_last:
        assert size == subset.size // replicas
        assert all(c == 1 for c in counts.values())  # disjoint
    else:
        assert size == -(-subset.size // replicas)
        assert set(counts) == set(subset.tolist())  # union covers the subset
        assert sum(c - 1 for c in counts.values()) == size * replicas - subset.size  # only padding repeats


def test_sampler_defaults_to_a_single_process() -> None:
    s = ConditionalSubsetSampler(CONTRIBUTES)
    assert (s.num_replicas, s.rank) == (1, 0)


@pytest.mark.parametrize(
    ("contributes", "kwargs", "error"),
    [
        (np.zeros(5, dtype=bool), {}, DataError),
        (np.ones(5), {}, DataError),
        (CONTRIBUTES, {"num_replicas": 2, "rank": 2}, ConfigError),
        (CONTRIBUTES, {"num_replicas": 0, "rank": 0}, ConfigError),
        (CONTRIBUTES, {"seed": -1}, ConfigError),
    ],
)
def test_sampler_rejects_bad_input(contributes: np.ndarray, kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        ConditionalSubsetSampler(contributes, **kwargs)
