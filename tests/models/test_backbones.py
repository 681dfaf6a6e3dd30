"""Backbone specs: the built-in registry and torchvision/timm access by name."""

from __future__ import annotations

import pytest
import torch

from hmlc.errors import PluginError
from hmlc.models import BackboneSpec, build_model, generic_backbone_spec, to_model_input

SMALL = 32  # px; the smallest the ImageNet nets downsample cleanly, fast on CPU


def test_builtins_are_the_documented_ones(builtin_specs: dict[str, BackboneSpec]) -> None:
    assert {"tiny_cnn", "resnet18", "mobilenet_v3_small"} <= set(builtin_specs)
    tiny = builtin_specs["tiny_cnn"]
    assert (tiny.in_chans, tiny.mean, tiny.std, tiny.input_size, tiny.weights) == (1, (0.5,), (0.25,), 64, None)
    parameters = sum(p.numel() for p in tiny.build(1).parameters())
    assert 50_000 <= parameters <= 100_000
    for name in ("resnet18", "mobilenet_v3_small"):
        spec = builtin_specs[name]
        assert spec.source == "torchvision" and spec.in_chans == 3 and spec.input_size == 224
        assert spec.mean == pytest.approx((0.485, 0.456, 0.406)) and spec.std == pytest.approx((0.229, 0.224, 0.225))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_builtin_torchvision_values_match_torchvision(name: str, builtin_specs: dict[str, BackboneSpec]) -> None:
    # The built-ins hard-code these so registering imports nothing; keep them true.
    builtin, generic = builtin_specs[name], generic_backbone_spec(f"torchvision:{name}")
    assert builtin.num_features == generic.num_features
    assert builtin.input_size == generic.input_size
    assert builtin.weights == generic.weights


@pytest.mark.parametrize("multiclass", [False, True])
def test_builtin_backbone_trains(backbone_name: str, multiclass: bool, builtin_specs: dict[str, BackboneSpec]) -> None:
    torch.manual_seed(0)
    spec = builtin_specs[backbone_name]
    if spec.input_kind == "features":
        # A backbone of feature vectors: its input width comes from the data, its output from its settings.
        model = build_model(spec, num_labels=5, multiclass=multiclass, dropout=0.1, input_dim=7)
        x = torch.randn(2, 7)
        assert model.features(x).shape == (2, spec.param_defaults["width"])
    else:
        model = build_model(spec, num_labels=5, multiclass=multiclass, dropout=0.1)
        images = torch.randint(0, 256, (2, 1, SMALL, SMALL), dtype=torch.uint8)
        x = to_model_input(images, spec)
        assert x.shape == (2, spec.in_chans, SMALL, SMALL)
        assert model.features(x).shape == (2, spec.num_features)
    logits = model(x)
    assert logits.shape == ((2, 5, 3) if multiclass else (2, 5))
    logits.float().square().mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
    assert model.head.weight.grad.abs().sum() > 0
    fresh = spec.build(7) if spec.input_kind == "features" else spec.build(spec.in_chans)
    assert model.backbone.state_dict().keys() == fresh.state_dict().keys()


def test_mlp_settings_shape_the_network_and_bad_ones_are_config_errors(builtin_specs: dict[str, BackboneSpec]) -> None:
    from hmlc.errors import ConfigError

    spec = builtin_specs["mlp"]
    model = build_model(spec, 3, input_dim=11, backbone_params={"layers": 3, "width": 8, "activation": "gelu", "dropout": 0.2})
    linears = [m for m in model.backbone.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(11, 8), (8, 8), (8, 8)]
    assert sum(isinstance(m, torch.nn.GELU) for m in model.backbone.modules()) == 3
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.backbone.modules()) == 3
    linear = build_model(spec, 3, input_dim=11, backbone_params={"layers": 0})
    assert linear.head.in_features == 11  # no hidden layer: a linear model
    for bad in ({"depth": 2}, {"width": 0}, {"activation": "softmax"}, {"layers": "two"}, {"dropout": 1.0}):
        with pytest.raises(ConfigError, match="backbone_params"):
            build_model(spec, 3, input_dim=11, backbone_params=bad)
    with pytest.raises(ConfigError, match="needs their width"):
        build_model(spec, 3)


def test_torchvision_by_name_builds_pooled_features() -> None:
    spec = generic_backbone_spec("torchvision:resnet18")
    assert (spec.name, spec.source, spec.num_features, spec.in_chans) == ("torchvision:resnet18", "torchvision", 512, 3)
    assert spec.weights is not None and spec.weights.filename == "resnet18-f37072fd.pth"
    backbone = spec.build(3).eval()
    assert backbone(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    assert not any(name.startswith("fc.") for name in backbone.state_dict())


@pytest.mark.parametrize(
    ("name", "features", "input_size"),
    [("squeezenet1_1", 512, 224), ("inception_v3", 2048, 299), ("densenet121", 1024, 224)],
)
def test_torchvision_heads_of_other_families(name: str, features: int, input_size: int) -> None:
    # Convolutional classifier, auxiliary heads, and the paper's DenseNet.
    spec = generic_backbone_spec(f"torchvision:{name}")
    assert (spec.num_features, spec.input_size) == (features, input_size)


def test_torchvision_grayscale_input_channels() -> None:
    backbone = generic_backbone_spec("torchvision:mobilenet_v3_small").build(1).eval()
    assert backbone(torch.rand(2, 1, 32, 32)).shape == (2, 1024)


def test_timm_by_name_builds_pooled_features() -> None:
    spec = generic_backbone_spec("timm:resnet10t")
    assert (spec.source, spec.num_features, spec.input_size, spec.in_chans) == ("timm", 512, 176, 3)
    assert spec.mean == pytest.approx((0.485, 0.456, 0.406))
    assert spec.weights is not None and spec.weights.kind == "timm"
    assert spec.weights.filename == "timm/resnet10t.c3_in1k"
    model = build_model(spec, num_labels=3)
    x = to_model_input(torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8), spec)
    model(x).sum().backward()
    assert model(x).shape == (2, 3)
    assert spec.build(1)(torch.rand(2, 1, 32, 32)).shape == (2, 512)


@pytest.mark.parametrize(
    "name",
    ["torchvision:no_such_net", "timm:no_such_net", "no_such_net", "keras:resnet50", "timm:", "timm:hf-hub:x/y"],
)
def test_unknown_backbone_names_point_to_the_list(name: str) -> None:
    with pytest.raises(PluginError) as info:
        generic_backbone_spec(name)
    message = str(info.value)
    assert repr(name) in message and "hmlc list backbones" in message and "\n" not in message


def test_spec_validation_catches_plugin_mistakes() -> None:
    with pytest.raises(PluginError, match="one value per input channel"):
        BackboneSpec(name="bad", build=lambda c: torch.nn.Identity(), num_features=8, in_chans=1)
    with pytest.raises(PluginError, match="num_features"):
        BackboneSpec(name="bad", build=lambda c: torch.nn.Identity(), num_features=0)
    with pytest.raises(PluginError, match="source"):
        BackboneSpec(name="bad", build=lambda c: torch.nn.Identity(), num_features=8, source="keras")
