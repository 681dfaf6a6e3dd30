"""Backbones: feature extractors that map images (or feature vectors) to pooled feature vectors.

A :class:`BackboneSpec` says how to build one (randomly initialised; weights
come separately from :mod:`hmlc.models.weights`) and what input it expects:
images, or feature vectors for ``input_kind="features"`` (the built-in
``mlp``, whose input width comes from the data and whose settings come from
``model.backbone_params``). Built-ins are registered by
:func:`register_builtin_backbones`; any
torchvision or timm classification model is reachable as
``"torchvision:<model>"`` or ``"timm:<model>"`` through
:func:`generic_backbone_spec`. Nothing here downloads.

Registering and checking backbones (names, ``model.backbone_params``) imports
no torch: the networks and the torchvision/timm adapters live in
:mod:`hmlc.models.networks`, imported when a backbone is built or a generic
name is resolved. So ``hmlc prepare`` and ``hmlc config show`` start fast.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hmlc.errors import ConfigError, PluginError
from hmlc.models.weights import WeightsSource

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "BackboneSpec",
    "TinyCNN",
    "MLP",
    "MLP_ACTIVATIONS",
    "MLP_ACTIVATION_NAMES",
    "resolve_backbone_params",
    "generic_backbone_spec",
    "register_builtin_backbones",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SOURCES = ("builtin", "torchvision", "timm")
_LIST_HINT = "run `hmlc list backbones` to see the available ones"


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone and what input it takes.

    ``build(in_chans)`` returns a randomly initialised module mapping float
    images (B, in_chans, H, W) to pooled features (B, num_features).
    ``mean``/``std`` normalise [0, 1] pixels per channel (see
    :func:`hmlc.models.to_model_input`); ``input_size`` is the default square
    side; ``weights`` says where pretrained weights live, or None.

    With ``input_kind="features"`` the backbone takes standardised feature
    vectors (B, D): ``build(D, **params)`` with ``params`` resolved from
    ``param_defaults`` (``model.backbone_params``), and the module's
    ``num_features`` attribute gives its output width (``num_features``
    here is a placeholder); ``in_chans``, ``mean``, ``std`` and
    ``input_size`` do not apply.
    """

    name: str
    build: Callable[[int], nn.Module]
    num_features: int
    input_size: int = 224
    in_chans: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    weights: WeightsSource | None = None
    source: str = "builtin"
    description: str = ""
    #: "image" or "features" (float vectors; see above).
    input_kind: str = "image"
    #: Every accepted key of ``model.backbone_params`` with its default.
    param_defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"backbone {self.name!r}"
        if not self.name:
            raise PluginError("a backbone spec needs a non-empty name")
        if not callable(self.build):
            raise PluginError(f"{where}: build must be callable as build(in_chans)")
        for field_name in ("num_features", "input_size", "in_chans"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PluginError(f"{where}: {field_name} must be a positive integer, got {value!r}")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if self.input_kind not in ("image", "features"):
            raise PluginError(f"{where}: input_kind must be 'image' or 'features', got {self.input_kind!r}")
        if self.input_kind == "features":
            return
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise PluginError(
                f"{where}: mean and std need one value per input channel ({self.in_chans}), "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise PluginError(f"{where}: std values must be positive, got {self.std}")
        if self.source not in SOURCES:
            raise PluginError(f"{where}: source must be one of {', '.join(SOURCES)}, got {self.source!r}")


#: Activations the MLP backbone accepts (model.backbone_params.activation).
MLP_ACTIVATION_NAMES: tuple[str, ...] = ("relu", "gelu", "silu", "tanh")

#: Names served from :mod:`hmlc.models.networks` (torch) on first access.
_NETWORK_NAMES = ("TinyCNN", "MLP", "MLP_ACTIVATIONS")


def __getattr__(name: str) -> Any:
    if name in _NETWORK_NAMES:
        from hmlc.models import networks

        return getattr(networks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The builders below import torch when called, not when a spec is registered.
def _build_tiny_cnn(in_chans: int) -> nn.Module:
    from hmlc.models.networks import TinyCNN

    return TinyCNN(in_chans)


def _build_mlp(in_features: int, **params: Any) -> nn.Module:
    from hmlc.models.networks import MLP

    return MLP(in_features, **params)


def _build_torchvision(model_name: str, in_chans: int, **options: Any) -> nn.Module:
    from hmlc.models.networks import build_torchvision

    return build_torchvision(model_name, in_chans, **options)


def _mlp_spec() -> BackboneSpec:
    return BackboneSpec(
        name="mlp",
        build=_build_mlp,
        num_features=1,
        in_chans=1,
        mean=(),
        std=(),
        input_kind="features",
        param_defaults={"layers": 2, "width": 256, "dropout": 0.0, "activation": "relu"},
        description="multilayer perceptron on feature vectors (model.backbone_params: layers, width, dropout, activation)",
    )


def resolve_backbone_params(spec: BackboneSpec, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``spec.param_defaults`` updated by ``params`` (``model.backbone_params``); bad keys or values raise ConfigError."""
    resolved = dict(spec.param_defaults)
    for key, value in (params or {}).items():
        if key not in resolved:
            accepted = ", ".join(sorted(spec.param_defaults)) or "none"
            raise ConfigError(f"backbone {spec.name!r} has no parameter {key!r} (model.backbone_params.{key}); accepted: {accepted}")
        default = resolved[key]
        if isinstance(default, bool) or default is None:
            ok = isinstance(value, type(default)) if default is not None else True
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise ConfigError(
                f"backbone {spec.name!r}: model.backbone_params.{key} must be {type(default).__name__}, got {value!r}"
            )
        resolved[key] = value
    if spec.name == "mlp":
        _check_mlp(resolved)
    return resolved


def _check_mlp(p: Mapping[str, Any]) -> None:
    if p["layers"] < 0:
        raise ConfigError(f"model.backbone_params.layers must be 0 or more, got {p['layers']}")
    if p["width"] < 1:
        raise ConfigError(f"model.backbone_params.width must be at least 1, got {p['width']}")
    if not 0.0 <= p["dropout"] < 1.0:
        raise ConfigError(f"model.backbone_params.dropout must be in [0, 1), got {p['dropout']}")
    if p["activation"] not in MLP_ACTIVATION_NAMES:
        raise ConfigError(
            f"model.backbone_params.activation {p['activation']!r} is unknown; use {', '.join(MLP_ACTIVATION_NAMES)}"
        )


def generic_backbone_spec(name: str) -> BackboneSpec:
    """The spec of ``"torchvision:<model>"`` or ``"timm:<model>"``.

    Any torchvision or timm classification model, its classifier removed so it
    returns pooled features; input size, mean and std from its pretrained
    configuration. Raises :class:`PluginError` for anything else.
    """
    scheme, sep, model_name = name.partition(":")
    if not sep or not model_name or scheme not in ("torchvision", "timm"):
        raise PluginError(
            f"unknown backbone {name!r}: give a registered name, 'torchvision:<model>' or 'timm:<model>'; {_LIST_HINT}"
        )
    from hmlc.models.networks import timm_spec, torchvision_spec

    if scheme == "torchvision":
        return torchvision_spec(model_name, name)
    return timm_spec(model_name, name)


def _tiny_cnn_spec() -> BackboneSpec:
    return BackboneSpec(
        name="tiny_cnn",
        build=_build_tiny_cnn,
        num_features=128,
        input_size=64,
        in_chans=1,
        mean=(0.5,),
        std=(0.25,),
        weights=None,
        source="builtin",
        description="4-layer grayscale CNN (~97k parameters) for tests and CPU smoke runs at 64x64",
    )


def _torchvision_builtin(model_name: str, num_features: int, filename: str, description: str) -> BackboneSpec:
    """A torchvision spec with known values, so registering imports nothing."""
    return BackboneSpec(
        name=model_name,
        build=functools.partial(_build_torchvision, model_name),
        num_features=num_features,
        input_size=224,
        in_chans=3,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        weights=WeightsSource(filename=filename, kind="torchvision"),
        source="torchvision",
        description=description,
    )


def register_builtin_backbones(register: Callable[[str, BackboneSpec], None]) -> None:
    """Register tiny_cnn, resnet18, mobilenet_v3_small and mlp (feature vectors) with the plugin host."""
    register("tiny_cnn", _tiny_cnn_spec())
    register("mlp", _mlp_spec())
    register(
        "resnet18",
        _torchvision_builtin(
            "resnet18", 512, "resnet18-f37072fd.pth", "torchvision ResNet-18 (11M parameters), ImageNet statistics"
        ),
    )
    register(
        "mobilenet_v3_small",
        _torchvision_builtin(
            "mobilenet_v3_small",
            1024,
            "mobilenet_v3_small-047dcff4.pth",
            "torchvision MobileNetV3-Small (1.5M parameters), ImageNet statistics",
        ),
    )
