"""hmlc: hierarchical multi-label image classification on PyTorch."""

from hmlc.errors import HmlcError
from hmlc.hierarchy import LabelGraph, load_hierarchy

__version__ = "0.1.0"

__all__ = ["__version__", "HmlcError", "LabelGraph", "load_hierarchy"]
