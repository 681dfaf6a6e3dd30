"""Named registries filled by plugins through ``register`` callbacks."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from hmlc.errors import PluginError

__all__ = ["Registry", "RegistryEntry", "KINDS", "read_yaml_mapping"]

T = TypeVar("T")

#: kind name -> (hook name, singular noun used in messages)
KINDS: dict[str, tuple[str, str]] = {
    "hierarchies": ("hmlc_register_hierarchies", "hierarchy"),
    "datasets": ("hmlc_register_datasets", "dataset"),
    "backbones": ("hmlc_register_backbones", "backbone"),
    "policies": ("hmlc_register_uncertainty_policies", "uncertainty policy"),
    "preprocessors": ("hmlc_register_preprocessors", "preprocessor"),
    "presets": ("hmlc_register_presets", "preset"),
    "label_maps": ("hmlc_register_label_maps", "label map"),
    "benchmark_suites": ("hmlc_register_benchmark_suites", "benchmark suite"),
}


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    name: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """Name -> object, remembering which plugin registered each name.

    A second registration of a name is an error naming both plugins; looking
    up an unknown name is an error listing the known names.
    """

    def __init__(self, kind: str, failures: Callable[[], dict[str, str]] | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown registry kind {kind!r}")
        self.kind = kind
        self.singular = KINDS[kind][1]
        self._entries: dict[str, RegistryEntry[T]] = {}
        self._failures = failures or dict

    def add(self, name: str, obj: T, plugin: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise PluginError(f"plugin {plugin!r} registered a {self.singular} with an invalid name {name!r}")
        if name in self._entries:
            first = self._entries[name].plugin
            culprit = plugin if first == "hmlc" else first
            raise PluginError(
                f"{self.singular} {name!r} is registered by both plugin {first!r} and plugin {plugin!r}; "
                f"uninstall one or disable it with HMLC_DISABLED_PLUGINS={culprit}"
            )
        self._entries[name] = RegistryEntry(name, obj, plugin)

    def entry(self, name: str) -> RegistryEntry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise PluginError(self.unknown_message(name)) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def unknown_message(self, name: str) -> str:
        """'unknown KIND NAME; did you mean: the 3 closest names?', where to see them all, and failed plugins."""
        import difflib

        hook = KINDS[self.kind][0]
        # Plugins that did not load at all, or whose hook of this kind raised.
        failed = {
            plugin: error for plugin, error in self._failures().items()
            if not error.startswith("failed in ") or f"failed in {hook}:" in error
        }
        broken = (
            "; it may come from a plugin that failed: " + "; ".join(f"{p} ({e})" for p, e in failed.items())
            if failed else ""
        )
        names = sorted(self._entries)
        if not names:
            return (
                f"unknown {self.singular} {name!r}: none is registered (run `hmlc plugins` to see what is installed)"
                f"{broken}"
            )
        closest = difflib.get_close_matches(name, names, n=3, cutoff=0.0)
        return (
            f"unknown {self.singular} {name!r}; did you mean: {', '.join(closest)}? "
            f"(`hmlc list {self.kind}` lists all {len(names)}, `hmlc plugins` what is installed){broken}"
        )

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names, sorted, optionally filtered by a shell-style wildcard."""
        names = sorted(self._entries)
        if pattern:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        return names

    def entries(self) -> list[RegistryEntry[T]]:
        return [self._entries[n] for n in self.names()]

    def by_plugin(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for entry in self.entries():
            out.setdefault(entry.plugin, []).append(entry.name)
        return out


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file a plugin registered (a preset) as a dict; a :class:`PluginError` naming ``what`` otherwise.

    Read with hmlc's bounded YAML loader (:mod:`hmlc.yamlio`: no alias bombs, no recursion).
    """
    from hmlc.yamlio import load_yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PluginError(f"cannot read {what} {path}: {exc}") from None
    data = load_yaml(text, f"{what} {path}", PluginError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PluginError(f"{what} {path} must hold a mapping at the top level, not a {type(data).__name__}")
    return data


def describe(obj: Any) -> str:
    """A one-line description of a registered object, for listings."""
    import inspect

    if isinstance(obj, (str, Path)):
        text = f"from {obj}"
        path = Path(obj)
        if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
            # A preset file may describe itself; hierarchy files name their source.
            try:
                data = read_yaml_mapping(path, "file")
            except PluginError:
                data = {}
            if isinstance(data.get("description"), str):
                text = data["description"]
    elif isinstance(obj, dict):
        text = obj.get("description", "")
    else:
        text = getattr(obj, "description", None) or ""
        if not text and (inspect.isfunction(obj) or inspect.isclass(obj)):
            text = inspect.getdoc(obj) or ""
        if not text and hasattr(obj, "labels") and hasattr(obj, "edges"):
            text = f"{len(obj.labels)} labels, {len(obj.edges)} edges"
    text = str(text).strip()
    return text.splitlines()[0] if text else ""
