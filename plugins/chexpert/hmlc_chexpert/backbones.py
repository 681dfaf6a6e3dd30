"""The six ImageNet CNNs of Pham et al. 2019, under the paper's names.

Input size, normalisation and the expected weights file are written out
here, so that registering them builds nothing; a test checks them against
what torchvision and timm report (:func:`hmlc.models.generic_backbone_spec`).
The networks themselves come from that generic builder on first use, so
registering them imports no torch (``hmlc prepare`` starts without it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from hmlc.models import BackboneSpec, WeightsSource, generic_backbone_spec

if TYPE_CHECKING:
    from torch import nn

__all__ = ["BACKBONE_SOURCES", "PAPER_BACKBONES", "paper_backbone_specs", "register_paper_backbones"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Google's TensorFlow weights (Inception-ResNet-v2, Xception, NASNet) expect [-1, 1] input.
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)

#: Paper name -> the generic torchvision/timm name it is built from.
#: Xception is timm's "legacy_xception": Chollet's 2017 network as Keras
#: published it, which the paper used; timm's xception41/65/71 are the
#: later, deeper DeepLab variants.
BACKBONE_SOURCES: dict[str, str] = {
    "densenet121": "torchvision:densenet121",
    "densenet169": "torchvision:densenet169",
    "densenet201": "torchvision:densenet201",
    "inception_resnet_v2": "timm:inception_resnet_v2",
    "xception": "timm:legacy_xception",
    "nasnetalarge": "timm:nasnetalarge",
}

#: The paper's backbones in the order of its ensemble table.
PAPER_BACKBONES: tuple[str, ...] = tuple(BACKBONE_SOURCES)


#: Where timm's URL-only (pre-Hugging Face) weight files are published.
_TIMM_RELEASES = "https://github.com/rwightman/pytorch-image-models/releases/download"


def _build(generic_name: str, in_chans: int) -> nn.Module:
    return generic_backbone_spec(generic_name).build(in_chans)


def _spec(
    name: str,
    num_features: int,
    input_size: int,
    inception: bool,
    weights: WeightsSource,
    description: str,
) -> BackboneSpec:
    source = BACKBONE_SOURCES[name]
    return BackboneSpec(
        name=name,
        build=functools.partial(_build, source),
        num_features=num_features,
        input_size=input_size,
        in_chans=3,
        mean=INCEPTION_MEAN if inception else IMAGENET_MEAN,
        std=INCEPTION_STD if inception else IMAGENET_STD,
        weights=weights,
        source=source.split(":", 1)[0],
        description=description,
    )


def paper_backbone_specs() -> list[BackboneSpec]:
    """Specs of the six backbones of the paper (nothing is built or imported from timm here)."""
    return [
        _spec(
            "densenet121", 1024, 224, False,
            WeightsSource("densenet121-a639ec97.pth", "torchvision"),
            "DenseNet-121 (torchvision, 7.0M parameters), 224 px, ImageNet statistics",
        ),
        _spec(
            "densenet169", 1664, 224, False,
            WeightsSource("densenet169-b2777c0a.pth", "torchvision"),
            "DenseNet-169 (torchvision, 12.5M parameters), 224 px, ImageNet statistics",
        ),
        _spec(
            "densenet201", 1920, 224, False,
            WeightsSource("densenet201-c1103571.pth", "torchvision"),
            "DenseNet-201 (torchvision, 18.1M parameters), 224 px, ImageNet statistics",
        ),
        _spec(
            "inception_resnet_v2", 1536, 299, True,
            WeightsSource("timm/inception_resnet_v2.tf_in1k", "timm", discard=("classif",)),
            "Inception-ResNet-v2 (timm, 54.3M parameters), 299 px, Inception statistics",
        ),
        _spec(
            "xception", 2048, 299, True,
            WeightsSource(
                "xception-43020ad28.pth", "torchvision", discard=("fc",),
                url=f"{_TIMM_RELEASES}/v0.1-cadene/xception-43020ad28.pth",
            ),
            "Xception, Chollet 2017 (timm legacy_xception, 20.8M parameters), 299 px, Inception statistics",
        ),
        _spec(
            "nasnetalarge", 4032, 331, True,
            WeightsSource(
                "timm/nasnetalarge.tf_in1k", "timm", legacy_filename="nasnetalarge-dc4a7b8b.pth",
                discard=("last_linear",), url=f"{_TIMM_RELEASES}/v0.1-weights/nasnetalarge-dc4a7b8b.pth",
            ),
            "NASNet-A Large (timm, 84.7M parameters), 331 px, Inception statistics",
        ),
    ]


def register_paper_backbones(register: Callable[[str, BackboneSpec], None]) -> None:
    """Register the six backbones under their paper names."""
    for spec in paper_backbone_specs():
        register(spec.name, spec)
