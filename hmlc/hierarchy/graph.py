"""`LabelGraph`: a validated label DAG with a fixed label order.

Edges point parent -> child and read "child implies parent". The label order
is the model's output order and never changes once the graph is built.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any, NamedTuple

import networkx as nx
import numpy as np

from hmlc.errors import HierarchyError

__all__ = ["LabelGraph", "ClosureResult", "LevelGroup"]


class ClosureResult(NamedTuple):
    """Codes after closure and, per label, how many codes closure changed."""

    codes: np.ndarray
    changed: dict[str, int]


class LevelGroup(NamedTuple):
    """Labels that can be updated together from labels already final.

    ``targets`` (L,) are output indices; ``sources`` (L, W) the output indices
    each target reads (its parents, or its children). In
    :attr:`LabelGraph.parent_groups` every target has exactly W sources; in
    :attr:`LabelGraph.child_groups` a target with fewer repeats its first
    source, which idempotent reductions (max, min, any) do not notice.
    """

    targets: np.ndarray
    sources: np.ndarray


class LabelGraph:
    """A directed acyclic graph of labels (parent -> child) with a fixed order.

    Build one from labels and edges, or load one with
    :func:`hmlc.hierarchy.load_hierarchy`. Construction validates: no empty
    graph, no empty or duplicate label, no edge naming an unknown label, no
    self loop, no cycle. Every failure raises :class:`HierarchyError` with a
    one-line reason.
    """

    def __init__(
        self,
        labels: Sequence[str],
        edges: Iterable[Sequence[str]] = (),
        name: str | None = None,
    ) -> None:
        labels = list(labels)
        where = f"hierarchy {name!r}" if name else "hierarchy"
        checked = []
        for e in edges:
            if isinstance(e, (str, bytes)) or not isinstance(e, (list, tuple)) or len(e) != 2:
                raise HierarchyError(f"{where}: edge {e!r} is not a [parent, child] pair")
            if not all(isinstance(end, str) for end in e):
                raise HierarchyError(f"{where}: edge {list(e)!r} must name two labels (strings)")
            checked.append(tuple(e))
        edges = checked
        if not labels:
            raise HierarchyError(f"{where} has no labels; give at least one label")
        seen: set[str] = set()
        for label in labels:
            if not isinstance(label, str) or not label.strip():
                raise HierarchyError(f"{where}: label {label!r} is not a non-empty string")
            if label in seen:
                raise HierarchyError(f"{where}: label {label!r} is listed twice; labels must be unique")
            seen.add(label)
        unique_edges: list[tuple[str, str]] = []
        edge_set: set[tuple[str, str]] = set()
        for parent, child in edges:
            for end in (parent, child):
                if end not in seen:
                    raise HierarchyError(
                        f"{where}: edge [{parent!r}, {child!r}] names unknown label {end!r}; "
                        "add it to the labels or fix the edge"
                    )
            if parent == child:
                raise HierarchyError(f"{where}: label {parent!r} is its own parent (self loop)")
            if (parent, child) not in edge_set:
                edge_set.add((parent, child))
                unique_edges.append((parent, child))
        graph = nx.DiGraph()
        graph.add_nodes_from(labels)
        graph.add_edges_from(unique_edges)
        cycle = None
        # find_cycle alone is quadratic on long chains; look for the cycle only when there is one.
        if not nx.is_directed_acyclic_graph(graph):
            cycle = nx.find_cycle(graph)
        if cycle:
            path = " -> ".join([cycle[0][0]] + [v for _, v in cycle])
            raise HierarchyError(f"{where} has a cycle: {path}; a label cannot imply itself")
        self.name = name
        self._labels: tuple[str, ...] = tuple(labels)
        self._edges: tuple[tuple[str, str], ...] = tuple(unique_edges)
        self._graph = graph
        self._index = {label: i for i, label in enumerate(labels)}

    # ------------------------------------------------------------------ basics
    @property
    def labels(self) -> tuple[str, ...]:
        """Labels in the model's output order."""
        return self._labels

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """(parent, child) pairs in the order they were given."""
        return self._edges

    @property
    def graph(self) -> nx.DiGraph:
        """A copy of the underlying networkx graph."""
        return self._graph.copy()

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def __iter__(self):
        return iter(self._labels)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelGraph):
            return NotImplemented
        return self.content_hash == other.content_hash

    def __hash__(self) -> int:
        return hash(self.content_hash)

    def __repr__(self) -> str:
        name = f"{self.name!r}, " if self.name else ""
        return f"LabelGraph({name}{len(self)} labels, {len(self._edges)} edges)"

    def index(self, label: str) -> int:
        """Position of ``label`` in the output order."""
        try:
            return self._index[label]
        except KeyError:
            raise HierarchyError(self._unknown(label)) from None

    def _unknown(self, label: str) -> str:
        shown = ", ".join(self._labels[:20]) + (" ..." if len(self) > 20 else "")
        return f"unknown label {label!r}; the hierarchy has: {shown}"

    def _check(self, label: str) -> None:
        if label not in self._index:
            raise HierarchyError(self._unknown(label))

    # --------------------------------------------------------------- structure
    def parents(self, label: str) -> tuple[str, ...]:
        self._check(label)
        return self._ordered(self._graph.predecessors(label))

    def children(self, label: str) -> tuple[str, ...]:
        self._check(label)
        return self._ordered(self._graph.successors(label))

    def ancestors(self, label: str) -> tuple[str, ...]:
        self._check(label)
        return self._ordered(nx.ancestors(self._graph, label))

    def descendants(self, label: str) -> tuple[str, ...]:
        self._check(label)
        return self._ordered(nx.descendants(self._graph, label))

    @cached_property
    def roots(self) -> tuple[str, ...]:
        return tuple(l for l in self._labels if self._graph.in_degree(l) == 0)

    @cached_property
    def leaves(self) -> tuple[str, ...]:
        return tuple(l for l in self._labels if self._graph.out_degree(l) == 0)

    def depth(self, label: str) -> int:
        """Length of the longest path from a root to ``label`` (roots: 0)."""
        self._check(label)
        return self._depths[label]

    @cached_property
    def _depths(self) -> dict[str, int]:
        depths: dict[str, int] = {}
        for label in self.topological_order:
            ps = list(self._graph.predecessors(label))
            depths[label] = 1 + max(depths[p] for p in ps) if ps else 0
        return depths

    @property
    def max_depth(self) -> int:
        return max(self._depths.values())

    @cached_property
    def _heights(self) -> dict[str, int]:
        """Length of the longest path from each label down to a leaf (leaves: 0)."""
        heights: dict[str, int] = {}
        for label in reversed(self.topological_order):
            kids = list(self._graph.successors(label))
            heights[label] = 1 + max(heights[c] for c in kids) if kids else 0
        return heights

    @cached_property
    def parent_groups(self) -> tuple[LevelGroup, ...]:
        """Non-root labels with their parents, in an order where every parent is final first.

        Labels of equal depth form a level; a level is split by number of
        parents, so no row is padded. Walking the groups in order visits the
        DAG top-down without recursion.
        """
        return self._groups(self._depths, self.parent_indices, exact=True)

    @cached_property
    def child_groups(self) -> tuple[LevelGroup, ...]:
        """Non-leaf labels with their children, in an order where every child is final first.

        The bottom-up counterpart of :attr:`parent_groups` (levels by height);
        a level is split by number of children rounded up to a power of two
        (children can be many), shorter rows repeating their first child.
        """
        children: list[list[int]] = [[] for _ in self._labels]
        for p, c in self.edge_indices:
            children[p].append(int(c))
        return self._groups(self._heights, tuple(tuple(sorted(c)) for c in children), exact=False)

    def _groups(
        self, level: dict[str, int], sources: tuple[tuple[int, ...], ...], exact: bool
    ) -> tuple[LevelGroup, ...]:
        buckets: dict[tuple[int, int], list[int]] = {}
        for label, d in level.items():
            k = self._index[label]
            if d:
                n = len(sources[k])
                width = n if exact else 1 << (n - 1).bit_length()  # next power of two
                buckets.setdefault((d, width), []).append(k)
        groups = []
        for (_, width), targets in sorted(buckets.items()):
            targets.sort()
            block = np.empty((len(targets), width), dtype=np.int64)
            for row, k in enumerate(targets):
                block[row] = sources[k][0]
                block[row, : len(sources[k])] = sources[k]
            groups.append(LevelGroup(np.asarray(targets, dtype=np.int64), block))
        return tuple(groups)

    @cached_property
    def topological_order(self) -> tuple[str, ...]:
        """Parents before children; ties broken by the output order."""
        return tuple(nx.lexicographical_topological_sort(self._graph, key=self._index.__getitem__))

    def _ordered(self, labels: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(labels, key=self._index.__getitem__))

    # ---------------------------------------------------- index-based helpers
    @cached_property
    def topological_indices(self) -> np.ndarray:
        """Output indices in topological order."""
        return np.array([self._index[l] for l in self.topological_order], dtype=np.int64)

    @cached_property
    def parent_indices(self) -> tuple[tuple[int, ...], ...]:
        """For each output index, the output indices of its parents."""
        return tuple(tuple(self._index[p] for p in self.parents(l)) for l in self._labels)

    @cached_property
    def padded_parent_indices(self) -> np.ndarray:
        """(K, P) parents of each output index, padded with ``len(self)``; P = max parents (at least 1)."""
        width = max(1, max(len(p) for p in self.parent_indices))
        out = np.full((len(self), width), len(self), dtype=np.int64)
        for k, ps in enumerate(self.parent_indices):
            out[k, : len(ps)] = ps
        return out

    @cached_property
    def edge_indices(self) -> np.ndarray:
        """(E, 2) array of (parent index, child index)."""
        return np.array([(self._index[p], self._index[c]) for p, c in self._edges], dtype=np.int64).reshape(-1, 2)

    @cached_property
    def adjacency(self) -> np.ndarray:
        """(K, K) bool matrix, ``A[p, c]`` true when p is a parent of c."""
        a = np.zeros((len(self), len(self)), dtype=bool)
        if len(self._edges):
            a[self.edge_indices[:, 0], self.edge_indices[:, 1]] = True
        return a

    @cached_property
    def ancestor_matrix(self) -> np.ndarray:
        """(K, K) bool matrix, ``M[a, d]`` true when a is a proper ancestor of d."""
        k = len(self)
        # Row d of `up` holds the ancestors of d and, in column d, d itself.
        up = np.eye(k, dtype=bool)
        for group in self.parent_groups:
            up[group.targets] |= up[group.sources].any(axis=1)
        up[np.arange(k), np.arange(k)] = False
        return np.ascontiguousarray(up.T)

    # ------------------------------------------------------------- identity
    def to_dict(self) -> dict[str, Any]:
        """``{"labels": [...], "edges": [[parent, child], ...]}``."""
        return {"labels": list(self._labels), "edges": [list(e) for e in self._edges]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str | None = None) -> LabelGraph:
        """Inverse of :meth:`to_dict`."""
        from hmlc.hierarchy.io import graph_from_data

        return graph_from_data(data, name=name)

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of the label order and the edge set; stable across runs."""
        payload = {"labels": list(self._labels), "edges": sorted(list(e) for e in self._edges)}
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    # -------------------------------------------------------------- closure
    def closure(self, codes: np.ndarray, negative_down: bool = False) -> ClosureResult:
        """Make raw codes consistent with the hierarchy.

        ``codes`` is an (N, K) array in output order holding 1 (positive),
        0 (negative), -1 (uncertain) and NaN (blank). A positive label makes
        all its ancestors positive. With ``negative_down`` a negative label
        then makes all its descendants that are not positive negative.
        Returns a new float array and the number of codes changed per label.
        """
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != len(self):
            raise HierarchyError(
                f"closure expects codes of shape (N, {len(self)}) for {len(self)} labels, got {codes.shape}"
            )
        # Label-major (K, N) throughout: each level is a few row operations.
        rows = np.array(codes.T, dtype=np.float32, order="C", copy=True)  # never a view of the caller's codes
        pos = self._spread(rows == 1, self.child_groups)  # a positive reaches every ancestor
        changes = pos & (rows != 1)  # NaN != 1 too: a blank made positive is a change
        rows[changes] = 1
        if negative_down:
            neg = self._spread(rows == 0, self.parent_groups)  # a negative reaches every descendant
            lowered = neg & ~pos & (rows != 0)
            rows[lowered] = 0
            changes |= lowered
        counts = np.count_nonzero(changes, axis=1)
        out = np.ascontiguousarray(rows.T)
        return ClosureResult(out, {label: int(n) for label, n in zip(self._labels, counts)})

    @staticmethod
    def _spread(rows: np.ndarray, groups: tuple[LevelGroup, ...]) -> np.ndarray:
        """Label-major (K, N) flags OR-ed over the sources of each group, level by level, in place."""
        for targets, sources in groups:
            rows[targets] |= rows[sources[:, 0]] if sources.shape[1] == 1 else rows[sources].any(axis=1)
        return rows

    def coherence_violations(self, codes: np.ndarray) -> np.ndarray:
        """Per sample, the number of edges whose child is positive but parent is not."""
        codes = np.asarray(codes)
        if not len(self._edges):
            return np.zeros(codes.shape[0], dtype=np.int64)
        p, c = self.edge_indices[:, 0], self.edge_indices[:, 1]
        return ((codes[:, c] == 1) & (codes[:, p] != 1)).sum(axis=1)

    # ------------------------------------------------------------ rendering
    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_dot(self) -> str:
        def q(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [f"digraph {q(self.name or 'hierarchy')} {{", "  rankdir=LR;", "  node [shape=box];"]
        lines += [f"  {q(l)};" for l in self._labels]
        lines += [f"  {q(p)} -> {q(c)};" for p, c in self._edges]
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """An indented tree; a label under several parents is expanded once."""
        lines: list[str] = []
        expanded: set[str] = set()
        # Depth-first with an explicit stack (a hierarchy may be deeper than Python's recursion limit).
        stack: list[tuple[str, str, bool, bool]] = [(root, "", True, True) for root in reversed(self.roots)]
        while stack:
            label, prefix, last, top = stack.pop()
            branch = "" if top else ("└── " if last else "├── ")
            kids = self.children(label)
            parents = self.parents(label)
            note = ""
            if len(parents) > 1:
                note = "  (parents: " + ", ".join(parents) + ")"
            if label in expanded and kids:
                lines.append(f"{prefix}{branch}{label}{note}  [see above]")
                continue
            lines.append(f"{prefix}{branch}{label}{note}")
            expanded.add(label)
            child_prefix = prefix if top else prefix + ("    " if last else "│   ")
            for i in range(len(kids) - 1, -1, -1):
                stack.append((kids[i], child_prefix, i == len(kids) - 1, False))
        return "\n".join(lines) + "\n"
