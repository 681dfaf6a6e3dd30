"""ARFF files of hierarchical multi-label classification (Clus / C-HMCNN format).

A file has a header of ``@ATTRIBUTE`` lines (``numeric``/``real``/``integer``
or nominal ``{a,b,...}``) ending with one ``hierarchical`` attribute, then
``@DATA`` rows of comma-separated values whose last value lists the row's
labels separated by ``@``. The ``hierarchical`` attribute declares the
hierarchy in one of two forms:

* tree paths (FunCat): ``01,01/01,01/01/03``: every entry is a node named by
  its path, its parent is the path one step shorter, and the top-level
  entries hang under an added root node :data:`ROOT`;
* DAG edges (Gene Ontology): ``root/GO0003674,GO0003674/GO0003774``: every
  entry is one ``parent/child`` edge. The form is this one when every entry
  holds exactly one ``/``.

A row's label names a node and implies all its ancestors (a path implies its
prefixes), so the label matrix holds each listed node and its ancestors.
``?`` marks a missing value: NaN for a numeric feature; a nominal feature is
one-hot encoded over its header categories and a missing one is all zeros
(C-HMCNN's encoding) or all NaN. ``%`` starts a comment, files may be
gzipped (``.gz``), lines may end in ``\\r\\n``, values may be quoted with
``'`` or ``"`` (one kind per file). Sparse rows and string or date
attributes are refused with a clear error.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hmlc.errors import DataError

__all__ = [
    "ROOT",
    "Attribute",
    "ArffHeader",
    "HierarchicalArff",
    "read_header",
    "read_arff",
    "NOMINAL_MISSING",
]

#: The root node added above the top-level nodes of a tree (C-HMCNN's name).
ROOT = "root"
#: How a missing nominal value is encoded: "zeros" (all one-hot columns 0, C-HMCNN) or "nan".
NOMINAL_MISSING: tuple[str, ...] = ("zeros", "nan")

_NUMERIC_TYPES = {"numeric", "real", "integer"}
_ATTRIBUTE = re.compile(r"""^@attribute\s+('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S+)\s*(.*)$""", re.IGNORECASE)


@dataclass(frozen=True)
class Attribute:
    """One feature column: ``kind`` "numeric" or "nominal" (then ``categories`` from the header)."""

    name: str
    kind: str
    categories: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Its feature names after one-hot encoding (``name=value`` per category)."""
        if self.kind == "numeric":
            return (self.name,)
        return tuple(f"{self.name}={c}" for c in self.categories)


@dataclass(frozen=True)
class ArffHeader:
    """The header of a hierarchical ARFF file.

    ``labels`` are the hierarchy's nodes in order of first appearance (the
    added or given :data:`ROOT` first), ``edges`` its (parent, child) pairs,
    ``form`` "tree" or "dag", ``data_line`` the 1-based line of ``@DATA``.
    """

    path: Path
    relation: str
    attributes: tuple[Attribute, ...]
    class_name: str
    form: str
    labels: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    data_line: int

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the encoded feature columns (nominal ones one-hot)."""
        return tuple(c for a in self.attributes for c in a.columns)

    @property
    def declared(self) -> tuple[str, ...]:
        """The nodes the file declares (every label but an added root)."""
        return self.labels[1:] if self.form == "tree" else self.labels


@dataclass(frozen=True)
class HierarchicalArff:
    """A parsed file: encoded features (float32 (N, D), NaN missing), labels (uint8 (N, K)) and file lines."""

    header: ArffHeader
    features: np.ndarray
    labels: np.ndarray
    #: The 1-based line of each data row in the file.
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.features)


# ----------------------------------------------------------------- reading
def _open_text(path: Path) -> io.TextIOBase:
    """``path`` as text, gunzipped when it is gzip data (whatever its name), newlines normalised."""
    with open(path, "rb") as raw:
        magic = raw.read(2)
    binary = gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")
    return io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline=None)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    if not path.is_file():
        raise DataError(f"ARFF file {path} does not exist")
    try:
        with _open_text(path) as text:
            yield from enumerate(text, start=1)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read ARFF file {path}: {exc}") from None


def read_header(path: str | Path) -> ArffHeader:
    """Parse the header of ``path`` (plain or gzipped); stops reading at ``@DATA``."""
    path = Path(path)
    return _parse_header(path, _lines(path))


def _parse_header(path: Path, lines: Iterator[tuple[int, str]]) -> ArffHeader:
    attributes: list[Attribute] = []
    relation = ""
    hierarchy: tuple[str, int] | None = None
    for number, raw in lines:
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        lower = line.lower()
        if lower.startswith("@relation"):
            relation = _unquote(line[len("@relation") :].strip())
        elif lower.startswith("@attribute"):
            if hierarchy is not None:
                raise DataError(
                    f"{path}, line {number}: attribute after the hierarchical class attribute; "
                    "the class must be the last attribute"
                )
            name, kind, rest = _attribute(path, number, line)
            if kind == "hierarchical":
                hierarchy = (name, number)
                labels, edges, form = _hierarchy(path, number, rest)
            else:
                attributes.append(_feature(path, number, name, kind, rest))
        elif lower.startswith("@data"):
            if hierarchy is None:
                raise DataError(
                    f"{path}, line {number}: no 'hierarchical' class attribute before @DATA; "
                    "this is not a hierarchical multi-label ARFF file"
                )
            return ArffHeader(path, relation, tuple(attributes), hierarchy[0], form, labels, edges, number)
        else:
            raise DataError(f"{path}, line {number}: unexpected header line {line[:60]!r}")
    raise DataError(f"{path}: no @DATA line; the file is truncated or not an ARFF file")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace("\\" + value[0], value[0])
    return value


def _attribute(path: Path, number: int, line: str) -> tuple[str, str, str]:
    m = _ATTRIBUTE.match(line)
    if not m or not m.group(2):
        raise DataError(f"{path}, line {number}: cannot read attribute {line[:60]!r}; expected '@ATTRIBUTE name type'")
    name, spec = _unquote(m.group(1)), m.group(2).strip()
    if spec.startswith("{"):
        return name, "nominal", spec
    kind, _, rest = spec.partition(" ")
    return name, kind.lower(), rest.strip()


def _feature(path: Path, number: int, name: str, kind: str, spec: str) -> Attribute:
    if kind in _NUMERIC_TYPES:
        return Attribute(name, "numeric")
    if kind == "nominal":
        if not spec.endswith("}"):
            raise DataError(f"{path}, line {number}: nominal attribute {name!r} has no closing '}}'")
        categories = tuple(_unquote(c) for c in next(csv.reader([spec[1:-1]], skipinitialspace=True)))
        categories = tuple(c.strip() for c in categories)
        if not categories or len(set(categories)) != len(categories) or "" in categories:
            raise DataError(f"{path}, line {number}: nominal attribute {name!r} needs distinct, non-empty categories")
        return Attribute(name, "nominal", categories)
    raise DataError(
        f"{path}, line {number}: attribute {name!r} has type {kind!r}; "
        "only numeric, real, integer, nominal {...} and one hierarchical class are supported"
    )


def _hierarchy(path: Path, number: int, spec: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], str]:
    entries = [e.strip() for e in spec.split(",")]
    if not spec.strip() or any(not e for e in entries):
        raise DataError(f"{path}, line {number}: the hierarchical attribute lists an empty node or edge")
    where = f"{path}, line {number}"
    if all(e.count("/") == 1 for e in entries):
        edges = [tuple(e.split("/")) for e in entries]
        for parent, child in edges:
            if not parent or not child:
                raise DataError(f"{where}: edge {parent}/{child} names an empty node")
        labels = list(dict.fromkeys(x for e in edges for x in e))
        if ROOT in labels:  # the root first, as for trees
            labels.remove(ROOT)
            labels.insert(0, ROOT)
        return tuple(labels), tuple(edges), "dag"  # type: ignore[return-value]
    if ROOT in entries:
        raise DataError(f"{where}: a tree node is named {ROOT!r}, the name of the root hmlc adds; rename it")
    declared = set(entries)
    edges = []
    for entry in entries:
        parent = entry.rsplit("/", 1)[0] if "/" in entry else ROOT
        if parent != ROOT and parent not in declared:
            raise DataError(f"{where}: node {entry!r} is declared but its parent {parent!r} is not")
        edges.append((parent, entry))
    return (ROOT, *dict.fromkeys(entries)), tuple(edges), "tree"  # type: ignore[return-value]


def read_arff(path: str | Path, *, nominal_missing: str = "zeros") -> HierarchicalArff:
    """Parse ``path`` (plain or gzipped) into features, labels and its header.

    Raises :class:`DataError` naming the file and line on anything malformed:
    a wrong number of values, a value that is not a number, a nominal value
    outside its header categories, a label the header does not declare.
    """
    if nominal_missing not in NOMINAL_MISSING:
        raise DataError(f"nominal_missing must be one of {', '.join(NOMINAL_MISSING)}, got {nominal_missing!r}")
    path = Path(path)
    lines = _lines(path)
    header = _parse_header(path, lines)
    numbers, rows = _data_rows(header, lines)
    n_values = len(header.attributes) + 1
    frame = _parse_rows(header, numbers, rows, n_values)
    features = _encode_features(header, frame, numbers, nominal_missing)
    labels = _label_matrix(header, frame.iloc[:, -1].to_numpy(dtype=object), numbers)
    return HierarchicalArff(header, features, labels, np.asarray(numbers, dtype=np.int64))


def _data_rows(header: ArffHeader, lines: Iterator[tuple[int, str]]) -> tuple[list[int], list[str]]:
    """File line numbers and texts of the data rows that follow the header in ``lines`` (blank lines and comments dropped)."""
    numbers: list[int] = []
    rows: list[str] = []
    for number, raw in lines:
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        if "%" in line and "'" not in line and '"' not in line:
            line = line.split("%", 1)[0].rstrip()
        if line.startswith("{"):
            raise DataError(f"{header.path}, line {number}: sparse ARFF rows ({{index value, ...}}) are not supported")
        numbers.append(number)
        rows.append(line)
    if not rows:
        raise DataError(f"{header.path}: no data rows after @DATA (line {header.data_line})")
    return numbers, rows


def _parse_rows(header: ArffHeader, numbers: list[int], rows: list[str], n_values: int) -> pd.DataFrame:
    text = "\n".join(rows)
    quote = '"' if '"' in text and "'" not in text else "'"
    _check_value_counts(header, numbers, rows, quote, n_values)
    dtype = {i: (np.float64 if a.kind == "numeric" else str) for i, a in enumerate(header.attributes)}
    dtype[n_values - 1] = str
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            header=None,
            names=list(range(n_values)),
            dtype=dtype,
            quotechar=quote,
            escapechar="\\",
            skipinitialspace=True,
            na_values={i: ["?"] for i in dtype},
            keep_default_na=False,
            skip_blank_lines=False,
            engine="c",
        )
    except pd.errors.ParserError as exc:
        raise DataError(f"{header.path}: cannot parse the data rows: {exc}") from None
    except ValueError:
        _raise_bad_number(header, numbers, rows, quote)
        raise
    missing = frame.iloc[:, -1].isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataError(f"{header.path}, line {numbers[row]}: the row has no labels (last value is '?' or empty)")
    return frame


def _check_value_counts(header: ArffHeader, numbers: list[int], rows: list[str], quote: str, n_values: int) -> None:
    """Raise a DataError naming the first row without exactly ``n_values`` values."""
    for number, row in zip(numbers, rows):
        if "'" in row or '"' in row:
            count = len(next(csv.reader([row], quotechar=quote, skipinitialspace=True)))
        else:
            count = row.count(",") + 1
        if count != n_values:
            raise DataError(
                f"{header.path}, line {number}: {count} values; expected {n_values} "
                f"({n_values - 1} features and the labels)"
            )


def _raise_bad_number(header: ArffHeader, numbers: list[int], rows: list[str], quote: str) -> None:
    """Find the first numeric value that is not a number and raise a DataError naming its line."""
    numeric = [i for i, a in enumerate(header.attributes) if a.kind == "numeric"]
    for number, values in zip(numbers, csv.reader(rows, quotechar=quote, skipinitialspace=True)):
        for i in numeric:
            value = values[i].strip()
            if value == "?":
                continue
            try:
                float(value)
            except ValueError:
                raise DataError(
                    f"{header.path}, line {number}: numeric attribute {header.attributes[i].name!r} "
                    f"holds {value!r}; write a number or ? for a missing value"
                ) from None


def _encode_features(header: ArffHeader, frame: pd.DataFrame, numbers: list[int], nominal_missing: str) -> np.ndarray:
    """float32 (N, D): numeric columns as read, nominal ones one-hot, in attribute order."""
    n = len(frame)
    widths = [len(a.columns) for a in header.attributes]
    starts = np.concatenate([[0], np.cumsum(widths)]).astype(int)
    out = np.zeros((n, int(starts[-1])), dtype=np.float32)
    numeric = [i for i, a in enumerate(header.attributes) if a.kind == "numeric"]
    if numeric:  # one block copy for every numeric column
        out[:, starts[numeric]] = frame[numeric].to_numpy(dtype=np.float32)
    fill = 0.0 if nominal_missing == "zeros" else np.nan
    for i, attribute in enumerate(header.attributes):
        if attribute.kind == "numeric":
            continue
        values = frame[i].str.strip()
        mapped = values.map({c: k for k, c in enumerate(attribute.categories)})
        unknown = (mapped.isna() & values.notna()).to_numpy()
        if unknown.any():
            row = int(np.flatnonzero(unknown)[0])
            raise DataError(
                f"{header.path}, line {numbers[row]}: nominal attribute {attribute.name!r} holds "
                f"{values.iloc[row]!r}, not one of its categories {{{','.join(attribute.categories)}}}"
            )
        codes = mapped.fillna(-1).to_numpy(dtype=np.int64)
        known = codes >= 0
        out[np.flatnonzero(known), starts[i] + codes[known]] = 1.0
        out[~known, starts[i] : starts[i + 1]] = fill
    return out


def _label_matrix(header: ArffHeader, values: np.ndarray, numbers: Sequence[int]) -> np.ndarray:
    """uint8 (N, K) in ``header.labels`` order: each listed node and all its ancestors."""
    index = {label: k for k, label in enumerate(header.labels)}
    parents: list[list[int]] = [[] for _ in header.labels]
    for parent, child in header.edges:
        parents[index[child]].append(index[parent])
    order = _topological(len(header.labels), parents, header.path)
    # Each node with its ancestors, parents first: one pass in topological order.
    closed: list[frozenset[int]] = [frozenset()] * len(header.labels)
    for k in order:
        closed[k] = frozenset([k]).union(*(closed[p] for p in parents[k]))
    columns: dict[int, np.ndarray] = {}
    rows: list[int] = []
    cols: list[np.ndarray] = []
    for r, value in enumerate(values):
        for token in str(value).split("@"):
            token = token.strip()
            k = index.get(token)
            if k is None or (token == ROOT and header.form == "tree"):
                shown = ", ".join(header.declared[:5])
                raise DataError(
                    f"{header.path}, line {numbers[r]}: label {token!r} is not a node of the header's "
                    f"hierarchy ({len(header.declared)} nodes: {shown}, ...)"
                )
            if k not in columns:
                columns[k] = np.fromiter(closed[k], dtype=np.int64, count=len(closed[k]))
            cols.append(columns[k])
            rows.append(r)
    matrix = np.zeros((len(values), len(header.labels)), dtype=np.uint8)
    if cols:
        lengths = [len(c) for c in cols]
        matrix[np.repeat(np.asarray(rows, dtype=np.int64), lengths), np.concatenate(cols)] = 1
    return matrix


def _topological(n: int, parents: Sequence[Sequence[int]], path: Path) -> list[int]:
    """Node indices, parents before children (Kahn's algorithm); raises DataError on a cycle."""
    children: list[list[int]] = [[] for _ in range(n)]
    indegree = [len(ps) for ps in parents]
    for child, ps in enumerate(parents):
        for p in ps:
            children[p].append(child)
    order = [k for k in range(n) if indegree[k] == 0]
    for k in order:  # the list grows while it is walked
        for c in children[k]:
            indegree[c] -= 1
            if indegree[c] == 0:
                order.append(c)
    if len(order) != n:
        raise DataError(f"{path}: the hierarchy in the header has a cycle; a label cannot imply itself")
    return order
