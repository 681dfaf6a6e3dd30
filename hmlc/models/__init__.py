"""Models: backbone specs, pretrained weights, the hmlc network and checkpoints.

Names are imported from their modules on first access, so that naming a
backbone (a plugin registering a :class:`BackboneSpec`, a configuration
check) imports no torch; building, loading and saving do.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hmlc.models.backbones import BackboneSpec, generic_backbone_spec, register_builtin_backbones
    from hmlc.models.checkpoint import (
        CHECKPOINT_FORMAT_VERSION,
        Checkpoint,
        flatten_state,
        load_checkpoint,
        read_checkpoint_metadata,
        save_checkpoint,
        unflatten_state,
    )
    from hmlc.models.model import HmlcModel, StandardizeFeatures, build_model, to_model_input
    from hmlc.models.weights import WeightsSource, find_weights, load_pretrained

#: Public name -> the module that defines it.
_MODULES: dict[str, str] = {
    **dict.fromkeys(("BackboneSpec", "generic_backbone_spec", "register_builtin_backbones"), "hmlc.models.backbones"),
    **dict.fromkeys(("WeightsSource", "find_weights", "load_pretrained"), "hmlc.models.weights"),
    **dict.fromkeys(("HmlcModel", "build_model", "to_model_input", "StandardizeFeatures"), "hmlc.models.model"),
    **dict.fromkeys(
        ("CHECKPOINT_FORMAT_VERSION", "Checkpoint", "save_checkpoint", "load_checkpoint"), "hmlc.models.checkpoint"
    ),
    **dict.fromkeys(("read_checkpoint_metadata", "flatten_state", "unflatten_state"), "hmlc.models.checkpoint"),
}

__all__ = list(_MODULES)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULES])
