"""The hook implementations of the NIH ChestX-ray14 plugin (entry point ``nih``).

Modules are imported inside the hooks, so loading the plugin costs nothing
until a registry of that kind is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hmlc.plugins import hookimpl
from hmlc_nih import HIERARCHY_FILE


@hookimpl
def hmlc_register_hierarchies(register: Callable[[str, Any], None]) -> None:
    register("nih", str(HIERARCHY_FILE))


@hookimpl
def hmlc_register_datasets(register: Callable[[str, Any], None]) -> None:
    from hmlc_nih.dataset import NihDataset

    register(NihDataset.name, NihDataset())


@hookimpl
def hmlc_register_label_maps(register: Callable[[str, Any], None]) -> None:
    from hmlc_nih.label_maps import CHEXPERT_TO_NIH, NIH_TO_CHEXPERT

    register("nih->chexpert", NIH_TO_CHEXPERT)
    register("chexpert->nih", CHEXPERT_TO_NIH)
