"""HmlcModel, build_model and to_model_input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hmlc.errors import ConfigError, DataError, WeightsNotFoundError
from hmlc.models import BackboneSpec, HmlcModel, build_model, to_model_input


def test_to_model_input_expands_grayscale_and_normalises(builtin_specs: dict[str, BackboneSpec]) -> None:
    spec = builtin_specs["resnet18"]
    images = torch.tensor([0, 255, 51, 102], dtype=torch.uint8).view(1, 1, 2, 2).repeat(3, 1, 1, 1)
    x = to_model_input(images, spec)
    assert x.shape == (3, 3, 2, 2) and x.dtype == torch.float32
    pixels = torch.tensor([0.0, 1.0, 0.2, 0.4]).view(1, 1, 2, 2)
    for c, (mean, std) in enumerate(zip(spec.mean, spec.std)):
        torch.testing.assert_close(x[:, c : c + 1], ((pixels - mean) / std).expand(3, 1, 2, 2))


def test_to_model_input_single_channel_and_mapping_stats(builtin_specs: dict[str, BackboneSpec]) -> None:
    images = torch.full((2, 1, 4, 4), 255, dtype=torch.uint8)
    x = to_model_input(images, builtin_specs["tiny_cnn"])
    assert x.shape == (2, 1, 4, 4)
    torch.testing.assert_close(x, torch.full_like(x, (1.0 - 0.5) / 0.25))
    # Checkpoint metadata carries the statistics as a mapping.
    y = to_model_input(images, {"mean": [0.5, 0.5], "std": [0.5, 0.25]})
    torch.testing.assert_close(y[:, 0], torch.full((2, 4, 4), 1.0))
    torch.testing.assert_close(y[:, 1], torch.full((2, 4, 4), 2.0))


def test_to_model_input_floats_colour_and_memory_format(builtin_specs: dict[str, BackboneSpec]) -> None:
    spec = builtin_specs["resnet18"]
    as_float = to_model_input(torch.full((1, 1, 3, 3), 0.2), spec)
    as_bytes = to_model_input(torch.full((1, 1, 3, 3), 51, dtype=torch.uint8), spec)
    torch.testing.assert_close(as_float, as_bytes)
    colour = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    x = to_model_input(colour, spec, memory_format=torch.channels_last)
    assert x.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(x[:, 1], (colour[:, 1].float() / 255 - spec.mean[1]) / spec.std[1])
    half = to_model_input(colour, spec, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16


def test_to_model_input_rejects_wrong_images(builtin_specs: dict[str, BackboneSpec]) -> None:
    spec = builtin_specs["resnet18"]
    with pytest.raises(DataError, match="expected"):
        to_model_input(torch.zeros(2, 2, 8, 8, dtype=torch.uint8), spec)
    with pytest.raises(DataError, match="expected"):
        to_model_input(torch.zeros(8, 8, dtype=torch.uint8), spec)
    with pytest.raises(DataError, match="dtype"):
        to_model_input(torch.zeros(1, 1, 8, 8, dtype=torch.int32), spec)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_to_model_input_stays_on_the_device(builtin_specs: dict[str, BackboneSpec]) -> None:
    spec = builtin_specs["resnet18"]
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    on_gpu = to_model_input(images.cuda(), spec, memory_format=torch.channels_last)
    assert on_gpu.is_cuda and on_gpu.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(on_gpu.cpu(), to_model_input(images, spec))


def _tiny_model(builtin_specs: dict[str, BackboneSpec], **kwargs: object) -> HmlcModel:
    torch.manual_seed(0)
    return build_model(builtin_specs["tiny_cnn"], num_labels=4, **kwargs)  # type: ignore[arg-type]


def test_forward_is_head_of_features(builtin_specs: dict[str, BackboneSpec]) -> None:
    model = _tiny_model(builtin_specs, multiclass=True).eval()
    x = torch.randn(3, 1, 32, 32)
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 12
    features = model.features(x)
    torch.testing.assert_close(model(x), model.head(features).view(3, 4, 3))
    torch.testing.assert_close(model.classify(features), model(x))


def test_freeze_backbone_trains_only_the_head(builtin_specs: dict[str, BackboneSpec]) -> None:
    model = _tiny_model(builtin_specs)
    model.freeze_backbone()
    model.train()
    assert model.backbone_frozen
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    assert {id(p) for p in model.head_parameters()} == {id(p) for p in model.head.parameters()}
    batch_norms = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert batch_norms and not any(bn.training for bn in batch_norms) and model.head.training
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model(torch.randn(4, 1, 32, 32)).sum().backward()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed while frozen"
    assert model.head.weight.grad is not None
    assert all(p.grad is None for p in model.backbone.parameters())
    model.eval()
    model.train()
    assert not any(bn.training for bn in batch_norms)


def test_unfrozen_model_updates_batchnorm(builtin_specs: dict[str, BackboneSpec]) -> None:
    model = _tiny_model(builtin_specs).train()
    bn = next(m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.running_mean.clone()
    model(torch.randn(4, 1, 32, 32))
    assert not torch.equal(bn.running_mean, before)


def test_build_model_argument_errors(builtin_specs: dict[str, BackboneSpec]) -> None:
    spec = builtin_specs["tiny_cnn"]
    with pytest.raises(ConfigError, match="model.pretrained"):
        build_model(spec, 3, weights_path="weights.pth")
    with pytest.raises(WeightsNotFoundError, match="model.pretrained=false"):
        build_model(spec, 3, pretrained=True)
    with pytest.raises(ConfigError, match="dropout"):
        build_model(spec, 3, dropout=1.0)
    with pytest.raises(ConfigError, match="label"):
        build_model(spec, 0)
