"""The ``hmc`` reader: file names of the original distribution, folder layouts, splits, the seeded valid carve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hmc_testing import TREE_HEADER, needs_feature_inputs, write_arff
from hmlc_hmc.dataset import HmcDataset, carve_valid, dataset_files, find_dataset_folder, load_split

from hmlc.errors import ConfigError, DataError
from hmlc.plugins import get_host


def _rows(n: int, offset: int = 0) -> list[str]:
    """``n`` rows whose first feature is its number (offset + 1 ...), so rows can be traced."""
    return [f"{offset + i + 1},red,0,01/01" if i % 2 else f"{offset + i + 1},blue,?,02" for i in range(n)]


def _dataset(folder: Path, name: str, sizes: dict[str, int], pattern: str = "{name}.{split}.arff") -> Path:
    offset = 0
    for split, n in sizes.items():
        write_arff(folder / pattern.format(name=name, split=split), TREE_HEADER + _rows(n, offset))
        offset += 1000
    return folder


def _split(folder: Path, name: str, split: str, fraction: float = 0.3, seed: int = 0):
    return load_split(dataset_files(folder, name), split, valid_fraction=fraction, seed=seed, nominal_missing="zeros")


@pytest.mark.parametrize(
    "pattern",
    [
        "{name}.{split}.arff",
        "{name}.{split}.arff.gz",
        "{name}_{split}.arff",
        "{name}_{split}",
        "{name}_{split}.gz",
        "{name}_{Split}.arff",
        "{name}_{Split}.arff.gz",
    ],
)
def test_file_naming_variants(tmp_path: Path, pattern: str) -> None:
    for split in ("train", "test"):
        name = pattern.format(name="Diatoms", split=split, Split=split.capitalize())
        write_arff(tmp_path / name, TREE_HEADER + _rows(3))
    files = dataset_files(tmp_path, "diatoms")
    assert sorted(files) == ["test", "train"]
    assert files["train"].name == pattern.format(name="Diatoms", split="train", Split="Train")
    assert len(_split(tmp_path, "Diatoms", "test").ids) == 3


def test_trainvalid_file_variant(tmp_path: Path) -> None:
    _dataset(tmp_path, "Enron_corr", {"trainvalid": 10, "test": 4}, "{name}_{split}.arff")
    files = dataset_files(tmp_path, "Enron_corr")
    assert sorted(files) == ["test", "trainvalid"]
    whole = _split(tmp_path, "Enron_corr", "trainvalid")
    train, valid = _split(tmp_path, "Enron_corr", "train"), _split(tmp_path, "Enron_corr", "valid")
    assert len(whole.ids) == 10 and (len(train.ids), len(valid.ids)) == (7, 3)
    assert sorted(train.ids + valid.ids) == sorted(whole.ids)


def test_other_datasets_and_near_names_are_ignored(tmp_path: Path) -> None:
    _dataset(tmp_path, "cellcycle_FUN", {"train": 3, "valid": 2, "test": 2})
    _dataset(tmp_path, "cellcycle_GO", {"train": 5})
    (tmp_path / "cellcycle_FUN.train.arff.bak").write_text("x")
    (tmp_path / "cellcycle_FUN.notes").write_text("x")
    assert sorted(dataset_files(tmp_path, "cellcycle_FUN")) == ["test", "train", "valid"]
    assert sorted(dataset_files(tmp_path, "cellcycle_GO")) == ["train"]


def test_two_files_for_one_split_is_an_error(tmp_path: Path) -> None:
    _dataset(tmp_path, "x", {"train": 3})
    _dataset(tmp_path, "x", {"train": 3}, "{name}_{split}.arff.gz")
    with pytest.raises(DataError, match=r"several train files of x: x\.train\.arff, x_train\.arff\.gz; keep one"):
        dataset_files(tmp_path, "x")


def test_valid_file_used_as_given_and_trainvalid_concatenates(tmp_path: Path) -> None:
    _dataset(tmp_path, "d", {"train": 6, "valid": 4, "test": 3})
    train, valid = _split(tmp_path, "d", "train"), _split(tmp_path, "d", "valid")
    assert train.features[:, 0].tolist() == [1, 2, 3, 4, 5, 6]
    assert valid.features[:, 0].tolist() == [1001, 1002, 1003, 1004]
    both = _split(tmp_path, "d", "trainvalid")
    assert both.features[:, 0].tolist() == train.features[:, 0].tolist() + valid.features[:, 0].tolist()
    np.testing.assert_array_equal(both.labels, np.concatenate([train.labels, valid.labels]))
    assert both.ids[0] == "train-00001" and both.ids[-1] == "valid-00004" and len(set(both.ids)) == 10


def test_trainvalid_refuses_files_that_disagree(tmp_path: Path) -> None:
    _dataset(tmp_path, "d", {"train": 3})
    other = TREE_HEADER[:6] + ["@ATTRIBUTE class hierarchical 01,01/01,01/01/03,02,02/05,03", "@DATA"]
    write_arff(tmp_path / "d.valid.arff", other + _rows(2))
    with pytest.raises(DataError, match=r"d\.valid\.arff declares another hierarchy than .*d\.train\.arff"):
        _split(tmp_path, "d", "trainvalid")


def test_seeded_carve_is_deterministic_disjoint_and_complete(tmp_path: Path) -> None:
    _dataset(tmp_path, "nv", {"train": 20, "test": 5})
    train, valid = _split(tmp_path, "nv", "train"), _split(tmp_path, "nv", "valid")
    assert (len(train.ids), len(valid.ids)) == (14, 6)
    assert not set(train.ids) & set(valid.ids)
    assert sorted(train.features[:, 0].tolist() + valid.features[:, 0].tolist()) == list(range(1, 21))
    again = _split(tmp_path, "nv", "valid")
    assert again.ids == valid.ids
    np.testing.assert_array_equal(again.features, valid.features)
    assert _split(tmp_path, "nv", "valid", seed=1).ids != valid.ids
    assert len(_split(tmp_path, "nv", "valid", fraction=0.5).ids) == 10
    assert _split(tmp_path, "nv", "trainvalid").ids == tuple(f"train-{i:05d}" for i in range(1, 21))


def test_carve_bounds() -> None:
    keep, held = carve_valid(10, 0.3, 0)
    assert len(keep) == 7 and len(held) == 3 and (np.diff(keep) > 0).all() and (np.diff(held) > 0).all()
    with pytest.raises(ConfigError, match="valid_fraction must lie strictly between 0 and 1"):
        carve_valid(10, 1.0, 0)
    with pytest.raises(DataError, match="cannot carve a valid split of 0.01 from 10 rows"):
        carve_valid(10, 0.01, 0)


def test_missing_splits_are_errors(tmp_path: Path) -> None:
    _dataset(tmp_path, "only", {"test": 3})
    with pytest.raises(DataError, match=r"no train or trainvalid file among only\.test\.arff"):
        _split(tmp_path, "only", "train")
    _dataset(tmp_path, "notest", {"train": 3})
    with pytest.raises(DataError, match=r"no test file among notest\.train\.arff"):
        _split(tmp_path, "notest", "test")


@pytest.mark.parametrize(
    "layout",
    ["{name}", "FUN/{name}", "datasets_FUN/{name}", "others"],
)
def test_dataset_folder_found_from_root(tmp_path: Path, layout: str) -> None:
    folder = tmp_path / layout.format(name="cellcycle_FUN")
    _dataset(folder, "cellcycle_FUN", {"train": 3, "test": 2})
    _dataset(tmp_path / "GO" / "cellcycle_GO", "cellcycle_GO", {"train": 3})
    assert find_dataset_folder(tmp_path, "cellcycle_FUN") == folder
    assert find_dataset_folder(folder, "cellcycle_FUN") == folder


def test_dataset_folder_errors(tmp_path: Path) -> None:
    _dataset(tmp_path / "FUN" / "a_FUN", "a_FUN", {"train": 3})
    _dataset(tmp_path / "GO" / "b_GO", "b_GO", {"train": 3})
    with pytest.raises(DataError, match=r"no files of dataset 'c_FUN' .*datasets found there: a_FUN, b_GO"):
        find_dataset_folder(tmp_path, "c_FUN")
    _dataset(tmp_path / "copy" / "a_FUN", "a_FUN", {"train": 3})
    with pytest.raises(DataError, match="several folders under .* hold dataset a_FUN"):
        find_dataset_folder(tmp_path, "a_FUN")
    with pytest.raises(DataError, match="is not a folder"):
        find_dataset_folder(tmp_path / "absent", "a_FUN")


def test_reader_params_and_registration(tmp_path: Path) -> None:
    reader = get_host().dataset("hmc")
    assert isinstance(reader, HmcDataset) and reader.input_kind == "features"
    assert reader.splits == ("train", "valid", "test", "trainvalid")
    _dataset(tmp_path / "FUN" / "a_FUN", "a_FUN", {"train": 3})
    with pytest.raises(ConfigError, match=r"needs data.params.name.*datasets found under .*: a_FUN"):
        reader.data_hierarchy(root=tmp_path, params={})
    with pytest.raises(ConfigError, match="has no parameter 'nme'"):
        reader.data_hierarchy(root=tmp_path, params={"nme": "a_FUN"})
    with pytest.raises(ConfigError, match="nominal_missing must be one of zeros, nan"):
        reader.data_hierarchy(root=tmp_path, params={"name": "a_FUN", "nominal_missing": "mean"})
    with pytest.raises(ConfigError, match="set data.root"):
        reader.data_hierarchy(root=None, params={"name": "a_FUN"})
    graph = reader.data_hierarchy(root=tmp_path, params={"name": "a_FUN"})
    assert graph is not None and graph.name == "a_FUN" and graph.labels[0] == "root" and len(graph) == 6


def test_reader_load_tables_and_features(tmp_path: Path) -> None:
    needs_feature_inputs()
    _dataset(tmp_path, "d", {"train": 6, "test": 3})
    reader = HmcDataset()
    graph = reader.data_hierarchy(root=tmp_path, params={"name": "d"})
    assert graph is not None
    split = reader.load("valid", root=tmp_path, params={"name": "d", "valid_fraction": 0.5}, image_size=None, labels=graph.labels)
    table, features = split.table, split.images
    assert len(table) == 3 and table.labels == graph.labels
    assert features.names == ("x1", "colour=red", "colour=green", "colour=blue", "x 2")
    values = features.array()
    assert values.dtype == np.float32 and values.shape == (3, 5)
    # Rows keep their labels: an odd row number (blue, ?) is in 02, an even one (red) in 01/01.
    codes = table.codes()
    for row, number in enumerate(values[:, 0].astype(int)):
        odd = number % 2 == 1
        assert codes[row, graph.index("02")] == float(odd) and codes[row, graph.index("01/01")] == float(not odd)
        assert np.isnan(values[row, 4]) == odd
    assert (codes[:, graph.index("root")] == 1).all()
    unlabelled = reader.load("test", root=tmp_path, params={"name": "d"}, image_size=None, labels=None)
    assert unlabelled.table.labels == () and len(unlabelled.table) == 3
    subset = reader.load("test", root=tmp_path, params={"name": "d"}, image_size=None, labels=["02", "01"])
    assert subset.table.labels == ("02", "01")
    with pytest.raises(DataError, match=r"d\.test\.arff does not declare label\(s\) 07"):
        reader.load("test", root=tmp_path, params={"name": "d"}, image_size=None, labels=["07"])
    with pytest.raises(DataError, match="has no split 'dev'"):
        reader.load("dev", root=tmp_path, params={"name": "d"}, image_size=None, labels=None)
