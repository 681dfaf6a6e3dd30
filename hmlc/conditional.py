"""Conditional training: which losses count, and a sampler over the samples that count.

Stage 1 of conditional training (Chen et al. 2019, Pham et al. 2019) trains
label k only on samples whose parents of k are all positive; roots train on
every sample. The output of k then reads as p(k | parents positive).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from hmlc.errors import ConfigError, DataError
from hmlc.hierarchy.graph import LabelGraph

__all__ = ["conditional_mask", "contributing_samples", "ConditionalSubsetSampler"]


def conditional_mask(graph: LabelGraph, codes: np.ndarray) -> np.ndarray:
    """Bool (N, K): True where label k's loss counts for sample n in stage 1.

    A root always counts; a child counts only where every parent has code 1.
    ``codes`` are raw codes after closure: an uncertain (-1) or blank parent is
    not positive, so its children do not count on that sample.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != len(graph):
        raise DataError(f"conditional mask expects codes of shape (N, {len(graph)}) for {len(graph)} labels, got {codes.shape}")
    # Label-major rows plus a True padding row: parent column i of every label at once.
    positive = np.ones((len(graph) + 1, codes.shape[0]), dtype=bool)
    positive[: len(graph)] = (codes == 1).T
    parents = graph.padded_parent_indices
    mask = positive[parents[:, 0]]
    for i in range(1, parents.shape[1]):
        mask &= positive[parents[:, i]]
    return np.ascontiguousarray(mask.T)


def contributing_samples(mask: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bool (N,): True for samples that count for at least one label (mask and weight > 0)."""
    mask, weights = np.asarray(mask, dtype=bool), np.asarray(weights)
    if mask.shape != weights.shape or mask.ndim != 2:
        raise DataError(f"mask and weights must both be (N, K); got {mask.shape} and {weights.shape}")
    return (mask & (weights > 0)).any(axis=1)


class ConditionalSubsetSampler(Sampler[int]):
    """Yields the indices of contributing samples, shuffled per epoch, sharded per rank.

    Like :class:`torch.utils.data.DistributedSampler`: call :meth:`set_epoch`
    before each epoch for a new permutation (the same on every rank for a given
    ``seed`` and epoch); each rank gets the same number of indices, padding by
    repeating the first indices of the permutation, or dropping the tail with
    ``drop_last``. Shards are disjoint apart from that padding.
    """

    def __init__(
        self,
        contributes: np.ndarray,
        *,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        contributes = np.asarray(contributes)
        if contributes.ndim != 1 or contributes.dtype != bool:
            raise DataError(f"contributes must be a 1-D bool array, got {contributes.dtype} of shape {contributes.shape}")
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ConfigError(f"sampler rank {rank} is invalid for {num_replicas} replica(s); need 0 <= rank < num_replicas")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"sampler seed must be a non-negative integer, got {seed!r}")
        subset = np.flatnonzero(contributes)
        if subset.size == 0:
            raise DataError(
                "no sample contributes to any label under conditional training; "
                "check the labels, the uncertainty policies and the hierarchy"
            )
        if drop_last and subset.size < num_replicas:
            raise DataError(
                f"only {subset.size} contributing sample(s) for {num_replicas} replicas with drop_last; "
                "use fewer replicas or drop_last=False"
            )
        self.subset = subset
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.epoch = 0
        if drop_last:
            self.num_samples = subset.size // num_replicas
        else:
            self.num_samples = math.ceil(subset.size / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        if epoch < 0:
            raise ConfigError(f"sampler epoch must be non-negative, got {epoch}")
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        order = self.subset
        if self.shuffle:
            order = order[np.random.default_rng([self.seed, self.epoch]).permutation(order.size)]
        if self.total_size > order.size:
            order = np.resize(order, self.total_size)  # repeats from the start, as often as needed
        else:
            order = order[: self.total_size]
        return iter(order[self.rank : self.total_size : self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples
