"""The NIH ChestX-ray14 reader (Data_Entry_2017.csv or its v2020 revision, .csv or .csv.gz).

``Finding Labels`` is a ``|``-separated list of the 14 findings, or ``No
Finding``; a finding listed is positive (1), every other one negative (0).
Splits: with the official lists (``train_val_list.txt``, ``test_list.txt``)
beside the CSV, ``test`` is the official test list and ``train``/``valid`` a
seeded patient-level partition of the official train+val list; without them,
all three are a seeded patient-level partition. ``all`` is every row.

A download is often partial (12 archives): the reader uses the rows whose
image is on disk and says how many of how many.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from hmlc.data import FileImageSource, LabelTable, label_file_error
from hmlc.data.datasets import (
    DatasetReader,
    DatasetSplit,
    check_split_fractions,
    dataset_file,
    keep_present_images,
    patient_partition,
)
from hmlc.errors import ConfigError, DataError
from hmlc.hierarchy import LabelGraph
from hmlc.progress import say
from hmlc_nih import NIH_LABELS, NO_FINDING

__all__ = ["NihDataset", "CSV_NAMES", "patient_partition"]

#: Names Data_Entry_2017 has had, tried in this order (each also as .gz) when ``labels_csv`` is "auto".
CSV_NAMES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
TRAIN_VAL_LIST = "train_val_list.txt"
TEST_LIST = "test_list.txt"
COLUMNS = ("Image Index", "Finding Labels", "Patient ID", "View Position")
VIEWS = ("both", "PA", "AP")
_SHOWN = 8


class NihDataset(DatasetReader):
    """NIH ChestX-ray14: Data_Entry_2017 and the 1024 px PNGs it lists.

    ``data.root`` is the folder holding the CSV (or its parent). Images are
    found under ``<root>/images/``, ``<root>/images_*/images/`` (the official
    archives unpacked side by side) or in ``<root>`` itself. Parameters:

    - ``labels_csv``: "auto" (Data_Entry_2017_v2020.csv, then
      Data_Entry_2017.csv, each also .gz), a file name in that folder, or an
      absolute path;
    - ``views``: "both", "PA" or "AP" (``View Position``);
    - ``official_split``: use train_val_list.txt / test_list.txt when present;
    - ``valid_fraction``, ``test_fraction``, ``split_seed``: the patient split
      (``test_fraction`` only without the official lists);
    - ``labels_only``: read labels without looking for images.
    """

    name = "nih"
    default_hierarchy = "nih"
    default_blank = "negative"
    default_eval_closure = False
    splits = ("train", "valid", "test", "all")
    description = "NIH ChestX-ray14: Data_Entry_2017, official or patient split, partial downloads"
    param_defaults: Mapping[str, Any] = MappingProxyType(
        {
            "labels_csv": "auto",
            "views": "both",
            "official_split": True,
            "valid_fraction": 0.1,
            "test_fraction": 0.2,
            "split_seed": 0,
            "labels_only": False,
        }
    )

    def resolve_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults updated by ``params``, with choices and ranges checked (ConfigError)."""
        p = super().resolve_params(params)
        if p["views"] not in VIEWS:
            raise ConfigError(f"data.params.views must be one of {', '.join(VIEWS)}, got {p['views']!r}")
        check_split_fractions(p)
        return p

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
        """One split; ``labels`` None or empty reads no label codes (prediction). ``graph`` is not needed."""
        self.check_split(split)
        p = self.resolve_params(params)
        labels = tuple(labels or ())
        unknown_labels = [label for label in labels if label not in NIH_LABELS]
        if unknown_labels:
            raise DataError(
                f"dataset 'nih' has no label(s) {unknown_labels}; its labels are the 14 findings of hierarchy 'nih' "
                "(use hierarchy=nih, or a label map such as chexpert->nih to compare)"
            )
        csv_path, folder = _locate(root, p["labels_csv"])
        rows = _read_rows(csv_path)
        keep = np.ones(len(rows), dtype=bool)
        if p["views"] != "both":
            keep &= (rows["View Position"].str.strip().str.upper() == p["views"]).to_numpy()
        if split != "all":
            keep &= _split_of(rows, folder, p) == split
        paths = _image_paths(rows["Image Index"].tolist(), folder)
        if not p["labels_only"]:
            keep = keep_present_images(
                keep, paths, dataset="nih", split=split, csv_path=csv_path, folder=folder,
                layout="images/, images_*/images/ or the folder itself",
            )
        index = np.flatnonzero(keep)
        names = rows["Image Index"].to_numpy(dtype=object)[index]
        meta = pd.DataFrame(
            {
                "id": names,
                "path": np.array(
                    [paths[i] if paths[i] is not None else str(folder / "images" / names[j]) for j, i in enumerate(index)],
                    dtype=object,
                ),
                "patient": rows["Patient ID"].to_numpy(dtype=object)[index],
                "study": np.array([str(n).rsplit(".", 1)[0] for n in names], dtype=object),
                "view": np.full(len(index), "frontal", dtype=object),
            },
            dtype=object,
        )
        codes = _codes(rows["Finding Labels"], labels, csv_path)[index]
        table = LabelTable(pd.concat([meta, pd.DataFrame(codes, columns=list(labels))], axis=1), labels)
        return DatasetSplit(table, FileImageSource(table.frame["path"].tolist(), image_size))


def _split_of(rows: pd.DataFrame, folder: Path, p: Mapping[str, Any]) -> np.ndarray:
    """Per row, its split: from the official lists when present and wanted, else the patient partition."""
    patients = rows["Patient ID"].tolist()
    lists = folder / TRAIN_VAL_LIST, folder / TEST_LIST
    if not (p["official_split"] and all(path.is_file() for path in lists)):
        return patient_partition(patients, p["valid_fraction"], p["test_fraction"], p["split_seed"])
    train_val, test = (set(_read_list(path)) for path in lists)
    names = rows["Image Index"]
    side = np.full(len(rows), "", dtype=object)
    in_test = names.isin(test).to_numpy()
    in_train_val = names.isin(train_val).to_numpy()
    # Within train+val, valid takes about valid_fraction of the patients (test_fraction 0: nothing else).
    inner = patient_partition(patients, p["valid_fraction"], 0.0, p["split_seed"])
    side[in_train_val] = inner[in_train_val]
    side[in_test] = "test"
    return side


def _read_list(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read split list {path}: {exc}") from None


def _codes(findings: pd.Series, labels: tuple[str, ...], csv_path: Path) -> np.ndarray:
    """(N, K) codes of ``labels``: 1 where ``Finding Labels`` lists the finding, else 0."""
    values, uniques = pd.factorize(findings, use_na_sentinel=False)
    counts = np.bincount(values, minlength=len(uniques))
    column = {label: k for k, label in enumerate(labels)}
    known = set(NIH_LABELS) | {NO_FINDING}
    table = np.zeros((len(uniques), len(labels)), dtype=np.float32)
    unknown: Counter = Counter()
    for j, text in enumerate(uniques):
        for name in {n.strip() for n in str(text).split("|") if n.strip()}:
            if name not in known:
                unknown[name] += int(counts[j])
            elif name in column:
                table[j, column[name]] = 1.0
    if unknown:
        shown = ", ".join(f"{name!r} ({count})" for name, count in unknown.most_common(_SHOWN))
        say(f"nih: warning: {len(unknown)} names in 'Finding Labels' of {csv_path.name} are not NIH findings and were ignored (rows): {shown}")
    return table[values]


def _read_rows(csv_path: Path) -> pd.DataFrame:
    """The columns the reader uses, as strings."""
    try:
        header = list(pd.read_csv(csv_path, nrows=0).columns)
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(f"{csv_path} has no column(s) {missing}; is it Data_Entry_2017? Its columns: {header}")
        return pd.read_csv(csv_path, usecols=list(COLUMNS), dtype=str, keep_default_na=False)
    except (OSError, ValueError, EOFError) as exc:
        raise label_file_error(csv_path, exc) from None


def _image_paths(names: list[str], folder: Path) -> list[str | None]:
    """Per image name, its file under images/, images_*/images/ or the folder itself, else None."""
    where: dict[str, str] = {}
    candidates = [folder, folder / "images"]
    try:
        candidates += sorted(d / "images" for d in folder.iterdir() if d.is_dir() and d.name.startswith("images_"))
    except OSError:
        pass
    for directory in reversed(candidates):  # the first candidate wins a name found twice
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            where[entry] = str(directory / entry)
    return [where.get(name) for name in names]


def _locate(root: Path | None, csv_name: str) -> tuple[Path, Path]:
    """(Data_Entry CSV, folder the images and split lists are in)."""
    given = Path(csv_name).expanduser()
    if given.is_absolute():
        if not given.is_file():
            raise DataError(f"label file {given} does not exist; fix data.params.labels_csv")
        return given, Path(root).expanduser() if root is not None else given.parent
    names = [n + gz for n in (CSV_NAMES if csv_name == "auto" else (csv_name,)) for gz in ("", ".gz")]
    names = [n for n in names if not n.endswith(".gz.gz")]
    if root is None:
        raise ConfigError(f"dataset 'nih' reads files: set data.root to the folder holding {names[0]}")
    root = Path(root).expanduser()
    try:
        return dataset_file(root, names)
    except DataError:
        if csv_name != "auto":
            raise
    raise DataError(f"no {' or '.join(names)} in {root} or its subfolders; set data.root to the folder holding it")

