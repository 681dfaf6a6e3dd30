"""hmlc's plugin system: hook specs, the plugin manager and the typed host.

Third-party code needs only :data:`hookimpl` (to implement hooks) and, in
tests, :func:`get_host` / :func:`reset_host`.
"""

from hmlc.plugins.hookspecs import HOOK_NAMES, hookimpl, hookspec
from hmlc.plugins.host import PluginHost, get_host, reset_host
from hmlc.plugins.manager import ENTRY_POINT_GROUP, get_plugin_manager
from hmlc.plugins.registry import KINDS, Registry

# The built-in plugin, imported here, tells hmlc.config where preset names are looked up (config never asks).
from hmlc.plugins import builtin as _builtin  # noqa: E402,F401

__all__ = [
    "hookimpl",
    "hookspec",
    "HOOK_NAMES",
    "KINDS",
    "ENTRY_POINT_GROUP",
    "Registry",
    "PluginHost",
    "get_host",
    "reset_host",
    "get_plugin_manager",
]
