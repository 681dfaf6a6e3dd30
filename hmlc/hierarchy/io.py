"""Loading hierarchies from YAML, JSON and Python.

Two data forms are accepted (YAML and JSON alike):

* the ``edges`` form: ``{"labels": [...], "edges": [[parent, child], ...]}``
  (``labels`` optional: then the order of first appearance in the edges);
* the nested ``children`` form: a node is a label string or a mapping with
  ``label`` and optional ``children`` (a list of nodes), ``concept`` (or
  ``code``: an external code such as a UMLS concept) and ``single_label``;
  other keys are ignored. The top level is a node, a list of nodes, several
  YAML documents separated by ``---`` (one node each: the "labelled nested"
  form PadChest publishes), or a mapping with ``nodes:`` (and optional
  ``labels:`` fixing the order). A label written in several places is one
  label: its parents are every place it is written under and its children
  the union of the children written at each place (a DAG).

:func:`read_hierarchy` also returns what was written, place by place (every
node, every edge as listed), for ``hmlc hierarchy check``.

A Python source is ``package.module:attribute`` or a ``.py`` file defining
``hierarchy``; the attribute may be a LabelGraph, a dict in one of the forms
above, or a callable returning either.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hmlc.errors import HierarchyError
from hmlc.yamlio import load_yaml_all
from hmlc.hierarchy.graph import LabelGraph

__all__ = [
    "load_hierarchy",
    "read_hierarchy",
    "graph_from_data",
    "HierarchySource",
    "HierarchyReading",
    "WrittenNode",
]

HierarchySource = LabelGraph | dict | str | Path | Callable[[], Any]

_NESTED_KEYS = ("nodes", "hierarchy", "tree")
#: node keys holding an external code of the label (e.g. a UMLS concept)
CODE_KEYS = ("concept", "code")
#: keys `hmlc hierarchy show --format json` adds beside labels and edges (read back, not checked)
_SHOW_KEYS = {"content_hash", "statistics"}


@dataclass(frozen=True)
class WrittenNode:
    """One place a label is written in the nested form."""

    label: str
    path: tuple[str, ...]  # the labels above it, from the top
    children: tuple[str, ...]  # as written there, repeats kept
    code: str | None  # its `concept` / `code`, if written there
    single_label: Any = None


@dataclass(frozen=True)
class HierarchyReading:
    """A loaded hierarchy and what its source wrote, for :mod:`hmlc.hierarchy.check`.

    ``form`` is ``"nested"``, ``"edges"`` or ``"graph"`` (a LabelGraph given
    as is). ``nodes``: every place a label is written (nested form);
    ``written_edges``: the edges as listed, repeats kept (edges form).
    """

    graph: LabelGraph
    form: str
    nodes: tuple[WrittenNode, ...] = ()
    written_edges: tuple[tuple[str, str], ...] = ()


def graph_from_data(data: Any, name: str | None = None, where: str = "hierarchy") -> LabelGraph:
    """Build a LabelGraph from parsed YAML/JSON data in either form."""
    return _read_data(data, name, where).graph


def _read_data(data: Any, name: str | None, where: str) -> HierarchyReading:
    if isinstance(data, LabelGraph):
        return HierarchyReading(data, "graph")
    if isinstance(data, dict):
        name = data.get("name", name)
        if "edges" in data:
            extra = set(data) - {"name", "labels", "edges", "description"} - _SHOW_KEYS
            if extra:
                raise HierarchyError(f"{where}: unknown key(s) {sorted(extra)}; expected labels, edges, name")
            edges = data.get("edges") or []
            if not isinstance(edges, list):
                raise HierarchyError(f"{where}: 'edges' must be a list of [parent, child] pairs")
            for e in edges:
                if not isinstance(e, (list, tuple)) or len(e) != 2 or not all(isinstance(x, str) for x in e):
                    raise HierarchyError(f"{where}: edge {e!r} is not a [parent, child] pair of label names")
            labels = data.get("labels")
            if labels is None:
                labels = _first_appearance(x for e in edges for x in e)
            elif not isinstance(labels, list):
                raise HierarchyError(f"{where}: 'labels' must be a list of label names")
            written = tuple((str(p), str(c)) for p, c in edges)
            return HierarchyReading(LabelGraph(labels, edges, name=name), "edges", written_edges=written)
        for key in _NESTED_KEYS:
            if key in data:
                extra = set(data) - {"name", "labels", "description", key}
                if extra:
                    raise HierarchyError(f"{where}: unknown key(s) {sorted(extra)} beside {key!r}")
                return _from_nodes(data[key], data.get("labels"), name, where)
        if "label" in data:
            return _from_nodes([data], None, name, where)
        raise HierarchyError(
            f"{where}: expected 'edges', 'nodes' or a node with 'label'; found keys {sorted(map(str, data))}"
        )
    if isinstance(data, list):
        return _from_nodes(data, None, name, where)
    if data is None:
        raise HierarchyError(f"{where} has no labels; the file is empty")
    raise HierarchyError(f"{where}: cannot read a hierarchy from a {type(data).__name__}")


def _first_appearance(items: Any) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def _label_of(node: Any, where: str, path: str) -> str:
    label = node.get("label") if isinstance(node, dict) else node
    if not isinstance(label, str) or not label.strip():
        raise HierarchyError(f"{where}: node at {path} has label {label!r}, not a non-empty string")
    return label


def _from_nodes(nodes: Any, labels: list[str] | None, name: str | None, where: str) -> HierarchyReading:
    order: dict[str, None] = {}
    edges: list[tuple[str, str]] = []
    written: list[WrittenNode] = []
    # Iterative depth-first walk (pre-order, children in file order): deep files cannot overflow the stack.
    if not isinstance(nodes, list):
        nodes = [nodes]
    stack: list[tuple[Any, tuple[str, ...], str]] = [
        (node, (), f"top[{i}]") for i, node in reversed(list(enumerate(nodes))) if node is not None
    ]
    while stack:
        node, above, path = stack.pop()
        if isinstance(node, str):
            children: list[Any] = []
            code = single = None
        elif isinstance(node, dict):
            if "label" not in node:
                raise HierarchyError(f"{where}: node at {path} has no 'label'")
            children = node.get("children") or []
            if not isinstance(children, list):
                raise HierarchyError(f"{where}: 'children' of {node['label']!r} must be a list")
            code = next((str(node[k]) for k in CODE_KEYS if node.get(k) is not None), None)
            single = node.get("single_label")
        else:
            raise HierarchyError(f"{where}: node at {path} must be a label or a mapping, got {node!r}")
        label = _label_of(node, where, path)
        if label in above:  # only a YAML alias of a node inside itself can do this
            shown = " -> ".join(above[above.index(label):] + (label,))
            raise HierarchyError(f"{f'hierarchy {name!r}' if name else 'hierarchy'} has a cycle: {shown}; "
                                 "a label cannot imply itself")
        order.setdefault(label, None)
        if above:
            edges.append((above[-1], label))
        child_path = f"{path} > {label}"
        child_labels = [c.get("label") if isinstance(c, dict) else c for c in children]
        written.append(WrittenNode(label, above, tuple(c for c in child_labels if isinstance(c, str)), code, single))
        stack.extend((child, above + (label,), f"{child_path}[{i}]") for i, child in reversed(list(enumerate(children))))
    if labels is not None:
        if not isinstance(labels, list):
            raise HierarchyError(f"{where}: 'labels' must be a list of label names")
        missing = [l for l in order if l not in set(labels)]
        if missing:
            raise HierarchyError(f"{where}: 'labels' misses {missing[:5]}; list every label of the tree")
        graph = LabelGraph(labels, edges, name=name)
    else:
        graph = LabelGraph(list(order), edges, name=name)
    return HierarchyReading(graph, "nested", nodes=tuple(written))


def _load_python(spec: str) -> Any:
    if spec.endswith(".py"):
        path = Path(spec)
        if not path.is_file():
            raise HierarchyError(f"hierarchy file {spec} does not exist")
        mod_spec = importlib.util.spec_from_file_location(f"_hmlc_hierarchy_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
        try:
            mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - user code; report it on one line
            raise HierarchyError(f"hierarchy file {spec} failed to run: {type(exc).__name__}: {exc}") from None
        attr = "hierarchy"
    else:
        modname, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(modname)
        except Exception as exc:  # noqa: BLE001 - user code; report it on one line
            raise HierarchyError(
                f"cannot import {modname!r} for hierarchy {spec!r}: {type(exc).__name__}: {exc}"
            ) from None
    if not hasattr(module, attr):
        raise HierarchyError(f"{spec}: defines no {attr!r}; define it as a LabelGraph or a dict")
    obj = getattr(module, attr)
    return _call(obj, spec) if callable(obj) and not isinstance(obj, LabelGraph) else obj


def _call(fn: Callable[[], Any], where: Any) -> Any:
    try:
        return fn()
    except HierarchyError:
        raise
    except Exception as exc:  # noqa: BLE001 - user or plugin code; report it on one line
        raise HierarchyError(f"hierarchy source {where!r} failed: {type(exc).__name__}: {exc}") from None


def load_hierarchy(source: HierarchySource, name: str | None = None) -> LabelGraph:
    """Load a hierarchy from a LabelGraph, dict, callable, file path or ``module:attr``."""
    if isinstance(source, LabelGraph):
        return source
    return read_hierarchy(source, name).graph


def read_hierarchy(source: HierarchySource, name: str | None = None) -> HierarchyReading:
    """Like :func:`load_hierarchy`, with what the source wrote place by place."""
    if isinstance(source, LabelGraph):
        return HierarchyReading(source, "graph")
    if isinstance(source, dict):
        return _read_data(source, name, "hierarchy")
    if callable(source) and not isinstance(source, (str, Path)):
        return _read_data(_call(source, name or getattr(source, "__name__", source)), name, "hierarchy")
    text = str(source)
    path = Path(text)
    suffix = path.suffix.lower()
    if suffix == ".py" or (":" in text and not path.exists() and suffix not in (".yaml", ".yml", ".json", ".txt")):
        return _read_data(_load_python(text), name, f"hierarchy {text}")
    if not path.exists():
        raise HierarchyError(f"hierarchy file {text} does not exist")
    if path.is_dir():
        raise HierarchyError(f"hierarchy file {text} is a folder; give a .yaml, .json or .py file")
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HierarchyError(f"cannot read hierarchy file {text}: {exc}") from None
    where = f"hierarchy file {text}"
    if suffix == ".json":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise HierarchyError(f"{where} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    else:
        try:
            docs = [d for d in load_yaml_all(raw, where, HierarchyError) if d is not None]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" (line {mark.line + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise HierarchyError(f"{where} is not valid YAML: {problem}{line}") from None
        data = docs[0] if len(docs) == 1 else (docs or None)
    return _read_data(data, name or path.stem, where)
