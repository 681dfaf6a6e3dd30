"""Building the plugin manager: specs, the built-in plugin, installed plugins.

Nothing is loaded at import time: :func:`get_plugin_manager` does the work
when a command first needs a registry. An installed plugin that cannot load
(its import raises, its hooks are invalid or unknown) is left out and
recorded with its error: the other plugins and every command that does not
need it keep working.

Environment variables:

* ``HMLC_LOAD_PLUGINS``: comma-separated plugin (entry-point or distribution)
  names; when set, only these installed plugins load (empty: none).
* ``HMLC_DISABLED_PLUGINS``: comma-separated names that never load
  (``hmlc`` disables nothing: the built-in plugin always loads).
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field

import pluggy

from hmlc.errors import PluginError
from hmlc.plugins import hookspecs

__all__ = ["get_plugin_manager", "PluginRecord", "ENTRY_POINT_GROUP", "BUILTIN_PLUGIN"]

ENTRY_POINT_GROUP = "hmlc"
BUILTIN_PLUGIN = "hmlc"


@dataclass
class PluginRecord:
    """What ``hmlc plugins`` reports about one plugin; ``error`` is set when it failed to load."""

    name: str
    version: str
    distribution: str
    hooks: list[str] = field(default_factory=list)
    error: str | None = None

    def advice(self) -> str:
        """What to do about a broken plugin."""
        return f"reinstall or update it, or disable it with HMLC_DISABLED_PLUGINS={self.name}"


def _names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def get_plugin_manager(load_installed: bool = True) -> tuple[pluggy.PluginManager, dict[str, PluginRecord]]:
    """A plugin manager with the specs, the built-in plugin and installed plugins.

    Returns the manager and, per plugin name, its :class:`PluginRecord`.
    """
    from hmlc import __version__
    from hmlc.plugins import builtin

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name=BUILTIN_PLUGIN)
    records = {BUILTIN_PLUGIN: PluginRecord(BUILTIN_PLUGIN, __version__, "hmlc")}
    if load_installed:
        _load_entry_points(pm, records)
    while True:
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) if exc.plugin is not None else None
            if name is None or name == BUILTIN_PLUGIN:
                raise PluginError(f"hmlc's hooks are inconsistent: {exc}") from None
            pm.unregister(name=name)
            records[name].error = (
                f"implements a hook hmlc does not know: {exc} (check the hook name: `hmlc plugins`, docs/hooks.md)"
            )
    for name, record in records.items():
        plugin = pm.get_plugin(name)
        if plugin is not None:
            record.hooks = sorted(impl.name for impl in pm.get_hookcallers(plugin) or [])
    return pm, records


def _load_entry_points(pm: pluggy.PluginManager, records: dict[str, PluginRecord]) -> None:
    only = _names("HMLC_LOAD_PLUGINS")
    disabled = _names("HMLC_DISABLED_PLUGINS") or set()
    only_c = {_canonical(n) for n in only} if only is not None else None
    disabled_c = {_canonical(n) for n in disabled}
    seen_dists: set[str] = set()
    # By name, so that every machine loads (and lists) plugins in one order; the sort is
    # stable, so of one distribution visible twice the first on sys.path still wins.
    for dist in sorted(importlib.metadata.distributions(), key=lambda d: _canonical(d.metadata["name"] or "?")):
        dist_name = dist.metadata["name"] or "?"
        if _canonical(dist_name) in seen_dists:
            continue  # the same distribution visible twice on sys.path
        eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
        if not eps:
            continue
        seen_dists.add(_canonical(dist_name))
        for ep in eps:
            keys = {_canonical(ep.name), _canonical(dist_name)}
            if keys & disabled_c:
                continue
            if only_c is not None and not keys & only_c:
                continue
            if ep.name == BUILTIN_PLUGIN:
                raise PluginError(
                    f"distribution {dist_name!r} registers a plugin named {BUILTIN_PLUGIN!r}, "
                    "which is reserved for hmlc's built-in plugin; rename its entry point"
                )
            if ep.name in records:
                other = records[ep.name].distribution
                raise PluginError(
                    f"plugin name {ep.name!r} is used by both distribution {other!r} and {dist_name!r}; "
                    f"uninstall one or disable it with HMLC_DISABLED_PLUGINS={ep.name}"
                )
            record = records[ep.name] = PluginRecord(ep.name, dist.version or "?", dist_name)
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - third-party import errors of any kind
                record.error = f"failed to load: {_one_line(exc)}"
                continue
            try:
                pm.register(plugin, name=ep.name)
            except ValueError as exc:
                record.error = f"cannot register: {_one_line(exc)}"
            except pluggy.PluginValidationError as exc:
                record.error = f"is invalid: {_one_line(exc)}"


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (a plugin's exception text may span several)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
