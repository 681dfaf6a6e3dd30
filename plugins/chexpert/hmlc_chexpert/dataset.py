"""The CheXpert dataset reader (CheXpert-v1.0 and CheXpert-v1.0-small).

Splits: ``train`` (every row of train.csv), ``valid`` (the official
validation set, radiologist consensus: the evaluation split), and a
patient-level hold-out of train: ``holdout`` (about ``holdout_fraction`` of
the training patients) and ``train-holdout`` (train minus those patients).
A patient's side of the hold-out depends only on its id and
``holdout_seed``, so the split is deterministic and the same whatever the
view filters keep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from hmlc.data import FileImageSource, LabelTable, label_file_error, missing_files, read_label_csv
from hmlc.data.datasets import (
    DatasetReader,
    DatasetSplit,
    dataset_file,
    patient_partition,
    patients_and_studies,
    resolve_image_paths,
)
from hmlc.errors import ConfigError, DataError

__all__ = ["CheXpertDataset", "read_chexpert_csv"]

VIEW_COLUMN = "Frontal/Lateral"
PROJECTION_COLUMN = "AP/PA"
VIEWS = ("frontal", "lateral", "both")
PROJECTIONS = ("AP", "PA", "both")
_SHOWN_MISSING = 5


class CheXpertDataset(DatasetReader):
    """CheXpert's train.csv / valid.csv (or .csv.gz) and the images they list.

    ``data.root`` is the dataset folder (``CheXpert-v1.0-small``) or its
    parent. Parameters (``data.params``):

    - ``train_csv``, ``valid_csv``: file names inside the dataset folder, or
      absolute paths (a ``.gz`` twin is found when the plain name is absent);
    - ``views``: "frontal", "lateral" or "both";
    - ``ap_pa``: "AP", "PA" or "both" (a projection keeps frontal images only);
    - ``holdout_fraction``, ``holdout_seed``: the patient-level hold-out;
    - ``labels_only``: skip the check that every image exists (label
      statistics such as closure counts need no images).
    """

    name = "chexpert"
    default_hierarchy = "chexpert"
    default_blank = "negative"
    #: CheXpert's protocol scores the labels as given (no closure at evaluation).
    default_eval_closure = False
    splits = ("train", "valid", "holdout", "train-holdout")
    description = "CheXpert-v1.0(-small): train/valid CSVs, view and AP/PA filters, patient-level hold-out"
    param_defaults: Mapping[str, Any] = MappingProxyType(
        {
            "train_csv": "train.csv",
            "valid_csv": "valid.csv",
            "views": "both",
            "ap_pa": "both",
            "holdout_fraction": 0.1,
            "holdout_seed": 0,
            "labels_only": False,
        }
    )

    def resolve_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults updated by ``params``, with choices and ranges checked (ConfigError)."""
        p = super().resolve_params(params)
        if p["views"] not in VIEWS:
            raise ConfigError(f"data.params.views must be one of {', '.join(VIEWS)}, got {p['views']!r}")
        if p["ap_pa"] not in PROJECTIONS:
            raise ConfigError(f"data.params.ap_pa must be one of {', '.join(PROJECTIONS)}, got {p['ap_pa']!r}")
        if not 0.0 < p["holdout_fraction"] < 1.0:
            raise ConfigError(f"data.params.holdout_fraction must be in (0, 1), got {p['holdout_fraction']}")
        return p

    def load(
        self,
        split: str,
        *,
        root: Path | None,
        params: Mapping[str, Any],
        image_size: int | None,
        labels: Sequence[str],
    ) -> DatasetSplit:
        """One split; raises DataError naming the missing images unless ``labels_only``."""
        self.check_split(split)
        p = self.resolve_params(params)
        csv_name = p["valid_csv"] if split == "valid" else p["train_csv"]
        csv_path, folder = _locate(root, csv_name)
        table = read_chexpert_csv(csv_path, labels, folder, views=p["views"], ap_pa=p["ap_pa"])
        if split in ("holdout", "train-holdout"):
            # A keyed hash per patient: a patient's side does not depend on which rows a filter kept.
            sides = patient_partition(table.frame["patient"].tolist(), 0.0, p["holdout_fraction"], p["holdout_seed"])
            held = sides == "test"
            table = table.subset(held if split == "holdout" else ~held)
        paths = table.frame["path"].tolist()
        if not p["labels_only"]:
            missing = missing_files(paths)
            if missing:
                shown = ", ".join(missing[:_SHOWN_MISSING])
                raise DataError(
                    f"{len(missing)} of {len(paths)} images of split {split!r} listed in {csv_path} are missing "
                    f"(first: {shown}); check data.root, or set data.params.labels_only=true for label statistics"
                )
        return DatasetSplit(table, FileImageSource(paths, image_size))


def read_chexpert_csv(
    csv_path: str | Path,
    labels: Sequence[str],
    folder: str | Path | None = None,
    *,
    views: str = "both",
    ap_pa: str = "both",
) -> LabelTable:
    """A CheXpert CSV as a label table with the codes of ``labels`` in that order.

    Image paths resolve against ``folder`` (the dataset folder; default: the
    CSV's folder); patient and study ids come from the path; ``view`` is
    "frontal" or "lateral". ``views`` and ``ap_pa`` filter rows as in
    :class:`CheXpertDataset`. Files are not checked.
    """
    if views not in VIEWS or ap_pa not in PROJECTIONS:
        raise ConfigError(f"views must be one of {VIEWS} and ap_pa one of {PROJECTIONS}; got {views!r}, {ap_pa!r}")
    csv_path = Path(csv_path)
    frame = read_label_csv(csv_path, labels, id_column="Path", extra_columns=[VIEW_COLUMN, PROJECTION_COLUMN])
    view = _normalised(frame[VIEW_COLUMN], str.lower)
    unknown = ~view.isin(("frontal", "lateral"))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DataError(
            f"{csv_path}: column {VIEW_COLUMN!r} holds {frame[VIEW_COLUMN].iloc[row]!r} on data row {row + 1}; "
            "expected Frontal or Lateral"
        )
    keep = np.ones(len(frame), dtype=bool)
    if views != "both":
        keep &= (view == views).to_numpy()
    if ap_pa != "both":
        keep &= (_normalised(frame[PROJECTION_COLUMN], str.upper) == ap_pa).to_numpy()
    if not keep.all():
        frame, view = frame[keep].reset_index(drop=True), view[keep].reset_index(drop=True)
    values = frame["Path"].tolist()
    patients, studies = _patients_and_studies(values)
    meta = pd.DataFrame(
        {
            "id": frame["Path"].to_numpy(dtype=object),
            "path": resolve_image_paths(values, Path(folder) if folder is not None else csv_path.parent),
            "patient": patients,
            "study": studies,
            "view": view.to_numpy(dtype=object),
        },
        dtype=object,
    )
    return LabelTable(pd.concat([meta, frame[list(labels)]], axis=1), tuple(labels))


def _normalised(column: pd.Series, case: Any) -> pd.Series:
    """``column`` stripped and case-mapped, computed once per distinct value."""
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    mapped = np.array([case(str(u).strip()) for u in uniques], dtype=object)
    return pd.Series(mapped[codes], index=column.index)


def _patients_and_studies(values: list[str]) -> tuple[list[str], list[str]]:
    """Patient and study ids of CheXpert paths (.../patientN/studyM/viewK_x.jpg).

    Slicing at the last three slashes is several times faster on train.csv
    than the core's general parser (no regex, no per-row lists for the
    garbage collector to scan); any other layout goes to that parser.
    """
    patients, studies, folders = [], [], set()
    for v in values:
        i = v.rfind("/")
        j = v.rfind("/", 0, i)
        k = v.rfind("/", 0, j)
        studies.append(v[:i])
        patients.append(v[k + 1 : j])
        folders.add(v[j + 1 : i])
    if (
        all(f.startswith("study") for f in folders)
        and all(p.startswith("patient") and "/" not in p for p in set(patients))
        and not any("\\" in v for v in values)
    ):
        return patients, studies
    return patients_and_studies(values)


def _locate(root: Path | None, csv_name: str) -> tuple[Path, Path]:
    """(CSV file, dataset folder the image paths resolve against)."""
    given = Path(csv_name).expanduser()
    if given.is_absolute():
        if not given.is_file():
            raise DataError(f"label file {given} does not exist; fix data.params.train_csv / valid_csv")
        if root is None:
            return given, given.parent
        root = Path(root).expanduser()
        first = _first_path_component(given)
        if first and root.name != first and (root / first).is_dir():
            return given, root / first
        return given, root
    if root is None:
        raise ConfigError(
            f"dataset 'chexpert' reads files: set data.root to the CheXpert folder holding {csv_name} (or its parent)"
        )
    root = Path(root).expanduser()
    names = [csv_name] if csv_name.endswith(".gz") else [csv_name, csv_name + ".gz"]
    return dataset_file(root, names)


def _first_path_component(csv_path: Path) -> str:
    """The first folder of the first image path in a CSV ("CheXpert-v1.0-small"), or ""."""
    try:
        first = pd.read_csv(csv_path, usecols=["Path"], nrows=1, dtype=str)["Path"]
    except (OSError, ValueError, EOFError) as exc:
        raise label_file_error(csv_path, exc) from None
    value = str(first.iloc[0]).replace("\\", "/") if len(first) else ""
    return value.split("/", 1)[0] if "/" in value and not value.startswith("/") else ""
