"""Bounded safe YAML: every YAML file hmlc reads goes through :func:`load_yaml` / :func:`load_yaml_all`.

``yaml.safe_load`` never runs code, but a few hundred bytes can still hold an
alias bomb (nine levels of ``[*a, *a, ...]`` expand to a billion values when
anything walks the result) or a recursive alias (a list that contains
itself, which ends in a ``RecursionError``). Here each document is composed
into YAML nodes first and checked before any Python object is built: its
text size, its nesting depth, that no alias refers to a node that contains
it, and the number of nodes it holds once every alias is expanded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from hmlc.errors import HmlcError

__all__ = ["load_yaml", "load_yaml_all", "MAX_YAML_CHARS", "MAX_YAML_NODES", "MAX_YAML_DEPTH"]

#: Largest YAML text read (characters).
MAX_YAML_CHARS = 16 * 1024 * 1024
#: Most nodes a document may hold with every alias expanded.
MAX_YAML_NODES = 1_000_000
#: Deepest nesting of mappings and sequences.
MAX_YAML_DEPTH = 200


def load_yaml(text: str, where: str, error: type[HmlcError] = HmlcError) -> Any:
    """The one YAML document in ``text`` (None when empty), checked; raises ``error`` naming ``where``."""
    docs = list(load_yaml_all(text, where, error))
    if len(docs) > 1:
        raise error(f"{where} holds {len(docs)} YAML documents; give one")
    return docs[0] if docs else None


def load_yaml_all(text: str, where: str, error: type[HmlcError] = HmlcError) -> Iterator[Any]:
    """Every YAML document in ``text``, each checked before it is built; raises ``error`` naming ``where``."""
    if len(text) > MAX_YAML_CHARS:
        raise error(f"{where} is {len(text)} characters long, over the {MAX_YAML_CHARS} hmlc reads as YAML")
    loader = yaml.SafeLoader(text)
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            _check(node, where, error)
            docs.append(loader.construct_document(node))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{where} is not valid YAML: {problem}{line}") from None
    except RecursionError:
        raise error(f"{where} nests mappings or lists too deeply (more than {MAX_YAML_DEPTH} levels)") from None
    finally:
        loader.dispose()
    return iter(docs)


def _check(root: yaml.Node, where: str, error: type[HmlcError]) -> None:
    """Refuse recursive aliases, deep nesting and documents that expand past :data:`MAX_YAML_NODES`."""
    size: dict[int, int] = {}  # expanded node count of every finished node
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    while stack:
        node, state = stack.pop()
        key = id(node)
        if state == 0:
            if key in size:
                continue
            if key in on_path:
                raise error(f"{where}: a YAML alias refers to a value that contains it (a recursive alias)")
            children = _children(node)
            if len(on_path) >= MAX_YAML_DEPTH:
                raise error(f"{where} nests mappings or lists too deeply (more than {MAX_YAML_DEPTH} levels)")
            on_path.add(key)
            stack.append((node, 1))
            for child in children:
                if id(child) in on_path:
                    raise error(f"{where}: a YAML alias refers to a value that contains it (a recursive alias)")
                stack.append((child, 0))
        else:
            on_path.discard(key)
            total = 1 + sum(size[id(child)] for child in _children(node))
            if total > MAX_YAML_NODES:
                raise error(
                    f"{where}: its YAML aliases expand to more than {MAX_YAML_NODES} values (an alias bomb?); "
                    "write the values out instead"
                )
            size[key] = total


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
