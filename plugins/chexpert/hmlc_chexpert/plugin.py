"""The hook implementations of the CheXpert plugin (entry point ``chexpert``)."""

from __future__ import annotations

from hmlc.plugins import hookimpl

from hmlc_chexpert import HIERARCHY_FILE


@hookimpl
def hmlc_register_hierarchies(register):  # type: ignore[no-untyped-def]
    register("chexpert", str(HIERARCHY_FILE))
