"""Reading the files ``hmlc evaluate`` speaks and joining them by id.

Predictions CSV: an id column (``Study`` or ``Path``) and one probability
column per label, named as the label. Labels CSV: the same id column and one
column per label holding 1 / 0 / -1 / blank (other columns are ignored).
Radiologists: a folder of labels CSVs, one per reader (reader = file stem),
values 1 / 0 only. Columns are always matched by name, never by position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hmlc.data.table import read_label_csv
from hmlc.errors import DataError
from hmlc.hierarchy import LabelGraph

__all__ = [
    "ID_COLUMNS",
    "CHEXPERT5",
    "IdFrame",
    "StudyAggregation",
    "TruthClosure",
    "EvaluationData",
    "close_ground_truth",
    "ground_truth_by_study",
    "read_predictions",
    "read_ground_truth",
    "read_readers",
    "load_evaluation_data",
    "resolve_label_subset",
]

#: Id columns, in order of preference when a file has both.
ID_COLUMNS: tuple[str, ...] = ("Study", "Path")

#: The five CheXpert competition labels (``--labels-subset chexpert5``).
CHEXPERT5: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")

_SUBSETS: dict[str, tuple[str, ...]] = {"chexpert5": CHEXPERT5}


@dataclass(frozen=True)
class IdFrame:
    """Rows of one file keyed by its id column, with one float column per label (file order)."""

    source: Path
    id_column: str
    ids: np.ndarray  # (N,) object array of str, unique
    labels: tuple[str, ...]
    values: np.ndarray  # (N, K) float64

    def rows_for(self, ids: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """Values at ``ids`` (all present) for ``labels``; NaN columns for labels this file lacks."""
        position = pd.Index(self.ids).get_indexer(ids)
        if (position < 0).any():
            missing = ids[position < 0]
            raise DataError(
                f"{self.source} lacks {len(missing)} of the {len(ids)} evaluated ids "
                f"(first: {missing[0]!r}); it must cover every id of the predictions and labels"
            )
        out = np.full((len(ids), len(labels)), np.nan)
        for k, label in enumerate(labels):
            if label in self.labels:
                out[:, k] = self.values[position, self.labels.index(label)]
        return out


@dataclass(frozen=True)
class StudyAggregation:
    """How image-level labels became study-level labels (predictions keyed by Study, labels by Path)."""

    rule: str  # "max": a study is positive if any of its images is
    images: int  # rows of the labels file
    studies: int  # the studies they form


@dataclass(frozen=True)
class TruthClosure:
    """The ground truth closed over a hierarchy (a positive child makes every ancestor positive)."""

    hierarchy: str
    changed: dict[str, int]  # evaluated label -> codes closure changed (rows of the labels file)

    @property
    def codes_changed(self) -> int:
        return sum(self.changed.values())


@dataclass(frozen=True)
class EvaluationData:
    """Everything the metrics need, joined by id: row i of every array is ``ids[i]``."""

    id_column: str
    ids: np.ndarray  # (n,) str, sorted
    labels: tuple[str, ...]  # evaluated labels
    codes: np.ndarray  # (n, K) raw codes 1 / 0 / -1 / NaN
    probs: np.ndarray  # (n, K) predicted probabilities
    prediction_labels: tuple[str, ...]  # every label column of the predictions file
    prediction_probs: np.ndarray  # (n, Kp): all of them, for the coherence rate
    readers: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n, K) 1 / 0, NaN: label not read
    compare: np.ndarray | None = None  # (n, K) probabilities of --compare, NaN columns: label absent
    missing: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what a user should know (printed on stderr)
    study_aggregation: StudyAggregation | None = None
    closure: TruthClosure | None = None


def _not_utf8(path: Path, what: str, exc: UnicodeDecodeError) -> DataError:
    """The error for a CSV that is not UTF-8 text (e.g. saved as Latin-1 by a spreadsheet)."""
    byte = exc.object[exc.start : exc.start + 1].hex() if isinstance(exc.object, bytes) else ""
    shown = f" (byte 0x{byte})" if byte else ""
    return DataError(f"{what} file {path} is not valid UTF-8{shown}; save it as UTF-8")


def _header(path: Path, what: str) -> list[str]:
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise DataError(f"{what} file {path} {problem}")
    try:
        first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, what, exc) from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read {what} file {path}: {' '.join(str(exc).split())}") from None
    header = [str(c) for c in first.iloc[0].tolist()] if len(first) else []
    unnamed = [i for i, c in enumerate(header) if not c.strip()]
    if unnamed:
        raise DataError(f"{path}: column {unnamed[0] + 1} of the header has no name; name every column")
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise DataError(f"{path} has the column {twice[0]!r} twice; name each column once")
    return header


def _id_column(path: Path, header: list[str], wanted: str | None) -> str:
    if wanted is not None:
        if wanted not in header:
            present = [c for c in ID_COLUMNS if c in header]
            has = f"it has {present[0]!r}" if present else "it has neither 'Study' nor 'Path'"
            raise DataError(
                f"{path} has no {wanted!r} column, the id column of the predictions ({has}); "
                "all files must share one id column, Study or Path"
            )
        return wanted
    for name in ID_COLUMNS:
        if name in header:
            return name
    raise DataError(
        f"{path} has no id column: expected 'Study' (study level) or 'Path' (image level); "
        f"its columns are: {', '.join(header[:20])}"
    )


def _unique_ids(path: Path, ids: np.ndarray) -> None:
    duplicated = pd.Index(ids).duplicated()
    if duplicated.any():
        raise DataError(f"{path} lists id {ids[duplicated][0]!r} twice; ids must be unique")


def read_predictions(path: str | Path, id_column: str | None = None, what: str = "predictions") -> IdFrame:
    """Read a predictions CSV: the id column and every other column as probabilities in [0, 1]."""
    path = Path(path)
    header = _header(path, what)
    id_column = _id_column(path, header, id_column)
    label_columns = [c for c in header if c not in ID_COLUMNS]
    if not label_columns:
        raise DataError(f"{path} has no probability columns; give one column per label beside {id_column!r}")
    try:
        text = pd.read_csv(path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, what, exc) from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read {what} file {path}: {' '.join(str(exc).split())}") from None
    ids = text[id_column].to_numpy(dtype=object)
    empty = ids == ""
    if empty.any():
        raise DataError(f"{path}: column {id_column!r} is empty on data row {int(np.flatnonzero(empty)[0]) + 1}")
    _unique_ids(path, ids)
    values = np.empty((len(text), len(label_columns)))
    for k, column in enumerate(label_columns):
        raw = text[column]
        numbers = pd.to_numeric(raw.where(raw != "", None), errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(numbers) | (numbers < 0) | (numbers > 1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            shown = f"holds {raw.iloc[row]!r}" if raw.iloc[row] != "" else "is blank"
            raise DataError(
                f"{path}: column {column!r} {shown} on data row {row + 1}; "
                "predictions must be probabilities between 0 and 1"
            )
        values[:, k] = numbers
    return IdFrame(path, id_column, ids, tuple(label_columns), values)


def read_ground_truth(
    path: str | Path, id_column: str, labels: Sequence[str], what: str = "labels", binary: bool = False
) -> IdFrame:
    """Read the id column and those of ``labels`` the file has (1 / 0 / -1 / blank; 1 / 0 if ``binary``)."""
    path = Path(path)
    header = _header(path, what)
    _id_column(path, header, id_column)
    present = [label for label in labels if label in header]
    try:
        frame = read_label_csv(path, present, id_column=id_column)
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, what, exc) from None
    ids = frame[id_column].to_numpy(dtype=object)
    _unique_ids(path, ids)
    values = frame[present].to_numpy(dtype=float) if present else np.empty((len(ids), 0))
    if binary:
        bad = ~np.isin(values, (0.0, 1.0))
        if bad.any():
            row, col = np.argwhere(bad)[0]
            shown = "a blank" if np.isnan(values[row, col]) else f"{values[row, col]:g}"
            raise DataError(
                f"{path}: column {present[col]!r} holds {shown} on data row {row + 1}; "
                "a reader's file must hold 1 or 0 for every id and label it has"
            )
    return IdFrame(path, id_column, ids, tuple(present), values)


def read_readers(folder: str | Path, id_column: str, labels: Sequence[str]) -> dict[str, IdFrame]:
    """One binary labels CSV per reader in ``folder`` (``*.csv``, ``*.csv.gz``), by reader name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"radiologists folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith((".csv", ".csv.gz")))
    if not files:
        raise DataError(f"radiologists folder {folder} holds no .csv files; give one labels CSV per reader")
    readers: dict[str, IdFrame] = {}
    for file in files:
        name = file.name.removesuffix(".gz").removesuffix(".csv")
        if name in readers:
            raise DataError(f"two files in {folder} are both reader {name!r}; keep one of them")
        reads = read_ground_truth(file, id_column, labels, what="radiologist", binary=True)
        if not reads.labels:
            raise DataError(f"radiologist file {file} has none of the evaluated labels ({', '.join(labels)})")
        readers[name] = reads
    return readers


def resolve_label_subset(subset: str | None, available: Sequence[str]) -> tuple[str, ...]:
    """The labels to evaluate: ``available`` (default), a named subset, or ``A,B,...``."""
    if subset is None:
        return tuple(available)
    names = _SUBSETS.get(subset) or tuple(s.strip() for s in subset.split(",") if s.strip())
    if not names:
        raise DataError(f"--labels-subset {subset!r} names no label; give chexpert5 or A,B,...")
    unknown = [n for n in names if n not in available]
    if unknown:
        raise DataError(
            f"--labels-subset: {', '.join(map(repr, unknown))} not in both predictions and labels; "
            f"available: {', '.join(available)}"
        )
    if len(set(names)) != len(names):
        raise DataError(f"--labels-subset {subset!r} names a label twice")
    return tuple(names)


def close_ground_truth(truth: IdFrame, graph: LabelGraph) -> tuple[IdFrame, dict[str, int]]:
    """``truth`` with every ancestor (in ``graph``) of a positive label made positive.

    Columns of labels outside the graph are kept as they are; graph labels the
    file lacks carry positives through (blank otherwise) but are not added.
    Returns the closed frame and, per column of ``truth``, how many codes changed.
    """
    inside = [k for k, label in enumerate(truth.labels) if label in graph]
    codes = np.full((len(truth.ids), len(graph)), np.nan)
    positions = [graph.index(truth.labels[k]) for k in inside]
    codes[:, positions] = truth.values[:, inside]
    closed = graph.closure(codes).codes
    values = truth.values.copy()
    values[:, inside] = closed[:, positions]
    before, after = truth.values, values
    differs = ~((before == after) | (np.isnan(before) & np.isnan(after)))
    changed = {label: int(n) for label, n in zip(truth.labels, differs.sum(axis=0))}
    return IdFrame(truth.source, truth.id_column, truth.ids, truth.labels, values), changed


def ground_truth_by_study(truth: IdFrame) -> IdFrame:
    """Image-level ``truth`` (ids are image paths) as one row per study, the maximum code of its images.

    The study of a path is its folder up to ``studyN`` (``hmlc.data.datasets.patients_and_studies``).
    The maximum ranks 1 > 0 > -1 and ignores blanks: a study is positive if any of its images is,
    negative if none is positive and one is negative, blank if all are blank.
    """
    from hmlc.data.datasets import patients_and_studies

    _, studies = patients_and_studies([str(v) for v in truth.ids])
    frame = pd.DataFrame(truth.values, columns=list(truth.labels))
    frame.insert(0, "Study", studies)
    by_study = frame.groupby("Study", sort=False)[list(truth.labels)].max()
    return IdFrame(
        truth.source, "Study", by_study.index.to_numpy(dtype=object), truth.labels,
        by_study.to_numpy(dtype=float).reshape(len(by_study), len(truth.labels)),
    )


def load_evaluation_data(
    predictions: str | Path,
    labels: str | Path,
    radiologists: str | Path | None = None,
    compare: str | Path | None = None,
    subset: str | None = None,
    closure: LabelGraph | None = None,
) -> EvaluationData:
    """Read and join the files of ``hmlc evaluate``; rows are the ids present in both P and L.

    Predictions keyed by ``Study`` against labels keyed only by ``Path`` are joined by study:
    the labels are aggregated per study first (:func:`ground_truth_by_study`). With
    ``closure``, the labels are closed over that hierarchy (:func:`close_ground_truth`),
    image by image, before anything else.
    """
    pred_path, labels_path = Path(predictions), Path(labels)
    pred_header, truth_header = _header(pred_path, "predictions"), _header(labels_path, "labels")
    id_column = _id_column(pred_path, pred_header, None)
    shared_ids = [c for c in ID_COLUMNS if c in pred_header and c in truth_header]
    by_study = not shared_ids and id_column == "Study" and "Path" in truth_header
    truth_id = "Path" if by_study else _id_column(labels_path, truth_header, shared_ids[0] if shared_ids else id_column)
    pred = read_predictions(pred_path, "Study" if by_study else truth_id)
    wanted = list(pred.labels)
    if closure is not None:
        wanted += [label for label in closure.labels if label not in pred.labels]
    truth = read_ground_truth(labels_path, truth_id, wanted)
    closed: TruthClosure | None = None
    if closure is not None:
        truth, changed = close_ground_truth(truth, closure)
        closed = TruthClosure(closure.name or "hierarchy", changed)
    aggregation: StudyAggregation | None = None
    if by_study:
        images = len(truth.ids)
        truth = ground_truth_by_study(truth)
        aggregation = StudyAggregation("max", images, len(truth.ids))
    notes: list[str] = []
    shared = [label for label in pred.labels if label in truth.labels]
    if not shared:
        raise DataError(
            f"no label column of {pred.source} is in {truth.source}; "
            f"predictions have: {', '.join(pred.labels[:14])}"
        )
    chosen = resolve_label_subset(subset, shared)
    unmatched = [label for label in pred.labels if label not in truth.labels]
    if unmatched and subset is None:
        notes.append(f"not evaluated (no such column in {truth.source.name}): {', '.join(unmatched)}")

    in_truth = pd.Index(truth.ids)
    pred_rows = np.flatnonzero(pd.Index(pred.ids).isin(in_truth))
    # Rows sorted by id: the bootstrap draws row numbers, so its intervals must not depend on file order.
    pred_rows = pred_rows[np.argsort(pred.ids[pred_rows].astype(str), kind="stable")]
    ids = pred.ids[pred_rows]
    missing = {
        "predictions_not_in_labels": int(len(pred.ids) - len(ids)),
        "labels_not_in_predictions": int(len(truth.ids) - len(ids)),
    }
    if not len(ids):
        def first(frame: IdFrame) -> str:
            return f"{frame.ids[0]!r}, ..." if len(frame.ids) else "no rows"

        derived = " (studies derived from its Path column)" if by_study else ""
        raise DataError(
            f"no {pred.id_column} id of {pred.source} ({first(pred)}) is in {truth.source}{derived} "
            f"({first(truth)}); the files must describe the same samples"
        )
    if missing["predictions_not_in_labels"]:
        notes.append(f"{missing['predictions_not_in_labels']} ids of {pred.source.name} are not in {truth.source.name}")
    if missing["labels_not_in_predictions"]:
        notes.append(f"{missing['labels_not_in_predictions']} ids of {truth.source.name} are not in {pred.source.name}")

    codes = truth.rows_for(ids, chosen)
    columns = np.array([pred.labels.index(label) for label in chosen], dtype=np.int64)
    probs = pred.values[np.ix_(pred_rows, columns)]
    readers: dict[str, np.ndarray] = {}
    if radiologists is not None:
        for name, reads in read_readers(radiologists, pred.id_column, chosen).items():
            absent = [label for label in chosen if label not in reads.labels]
            if absent:
                notes.append(f"reader {name} has no column for {', '.join(absent)}")
            readers[name] = reads.rows_for(ids, chosen)
    compared = None
    if compare is not None:
        other = read_predictions(compare, id_column=pred.id_column, what="compared predictions")
        absent = [label for label in chosen if label not in other.labels]
        if absent:
            notes.append(f"{other.source.name} has no column for {', '.join(absent)}: no DeLong test there")
        compared = other.rows_for(ids, chosen)
    return EvaluationData(
        id_column=pred.id_column,
        ids=ids,
        labels=chosen,
        codes=codes,
        probs=probs,
        prediction_labels=pred.labels,
        prediction_probs=pred.values[pred_rows],
        readers=readers,
        compare=compared,
        missing=missing,
        notes=tuple(notes),
        study_aggregation=aggregation,
        closure=None if closed is None else TruthClosure(
            closed.hierarchy, {label: closed.changed.get(label, 0) for label in chosen}
        ),
    )
