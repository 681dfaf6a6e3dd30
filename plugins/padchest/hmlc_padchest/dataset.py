"""The PadChest dataset reader (PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv and its PNGs).

Each row's ``Labels`` cell is a Python-list string of label names
(``['COPD signs', 'air trapping']``), parsed with :func:`ast.literal_eval`.
PadChest writes the most specific terms it found; the reader codes those as
positives (1) and every other label as negative (0). Closure over the
hierarchy (a child positive makes its parents positive) is the core's job.

Splits ``train``, ``valid`` and ``test`` are a seeded patient-level partition
(PadChest publishes none); ``all`` is every row. A patient's side depends
only on its id and ``split_seed``, never on which rows the filters kept.
"""

from __future__ import annotations

import ast
import functools
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

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
from hmlc.hierarchy import LabelGraph, load_hierarchy
from hmlc.progress import say
from hmlc_padchest import FULL_HIERARCHY_FILE

__all__ = ["PadChestDataset", "LABELS_CSV", "normalise_name", "patient_partition"]

LABELS_CSV = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
REQUIRED_COLUMNS = ("ImageID", "ImageDir", "PatientID", "StudyID", "Projection")
METHODS = {"all": None, "physician": "Physician", "model": "RNN_model"}
FRONTAL = frozenset({"PA", "AP", "AP_HORIZONTAL"})
#: Roots whose labels are findings: ``normal`` listed beside one of them is dropped.
FINDING_ROOTS = ("radiological finding", "differential diagnosis")
LOCALIZATION_PREFIX = "loc "
_SPACES = re.compile(r"\s+")
_SHOWN = 8


def normalise_name(name: str) -> str:
    """A label name as compared: stripped, lower-case, inner whitespace collapsed to one space."""
    return _SPACES.sub(" ", name.strip().lower())


class PadChestDataset(DatasetReader):
    """PadChest's label CSV (.csv or .csv.gz) and the 16-bit PNGs it lists.

    ``data.root`` is the folder holding the CSV (or its parent); images are
    read from ``<root>/<ImageDir>/<ImageID>`` as the download unpacks, or from
    ``<root>/<ImageID>`` (a flat folder). Rows whose image is absent are left
    out, with a line saying how many were used. Parameters (``data.params``):

    - ``labels_csv``: the CSV's name in that folder, or an absolute path;
    - ``projections``: "all", or a comma-separated list of ``Projection``
      values to keep (``PA``, ``AP``, ``L``, ``AP_horizontal``, ...);
    - ``method``: "all", "physician" (labelled by radiologists) or "model";
    - ``valid_fraction``, ``test_fraction``, ``split_seed``: the patient split;
    - ``aliases``: ``{name as written: label}`` for spellings the hierarchy lacks;
    - ``labels_only``: read labels without looking for images.
    """

    name = "padchest"
    default_hierarchy = "padchest"
    default_blank = "negative"
    #: PadChest's protocol scores closed labels: a child positive makes its parents positive.
    default_eval_closure = True
    splits = ("train", "valid", "test", "all")
    description = "PadChest: labels CSV and 16-bit PNGs, projection and labelling-method filters, patient split"
    param_defaults: Mapping[str, Any] = MappingProxyType(
        {
            "labels_csv": LABELS_CSV,
            "projections": "all",
            "method": "all",
            "valid_fraction": 0.1,
            "test_fraction": 0.1,
            "split_seed": 0,
            "aliases": {},
            "labels_only": False,
        }
    )

    def resolve_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults updated by ``params``, with choices and ranges checked (ConfigError)."""
        p = super().resolve_params(params)
        if p["method"] not in METHODS:
            raise ConfigError(f"data.params.method must be one of {', '.join(METHODS)}, got {p['method']!r}")
        check_split_fractions(p)
        aliases = p["aliases"]
        if not isinstance(aliases, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
        ):
            raise ConfigError(f"data.params.aliases must map label names to label names, got {aliases!r}")
        p["aliases"] = dict(aliases)
        _projections(p["projections"])  # checked here, parsed in load: resolved params stay plain JSON values
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
        """One split; ``labels`` None or empty reads no label codes (prediction).

        ``graph`` (the resolved hierarchy) is accepted for the reader contract;
        positives are coded as written, so the reader does not need it.
        """
        self.check_split(split)
        p = self.resolve_params(params)
        csv_path, folder = _locate(root, p["labels_csv"])
        labels = tuple(labels or ())
        rows = _read_rows(csv_path)
        keep = np.ones(len(rows), dtype=bool)
        projections = _projections(p["projections"])
        if projections is not None:
            keep &= rows["Projection"].str.strip().str.upper().isin(projections).to_numpy()
        if METHODS[p["method"]] is not None:
            if "MethodLabel" not in rows:
                raise DataError(f"{csv_path} has no column 'MethodLabel'; set data.params.method=all")
            keep &= (rows["MethodLabel"].str.strip() == METHODS[p["method"]]).to_numpy()
        codes = None
        if labels:
            coded = _code_labels(rows, labels, p["aliases"], csv_path)
            keep &= coded.keep
            codes = coded.codes
        if split != "all":
            keep &= patient_partition(
                rows["PatientID"].tolist(), p["valid_fraction"], p["test_fraction"], p["split_seed"]
            ) == split
        paths = _image_paths(rows, folder)
        if not p["labels_only"]:
            keep = keep_present_images(
                keep, paths, dataset="padchest", split=split, csv_path=csv_path, folder=folder,
                layout="as <ImageDir>/<ImageID> or <ImageID>",
            )
        index = np.flatnonzero(keep)
        image_ids = rows["ImageID"].to_numpy(dtype=object)[index]
        kept_paths = [
            paths[i] if paths[i] is not None else str(folder / str(image_ids[j])) for j, i in enumerate(index)
        ]
        meta = pd.DataFrame(
            {
                "id": image_ids,
                "path": np.array(kept_paths, dtype=object),
                "patient": rows["PatientID"].to_numpy(dtype=object)[index],
                "study": rows["StudyID"].to_numpy(dtype=object)[index],
                "view": np.array([_view(v) for v in rows["Projection"].to_numpy()[index]], dtype=object),
            },
            dtype=object,
        )
        label_frame = pd.DataFrame(
            codes[index] if codes is not None else np.zeros((len(index), 0), dtype=np.float32), columns=list(labels)
        )
        table = LabelTable(pd.concat([meta, label_frame], axis=1), labels)
        return DatasetSplit(table, FileImageSource(table.frame["path"].tolist(), image_size))


class _Coded(NamedTuple):
    """Per row: whether it is kept (it names a known label, it is not an excluded image) and its codes."""

    keep: np.ndarray
    codes: np.ndarray


def _code_labels(rows: pd.DataFrame, labels: tuple[str, ...], aliases: dict[str, str], csv_path: Path) -> _Coded:
    """Codes (N, K) of ``labels`` from the Labels (and, for localizations, Localizations) column."""
    if "Labels" not in rows:
        raise DataError(f"{csv_path} has no column 'Labels'; is it PadChest's label CSV?")
    canonical = _canonical_names(tuple(sorted(aliases.items())))
    outside = [label for label in labels if label not in _full_labels()]
    if outside:
        raise DataError(
            f"dataset 'padchest' has no label(s) {outside[:_SHOWN]}; its labels are those of hierarchy "
            "'padchest-full' (use hierarchy=padchest, or a label map such as padchest->chexpert to compare)"
        )
    column = {label: k for k, label in enumerate(labels)}
    finding = _finding_labels()
    unknown: Counter = Counter()
    cells = [("Labels", "")]
    if "localization" in column:  # padchest-full: locations are in their own column, as "loc <name>"
        if "Localizations" not in rows:
            raise DataError(f"{csv_path} has no column 'Localizations' for the localization labels")
        cells.append(("Localizations", LOCALIZATION_PREFIX))
    n = len(rows)
    codes = np.zeros((n, len(labels)), dtype=np.float32)
    has_labels = np.zeros(n, dtype=bool)
    names_of: list[list[set[str]]] = []
    for name, prefix in cells:
        values, uniques = pd.factorize(rows[name], use_na_sentinel=False)
        counts = np.bincount(values, minlength=len(uniques))
        first_row = np.full(len(uniques), n)
        np.minimum.at(first_row, values, np.arange(n))
        parsed = []
        for j, text in enumerate(uniques):
            names = set()
            for raw in dict.fromkeys(v.strip() for v in _parse_list(text, name, csv_path, int(first_row[j]))):
                written = normalise_name(raw)
                if prefix and written.startswith(prefix):
                    written = written[len(prefix):]
                label = canonical.get(written)
                if label is None:
                    unknown[raw] += int(counts[j])
                else:
                    names.add(label)
            parsed.append(names)
        names_of.append([parsed[v] for v in values])
    normal_dropped = excluded = 0
    keep_excluded = "exclude" in column
    for i in range(n):
        names = names_of[0][i]
        if not names:
            continue
        if "exclude" in names and not keep_excluded:
            excluded += 1
            continue
        has_labels[i] = True
        if "normal" in names and names & finding:
            names = names - {"normal"}
            normal_dropped += 1
        for extra in names_of[1:]:
            names = names | extra[i]
        for label in names:
            k = column.get(label)
            if k is not None:
                codes[i, k] = 1.0
    if unknown:
        shown = ", ".join(f"{name!r} ({count})" for name, count in unknown.most_common(_SHOWN))
        more = f" and {len(unknown) - _SHOWN} more" if len(unknown) > _SHOWN else ""
        say(
            f"padchest: warning: {len(unknown)} label names in {csv_path.name} are not in PadChest's hierarchy "
            f"and were ignored (rows): {shown}{more}; map them with data.params.aliases"
        )
    skipped = n - int(has_labels.sum()) - excluded
    notes = [f"{skipped} rows without a known label skipped"] if skipped else []
    notes += [f"{excluded} rows labelled 'exclude' skipped"] if excluded else []
    notes += [f"'normal' dropped beside a finding in {normal_dropped} rows"] if normal_dropped else []
    if notes:
        say("padchest: " + "; ".join(notes))
    return _Coded(has_labels, codes)


def _parse_list(text: Any, column: str, csv_path: Path, row: int) -> list[str]:
    """The names of one cell: a Python-list string of strings, or blank (no names)."""
    if not isinstance(text, str) or not text.strip() or text.strip().lower() == "nan":
        return []
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise DataError(
            f"{csv_path}: column {column!r} on data row {row + 1} holds {text[:80]!r}, "
            "not a list of label names such as ['COPD signs', 'air trapping']"
        )
    return [v for v in value if v.strip()]


@functools.lru_cache(maxsize=4)
def _canonical_names(aliases: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Normalised name -> the hierarchy's label, for every label of PadChest's full tree and each alias."""
    names = {normalise_name(label): label for label in _full_graph().labels}
    for written, label in aliases:
        target = names.get(normalise_name(label))
        if target is None:
            raise ConfigError(f"data.params.aliases maps {written!r} to {label!r}, which is not a PadChest label")
        names[normalise_name(written)] = target
    return names


@functools.lru_cache(maxsize=1)
def _full_graph() -> LabelGraph:
    """The shipped padchest-full hierarchy: every label PadChest's CSV can name."""
    return load_hierarchy(str(FULL_HIERARCHY_FILE))


def _full_labels() -> frozenset[str]:
    return frozenset(_full_graph().labels)


@functools.lru_cache(maxsize=1)
def _finding_labels() -> frozenset[str]:
    full = _full_graph()
    return frozenset(label for root in FINDING_ROOTS for label in (root, *full.descendants(root)))


def _read_rows(csv_path: Path) -> pd.DataFrame:
    """The columns the reader uses, as strings (blank cells as "")."""
    try:
        header = list(pd.read_csv(csv_path, nrows=0).columns)
    except (OSError, ValueError, EOFError) as exc:
        raise label_file_error(csv_path, exc) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{csv_path} has no column(s) {missing}; is it PadChest's label CSV? Its columns: {header}")
    wanted = [c for c in (*REQUIRED_COLUMNS, "MethodLabel", "Labels", "Localizations") if c in header]
    try:
        rows = pd.read_csv(csv_path, usecols=wanted, dtype=str, keep_default_na=False)
    except (OSError, ValueError, EOFError) as exc:
        raise label_file_error(csv_path, exc) from None
    blank = rows["ImageID"].str.strip() == ""
    if blank.any():
        raise DataError(f"{csv_path}: data row {int(np.argmax(blank.to_numpy())) + 1} has no ImageID")
    return rows


def _image_paths(rows: pd.DataFrame, folder: Path) -> list[str | None]:
    """Per row, ``<folder>/<ImageDir>/<ImageID>`` or ``<folder>/<ImageID>`` when that file exists, else None."""
    listings: dict[str, frozenset[str]] = {}

    def listing(sub: str) -> frozenset[str]:
        if sub not in listings:
            try:
                listings[sub] = frozenset(os.listdir(folder / sub))
            except OSError:
                listings[sub] = frozenset()
        return listings[sub]

    out: list[str | None] = []
    for directory, image in zip(rows["ImageDir"].tolist(), rows["ImageID"].tolist()):
        directory = directory.strip()
        if directory and image in listing(directory):
            out.append(str(folder / directory / image))
        elif image in listing(""):
            out.append(str(folder / image))
        else:
            out.append(None)
    return out


def _projections(value: str) -> frozenset[str] | None:
    """The upper-cased projections to keep, or None for all."""
    items = [v.strip().upper() for v in str(value).split(",") if v.strip()]
    if not items:
        raise ConfigError("data.params.projections must be 'all' or a comma-separated list such as 'PA,AP'")
    return None if items == ["ALL"] else frozenset(items)


def _view(projection: str) -> str:
    """The core's view name of a PadChest projection: frontal, lateral or the projection itself."""
    value = str(projection).strip().upper()
    return "frontal" if value in FRONTAL else "lateral" if value == "L" else value.lower() or "unknown"


def _locate(root: Path | None, csv_name: str) -> tuple[Path, Path]:
    """(label CSV, folder the images are under)."""
    given = Path(csv_name).expanduser()
    if given.is_absolute():
        if not given.is_file():
            raise DataError(f"label file {given} does not exist; fix data.params.labels_csv")
        return given, Path(root).expanduser() if root is not None else given.parent
    if root is None:
        raise ConfigError(f"dataset 'padchest' reads files: set data.root to the folder holding {csv_name}")
    root = Path(root).expanduser()
    names = [csv_name] if csv_name.endswith(".gz") else [csv_name, csv_name + ".gz"]
    return dataset_file(root, names)

