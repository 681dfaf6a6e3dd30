"""Hierarchical coherence of predictions: p(child) <= p(parent) on every edge."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hmlc.hierarchy import LabelGraph

__all__ = ["Coherence", "coherence_rate"]


@dataclass(frozen=True)
class Coherence:
    rate: float  # coherent / pairs; NaN when no edge joins two predicted labels
    pairs: int  # samples x edges checked
    violations: int
    edges: tuple[tuple[str, str], ...]  # the hierarchy edges whose both ends were predicted


def coherence_rate(probs: np.ndarray, labels: Sequence[str], graph: LabelGraph) -> Coherence:
    """Share of (sample, edge) pairs with p(child) <= p(parent), over edges between ``labels``."""
    probs = np.asarray(probs, dtype=float)
    column = {label: k for k, label in enumerate(labels)}
    edges = tuple((p, c) for p, c in graph.edges if p in column and c in column)
    if not edges or not len(probs):
        return Coherence(math.nan, 0, 0, edges)
    parents = probs[:, [column[p] for p, _ in edges]]
    children = probs[:, [column[c] for _, c in edges]]
    pairs = parents.size
    violations = int((children > parents).sum())
    return Coherence((pairs - violations) / pairs, pairs, violations, edges)
