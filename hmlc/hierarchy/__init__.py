"""Label hierarchies: the `LabelGraph` DAG, its loaders, label closure and checks."""

from hmlc.hierarchy.graph import ClosureResult, LabelGraph
from hmlc.hierarchy.io import HierarchyReading, graph_from_data, load_hierarchy, read_hierarchy

__all__ = ["LabelGraph", "ClosureResult", "load_hierarchy", "read_hierarchy", "HierarchyReading", "graph_from_data"]
