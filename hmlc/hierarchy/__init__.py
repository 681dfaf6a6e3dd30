"""Label hierarchies: the `LabelGraph` DAG, its loaders and label closure."""

from hmlc.hierarchy.graph import ClosureResult, LabelGraph
from hmlc.hierarchy.io import graph_from_data, load_hierarchy

__all__ = ["LabelGraph", "ClosureResult", "load_hierarchy", "graph_from_data"]
