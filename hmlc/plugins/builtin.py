"""hmlc's own components, registered exactly as a third-party plugin would.

Imports happen inside the hooks so that ``import hmlc`` stays light.
"""

from __future__ import annotations

from hmlc.plugins.hookspecs import Register, hookimpl


@hookimpl
def hmlc_register_hierarchies(register: Register) -> None:
    from hmlc.data.synthetic import register_builtin_hierarchies

    register_builtin_hierarchies(register)


@hookimpl
def hmlc_register_datasets(register: Register) -> None:
    from hmlc.data.datasets import register_builtin_datasets

    register_builtin_datasets(register)


@hookimpl
def hmlc_register_backbones(register: Register) -> None:
    from hmlc.models import register_builtin_backbones

    register_builtin_backbones(register)


@hookimpl
def hmlc_register_uncertainty_policies(register: Register) -> None:
    from hmlc.policies import register_builtin_policies

    register_builtin_policies(register)


@hookimpl
def hmlc_register_preprocessors(register: Register) -> None:
    from hmlc.data.preprocess import register_builtin_preprocessors

    register_builtin_preprocessors(register)


@hookimpl
def hmlc_register_presets(register: Register) -> None:
    from hmlc.config.presets import register_builtin_presets

    register_builtin_presets(register)


def _preset(name: str) -> dict:
    from hmlc.plugins.host import get_host

    return get_host().preset(name)


# Configuration knows nothing of plugins: the plugin that registers the core's presets tells it, when
# hmlc.plugins is imported, that preset names are looked up in the plugin host (every plugin's presets).
from hmlc.config.loading import use_presets  # noqa: E402

use_presets(_preset)
