"""The hmlc network: a backbone, optional dropout and one linear head.

Images reach the network through :func:`to_model_input`, the one place where
grayscale pixels become the backbone's normalised input channels.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from hmlc.errors import ConfigError, DataError
from hmlc.models.backbones import BackboneSpec
from hmlc.models.weights import find_weights, load_pretrained

__all__ = ["HmlcModel", "build_model", "to_model_input", "StandardizeFeatures"]

MULTICLASS_STATES = 3  # negative, positive, uncertain (U-MultiClass)


class HmlcModel(nn.Module):
    """A backbone followed by a linear head giving one logit per label.

    With ``multiclass`` the head gives three logits per label (U-MultiClass):
    ``forward`` returns (B, K, 3) instead of (B, K).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        num_labels: int,
        multiclass: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_labels < 1:
            raise ConfigError(f"the model needs at least one label, got {num_labels}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {dropout}")
        self.backbone = backbone
        self.num_features = num_features
        self.num_labels = num_labels
        self.multiclass = multiclass
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(num_features, num_labels * (MULTICLASS_STATES if multiclass else 1))
        self._backbone_frozen = False

    @property
    def backbone_frozen(self) -> bool:
        """Whether :meth:`freeze_backbone` was called."""
        return self._backbone_frozen

    def features(self, x: Tensor) -> Tensor:
        """Pooled backbone features (B, F) of model input (B, C, H, W)."""
        return self.backbone(x)

    def classify(self, features: Tensor) -> Tensor:
        """Logits of pooled features: (B, K), or (B, K, 3) when multiclass."""
        logits = self.head(self.dropout(features))
        if self.multiclass:
            return logits.view(logits.shape[0], self.num_labels, MULTICLASS_STATES)
        return logits

    def forward(self, x: Tensor) -> Tensor:
        """Logits of model input (B, C, H, W): (B, K), or (B, K, 3) when multiclass."""
        return self.classify(self.features(x))

    def freeze_backbone(self) -> None:
        """Train only the head from now on (stage 2 of conditional training).

        Every parameter but the head's stops requiring gradients, and the
        backbone stays in eval mode even after ``train()``: its BatchNorm
        running statistics and dropout must not change while it is frozen,
        so frozen features equal those computed once in inference mode.
        """
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)
        self._backbone_frozen = True
        self.backbone.eval()

    def unfreeze_backbone(self) -> None:
        """Undo :meth:`freeze_backbone`: every parameter trains again."""
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(True)
        self._backbone_frozen = False

    def train(self, mode: bool = True) -> HmlcModel:
        """Set training mode; a frozen backbone stays in eval mode."""
        super().train(mode)
        if self._backbone_frozen:
            self.backbone.eval()
        return self

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters of the head (what stage 2 trains)."""
        return self.head.parameters()


def build_model(
    spec: BackboneSpec,
    num_labels: int,
    *,
    multiclass: bool = False,
    pretrained: bool = False,
    weights_path: str | os.PathLike[str] | None = None,
    dropout: float = 0.0,
    backbone_params: Mapping[str, Any] | None = None,
    input_dim: int | None = None,
) -> HmlcModel:
    """An :class:`HmlcModel` on ``spec``'s backbone.

    With ``pretrained`` the backbone's weights come from ``weights_path`` or
    the local caches, downloaded into them when missing
    (:func:`hmlc.models.weights.find_weights`). The head is always freshly initialised.
    A backbone of feature vectors (``spec.input_kind == "features"``) is built for
    ``input_dim`` features with ``backbone_params`` (``model.backbone_params``).
    """
    from hmlc.models.backbones import resolve_backbone_params

    if weights_path is not None and not pretrained:
        raise ConfigError(
            "model.weights is set but model.pretrained is false; set model.pretrained=true to load it, "
            "or drop model.weights"
        )
    params = resolve_backbone_params(spec, backbone_params)
    if spec.input_kind == "features":
        if input_dim is None or input_dim < 1:
            raise ConfigError(f"backbone {spec.name!r} takes feature vectors and needs their width, got {input_dim!r}")
        if pretrained:
            raise ConfigError(f"backbone {spec.name!r} has no pretrained weights; set model.pretrained=false")
        backbone = spec.build(input_dim, **params)
        return HmlcModel(backbone, int(backbone.num_features), num_labels, multiclass=multiclass, dropout=dropout)
    backbone = spec.build(spec.in_chans, **params)
    if pretrained:
        path = find_weights(spec, weights_path)
        discard = spec.weights.discard if spec.weights is not None else ()
        load_pretrained(backbone, path, discard=discard)
    return HmlcModel(backbone, spec.num_features, num_labels, multiclass=multiclass, dropout=dropout)


@functools.lru_cache(maxsize=32)
def _affine(
    mean: tuple[float, ...], std: tuple[float, ...], scale_to_unit: float, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Per-channel (scale, shift) with input * scale + shift == (input / max - mean) / std."""
    mean_t = torch.tensor(mean, dtype=torch.float64)
    std_t = torch.tensor(std, dtype=torch.float64)
    scale = (1.0 / (scale_to_unit * std_t)).to(dtype).view(1, -1, 1, 1)
    shift = (-mean_t / std_t).to(dtype).view(1, -1, 1, 1)
    return scale.to(device), shift.to(device)


def _normalisation(spec_or_stats: BackboneSpec | Mapping[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    """(mean, std, in_chans) of a spec, or of a mapping with "mean", "std" and optionally "in_chans"."""
    if isinstance(spec_or_stats, Mapping):
        try:
            mean, std = spec_or_stats["mean"], spec_or_stats["std"]
        except KeyError as error:
            raise DataError(f"normalisation statistics lack {error.args[0]!r}; give mean and std") from None
        in_chans = spec_or_stats.get("in_chans", len(mean))
    else:
        mean, std = spec_or_stats.mean, spec_or_stats.std
        in_chans = getattr(spec_or_stats, "in_chans", len(mean))
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if not (len(mean) == len(std) == int(in_chans)):
        raise DataError(f"normalisation has {len(mean)} means and {len(std)} stds for {in_chans} channels")
    return mean, std, int(in_chans)


def to_model_input(
    images: Tensor,
    spec_or_stats: BackboneSpec | Mapping[str, Any],
    *,
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Tensor:
    """Model input (B, C, H, W) of images (B, 1 or C, H, W).

    The one place grayscale handling happens: uint8 pixels are scaled to
    [0, 1] (floating images are taken as already in [0, 1]), one channel is
    repeated to the backbone's ``in_chans`` channels, and each channel is
    normalised by the spec's (or the mapping's "mean"/"std") statistics. Runs
    on the images' device; ``memory_format=torch.channels_last`` gives
    channels-last output without an extra copy.
    """
    mean, std, in_chans = _normalisation(spec_or_stats)
    if images.ndim != 4 or images.shape[1] not in (1, in_chans):
        raise DataError(
            f"images have shape {tuple(images.shape)}; expected (batch, 1 or {in_chans}, height, width)"
        )
    if not (images.dtype == torch.uint8 or images.is_floating_point()):
        raise DataError(f"images have dtype {images.dtype}; expected uint8 or floating point")
    scale_to_unit = 255.0 if images.dtype == torch.uint8 else 1.0
    scale, shift = _affine(mean, std, scale_to_unit, images.device, dtype)
    batch, _, height, width = images.shape
    out = torch.empty((batch, in_chans, height, width), dtype=dtype, device=images.device, memory_format=memory_format)
    # One fused op: broadcasting a single channel against per-channel
    # scale/shift both expands grayscale and normalises.
    return torch.addcmul(shift, images.to(dtype), scale, out=out)


class StandardizeFeatures(nn.Module):
    """Feature vectors (B, D) -> the MLP's input: ``(x - mean) / std``, a missing (NaN) value becoming 0.

    The torch side of :class:`hmlc.data.features.FeatureTransform` (its fitted
    ``mean`` and ``std`` are buffers here); the one place raw vectors become
    model input, in training, prediction and exported graphs alike.
    """

    def __init__(self, mean: Any, std: Any) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1).clone())
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1).clone())

    def forward(self, x: Tensor) -> Tensor:
        x = x.float()
        if x.ndim != 2 or x.shape[1] != self.mean.shape[1]:
            raise DataError(f"feature vectors have shape {tuple(x.shape)}; expected (batch, {self.mean.shape[1]})")
        z = (x - self.mean) / self.std
        return torch.where(torch.isnan(z), torch.zeros_like(z), z)
