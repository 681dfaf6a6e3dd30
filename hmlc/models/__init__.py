"""Models: backbone specs, pretrained weights, the hmlc network and checkpoints."""

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

__all__ = [
    "BackboneSpec",
    "generic_backbone_spec",
    "register_builtin_backbones",
    "WeightsSource",
    "find_weights",
    "load_pretrained",
    "HmlcModel",
    "build_model",
    "to_model_input",
    "StandardizeFeatures",
    "CHECKPOINT_FORMAT_VERSION",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_metadata",
    "flatten_state",
    "unflatten_state",
]
