"""Label maps: one hierarchy's labels scored from another's, for cross-dataset evaluation.

A plugin registers a map (``hmlc_register_label_maps``) as a dict::

    {"source": "padchest", "target": "chexpert",
     "labels": {"Lung Lesion": ["nodule", "pulmonary mass"], "Edema": "pulmonary edema"},
     "combine": "max",            # or "noisy-or"; how several sources make one target
     "description": "..."}

Each target label is scored from one source label or several:

* probabilities: ``max`` (default) takes the largest source probability;
  ``noisy-or`` takes ``1 - prod(1 - p)`` (the sources as independent causes);
* label codes (1 positive, 0 negative, -1 uncertain, blank unknown): 1 if any
  source is 1; else 0 if every source is 0; else -1 if any source is -1;
  else blank. (A blank source beside negative ones leaves the target
  unknown: the union is negative only when every part is.)

A map is checked when it is used (:func:`resolve_label_map`): both
hierarchies must exist and every label it names must be in its hierarchy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hmlc.errors import DataError, PluginError

__all__ = [
    "COMBINE",
    "LabelMap",
    "label_map_from_dict",
    "resolve_label_map",
    "unmapped_lines",
    "map_labels_csv",
    "mapped_labels_file",
]

#: how several source labels make one target label
COMBINE: tuple[str, ...] = ("max", "noisy-or")
_KEYS = {"source", "target", "labels", "description", "combine"}


@dataclass(frozen=True)
class LabelMap:
    """A validated label map: target label -> the source labels it is scored from."""

    name: str
    source: str
    target: str
    labels: dict[str, tuple[str, ...]]
    combine: str = "max"
    description: str = ""
    plugin: str = "?"

    @property
    def target_labels(self) -> tuple[str, ...]:
        """The target labels the map scores, in the order it lists them."""
        return tuple(self.labels)

    @property
    def source_labels(self) -> tuple[str, ...]:
        """Every source label the map reads, in order of first use."""
        return tuple(dict.fromkeys(s for sources in self.labels.values() for s in sources))

    def _where(self) -> str:
        return f"label map {self.name!r} (plugin {self.plugin!r})"

    def source_columns(self, labels: Sequence[str], what: str) -> list[list[int]]:
        """Per target label, the positions of its sources in ``labels`` (an error names any absent)."""
        index = {label: i for i, label in enumerate(labels)}
        missing = [s for s in self.source_labels if s not in index]
        if missing:
            raise DataError(
                f"{self._where()} reads source label(s) {', '.join(map(repr, missing[:5]))} of hierarchy "
                f"{self.source!r}, which the {what} lack(s) (they have: {', '.join(list(labels)[:10])}"
                f"{' ...' if len(labels) > 10 else ''}); give {what} in hierarchy {self.source!r}'s labels"
            )
        return [[index[s] for s in sources] for sources in self.labels.values()]

    def map_probabilities(self, probabilities: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """(N, len(labels)) source probabilities -> (N, len(target_labels)), combined by ``combine``."""
        p = np.asarray(probabilities, dtype=np.float64)
        out = np.empty((p.shape[0], len(self.labels)))
        for k, columns in enumerate(self.source_columns(labels, "predictions")):
            part = p[:, columns]
            out[:, k] = part.max(axis=1) if self.combine == "max" else 1.0 - np.prod(1.0 - part, axis=1)
        return out

    def map_codes(self, codes: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """(N, len(labels)) source codes (1/0/-1/NaN) -> target codes by the rule in the module docstring."""
        c = np.asarray(codes, dtype=np.float64)
        out = np.full((c.shape[0], len(self.labels)), np.nan)
        for k, columns in enumerate(self.source_columns(labels, "labels")):
            part = c[:, columns]
            column = out[:, k]
            column[(part == -1).any(axis=1)] = -1.0
            column[(part == 0).all(axis=1)] = 0.0
            column[(part == 1).any(axis=1)] = 1.0
        return out

    def unmapped_sources(self, labels: Sequence[str]) -> list[str]:
        """Those of ``labels`` the map does not read (left out of its output)."""
        read = set(self.source_labels)
        return [label for label in labels if label not in read]


def label_map_from_dict(name: str, data: Any, plugin: str = "?") -> LabelMap:
    """Check a registered map's shape; every problem is one :class:`PluginError` naming the map."""
    where = f"label map {name!r} (plugin {plugin!r})"
    if not isinstance(data, dict):
        raise PluginError(f"{where} is a {type(data).__name__}; register a dict with source, target and labels")
    missing = [k for k in ("source", "target", "labels") if k not in data]
    if missing:
        raise PluginError(f"{where} has no {', '.join(map(repr, missing))}; see docs/hooks.md for the shape")
    extra = sorted(set(map(str, data)) - _KEYS)
    if extra:
        raise PluginError(f"{where}: unknown key(s) {extra}; the keys are {', '.join(sorted(_KEYS))}")
    for key in ("source", "target"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise PluginError(f"{where}: {key!r} must name a hierarchy, got {data[key]!r}")
    combine = data.get("combine", "max")
    if combine not in COMBINE:
        raise PluginError(f"{where}: combine {combine!r} is unknown; use {' or '.join(COMBINE)}")
    raw = data["labels"]
    if not isinstance(raw, dict) or not raw:
        raise PluginError(f"{where}: 'labels' must be a non-empty dict {{target label: source label(s)}}")
    labels: dict[str, tuple[str, ...]] = {}
    for target, sources in raw.items():
        sources = (sources,) if isinstance(sources, str) else sources
        if (
            not isinstance(target, str)
            or not isinstance(sources, (list, tuple))
            or not sources
            or not all(isinstance(s, str) and s for s in sources)
        ):
            raise PluginError(
                f"{where}: {target!r}: {raw[target]!r} is not a source label or a non-empty list of source labels"
            )
        labels[target] = tuple(dict.fromkeys(sources))
    description = data.get("description", "")
    return LabelMap(name, data["source"], data["target"], labels, combine, str(description or ""), plugin)


def resolve_label_map(name: str, host: Any = None) -> LabelMap:
    """The registered map ``name``, checked against its source and target hierarchies."""
    from hmlc.plugins import get_host

    host = host or get_host()
    entry = host.registry("label_maps").entry(name)
    label_map = label_map_from_dict(name, entry.obj, entry.plugin)
    where = f"label map {name!r} (plugin {entry.plugin!r})"
    for side, hierarchy, labels in (
        ("source", label_map.source, label_map.source_labels),
        ("target", label_map.target, label_map.target_labels),
    ):
        registry = host.registry("hierarchies")
        if hierarchy not in registry and not Path(hierarchy).is_file():
            raise PluginError(
                f"{where} names {side} hierarchy {hierarchy!r}, which no installed plugin registers "
                f"(registered: {', '.join(registry.names()) or 'none'}); install the plugin that registers it "
                "or fix the map"
            )
        graph = host.hierarchy(hierarchy)
        unknown = [label for label in labels if label not in graph]
        if unknown:
            raise PluginError(
                f"{where}: {side} label(s) {', '.join(map(repr, unknown[:5]))} not in hierarchy {hierarchy!r}; "
                f"`hmlc hierarchy show {hierarchy}` lists its labels"
            )
    return label_map


def unmapped_lines(label_map: LabelMap, labels: Sequence[str]) -> list[str]:
    """Lines naming what the map leaves out: ``labels`` it does not read, target labels it does not score."""
    from hmlc.plugins import get_host

    lines = []
    dropped = label_map.unmapped_sources(labels)
    if dropped:
        lines.append(
            f"label map {label_map.name!r}: {len(dropped)} label(s) not mapped into {label_map.target!r}, "
            f"left out: {', '.join(dropped)}"
        )
    absent = [label for label in get_host().hierarchy(label_map.target).labels if label not in label_map.labels]
    if absent:
        lines.append(
            f"label map {label_map.name!r}: {len(absent)} {label_map.target!r} label(s) have no source, "
            f"not scored: {', '.join(absent)}"
        )
    return lines


def map_labels_csv(label_map: LabelMap, path: Path, out: Path) -> list[str]:
    """Write ``path``'s labels mapped into the target's labels to ``out`` (id columns kept).

    Returns the lines naming what was left out (:func:`unmapped_lines`).
    """
    from hmlc.data.table import read_label_csv
    from hmlc.evaluation.io import ID_COLUMNS

    try:
        header = list(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read labels file {path}: {exc}") from None
    ids = [c for c in ID_COLUMNS if c in header]
    if not ids:
        raise DataError(f"{path} has no id column ({' or '.join(ID_COLUMNS)}); its columns are: {', '.join(header)}")
    sources = list(label_map.source_labels)
    label_map.source_columns(header, f"labels file {path}")
    frame = read_label_csv(path, sources, id_column=ids[0], extra_columns=ids[1:])
    codes = label_map.map_codes(frame[sources].to_numpy(), sources)
    mapped = pd.DataFrame(codes, columns=list(label_map.target_labels))
    for i, column in enumerate(ids):
        mapped.insert(i, column, frame[column].to_numpy())
    try:
        mapped.to_csv(out, index=False, float_format="%g")
    except OSError as exc:
        raise DataError(f"cannot write the mapped labels to {out}: {exc.strerror or exc}") from None
    from hmlc.plugins import get_host

    source_graph = get_host().hierarchy(label_map.source)
    return unmapped_lines(label_map, [c for c in header if c in source_graph])


def mapped_labels_file(name: str, path: Path, folder: Path, warn: Callable[[str], None]) -> Path:
    """The labels CSV ``path`` mapped by the registered map ``name`` into ``folder`` (for ``hmlc evaluate``)."""
    label_map = resolve_label_map(name)
    stem = Path(path).name.removesuffix(".gz").removesuffix(".csv")
    out = Path(folder) / f"{stem}.{name.replace('/', '_')}.csv"
    for line in map_labels_csv(label_map, Path(path), out):
        warn(line)
    return out
