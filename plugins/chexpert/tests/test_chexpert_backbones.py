"""The six backbones of the paper: registered, true to torchvision/timm, trainable, weights found or named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hmlc_chexpert.backbones import BACKBONE_SOURCES, PAPER_BACKBONES

from hmlc.errors import WeightsNotFoundError
from hmlc.models import (
    BackboneSpec,
    build_model,
    find_weights,
    generic_backbone_spec,
    to_model_input,
)
from hmlc.plugins import get_host, reset_host

#: Smallest convenient input each network accepts (Inception-ResNet-v2's stem needs 75 px).
TEST_SIZE = {"inception_resnet_v2": 75}


def chexpert_backbones() -> list[str]:
    reset_host()
    names = get_host().registry("backbones").by_plugin().get("chexpert", [])
    reset_host()
    return names


REGISTERED = chexpert_backbones()


def test_the_plugin_registers_exactly_the_six_paper_backbones() -> None:
    assert sorted(REGISTERED) == sorted(PAPER_BACKBONES) == sorted(
        ["densenet121", "densenet169", "densenet201", "inception_resnet_v2", "xception", "nasnetalarge"]
    )


@pytest.mark.parametrize("name", REGISTERED)
def test_spec_matches_what_torchvision_or_timm_report(name: str) -> None:
    spec = get_host().backbone(name)
    generic = generic_backbone_spec(BACKBONE_SOURCES[name])
    assert (spec.num_features, spec.input_size, spec.mean, spec.std, spec.weights, spec.in_chans) == (
        generic.num_features, generic.input_size, generic.mean, generic.std, generic.weights, 3
    )
    inception = name in ("inception_resnet_v2", "xception", "nasnetalarge")
    assert spec.mean == ((0.5,) * 3 if inception else (0.485, 0.456, 0.406))
    assert spec.input_size == {"inception_resnet_v2": 299, "xception": 299, "nasnetalarge": 331}.get(name, 224)


@pytest.mark.parametrize("name", REGISTERED)
def test_random_init_forward_and_backward_on_cpu(name: str) -> None:
    torch.manual_seed(0)
    spec: BackboneSpec = get_host().backbone(name)
    model = build_model(spec, 14, pretrained=False)
    size = TEST_SIZE.get(name, 64)
    gray = torch.randint(0, 256, (2, 1, size, size), dtype=torch.uint8)
    logits = model(to_model_input(gray, spec))
    assert logits.shape == (2, 14) and torch.isfinite(logits).all()
    logits.sum().backward()
    first = next(p for p in model.backbone.parameters() if p.ndim == 4)
    assert first.shape[1] == 3 and first.grad is not None and first.grad.abs().sum() > 0
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HMLC_OFFLINE", "1")  # on a connected machine hmlc would download the real files
    return tmp_path


@pytest.mark.parametrize("name", REGISTERED)
def test_missing_weights_name_the_expected_file(name: str, empty_caches: Path) -> None:
    spec = get_host().backbone(name)
    assert spec.weights is not None
    with pytest.raises(WeightsNotFoundError) as info:
        find_weights(spec)
    message = str(info.value)
    assert spec.weights.filename in message and "model.pretrained=false" in message
    if spec.weights.legacy_filename:
        assert spec.weights.legacy_filename in message
    # Where a connected machine downloads them from: torchvision's or timm's own URL / repo.
    if spec.weights.kind == "torchvision":
        assert spec.weights.download_url is not None and spec.weights.download_url.endswith(spec.weights.filename)


def test_densenet121_weights_load_from_the_torch_hub_cache(empty_caches: Path) -> None:
    import torchvision

    spec = get_host().backbone("densenet121")
    with pytest.raises(WeightsNotFoundError, match="densenet121-a639ec97.pth"):
        build_model(spec, 14, pretrained=True)
    imagenet = torchvision.models.densenet121(weights=None)  # stands in for the published file
    hub = empty_caches / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(imagenet.state_dict(), hub / "densenet121-a639ec97.pth")
    model = build_model(spec, 14, pretrained=True)
    torch.testing.assert_close(model.backbone.features.conv0.weight, imagenet.features.conv0.weight)
    torch.testing.assert_close(model.backbone.features.norm5.running_var, imagenet.features.norm5.running_var)
