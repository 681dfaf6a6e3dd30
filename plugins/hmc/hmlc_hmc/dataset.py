"""The ``hmc`` dataset reader: one benchmark dataset of ARFF files, chosen by ``data.params.name``.

Files keep the names of the original distribution, in any letter case:
``<name>.train.arff`` / ``.valid.arff`` / ``.test.arff`` (C-HMCNN's FUN and
GO sets) or ``<name>_train`` / ``_Train`` / ``_test`` / ``_trainvalid``
(its "others"), each with or without ``.arff`` and ``.gz``.

``data.root`` is the dataset's own folder, or any folder above it up to two
levels: the folder holding ``FUN/`` and ``GO/`` (as in ``../shared/data/hmc``),
C-HMCNN's ``HMC_data`` (``datasets_FUN/``, ``datasets_GO/``, ``others/``) or a
folder of dataset folders. Unset, hmlc uses ``$HMLC_DATA/hmc``.

Splits: ``train``, ``valid``, ``test`` and ``trainvalid`` (train and valid
concatenated, what the protocol trains the final model on). A dataset without
a valid file gets a seeded valid split carved from its train file
(``valid_fraction`` of the rows, ``split_seed``); one with only a
``trainvalid`` file gets train and valid carved from that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hmlc.data.datasets import DatasetReader, DatasetSplit
from hmlc.data.table import LabelTable
from hmlc.errors import ConfigError, DataError
from hmlc.hierarchy.graph import LabelGraph
from hmlc_hmc.arff import NOMINAL_MISSING, ArffHeader, HierarchicalArff, read_arff, read_header
from hmlc_hmc.hierarchy import excluded_labels, header_graph

__all__ = [
    "HmcDataset",
    "SPLITS",
    "SplitData",
    "available_datasets",
    "carve_valid",
    "dataset_files",
    "find_dataset_folder",
    "load_split",
]

#: The splits the reader serves.
SPLITS: tuple[str, ...] = ("train", "valid", "test", "trainvalid")
_FILE = re.compile(r"^(?P<name>.+?)[._](?P<split>trainvalid|train|valid|test)(?:\.arff)?(?:\.gz)?$", re.IGNORECASE)


def dataset_files(folder: Path, name: str) -> dict[str, Path]:
    """Split -> file of dataset ``name`` in ``folder`` (names compared case-insensitively)."""
    found: dict[str, list[Path]] = {}
    if not folder.is_dir():
        return {}
    for path in folder.iterdir():
        m = _FILE.match(path.name)
        if m and m.group("name").lower() == name.lower() and path.is_file():
            found.setdefault(m.group("split").lower(), []).append(path)
    files: dict[str, Path] = {}
    for split, paths in sorted(found.items()):
        if len(paths) > 1:
            shown = ", ".join(p.name for p in sorted(paths))
            raise DataError(f"{folder} holds several {split} files of {name}: {shown}; keep one")
        files[split] = paths[0]
    return files


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(d for d in folder.iterdir() if d.is_dir())
    except OSError:
        return []


def find_dataset_folder(root: Path, name: str) -> Path:
    """The folder under ``root`` (itself, or up to two levels down) holding the files of ``name``."""
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a folder; set data.root to the folder holding the hmc datasets "
                        "(or $HMLC_DATA to the folder holding hmc/)")
    candidates = [root]
    level1 = _subfolders(root)
    candidates += level1
    for d in level1:
        candidates += _subfolders(d)
    holding = [d for d in candidates if dataset_files(d, name)]
    if len(holding) == 1:
        return holding[0]
    if holding:
        shown = ", ".join(str(d) for d in holding)
        raise DataError(f"several folders under {root} hold dataset {name}: {shown}; set data.root to one of them")
    known = available_datasets(root)
    hint = f"; datasets found there: {', '.join(known)}" if known else ""
    raise DataError(
        f"no files of dataset {name!r} ({name}.train.arff[.gz], {name}_train.arff, ...) in {root} "
        f"or two levels below{hint}"
    )


def available_datasets(root: Path) -> list[str]:
    """Names of the datasets with a train or trainvalid file in ``root`` or two levels below."""
    names: set[str] = set()
    folders = [root, *_subfolders(root)]
    folders += [e for d in _subfolders(root) for e in _subfolders(d)]
    for folder in folders:
        for path in folder.iterdir():
            m = _FILE.match(path.name)
            if m and m.group("split").lower() in ("train", "trainvalid"):
                names.add(m.group("name"))
    return sorted(names, key=str.lower)


@dataclass(frozen=True)
class SplitData:
    """One split's encoded features, label matrix (in ``header.labels`` order) and row ids."""

    header: ArffHeader
    features: np.ndarray
    labels: np.ndarray
    ids: tuple[str, ...]


def carve_valid(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train rows, valid rows) of ``n``: ``round(fraction * n)`` valid rows, both sorted, disjoint."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"data.params.valid_fraction must lie strictly between 0 and 1, got {fraction}")
    n_valid = int(round(fraction * n))
    if n_valid < 1 or n_valid >= n:
        raise DataError(f"cannot carve a valid split of {fraction} from {n} rows; give a valid file")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def _from_file(path: Path, key: str, nominal_missing: str) -> SplitData:
    arff: HierarchicalArff = read_arff(path, nominal_missing=nominal_missing)
    ids = tuple(f"{key}-{i + 1:05d}" for i in range(len(arff)))
    return SplitData(arff.header, arff.features, arff.labels, ids)


def _rows(data: SplitData, rows: np.ndarray) -> SplitData:
    return SplitData(data.header, data.features[rows], data.labels[rows], tuple(data.ids[i] for i in rows))


def _concat(first: SplitData, second: SplitData) -> SplitData:
    a, b = first.header, second.header
    if a.feature_names != b.feature_names:
        raise DataError(f"{b.path} has other features than {a.path}; they cannot be concatenated")
    if a.labels != b.labels or set(a.edges) != set(b.edges):
        raise DataError(f"{b.path} declares another hierarchy than {a.path}; they cannot be concatenated")
    return SplitData(
        a,
        np.concatenate([first.features, second.features]),
        np.concatenate([first.labels, second.labels]),
        first.ids + second.ids,
    )


def load_split(files: Mapping[str, Path], split: str, *, valid_fraction: float, seed: int, nominal_missing: str) -> SplitData:
    """``split`` from the dataset's ``files`` (see the module docstring for carving and ``trainvalid``)."""
    if split not in SPLITS:
        raise DataError(f"dataset 'hmc' has no split {split!r}; its splits are: {', '.join(SPLITS)}")

    def read(key: str) -> SplitData:
        return _from_file(files[key], key, nominal_missing)

    if split == "test":
        if "test" not in files:
            raise DataError(f"no test file among {', '.join(sorted(p.name for p in files.values()))}")
        return read("test")
    if "train" in files:
        if split == "train" and "valid" in files:
            return read("train")
        if split == "valid" and "valid" in files:
            return read("valid")
        train = read("train")
        if split == "trainvalid":
            return _concat(train, read("valid")) if "valid" in files else train
    elif "trainvalid" in files:
        train = read("trainvalid")
        if split == "trainvalid":
            return train
    else:
        raise DataError(f"no train or trainvalid file among {', '.join(sorted(p.name for p in files.values()))}")
    keep, held = carve_valid(len(train.ids), valid_fraction, seed)
    return _rows(train, keep if split == "train" else held)


class HmcDataset(DatasetReader):
    """The HMC benchmarks (Vens et al. 2008) from their ARFF files, one dataset per ``data.params.name``."""

    name = "hmc"
    default_hierarchy = ""
    default_blank = "negative"
    splits = SPLITS
    input_kind = "features"
    description = (
        "hierarchical multi-label ARFF benchmarks (FunCat/GO functional genomics, Vens et al. 2008), "
        "data.params.name=<dataset> (e.g. cellcycle_FUN)"
    )
    param_defaults = {
        # The dataset: the file names' stem, e.g. cellcycle_FUN, seq_GO, Diatoms.
        "name": "",
        # Share of the train file carved out as valid when there is no valid file
        # (C-HMCNN's train.py holds out 30 % for its datasets without one).
        "valid_fraction": 0.3,
        "split_seed": 0,
        # A missing nominal value: "zeros" (every one-hot column 0, as C-HMCNN) or "nan" (imputed by hmlc).
        "nominal_missing": "zeros",
    }

    def _files(self, root: Path | None, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
        p = self.resolve_params(params)
        if not p["name"]:
            where = f"; datasets found under {root}: {', '.join(available_datasets(root))}" if root and root.is_dir() else ""
            raise ConfigError(f"dataset 'hmc' needs data.params.name, the dataset to read (e.g. cellcycle_FUN){where}")
        if p["nominal_missing"] not in NOMINAL_MISSING:
            raise ConfigError(
                f"data.params.nominal_missing must be one of {', '.join(NOMINAL_MISSING)}, got {p['nominal_missing']!r}"
            )
        if root is None:
            raise ConfigError(
                "dataset 'hmc' reads ARFF files: set data.root to the folder holding them "
                "(or the one holding FUN/ and GO/), or set $HMLC_DATA to the folder holding hmc/"
            )
        folder = find_dataset_folder(Path(root), p["name"])
        return p, dataset_files(folder, p["name"])

    def load(
        self,
        split: str,
        *,
        root: Path | None,
        params: Mapping[str, Any],
        image_size: int | None,
        labels: Sequence[str] | None,
        graph: LabelGraph | None = None,
    ) -> DatasetSplit:
        """``split`` as a label table (codes 1/0 of ``labels``) and its raw feature vectors."""
        from hmlc.data.features import ArrayFeatureSource

        self.check_split(split)
        p, files = self._files(root, params)
        data = load_split(
            files, split, valid_fraction=p["valid_fraction"], seed=p["split_seed"], nominal_missing=p["nominal_missing"]
        )
        wanted = list(labels or ())
        index = {label: k for k, label in enumerate(data.header.labels)}
        unknown = [label for label in wanted if label not in index]
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise DataError(
                f"{data.header.path} does not declare label(s) {shown}; "
                "train with the file's own hierarchy (leave 'hierarchy' unset)"
            )
        codes = data.labels[:, [index[label] for label in wanted]].astype(np.float32)
        table = LabelTable.from_codes(data.ids, codes, wanted, views="")
        return DatasetSplit(table, ArrayFeatureSource(data.features, data.header.feature_names))

    def data_hierarchy(self, *, root: Path | None, params: Mapping[str, Any]) -> LabelGraph | None:
        """The hierarchy declared in the header of the train (or trainvalid) file."""
        p, files = self._files(root, params)
        path = files.get("train") or files.get("trainvalid")
        if path is None:
            raise DataError(f"dataset {p['name']}: no train or trainvalid file to read the hierarchy from")
        return header_graph(read_header(path), name=p["name"])

    def score_exclude(self, graph: LabelGraph) -> tuple[str, ...]:
        """The root and, for GO, the three ontology roots: trained on, never scored."""
        return excluded_labels(graph)
