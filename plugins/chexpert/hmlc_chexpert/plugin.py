"""The hook implementations of the CheXpert plugin (entry point ``chexpert``).

Modules are imported inside the hooks, so loading the plugin costs nothing
until a registry of that kind is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hmlc.plugins import hookimpl
from hmlc_chexpert import HIERARCHY_FILE


@hookimpl
def hmlc_register_hierarchies(register: Callable[[str, Any], None]) -> None:
    register("chexpert", str(HIERARCHY_FILE))


@hookimpl
def hmlc_register_datasets(register: Callable[[str, Any], None]) -> None:
    from hmlc_chexpert.dataset import CheXpertDataset

    register(CheXpertDataset.name, CheXpertDataset())


@hookimpl
def hmlc_register_preprocessors(register: Callable[[str, Any], None]) -> None:
    from hmlc_chexpert.template_match import TemplateMatch

    register(TemplateMatch.name, TemplateMatch)


@hookimpl
def hmlc_register_backbones(register: Callable[[str, Any], None]) -> None:
    from hmlc_chexpert.backbones import register_paper_backbones

    register_paper_backbones(register)


@hookimpl
def hmlc_register_presets(register: Callable[[str, Any], None]) -> None:
    from hmlc_chexpert.presets import register_paper_presets

    register_paper_presets(register)
