"""Feature vectors: sources, the fitted standardisation, the synthetic vectors and the reader contract."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hmlc.data.datasets import DatasetReader, DatasetSplit, read_split
from hmlc.data.features import ArrayFeatureSource, FeatureSource, FeatureTransform
from hmlc.data.synthetic import SYNTHETIC_HIERARCHY, SyntheticVectorsDataset
from hmlc.data.table import LabelTable
from hmlc.errors import DataError, PluginError
from hmlc.models import StandardizeFeatures


def test_array_feature_source_reads_rows_names_and_refuses_bad_arrays() -> None:
    values = np.array([[1, 2], [3, np.nan]], dtype=np.float64)
    source = ArrayFeatureSource(values)
    assert isinstance(source, FeatureSource)
    assert len(source) == 2 and source.dim == 2 and source.names == ("f0", "f1")
    assert source.read(1).dtype == np.float32 and np.isnan(source.read(1)[1])
    assert source.array().shape == (2, 2)
    np.testing.assert_array_equal(source.subset([1]).array(), source.array()[[1]])
    with pytest.raises(DataError, match="2-D"):
        ArrayFeatureSource(np.zeros(3))
    with pytest.raises(DataError, match="infinite"):
        ArrayFeatureSource(np.array([[np.inf]]))
    with pytest.raises(DataError, match="names"):
        ArrayFeatureSource(np.zeros((2, 2)), names=["a"])


def test_transform_imputes_the_training_mean_and_standardises() -> None:
    train = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, np.nan], [np.nan, 5.0, np.nan]])
    t = FeatureTransform().fit(train)
    # column 0: mean 2, std 1 over the two observed values; column 1 constant: std 1; column 2 never seen.
    np.testing.assert_allclose(t.mean, [2.0, 5.0, 0.0])
    np.testing.assert_allclose(t.std, [1.0, 1.0, 1.0])
    out = t(np.array([[4.0, np.nan, 7.0]]))
    np.testing.assert_allclose(out, [[2.0, 0.0, 7.0]])
    # The torch side computes the same values.
    torch_out = StandardizeFeatures(t.mean, t.std)(torch.tensor([[4.0, float("nan"), 7.0]]))
    np.testing.assert_allclose(torch_out.numpy(), out)
    again = FeatureTransform(t.state())
    assert again.fingerprint() == t.fingerprint()
    with pytest.raises(DataError, match="mean and std"):
        FeatureTransform({"mean": t.mean})


def test_synthetic_vectors_have_missing_values_and_the_synthetic_labels() -> None:
    reader = SyntheticVectorsDataset()
    train = read_split(reader, "train", root=None, params={}, image_size=None, labels=SYNTHETIC_HIERARCHY.labels)
    assert train.input_kind == "features" and train.inputs is train.images
    x = train.inputs.array()
    assert x.shape == (400, 20) and x.dtype == np.float32
    assert 0.02 < np.isnan(x).mean() < 0.08
    assert train.table.labels == SYNTHETIC_HIERARCHY.labels
    assert set(np.unique(train.table.codes()[~np.isnan(train.table.codes())])) <= {-1.0, 0.0, 1.0}
    # labels=None: no label columns, for prediction.
    bare = read_split(reader, "valid", root=None, params={}, image_size=None, labels=None)
    assert bare.table.labels == () and len(bare.table) == 200
    # The same seed gives the same vectors.
    np.testing.assert_array_equal(
        read_split(reader, "train", root=None, params={}, image_size=None, labels=None).inputs.array(), x
    )


class OldStyleReader(DatasetReader):
    """A reader written before load() took graph, and that cannot take labels=None."""

    name = "old-style"
    default_hierarchy = "synthetic"

    def __init__(self) -> None:
        self.calls: list[Sequence[str]] = []

    def load(
        self, split: str, *, root: Path | None, params: Mapping[str, Any], image_size: int | None, labels: Sequence[str]
    ) -> DatasetSplit:
        self.calls.append(labels)
        codes = np.zeros((3, len(labels)), dtype=np.float32)
        table = LabelTable.from_codes(["a", "b", "c"], codes, list(labels))
        return DatasetSplit(table, ArrayFeatureSource(np.zeros((3, 2))))


def test_old_style_reader_is_called_without_graph_and_with_empty_labels_for_prediction() -> None:
    reader = OldStyleReader()
    reader.input_kind = "features"
    split = read_split(reader, "train", root=None, params={}, image_size=None, labels=["x"], graph=SYNTHETIC_HIERARCHY)
    assert split.table.labels == ("x",)
    read_split(reader, "train", root=None, params={}, image_size=None, labels=None)
    assert reader.calls == [["x"], ()]


def test_reader_that_returns_the_wrong_kind_of_samples_is_a_plugin_error() -> None:
    reader = OldStyleReader()  # input_kind "image", but it returns vectors
    with pytest.raises(PluginError, match="declares input_kind 'image'"):
        read_split(reader, "train", root=None, params={}, image_size=None, labels=[])
