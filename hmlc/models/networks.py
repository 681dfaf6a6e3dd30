"""The torch side of backbones: the built-in networks and the torchvision/timm adapters.

Imported on first build or first generic name (``torchvision:<model>``,
``timm:<model>``), so that registering backbones and checking a
configuration's backbone (:mod:`hmlc.models.backbones`) import no torch.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hmlc.errors import PluginError
from hmlc.models.backbones import _LIST_HINT, IMAGENET_MEAN, IMAGENET_STD, BackboneSpec
from hmlc.models.weights import WeightsSource

__all__ = ["TinyCNN", "MLP", "MLP_ACTIVATIONS", "build_torchvision", "build_timm", "torchvision_spec", "timm_spec"]


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


#: Activations the MLP backbone accepts (model.backbone_params.activation): one per name in MLP_ACTIVATION_NAMES.
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


def build_torchvision(model_name: str, in_chans: int, **options: Any) -> nn.Module:
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


def torchvision_spec(model_name: str, name: str, description: str = "") -> BackboneSpec:
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
    build = functools.partial(build_torchvision, model_name, **options)
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


def build_timm(model_name: str, in_chans: int) -> nn.Module:
    """A randomly initialised timm model returning pooled features."""
    import timm

    return timm.create_model(model_name, pretrained=False, num_classes=0, in_chans=in_chans)


def timm_spec(model_name: str, name: str) -> BackboneSpec:
    import timm

    # "hf-hub:" and similar schemes make timm fetch a config from the network.
    if ":" in model_name or not timm.is_model(model_name):
        raise PluginError(f"unknown backbone {name!r}: timm has no model {model_name!r}; {_LIST_HINT}")
    probe = _on_meta(lambda: build_timm(model_name, 3))
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
        build=functools.partial(build_timm, model_name),
        num_features=int(probe.num_features),
        input_size=int(spatial[-1]) if spatial else 224,
        in_chans=3,
        mean=mean if len(mean) == 3 else IMAGENET_MEAN,
        std=std if len(std) == 3 else IMAGENET_STD,
        weights=weights,
        source="timm",
        description=f"timm {model_name}, pooled features",
    )

