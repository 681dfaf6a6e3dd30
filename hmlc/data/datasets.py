"""Dataset readers: turn a dataset on disk (or in memory) into label tables and samples.

A reader is registered under a name by a plugin's ``hmlc_register_datasets``
hook; ``load`` returns one split as a :class:`DatasetSplit` whose samples are
images (``input_kind = "image"``) or feature vectors (``"features"``).
Readers are stateless: everything ``load`` needs arrives as arguments. The
core calls readers through :func:`read_split`, which also serves readers
written before ``load`` took a ``graph``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hmlc.data.features import INPUT_KINDS, FeatureSource
from hmlc.data.images import FileImageSource, ImageSource, missing_files
from hmlc.data.table import LabelTable, label_file_error, read_label_csv
from hmlc.errors import ConfigError, DataError, PluginError
from hmlc.hierarchy.graph import LabelGraph

__all__ = [
    "DatasetSplit",
    "DatasetReader",
    "read_split",
    "input_kind_of",
    "CsvDataset",
    "register_builtin_datasets",
    "dataset_folder",
    "dataset_file",
    "keep_present_images",
    "resolve_image_paths",
    "patients_and_studies",
    "patient_partition",
    "check_split_fractions",
]

_VIEW_COLUMN = "Frontal/Lateral"
_PATIENT = re.compile(r"(patient\d+)")
_STUDY = re.compile(r"^(.*?study\d+)(?:/|$)")


@dataclass
class DatasetSplit:
    """One split of a dataset: the label table and its samples, row for row.

    The samples are an :class:`~hmlc.data.images.ImageSource` or a
    :class:`~hmlc.data.features.FeatureSource`; ``inputs`` names them
    whatever they are (``images`` is the original name, kept).
    """

    table: LabelTable
    images: ImageSource | FeatureSource

    def __post_init__(self) -> None:
        if len(self.table) != len(self.images):
            raise DataError(f"split has {len(self.table)} label rows but {len(self.images)} samples")

    @property
    def inputs(self) -> ImageSource | FeatureSource:
        """The samples (images or feature vectors), row for row with the table."""
        return self.images

    @property
    def input_kind(self) -> str:
        """"features" for feature vectors, else "image"."""
        return input_kind_of(self.images)


def input_kind_of(source: object) -> str:
    """"features" for a :class:`FeatureSource`, else "image"."""
    return "features" if isinstance(source, FeatureSource) else "image"


class DatasetReader(ABC):
    """Reads the splits of one dataset.

    Subclasses set the class attributes and implement :meth:`load`.
    ``param_defaults`` lists every accepted key of ``params`` with its
    default; :meth:`resolve_params` checks a user's params against it.
    """

    name: str = ""
    #: A registered hierarchy name, or "" when the user must give one.
    default_hierarchy: str = ""
    #: How blanks are read by default: "negative" (CheXpert) or "ignore".
    default_blank: str = "negative"
    splits: tuple[str, ...] = ("train", "valid")
    description: str = ""
    param_defaults: Mapping[str, Any] = {}
    #: What a sample is: "image" (an ImageSource) or "features" (a FeatureSource of float vectors).
    input_kind: str = "image"
    #: Whether the dataset's protocol scores labels closed over the hierarchy (a positive child
    #: makes its ancestors positive): True for PadChest, which writes only the most specific term;
    #: False for CheXpert, whose protocol scores the labels as given. Training's validation and
    #: ``hmlc evaluate --dataset`` follow it.
    default_eval_closure: bool = False

    @abstractmethod
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
        """Load ``split`` with the codes of ``labels`` in that order.

        ``labels=None`` loads the split for prediction: the reader returns a
        table without label columns (or may ignore the labels it has).
        ``graph`` is the hierarchy the experiment resolved (None when there is
        none, as for prediction). Images come square at ``image_size``, or at
        their native size when it is None (hmlc then preprocesses and resizes
        them itself); a reader whose images have no native size (generated
        ones) uses its default; readers of feature vectors ignore it.
        Missing image files are reported here, before any is decoded.
        """

    def data_hierarchy(self, *, root: Path | None, params: Mapping[str, Any]) -> LabelGraph | None:
        """A hierarchy that comes with the data (e.g. in a file's header); None when there is none.

        Used when neither ``hierarchy`` nor :attr:`default_hierarchy` is set.
        """
        return None

    def score_exclude(self, graph: LabelGraph) -> tuple[str, ...]:
        """Labels of ``graph`` trained on but left out of every score (e.g. an artificial root)."""
        return ()

    def check_split(self, split: str) -> None:
        """Raise DataError unless ``split`` is one of :attr:`splits`."""
        if split not in self.splits:
            raise DataError(
                f"dataset {self.name!r} has no split {split!r}; its splits are: {', '.join(self.splits)}"
            )

    def resolve_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """``param_defaults`` updated by ``params``; unknown keys or wrong types raise ConfigError."""
        resolved = dict(self.param_defaults)
        for key, value in (params or {}).items():
            if key not in resolved:
                accepted = ", ".join(sorted(self.param_defaults)) or "none"
                raise ConfigError(
                    f"dataset {self.name!r} has no parameter {key!r} (data.params.{key}); "
                    f"accepted: {accepted}"
                )
            resolved[key] = self._checked(key, value, resolved[key])
        return resolved

    def _checked(self, key: str, value: Any, default: Any) -> Any:
        if default is None or value is None:
            return value
        kind = type(default)
        ok = {
            bool: lambda v: isinstance(v, bool),
            int: lambda v: isinstance(v, int) and not isinstance(v, bool),
            float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            str: lambda v: isinstance(v, (str, Path)),
        }.get(kind, lambda v: True)
        if not ok(value):
            raise ConfigError(
                f"dataset {self.name!r}: data.params.{key} must be {kind.__name__}, got {value!r}"
            )
        return float(value) if kind is float else str(value) if kind is str else value


class CsvDataset(DatasetReader):
    """Any dataset laid out like CheXpert: a folder with train/valid CSVs and image paths.

    ``Path`` values start with the dataset folder's name
    (``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``) and
    resolve against the folder's parent; values without that prefix resolve
    against the folder itself, absolute values stay as they are.
    """

    name = "csv"
    default_hierarchy = ""
    default_blank = "negative"
    splits = ("train", "valid")
    description = "CSV labels in CheXpert's layout (Path column, 1/0/-1/blank codes) and image files"
    param_defaults = {
        "train_csv": "train.csv",
        "valid_csv": "valid.csv",
        "path_column": "Path",
        "frontal_only": False,
    }

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
        self.check_split(split)
        p = self.resolve_params(params)
        labels = list(labels or ())
        if root is None:
            raise ConfigError(
                f"dataset {self.name!r} reads files: set data.root to the folder holding "
                f"{p['train_csv']} and {p['valid_csv']} (or its parent)"
            )
        csv_name = p["train_csv"] if split == "train" else p["valid_csv"]
        folder = dataset_folder(Path(root), csv_name)
        csv_path = folder / csv_name
        column = p["path_column"]
        try:
            header = list(pd.read_csv(csv_path, nrows=0).columns)
        except (OSError, ValueError, EOFError) as exc:
            raise label_file_error(csv_path, exc) from None
        extra = [_VIEW_COLUMN] if _VIEW_COLUMN in header and column != _VIEW_COLUMN else []
        frame = read_label_csv(csv_path, labels, id_column=column, extra_columns=extra)
        values = frame[column]
        views = (
            frame[_VIEW_COLUMN].str.strip().str.lower().to_numpy(dtype=object)
            if extra
            else np.array([_view_from_name(v) for v in values], dtype=object)
        )
        if p["frontal_only"]:
            keep = views == "frontal"
            frame, values, views = frame[keep].reset_index(drop=True), values[keep].reset_index(drop=True), views[keep]
        paths = resolve_image_paths(values.tolist(), folder)
        missing = missing_files(paths)
        if missing:
            shown = ", ".join(missing[:3])
            raise DataError(
                f"{len(missing)} of {len(paths)} images listed in {csv_path} are missing "
                f"(first: {shown}); check data.root"
            )
        patients, studies = patients_and_studies(values.tolist())
        meta = pd.DataFrame(
            {"id": values.to_numpy(dtype=object), "path": paths, "patient": patients, "study": studies, "view": views},
            dtype=object,
        )
        codes = frame[list(labels)].reset_index(drop=True)
        table = LabelTable(pd.concat([meta, codes], axis=1), tuple(labels))
        return DatasetSplit(table, FileImageSource(paths, image_size))


@functools.lru_cache(maxsize=256)
def _takes_graph(load: Any) -> bool:
    """Whether a reader's ``load`` accepts ``graph`` (readers written before it existed do not)."""
    try:
        parameters = inspect.signature(load).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "graph" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def read_split(
    reader: DatasetReader,
    split: str,
    *,
    root: Path | None,
    params: Mapping[str, Any],
    image_size: int | None,
    labels: Sequence[str] | None,
    graph: LabelGraph | None = None,
) -> DatasetSplit:
    """``reader.load`` as the core calls it; checks what the reader returned.

    A reader whose ``load`` has no ``graph`` parameter is called without it,
    and with ``labels=()`` for ``labels=None`` (what such readers were given
    for prediction). The samples must be of the reader's ``input_kind``.
    """
    if _takes_graph(type(reader).load):
        loaded = reader.load(split, root=root, params=params, image_size=image_size, labels=labels, graph=graph)
    else:
        loaded = reader.load(
            split, root=root, params=params, image_size=image_size, labels=() if labels is None else labels
        )
    name = getattr(reader, "name", type(reader).__name__)
    if not isinstance(loaded, DatasetSplit):
        raise PluginError(f"dataset {name!r}: load() returned {type(loaded).__name__}, expected a DatasetSplit")
    declared = getattr(reader, "input_kind", "image")
    if declared not in INPUT_KINDS:
        raise PluginError(f"dataset {name!r}: input_kind {declared!r} is not one of {', '.join(INPUT_KINDS)}")
    if loaded.input_kind != declared:
        raise PluginError(
            f"dataset {name!r} declares input_kind {declared!r} but load() returned {loaded.input_kind} samples"
        )
    return loaded


def dataset_folder(root: Path, csv_name: str) -> Path:
    """The folder holding ``csv_name``: ``root`` itself or its only subfolder that has it."""
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a folder; set data.root to the dataset folder")
    if (root / csv_name).is_file():
        return root
    found = sorted(d for d in root.iterdir() if d.is_dir() and (d / csv_name).is_file())
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(str(d) for d in found)
        raise DataError(f"several folders under {root} hold {csv_name} ({names}); set data.root to one of them")
    raise DataError(f"no {csv_name} in {root} or its subfolders; set data.root to the folder holding it")


def dataset_file(root: Path, names: Sequence[str]) -> tuple[Path, Path]:
    """(file, its folder) for the first of ``names`` that :func:`dataset_folder` finds under ``root``.

    ``names`` lists the accepted spellings in order of preference (``train.csv``,
    ``train.csv.gz``); when none is found, the error for the first name is raised.
    """
    first_error: DataError | None = None
    for name in names:
        try:
            folder = dataset_folder(root, name)
        except DataError as error:
            first_error = first_error or error
            continue
        return folder / name, folder
    if first_error is None:
        raise ConfigError("no label file name given")
    raise first_error


def keep_present_images(
    keep: np.ndarray, paths: Sequence[str | None], *, dataset: str, split: str, csv_path: Path, folder: Path, layout: str
) -> np.ndarray:
    """``keep`` narrowed to the rows whose image was found (``paths[i]`` not None): a downloaded subset works.

    Says on stderr how many of the listed images are used; DataError when none is
    (``layout`` tells where images are looked for, e.g. "images/ or the folder itself").
    """
    import sys

    listed = int(keep.sum())
    present = np.array([path is not None for path in paths], dtype=bool)
    used = int((keep & present).sum())
    if listed and not used:
        raise DataError(
            f"none of the {listed} images of split {split!r} listed in {csv_path} is in {folder} "
            f"({layout}); check data.root, or set data.params.labels_only=true"
        )
    if used < listed:
        print(f"{dataset}: using {used} of {listed} images listed (the others are not in {folder})",
              file=sys.stderr, flush=True)
    return keep & present


def resolve_image_paths(values: Sequence[str], folder: Path) -> list[str]:
    """Absolute image paths for CSV path values (see :class:`CsvDataset`)."""
    prefix = folder.name + "/"
    parent, here = str(folder.parent), str(folder)
    out = []
    for v in values:
        v = v.replace("\\", "/")
        if v.startswith("/"):
            out.append(v)
        else:
            out.append(f"{parent}/{v}" if v.startswith(prefix) else f"{here}/{v}")
    return out


def patient_partition(
    patients: Sequence[str], valid_fraction: float, test_fraction: float, seed: int
) -> np.ndarray:
    """Per row, "train", "valid" or "test": a keyed hash of the row's patient and ``seed``.

    About ``test_fraction`` of the patients go to test and ``valid_fraction``
    to valid; every image of a patient lands on the same side, and a
    patient's side does not depend on the other rows (a filter that drops
    rows moves no patient), unlike a permutation of the patients present.
    """
    codes, uniques = pd.factorize(pd.Series(patients, dtype=object))
    draws = np.array(
        [int.from_bytes(hashlib.blake2b(f"{seed}/{u}".encode(), digest_size=8).digest(), "little") for u in uniques],
        dtype=np.float64,
    ) / 2.0**64
    side = np.where(draws < test_fraction, "test", np.where(draws < test_fraction + valid_fraction, "valid", "train"))
    return side[codes]


def check_split_fractions(params: Mapping[str, Any], keys: Sequence[str] = ("valid_fraction", "test_fraction")) -> None:
    """ConfigError unless each ``params[key]`` is in [0, 1) and together they leave rows for train."""
    for key in keys:
        if not 0.0 <= params[key] < 1.0:
            raise ConfigError(f"data.params.{key} must be in [0, 1), got {params[key]}")
    if sum(params[key] for key in keys) >= 1.0:
        raise ConfigError(
            f"data.params.{' + '.join(keys)} must be below 1 (train keeps the rest), "
            f"got {' + '.join(str(params[key]) for key in keys)}"
        )


def patients_and_studies(values: Sequence[str]) -> tuple[list[str], list[str]]:
    """Patient and study ids from image paths.

    ``patientNNNNN`` and the path up to ``studyN`` when present, else the
    grandparent folder's name and the parent folder's path.
    """
    patients, studies = [], []
    for v in values:
        v = v.replace("\\", "/")
        parent = v.rsplit("/", 1)[0] if "/" in v else ""
        m = _PATIENT.search(v)
        patients.append(m.group(1) if m else parent.rsplit("/", 1)[0].rsplit("/", 1)[-1])
        s = _STUDY.match(v)
        studies.append(s.group(1) if s else parent)
    return patients, studies


def _view_from_name(value: str) -> str:
    name = value.rsplit("/", 1)[-1].lower()
    return "frontal" if "frontal" in name else "lateral" if "lateral" in name else "unknown"


def register_builtin_datasets(register: Callable[[str, Any], None]) -> None:
    """Register the built-in readers (instances): "synthetic", "synthetic-vectors" and "csv"."""
    from hmlc.data.synthetic import SyntheticDataset, SyntheticVectorsDataset

    for reader in (SyntheticDataset(), SyntheticVectorsDataset(), CsvDataset()):
        register(reader.name, reader)
