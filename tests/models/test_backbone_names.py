"""Backbone names and parameters are checked without torch; the torch side agrees with them."""

from __future__ import annotations

import pytest
import torch

import hmlc.models
from hmlc.errors import ConfigError
from hmlc.models import backbones, networks
from hmlc.plugins import get_host


def test_every_public_name_of_hmlc_models_resolves() -> None:
    for name in hmlc.models.__all__:
        assert getattr(hmlc.models, name) is not None, name
    assert set(hmlc.models.__all__) <= set(dir(hmlc.models))
    with pytest.raises(AttributeError):
        hmlc.models.no_such_name  # noqa: B018


def test_the_mlp_activations_checked_are_the_ones_built() -> None:
    assert tuple(networks.MLP_ACTIVATIONS) == backbones.MLP_ACTIVATION_NAMES
    assert backbones.MLP_ACTIVATIONS is networks.MLP_ACTIVATIONS and backbones.TinyCNN is networks.TinyCNN
    spec = get_host().backbone("mlp")
    for name in backbones.MLP_ACTIVATION_NAMES:
        model = spec.build(5, **backbones.resolve_backbone_params(spec, {"activation": name, "layers": 1}))
        assert isinstance(model.layers[1], networks.MLP_ACTIVATIONS[name])
    with pytest.raises(ConfigError, match="activation 'softmax' is unknown; use relu, gelu, silu, tanh"):
        backbones.resolve_backbone_params(spec, {"activation": "softmax"})


def test_registered_builders_build_the_networks_they_name() -> None:
    host = get_host()
    assert isinstance(host.backbone("tiny_cnn").build(1), networks.TinyCNN)
    resnet = host.backbone("resnet18")
    model = resnet.build(3).eval()
    with torch.no_grad():
        features = model(torch.zeros(1, 3, 64, 64))
    assert type(model).__name__ == "ResNet" and features.shape == (1, resnet.num_features)
