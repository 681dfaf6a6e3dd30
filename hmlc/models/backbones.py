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
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hmlc.errors import ConfigError, PluginError
from hmlc.models.weights import WeightsSource

__all__ = [
    "BackboneSpec",
    "TinyCNN",
    "MLP",
    "MLP_ACTIVATIONS",
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


class TinyCNN(nn.Module):
    """Four conv-BatchNorm-ReLU blocks and global average pooling (~97k parameters).

    Meant for tests and CPU smoke runs at 64x64, not for accuracy.
    """

    def __init__(self, in_chans: int = 1, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_chans
        for width in widths:
            layers += [
                nn.Conv2d(previous, width, kernel_size=3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            previous = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = previous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, num_features) of images (B, in_chans, H, W)."""
        return self.pool(self.features(x)).flatten(1)


#: Activations the MLP backbone accepts (model.backbone_params.activation).
MLP_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """``layers`` blocks of Linear -> activation -> dropout on feature vectors (B, D).

    ``layers=0`` is the identity (the head alone: a linear model). Output
    width ``num_features`` is ``width`` (``in_features`` with no layers).
    """

    def __init__(
        self, in_features: int, layers: int = 2, width: int = 256, dropout: float = 0.0, activation: str = "relu"
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        previous = in_features
        for _ in range(layers):
            blocks += [nn.Linear(previous, width), MLP_ACTIVATIONS[activation]()]
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            previous = width
        self.layers = nn.Sequential(*blocks)
        self.num_features = previous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (B, num_features) of vectors (B, in_features)."""
        return self.layers(x)


def _mlp_spec() -> BackboneSpec:
    return BackboneSpec(
        name="mlp",
        build=MLP,
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
    if p["activation"] not in MLP_ACTIVATIONS:
        raise ConfigError(
            f"model.backbone_params.activation {p['activation']!r} is unknown; use {', '.join(MLP_ACTIVATIONS)}"
        )


# --- torchvision -------------------------------------------------------------

# Models whose auxiliary classifiers are only useful for ImageNet training;
# transform_input makes torchvision's ImageNet-normalised input what their
# original (Google) weights expect, as torchvision does when it loads them.
_TORCHVISION_KWARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True, "transform_input": True},
    "inception_v3": {"aux_logits": False, "init_weights": True, "transform_input": True},
}
_TORCHVISION_HEADS = ("fc", "classifier", "heads", "head")


def _torchvision_names() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def _strip_torchvision_classifier(model: nn.Module, model_name: str) -> None:
    """Replace the final linear classifier layer with Identity, in place.

    Earlier layers of a multi-layer classifier (VGG, MobileNetV3) stay: they
    carry pretrained weights. A convolutional classifier (SqueezeNet) becomes
    global average pooling.
    """
    for attribute in _TORCHVISION_HEADS:
        head = getattr(model, attribute, None)
        if isinstance(head, nn.Linear):
            setattr(model, attribute, nn.Identity())
            return
        if isinstance(head, nn.Sequential):
            if len(head) and isinstance(head[-1], nn.Linear):
                head[-1] = nn.Identity()
            else:
                setattr(model, attribute, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)))
            return
    raise PluginError(
        f"torchvision model {model_name!r} has no classifier hmlc knows how to remove "
        f"(looked for {', '.join(_TORCHVISION_HEADS)}); register a BackboneSpec for it in a plugin"
    )


def _replace_input_conv(model: nn.Module, in_chans: int) -> None:
    """Swap the first 3-channel convolution for one taking ``in_chans`` channels."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3 and module.groups == 1:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            conv = nn.Conv2d(
                in_chans,
                module.out_channels,
                kernel_size=module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                bias=module.bias is not None,
                padding_mode=module.padding_mode,
            )
            setattr(parent, child, conv)
            return
    raise PluginError("found no 3-channel input convolution to adapt to another number of channels")


def _build_torchvision(model_name: str, in_chans: int, **options: Any) -> nn.Module:
    """A randomly initialised torchvision model returning pooled features."""
    from torchvision.models import get_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = get_model(model_name, weights=None, **_TORCHVISION_KWARGS.get(model_name, {}), **options)
    _strip_torchvision_classifier(model, model_name)
    if in_chans != 3:
        if model_name in _TORCHVISION_KWARGS:
            model.transform_input = False  # its colour transform needs 3 channels
        _replace_input_conv(model, in_chans)
    return model


def _feature_width(model: nn.Module, in_chans: int, size: int) -> int:
    """Width of a feature extractor's output, from a shape-only (meta) forward."""
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.empty(1, in_chans, size, size, device="meta"))
    except Exception as error:  # noqa: BLE001 - any failure means we cannot use it
        raise PluginError(
            f"cannot run the backbone on a {size}x{size} image to find its feature width: {error}"
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise PluginError(f"backbone output is {shape}, expected a (batch, features) tensor")
    return int(out.shape[1])


def _on_meta(build: Callable[[], nn.Module]) -> nn.Module:
    """Build on the meta device (no memory, no init cost); on CPU if that fails."""
    try:
        with torch.device("meta"):
            return build()
    except (NotImplementedError, RuntimeError):
        model = build()
        return model.to("meta")


def _torchvision_spec(model_name: str, name: str, description: str = "") -> BackboneSpec:
    import torchvision

    if model_name not in _torchvision_names():
        raise PluginError(
            f"unknown backbone {name!r}: torchvision has no classification model {model_name!r}; {_LIST_HINT}"
        )
    input_size, mean, std, weights = 224, IMAGENET_MEAN, IMAGENET_STD, None
    options: dict[str, Any] = {}
    try:
        default = torchvision.models.get_model_weights(model_name).DEFAULT
    except (ValueError, AttributeError):
        default = None
    if default is not None:
        transforms = default.transforms()
        input_size = int(transforms.crop_size[0])
        mean, std = tuple(transforms.mean), tuple(transforms.std)
        weights = WeightsSource(filename=os.path.basename(default.url), kind="torchvision", url=default.url)
        if model_name.startswith("vit_"):
            # ViT position embeddings are sized for one resolution; torchvision
            # sets it from the weights when it loads them, so must we.
            options["image_size"] = int(default.meta["min_size"][0])
    build = functools.partial(_build_torchvision, model_name, **options)
    probe = _on_meta(lambda: build(3))
    width = _feature_width(probe, 3, input_size)
    return BackboneSpec(
        name=name,
        build=build,
        num_features=width,
        input_size=input_size,
        in_chans=3,
        mean=mean,
        std=std,
        weights=weights,
        source="torchvision",
        description=description or f"torchvision {model_name}, classifier removed, ImageNet statistics",
    )


# --- timm --------------------------------------------------------------------


def _build_timm(model_name: str, in_chans: int) -> nn.Module:
    """A randomly initialised timm model returning pooled features."""
    import timm

    return timm.create_model(model_name, pretrained=False, num_classes=0, in_chans=in_chans)


def _timm_spec(model_name: str, name: str) -> BackboneSpec:
    import timm

    # "hf-hub:" and similar schemes make timm fetch a config from the network.
    if ":" in model_name or not timm.is_model(model_name):
        raise PluginError(f"unknown backbone {name!r}: timm has no model {model_name!r}; {_LIST_HINT}")
    probe = _on_meta(lambda: _build_timm(model_name, 3))
    cfg = dict(getattr(probe, "pretrained_cfg", None) or {})
    in_chans, *spatial = cfg.get("input_size", (3, 224, 224))
    weights = None
    discard = cfg.get("classifier") or ()
    discard = (discard,) if isinstance(discard, str) else tuple(discard)
    url = cfg.get("url") or ""
    if cfg.get("hf_hub_id"):
        weights = WeightsSource(
            filename=cfg["hf_hub_id"],
            kind="timm",
            legacy_filename=os.path.basename(url) or None,
            discard=discard,
            url=url or None,
        )
    elif cfg.get("file"):
        weights = WeightsSource(filename=str(cfg["file"]), kind="file", discard=discard)
    elif url:
        weights = WeightsSource(filename=os.path.basename(url), kind="torchvision", discard=discard, url=url)
    mean = tuple(cfg.get("mean", IMAGENET_MEAN))
    std = tuple(cfg.get("std", IMAGENET_STD))
    return BackboneSpec(
        name=name,
        build=functools.partial(_build_timm, model_name),
        num_features=int(probe.num_features),
        input_size=int(spatial[-1]) if spatial else 224,
        in_chans=3,
        mean=mean if len(mean) == 3 else IMAGENET_MEAN,
        std=std if len(std) == 3 else IMAGENET_STD,
        weights=weights,
        source="timm",
        description=f"timm {model_name}, pooled features",
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
    if scheme == "torchvision":
        return _torchvision_spec(model_name, name)
    return _timm_spec(model_name, name)


def _tiny_cnn_spec() -> BackboneSpec:
    return BackboneSpec(
        name="tiny_cnn",
        build=TinyCNN,
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
