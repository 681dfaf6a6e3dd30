"""Label tables: one row per image with its metadata and raw label codes.

Raw codes are floats: 1 positive, 0 negative, -1 uncertain, NaN blank (not
mentioned). A :class:`LabelTable` keeps them in a pandas frame next to the
image id, path, patient, study and view, in the order of ``labels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hmlc.errors import DataError

__all__ = ["LabelTable", "read_label_csv", "META_COLUMNS"]

#: The metadata columns every label table starts with, in this order.
META_COLUMNS: tuple[str, ...] = ("id", "path", "patient", "study", "view")

_ALLOWED_CODES = np.array([-1.0, 0.0, 1.0], dtype=np.float32)


@dataclass(frozen=True)
class LabelTable:
    """Images and their raw label codes.

    ``frame`` has the columns ``id`` (unique str), ``path`` (str or None),
    ``patient``, ``study``, ``view`` and then one float column per label of
    ``labels``, in that order, holding 1 / 0 / -1 / NaN.
    """

    frame: pd.DataFrame
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        expected = list(META_COLUMNS) + list(self.labels)
        if list(self.frame.columns) != expected:
            raise DataError(
                f"label table columns are {list(self.frame.columns)}; expected {expected}"
            )
        if len(set(self.labels)) != len(self.labels):
            raise DataError(f"label table lists a label twice: {list(self.labels)}")
        ids = self.frame["id"]
        if ids.duplicated().any():
            first = ids[ids.duplicated()].iloc[0]
            raise DataError(f"label table has duplicate id {first!r}; ids must be unique")

    @classmethod
    def from_codes(
        cls,
        ids: Sequence[str],
        codes: np.ndarray,
        labels: Sequence[str],
        *,
        paths: Sequence[str | None] | None = None,
        patients: Sequence[str] | None = None,
        studies: Sequence[str] | None = None,
        views: Sequence[str] | str = "frontal",
    ) -> LabelTable:
        """Build a table from ids and an (N, K) code array.

        Missing patients default to the ids (one image per patient), missing
        studies to the ids, missing paths to None.
        """
        ids = [str(i) for i in ids]
        n = len(ids)
        codes = np.asarray(codes, dtype=np.float32)
        if codes.shape != (n, len(labels)):
            raise DataError(f"codes have shape {codes.shape}; expected ({n}, {len(labels)})")
        meta = {
            "id": ids,
            "path": list(paths) if paths is not None else [None] * n,
            "patient": [str(p) for p in patients] if patients is not None else ids,
            "study": [str(s) for s in studies] if studies is not None else ids,
            "view": [views] * n if isinstance(views, str) else [str(v) for v in views],
        }
        for key, values in meta.items():
            if len(values) != n:
                raise DataError(f"{key} has {len(values)} entries for {n} ids")
        frame = pd.DataFrame(meta, dtype=object)
        code_frame = pd.DataFrame(codes, columns=list(labels))
        return cls(pd.concat([frame, code_frame], axis=1), tuple(labels))

    def __len__(self) -> int:
        return len(self.frame)

    def codes(self) -> np.ndarray:
        """Raw codes as a float32 (N, K) array in label order."""
        return self.frame[list(self.labels)].to_numpy(dtype=np.float32, copy=True)

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabelTable:
        """Rows at ``indices`` (positions, or a boolean mask), renumbered from 0."""
        frame = self.frame.iloc[np.asarray(indices)].reset_index(drop=True)
        return LabelTable(frame, self.labels)

    def with_codes(self, codes: np.ndarray) -> LabelTable:
        """A new table with the same metadata and ``codes`` (N, K) instead."""
        codes = np.asarray(codes, dtype=np.float32)
        if codes.shape != (len(self), len(self.labels)):
            raise DataError(
                f"codes have shape {codes.shape}; expected ({len(self)}, {len(self.labels)})"
            )
        frame = self.frame[list(META_COLUMNS)].copy()
        frame[list(self.labels)] = codes
        return LabelTable(frame, self.labels)


def read_label_csv(
    path: str | Path,
    labels: Sequence[str],
    id_column: str = "Path",
    *,
    extra_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """Read the id column and raw codes of ``labels`` from a .csv or .csv.gz.

    Values may be written ``1``/``0``/``-1``, ``1.0``/``0.0``/``-1.0`` or left
    blank (NaN). Returns a frame with ``id_column`` (str), then ``extra_columns``
    (str, read as written) and one float32 column per label, in file order of
    rows. Anything else raises :class:`DataError`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label file {path} does not exist")
    labels = list(labels)
    try:
        header = list(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError, EOFError) as exc:
        raise label_file_error(path, exc) from None
    found = ", ".join(header)
    for column in [id_column, *extra_columns, *labels]:
        if column not in header:
            raise DataError(f"{path} has no column {column!r}; its columns are: {found}")
    text_columns = [id_column, *(c for c in extra_columns if c != id_column)]
    dtype = {c: str for c in text_columns} | {c: np.float32 for c in labels}
    try:
        frame = pd.read_csv(
            path,
            usecols=text_columns + labels,
            dtype=dtype,
            keep_default_na=False,
            na_values={c: [""] for c in labels},
        )
    except UnicodeDecodeError as exc:
        raise label_file_error(path, exc) from None
    except ValueError as exc:
        _raise_first_bad_value(path, labels)
        raise DataError(f"cannot parse label file {path}: {exc}") from None
    frame = frame[text_columns + labels]
    values = frame[labels].to_numpy()
    bad = ~(np.isnan(values) | np.isin(values, _ALLOWED_CODES))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: column {labels[col]!r} holds {values[row, col]:g} on data row {row + 1}; "
            "label values must be 1, 0, -1 or blank"
        )
    if frame[id_column].isna().any():
        row = int(np.flatnonzero(frame[id_column].isna().to_numpy())[0])
        raise DataError(f"{path}: column {id_column!r} is empty on data row {row + 1}")
    return frame


def label_file_error(path: str | Path, exc: BaseException) -> DataError:
    """The one-line error for a labels CSV that cannot be read: not UTF-8 (a spreadsheet's Latin-1), or else."""
    if isinstance(exc, UnicodeDecodeError):
        return DataError(f"label file {path} is not valid UTF-8; save it as UTF-8 (in a spreadsheet program: CSV UTF-8)")
    return DataError(f"cannot read label file {path}: {exc}")


def _raise_first_bad_value(path: Path, labels: list[str]) -> None:
    """Find the first label value that is not a number and raise a DataError naming it."""
    try:
        text = pd.read_csv(path, usecols=labels, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as exc:
        raise label_file_error(path, exc) from None
    except ValueError:  # not even text columns (an unclosed quote): the caller reports the parse error
        return
    for column in labels:
        numeric = pd.to_numeric(text[column].replace("", np.nan), errors="coerce")
        bad = numeric.isna() & (text[column] != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: column {column!r} holds {text[column].iloc[row]!r} on data row {row + 1}; "
                "label values must be 1, 0, -1 or blank"
            )
