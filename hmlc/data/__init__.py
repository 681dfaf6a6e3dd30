"""Data: label tables, the image pipeline, dataset readers and the synthetic dataset."""

from hmlc.data.datasets import CsvDataset, DatasetReader, DatasetSplit, register_builtin_datasets
from hmlc.data.images import (
    ArrayImageSource,
    FileImageSource,
    ImageDataset,
    ImageSource,
    decode_image,
    missing_files,
    random_flip_augment,
    resize_square,
)
from hmlc.data.synthetic import (
    SYNTHETIC_HIERARCHY,
    SyntheticConfig,
    SyntheticDataset,
    export_synthetic,
    generate_synthetic,
    register_builtin_hierarchies,
)
from hmlc.data.table import LabelTable, read_label_csv

__all__ = [
    "LabelTable",
    "read_label_csv",
    "decode_image",
    "resize_square",
    "ImageSource",
    "ArrayImageSource",
    "FileImageSource",
    "missing_files",
    "ImageDataset",
    "random_flip_augment",
    "DatasetSplit",
    "DatasetReader",
    "CsvDataset",
    "register_builtin_datasets",
    "SYNTHETIC_HIERARCHY",
    "SyntheticConfig",
    "generate_synthetic",
    "SyntheticDataset",
    "export_synthetic",
    "register_builtin_hierarchies",
]
