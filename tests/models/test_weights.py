"""Pretrained weights: local caches, downloads into them, loading, adapting, failing clearly."""

from __future__ import annotations

import dataclasses
import hashlib
import socket
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hmlc.errors import CheckpointError, WeightsNotFoundError
from hmlc.models import (
    BackboneSpec,
    WeightsSource,
    build_model,
    find_weights,
    generic_backbone_spec,
    load_pretrained,
)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may fetch real weights on a connected machine; tests that download unset it."""
    monkeypatch.setenv("HMLC_OFFLINE", "1")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without network: every host name fails to resolve, as it does offline."""
    monkeypatch.delenv("HMLC_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def unresolvable(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)


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


def _published_file(folder: Path, stem: str, state: dict[str, torch.Tensor]) -> tuple[Path, str]:
    """A weights file named as torchvision names them (``<stem>-<sha256 prefix>.pth``) and its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / "staging.pth"
    torch.save(state, staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()[:8]
    published = staging.rename(folder / f"{stem}-{digest}.pth")
    return published, published.as_uri()


def test_missing_weights_are_downloaded_into_the_torch_hub_cache(
    torch_hub_dir: Path, tmp_path: Path, builtin_specs: dict[str, BackboneSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.hub's own download (a file:// URL stands in for download.pytorch.org), hash-checked."""
    monkeypatch.delenv("HMLC_OFFLINE")
    state = _imagenet_resnet18_state(4)
    published, url = _published_file(tmp_path / "server", "resnet18", state)
    spec = dataclasses.replace(
        builtin_specs["resnet18"], weights=WeightsSource(published.name, "torchvision", url=url)
    )
    model = build_model(spec, num_labels=3, pretrained=True)
    assert (torch_hub_dir / published.name).read_bytes() == published.read_bytes()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, state[key]), key
    published.unlink()  # the second time the cache is enough
    assert find_weights(spec) == torch_hub_dir / published.name


def test_a_download_with_the_wrong_hash_is_refused_and_not_kept(
    torch_hub_dir: Path, tmp_path: Path, builtin_specs: dict[str, BackboneSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HMLC_OFFLINE")
    published, _ = _published_file(tmp_path / "server", "resnet18", _imagenet_resnet18_state(5))
    forged = published.with_name("resnet18-00000000.pth")
    published.rename(forged)
    spec = dataclasses.replace(
        builtin_specs["resnet18"], weights=WeightsSource(forged.name, "torchvision", url=forged.as_uri())
    )
    with pytest.raises(WeightsNotFoundError, match="downloading failed") as info:
        find_weights(spec)
    assert "\n" not in str(info.value)
    assert not (torch_hub_dir / forged.name).exists()


def test_torchvision_backbones_download_from_torchvision_urls(builtin_specs: dict[str, BackboneSpec]) -> None:
    import torchvision

    source = builtin_specs["resnet18"].weights
    assert source is not None
    assert source.download_url == torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    generic = generic_backbone_spec("torchvision:densenet121").weights
    assert generic is not None
    assert generic.download_url == torchvision.models.DenseNet121_Weights.IMAGENET1K_V1.url


@pytest.mark.parametrize("name", ["resnet18", "timm:resnet10t"])
def test_without_network_the_error_is_one_line_saying_where_to_put_the_file(
    name: str,
    torch_hub_dir: Path,
    hf_hub_dir: Path,
    builtin_specs: dict[str, BackboneSpec],
    no_network: None,
) -> None:
    spec = builtin_specs[name] if name in builtin_specs else generic_backbone_spec(name)
    started = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as info:
        build_model(spec, num_labels=3, pretrained=True)
    assert time.perf_counter() - started < 30  # no minutes of retries
    message = str(info.value)
    assert "\n" not in message
    assert "put " in message and str(torch_hub_dir if name == "resnet18" else hf_hub_dir) in message
    assert "downloading failed" in message and "cannot reach" in message
    assert "model.weights=PATH" in message and "model.pretrained=false" in message


def test_hmlc_offline_skips_the_download(torch_hub_dir: Path, builtin_specs: dict[str, BackboneSpec]) -> None:
    with pytest.raises(WeightsNotFoundError, match="not downloaded: HMLC_OFFLINE is set"):
        find_weights(builtin_specs["resnet18"])
