"""`PluginHost`: the typed facade core code uses instead of ``pm.hook.*``."""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from hmlc.errors import HmlcError, PluginError
from hmlc.plugins.manager import BUILTIN_PLUGIN, PluginRecord, get_plugin_manager
from hmlc.plugins.registry import KINDS, Registry, describe, read_yaml_mapping

if TYPE_CHECKING:
    from hmlc.data.datasets import DatasetReader
    from hmlc.hierarchy import LabelGraph
    from hmlc.hierarchy.io import HierarchyReading
    from hmlc.models import BackboneSpec
    from hmlc.policies import UncertaintyPolicy

__all__ = ["PluginHost", "get_host", "reset_host"]


def warn_on_stderr(message: str) -> None:
    """The default way the host reports a broken plugin: one line on stderr."""
    print(f"hmlc: warning: {message}", file=sys.stderr)


class PluginHost:
    """One method per hook kind; registries are filled on first use.

    A plugin that failed to load, or whose hook raised, is reported once
    through ``warn`` (one line naming it and the error) and left out; the
    rest keeps working. Only the built-in plugin's failures raise.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        records: dict[str, PluginRecord],
        warn: Callable[[str], None] = warn_on_stderr,
    ) -> None:
        self.pm = pm
        self.records = records
        self.warn = warn
        self._registries: dict[str, Registry[Any]] = {}
        self._hierarchy_cache: dict[str, LabelGraph] = {}
        for record in records.values():
            if record.error:
                self._report(record, record.error)

    def _report(self, record: PluginRecord, error: str) -> None:
        self.warn(
            f"plugin {record.name!r} (distribution {record.distribution}) {error}; "
            f"left out: {record.advice()}"
        )

    def failures(self) -> dict[str, str]:
        """Plugin name -> its error, for every plugin that failed to load or whose hook raised."""
        return {name: rec.error for name, rec in self.records.items() if rec.error}

    # ----------------------------------------------------------- registries
    def registry(self, kind: str) -> Registry[Any]:
        """The filled registry of ``kind`` (one of :data:`KINDS`)."""
        if kind not in KINDS:
            raise PluginError(f"unknown kind {kind!r}; kinds are: {', '.join(KINDS)}")
        if kind not in self._registries:
            self._registries[kind] = self._fill(kind)
        return self._registries[kind]

    def _fill(self, kind: str) -> Registry[Any]:
        hook_name = KINDS[kind][0]
        registry: Registry[Any] = Registry(kind, failures=self.failures)
        caller = getattr(self.pm.hook, hook_name)
        # Call each implementation with its own register callback so every
        # entry is attributed to the plugin that made it.
        # Registration order: the built-in plugin first, then installed plugins.
        impls = sorted(caller.get_hookimpls(), key=lambda i: i.plugin_name != BUILTIN_PLUGIN)
        for impl in impls:
            plugin = impl.plugin_name
            made: list[tuple[str, Any]] = []

            def register(name: str, obj: Any, _made: list[tuple[str, Any]] = made) -> None:
                _made.append((name, obj))

            try:
                impl.function(register=register)
            except Exception as exc:  # noqa: BLE001 - third-party hook code
                if plugin == BUILTIN_PLUGIN:
                    raise
                # A plugin's hook raised: none of what it registered in this hook is kept.
                detail = str(exc) if isinstance(exc, HmlcError) else f"{type(exc).__name__}: {exc}"
                error = f"failed in {hook_name}: {' '.join(detail.split())}"
                record = self.records[plugin]
                record.error = "; ".join(filter(None, [record.error, error]))
                self._report(record, error)
                continue
            for name, obj in made:
                registry.add(name, obj, plugin)
        return registry

    # ------------------------------------------------------------ accessors
    def hierarchy(self, name_or_path: str | Path) -> LabelGraph:
        """A registered hierarchy by name, else a hierarchy file (YAML/JSON/.py)."""
        key = str(name_or_path)
        if key not in self._hierarchy_cache:
            self._hierarchy_cache[key] = self.read_hierarchy(key).graph
        return self._hierarchy_cache[key]

    def read_hierarchy(self, name_or_path: str | Path) -> HierarchyReading:
        """Like :meth:`hierarchy`, with what its source wrote place by place (``hmlc hierarchy check``)."""
        from hmlc.hierarchy.io import read_hierarchy

        key = str(name_or_path)
        path = Path(key)
        is_file_name = path.suffix.lower() in (".yaml", ".yml", ".json", ".py", ".txt")
        if is_file_name and path.is_file():
            return read_hierarchy(key)  # a file: no need to load every plugin's hierarchies
        registry = self.registry("hierarchies")
        if key in registry:
            reading = read_hierarchy(registry.get(key), name=key)
            if reading.graph.name != key:
                from hmlc.hierarchy import LabelGraph

                graph = LabelGraph(reading.graph.labels, reading.graph.edges, name=key)
                reading = dataclasses.replace(reading, graph=graph)
            return reading
        if is_file_name or path.exists():
            return read_hierarchy(key)
        raise PluginError(registry.unknown_message(key) + "; or give a hierarchy file path")

    def dataset(self, name: str) -> DatasetReader:
        return self.registry("datasets").get(name)

    def backbone(self, name: str) -> BackboneSpec:
        """A registered backbone, or ``timm:NAME`` / ``torchvision:NAME`` resolved generically."""
        registry = self.registry("backbones")
        if name in registry:
            return registry.get(name)
        if name.startswith(("timm:", "torchvision:")):
            from hmlc.models import generic_backbone_spec

            return generic_backbone_spec(name)
        raise PluginError(registry.unknown_message(name) + "; or use timm:NAME / torchvision:NAME")

    def policy(self, name: str, **params: Any) -> UncertaintyPolicy:
        factory = self.registry("policies").get(name)
        try:
            return factory(**params)
        except TypeError as exc:
            raise PluginError(f"uncertainty policy {name!r} does not accept parameters {params}: {exc}") from None

    def preprocessor(self, name: str, **params: Any) -> Any:
        factory = self.registry("preprocessors").get(name)
        try:
            return factory(**params)
        except TypeError as exc:
            raise PluginError(f"preprocessor {name!r} does not accept parameters {params}: {exc}") from None

    def preset(self, name: str) -> dict[str, Any]:
        """A preset as a configuration dict (YAML files are read here).

        The host reads preset files itself and never imports :mod:`hmlc.config`:
        configuration loading asks the host for presets, not the other way round.
        """
        preset = self.registry("presets").get(name)
        if isinstance(preset, (str, Path)):
            preset = read_yaml_mapping(Path(preset), f"preset {name!r} file")
        if callable(preset):
            preset = preset()
        if not isinstance(preset, dict):
            raise PluginError(f"preset {name!r} is a {type(preset).__name__}, not a configuration dict")
        # "description" is for listings only, not a configuration key.
        return {k: v for k, v in preset.items() if k != "description"}

    def label_map(self, name: str) -> dict[str, Any]:
        return self.registry("label_maps").get(name)

    # ------------------------------------------------------------- listings
    def plugins_info(self) -> list[dict[str, Any]]:
        """One dict per plugin: name, version, distribution, hooks, registers."""
        registers: dict[str, dict[str, list[str]]] = {name: {} for name in self.records}
        for kind in KINDS:
            for plugin, names in self.registry(kind).by_plugin().items():
                registers.setdefault(plugin, {})[kind] = names
        return [
            {
                "name": rec.name,
                "version": rec.version,
                "distribution": rec.distribution,
                "hooks": rec.hooks,
                "registers": registers.get(rec.name, {}),
                "error": rec.error,
            }
            for rec in self.records.values()
        ]

    def listing(self, kind: str, pattern: str | None = None) -> list[dict[str, str]]:
        registry = self.registry(kind)
        return [
            {"name": e.name, "plugin": e.plugin, "description": describe(e.obj)}
            for e in registry.entries()
            if pattern is None or e.name in registry.names(pattern)
        ]


_host: PluginHost | None = None
_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide host, built on first call (not at import time)."""
    global _host
    with _lock:
        if _host is None:
            pm, records = get_plugin_manager()
            _host = PluginHost(pm, records)
        return _host


def reset_host() -> None:
    """Forget the process-wide host (tests, or after installing a plugin)."""
    global _host
    with _lock:
        _host = None
