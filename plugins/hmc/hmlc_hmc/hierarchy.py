"""The hierarchy of an HMC ARFF file as a :class:`~hmlc.hierarchy.LabelGraph`, and the roots left out of scores.

Label names are the file's own: FunCat nodes keep their paths (``01/01/03``,
a child of ``01/01``) under an added root ``root``; Gene Ontology nodes keep
their ids (``GO0003674``) under the file's ``root``.
"""

from __future__ import annotations

from hmlc.errors import DataError, HierarchyError
from hmlc.hierarchy.graph import LabelGraph
from hmlc_hmc.arff import ROOT, ArffHeader

__all__ = ["EXCLUDED_ROOTS", "GO_ONTOLOGY_ROOTS", "header_graph", "excluded_labels"]

#: The three Gene Ontology roots: molecular function, cellular component, biological process.
GO_ONTOLOGY_ROOTS: tuple[str, ...] = ("GO0003674", "GO0005575", "GO0008150")
#: Labels the published protocol leaves out of every score (C-HMCNN's ``to_skip``,
#: utils/parser.py of EGiunchiglia/C-HMCNN): the root and the GO ontology roots.
EXCLUDED_ROOTS: tuple[str, ...] = (ROOT, *GO_ONTOLOGY_ROOTS)


def header_graph(header: ArffHeader, name: str | None = None) -> LabelGraph:
    """The header's hierarchy: its labels in header order (root first) and its edges."""
    try:
        return LabelGraph(header.labels, header.edges, name=name)
    except HierarchyError as exc:
        raise DataError(f"{header.path}: the hierarchical class attribute is not a valid hierarchy: {exc}") from None


def excluded_labels(graph: LabelGraph) -> tuple[str, ...]:
    """The labels of :data:`EXCLUDED_ROOTS` that ``graph`` has, in its order."""
    return tuple(label for label in graph.labels if label in EXCLUDED_ROOTS)
