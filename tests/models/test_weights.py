"""Pretrained weights from local caches: finding, loading, adapting, failing clearly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hmlc.errors import CheckpointError, WeightsNotFoundError
from hmlc.models import BackboneSpec, build_model, find_weights, generic_backbone_spec, load_pretrained


def _imagenet_resnet18_state(seed: int = 1) -> dict[str, torch.Tensor]:
    """What torchvision's resnet18 file holds: the full classifier, fc included."""
    import torchvision

    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None).state_dict()


def test_torchvision_weights_load_from_the_torch_hub_cache(
    torch_hub_dir: Path, builtin_specs: dict[str, BackboneSpec]
) -> None:
    spec = builtin_specs["resnet18"]
    state = _imagenet_resnet18_state()
    torch.save(state, torch_hub_dir / "resnet18-f37072fd.pth")
    assert find_weights(spec, None) == torch_hub_dir / "resnet18-f37072fd.pth"
    model = build_model(spec, num_labels=3, pretrained=True)
    loaded = model.backbone.state_dict()
    assert "fc.weight" not in loaded
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key


def test_explicit_path_wins_over_the_cache(
    torch_hub_dir: Path, tmp_path: Path, builtin_specs: dict[str, BackboneSpec]
) -> None:
    spec = builtin_specs["resnet18"]
    torch.save(_imagenet_resnet18_state(1), torch_hub_dir / "resnet18-f37072fd.pth")
    explicit = tmp_path / "mine.safetensors"
    state = _imagenet_resnet18_state(2)
    save_file(state, str(explicit))
    assert find_weights(spec, str(explicit)) == explicit
    model = build_model(spec, num_labels=3, pretrained=True, weights_path=explicit)
    assert torch.equal(model.backbone.conv1.weight, state["conv1.weight"])
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        find_weights(spec, str(tmp_path / "absent.pth"))


def test_missing_torchvision_weights_say_what_and_where(
    torch_hub_dir: Path, builtin_specs: dict[str, BackboneSpec]
) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        build_model(builtin_specs["resnet18"], num_labels=3, pretrained=True)
    message = str(info.value)
    assert "\n" not in message
    assert "resnet18-f37072fd.pth" in message and str(torch_hub_dir) in message
    assert "model.weights=PATH" in message and "model.pretrained=false" in message


def _timm_full_state() -> dict[str, torch.Tensor]:
    import timm

    torch.manual_seed(3)
    return timm.create_model("resnet10t", pretrained=False).state_dict()


def test_timm_weights_load_from_the_hugging_face_cache(torch_hub_dir: Path, hf_hub_dir: Path) -> None:
    spec = generic_backbone_spec("timm:resnet10t")
    repo = hf_hub_dir / "models--timm--resnet10t.c3_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    state = _timm_full_state()
    save_file(state, str(repo / "snapshots" / "abc123" / "model.safetensors"))
    assert find_weights(spec, None) == repo / "snapshots" / "abc123" / "model.safetensors"
    model = build_model(spec, num_labels=2, pretrained=True)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_timm_weights_from_timm_url_download(torch_hub_dir: Path, hf_hub_dir: Path) -> None:
    spec = generic_backbone_spec("timm:resnet10t")
    assert spec.weights is not None and spec.weights.legacy_filename
    torch.save(_timm_full_state(), torch_hub_dir / spec.weights.legacy_filename)
    assert find_weights(spec, None) == torch_hub_dir / spec.weights.legacy_filename


def test_missing_timm_weights_name_both_caches(torch_hub_dir: Path, hf_hub_dir: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        find_weights(generic_backbone_spec("timm:resnet10t"), None)
    message = str(info.value)
    assert "\n" not in message and "timm/resnet10t.c3_in1k" in message and "model.safetensors" in message
    assert str(hf_hub_dir / "models--timm--resnet10t.c3_in1k") in message and str(torch_hub_dir) in message
    assert "model.pretrained=false" in message


def test_grayscale_network_sums_pretrained_colour_filters(
    torch_hub_dir: Path, builtin_specs: dict[str, BackboneSpec]
) -> None:
    colour_spec = builtin_specs["resnet18"]
    gray_spec = dataclasses.replace(colour_spec, name="resnet18_gray", in_chans=1, mean=(0.5,), std=(0.25,))
    state = _imagenet_resnet18_state()
    torch.save(state, torch_hub_dir / "resnet18-f37072fd.pth")
    gray = build_model(gray_spec, 2, pretrained=True).eval()
    colour = build_model(colour_spec, 2, pretrained=True).eval()
    torch.testing.assert_close(gray.backbone.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    # The same normalised gray image repeated in colour gives the same features.
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(gray.features(x), colour.features(x.expand(2, 3, 32, 32)), rtol=1e-4, atol=1e-4)


def test_legacy_densenet_key_names_load(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.densenet121(weights=None).state_dict()
    # torchvision's published DenseNet files spell "norm1" as "norm.1" and
    # predate BatchNorm's num_batches_tracked.
    legacy = {
        k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v
        for k, v in state.items()
        if not k.endswith("num_batches_tracked")
    }
    assert legacy.keys() != state.keys()
    path = tmp_path / "densenet121-a639ec97.pth"
    torch.save(legacy, path)
    backbone = generic_backbone_spec("torchvision:densenet121").build(3)
    load_pretrained(backbone, path)
    assert torch.equal(backbone.state_dict()["features.denseblock1.denselayer1.norm1.weight"],
                       state["features.denseblock1.denselayer1.norm1.weight"])


def test_weights_of_another_architecture_are_refused(tmp_path: Path, builtin_specs: dict[str, BackboneSpec]) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(_imagenet_resnet18_state(), path)
    backbone = builtin_specs["mobilenet_v3_small"].build(3)
    with pytest.raises(CheckpointError) as info:
        load_pretrained(backbone, path)
    message = str(info.value)
    assert "does not match" in message and "missing" in message and "unexpected" in message and "\n" not in message


def test_truncated_state_is_refused(tmp_path: Path, builtin_specs: dict[str, BackboneSpec]) -> None:
    state = _imagenet_resnet18_state()
    del state["layer4.1.conv2.weight"]
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match="1 missing"):
        load_pretrained(builtin_specs["resnet18"].build(3), path)


def test_pickled_objects_are_never_loaded(tmp_path: Path, builtin_specs: dict[str, BackboneSpec]) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": Path("/")}, path)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_pretrained(builtin_specs["resnet18"].build(3), path)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_pretrained(builtin_specs["resnet18"].build(3), garbage)
