"""What ``hmlc hierarchy check`` reports about a hierarchy beyond its validity.

A file that loads is a valid DAG; it may still say something twice or say
two different things. Each :class:`HierarchyWarning` has a kind, a count, a
few examples and one line to print:

* ``repeated-terms``: a label written in more than one place (nested form);
* ``conflicting-codes``: one label written with different codes (``concept``
  or ``code``, e.g. two UMLS concepts) in different places;
* ``duplicate-edges``: the same child listed twice under one parent;
* ``redundant-edges``: an edge parent -> child where the child is also
  reached from the parent through another path (it adds nothing);
* ``disagreeing-subtrees``: a label written with children in two places and
  the children differ (the union was taken). A place that writes the label
  without children is a reference and agrees with any.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hmlc.hierarchy.graph import LabelGraph
from hmlc.hierarchy.io import HierarchyReading, WrittenNode

__all__ = ["HierarchyWarning", "check_hierarchy", "hierarchy_statistics", "WARNING_KINDS"]

WARNING_KINDS: tuple[str, ...] = (
    "repeated-terms",
    "conflicting-codes",
    "duplicate-edges",
    "redundant-edges",
    "disagreeing-subtrees",
)
_EXAMPLES = 3


@dataclass(frozen=True)
class HierarchyWarning:
    """One kind of finding: how many, a few examples, and the line to print."""

    kind: str
    count: int
    examples: tuple[str, ...]
    message: str


def hierarchy_statistics(graph: LabelGraph) -> dict[str, int]:
    """Counts ``hmlc hierarchy show`` and ``check`` print: labels, edges, roots, leaves, depth, DAG labels."""
    return {
        "labels": len(graph),
        "edges": len(graph.edges),
        "roots": len(graph.roots),
        "leaves": len(graph.leaves),
        "max_depth": graph.max_depth,
        "labels_with_several_parents": sum(len(graph.parents(label)) > 1 for label in graph.labels),
    }


def check_hierarchy(reading: HierarchyReading) -> list[HierarchyWarning]:
    """Every warning about ``reading``, in the order of :data:`WARNING_KINDS` (empty: nothing to report)."""
    places: dict[str, list[WrittenNode]] = {}
    for node in reading.nodes:
        places.setdefault(node.label, []).append(node)
    found = [
        _repeated_terms(places),
        _conflicting_codes(places),
        _duplicate_edges(reading),
        _redundant_edges(reading.graph),
        _disagreeing_subtrees(places),
    ]
    return [w for w in found if w is not None]


def _where(node: WrittenNode) -> str:
    return f"under {node.path[-1]}" if node.path else "at the top"


def _warning(kind: str, items: Sequence[str], one: str, many: str, advice: str) -> HierarchyWarning | None:
    if not items:
        return None
    examples = tuple(items[:_EXAMPLES])
    more = f", ... ({len(items) - _EXAMPLES} more)" if len(items) > _EXAMPLES else ""
    what = one if len(items) == 1 else many
    return HierarchyWarning(kind, len(items), examples, f"{len(items)} {what}: {'; '.join(examples)}{more}; {advice}")


def _repeated_terms(places: dict[str, list[WrittenNode]]) -> HierarchyWarning | None:
    items = [
        f"{label} ({len(nodes)} places: {', '.join(_where(n) for n in nodes)})"
        for label, nodes in places.items()
        if len(nodes) > 1
    ]
    return _warning(
        "repeated-terms", items, "term written in more than one place", "terms written in more than one place",
        "each is one label whose parents are all these places",
    )


def _conflicting_codes(places: dict[str, list[WrittenNode]]) -> HierarchyWarning | None:
    items = []
    for label, nodes in places.items():
        codes = list(dict.fromkeys(n.code for n in nodes if n.code is not None))
        if len(codes) > 1:
            shown = ", ".join(
                f"{code!r} {_where(next(n for n in nodes if n.code == code))}" for code in codes
            )
            items.append(f"{label} ({shown})")
    return _warning(
        "conflicting-codes", items, "label with different codes", "labels with different codes",
        "each was merged into one label; give each meaning its own label or keep one code",
    )


def _duplicate_edges(reading: HierarchyReading) -> HierarchyWarning | None:
    items = []
    for node in reading.nodes:
        for child, n in Counter(node.children).items():
            if n > 1:
                items.append(f"{node.label} -> {child} (listed {n} times among the children of {node.label})")
    for (parent, child), n in Counter(reading.written_edges).items():
        if n > 1:
            items.append(f"{parent} -> {child} ({n} times in the edges)")
    return _warning(
        "duplicate-edges", items, "duplicate edge", "duplicate edges", "each was kept once; delete the repeats",
    )


def _redundant_edges(graph: LabelGraph) -> HierarchyWarning | None:
    if not graph.edges:
        return None
    below = graph.ancestor_matrix  # below[q, d]: d is a proper descendant of q
    children: dict[int, list[int]] = {}
    for p, c in graph.edge_indices.tolist():
        children.setdefault(p, []).append(c)
    labels = graph.labels
    found: dict[tuple[int, int], int] = {}
    for p, kids in children.items():
        rows = below[np.array(kids)]
        # A child of p is reached another way iff it lies below one of p's children
        # (never below itself: the graph has no cycle). One pass over p's children.
        for c in np.flatnonzero(rows.any(axis=0)[kids]):
            found[(p, kids[c])] = kids[int(np.flatnonzero(rows[:, kids[c]])[0])]
    items = [
        f"{labels[p]} -> {labels[c]} (also via {labels[found[(p, c)]]})"
        for p, c in graph.edge_indices.tolist()
        if (p, c) in found
    ]
    return _warning(
        "redundant-edges", items, "redundant edge (the child is also reached through another path)",
        "redundant edges (the child is also reached through another path)",
        "such edges change nothing; delete them to keep the file readable",
    )


def _disagreeing_subtrees(places: dict[str, list[WrittenNode]]) -> HierarchyWarning | None:
    items = []
    for label, nodes in places.items():
        listing = [n for n in nodes if n.children]
        if len({frozenset(n.children) for n in listing}) > 1:
            shown = "; ".join(f"{_where(n)}: {', '.join(dict.fromkeys(n.children))}" for n in listing)
            items.append(f"{label} ({shown})")
    return _warning(
        "disagreeing-subtrees", items, "term written with different children in different places",
        "terms written with different children in different places",
        "the union of their children was taken; write the children once and refer to the term elsewhere",
    )

