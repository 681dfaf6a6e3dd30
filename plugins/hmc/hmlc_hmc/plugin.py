"""The hook implementations of the HMC plugin (entry point ``hmc``).

Modules are imported inside the hooks, so loading the plugin costs nothing
until a registry of that kind is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hmlc.plugins import hookimpl


@hookimpl
def hmlc_register_datasets(register: Callable[[str, Any], None]) -> None:
    from hmlc_hmc.dataset import HmcDataset

    register(HmcDataset.name, HmcDataset())


@hookimpl
def hmlc_register_presets(register: Callable[[str, Any], None]) -> None:
    from hmlc_hmc.presets import register_suite_presets

    register_suite_presets(register)


@hookimpl
def hmlc_register_benchmark_suites(register: Callable[[str, Any], None]) -> None:
    from hmlc_hmc.suite import benchmark_suite

    register("hmc", benchmark_suite())
