"""Data: label tables, images and feature vectors, dataset readers and the synthetic datasets."""

import importlib
from typing import Any

# Names are imported on first use (PEP 562), so that reading a CSV does not import torch.
_HOMES = {
    "LabelTable": "table",
    "read_label_csv": "table",
    "label_file_error": "table",
    "decode_image": "images",
    "resize_square": "images",
    "ImageSource": "images",
    "ArrayImageSource": "images",
    "FileImageSource": "images",
    "missing_files": "images",
    "ImageIndexDataset": "images",
    "SubsetImageSource": "images",
    "FeatureSource": "features",
    "ArrayFeatureSource": "features",
    "FeatureTransform": "features",
    "DataSource": "source",
    "DatasetSplit": "datasets",
    "read_split": "datasets",
    "DatasetReader": "datasets",
    "CsvDataset": "datasets",
    "register_builtin_datasets": "datasets",
    "SYNTHETIC_HIERARCHY": "synthetic",
    "SyntheticConfig": "synthetic",
    "generate_synthetic": "synthetic",
    "SyntheticDataset": "synthetic",
    "SyntheticVectorsDataset": "synthetic",
    "export_synthetic": "synthetic",
    "register_builtin_hierarchies": "synthetic",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(importlib.import_module(f"hmlc.data.{_HOMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hmlc.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_HOMES))


__all__ = list(_HOMES)
