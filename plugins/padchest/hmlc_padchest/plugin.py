"""The hook implementations of the PadChest plugin (entry point ``padchest``).

Modules are imported inside the hooks, so loading the plugin costs nothing
until a registry of that kind is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hmlc.plugins import hookimpl
from hmlc_padchest import FULL_HIERARCHY_FILE, HIERARCHY_FILE


@hookimpl
def hmlc_register_hierarchies(register: Callable[[str, Any], None]) -> None:
    register("padchest", str(HIERARCHY_FILE))
    register("padchest-full", str(FULL_HIERARCHY_FILE))


@hookimpl
def hmlc_register_datasets(register: Callable[[str, Any], None]) -> None:
    from hmlc_padchest.dataset import PadChestDataset

    register(PadChestDataset.name, PadChestDataset())


@hookimpl
def hmlc_register_label_maps(register: Callable[[str, Any], None]) -> None:
    from hmlc_padchest.label_maps import PADCHEST_TO_CHEXPERT

    register("padchest->chexpert", PADCHEST_TO_CHEXPERT)
