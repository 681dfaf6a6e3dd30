"""Fixtures for model tests: the built-in backbone registry and local weight caches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hmlc.models import BackboneSpec, register_builtin_backbones


def builtin_backbones() -> dict[str, BackboneSpec]:
    """The built-in specs, collected the way the plugin host collects them."""
    specs: dict[str, BackboneSpec] = {}

    def register(name: str, spec: BackboneSpec) -> None:
        assert name not in specs, f"{name} registered twice"
        specs[name] = spec

    register_builtin_backbones(register)
    return specs


@pytest.fixture
def torch_hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub checkpoint folder standing in for ~/.cache/torch/hub/checkpoints."""
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # forget any torch.hub.set_dir of this process
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def hf_hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face hub cache standing in for ~/.cache/huggingface/hub."""
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    folder = tmp_path / "hf" / "hub"
    folder.mkdir(parents=True)
    return folder


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test taking ``backbone_name`` once per built-in backbone."""
    if "backbone_name" in metafunc.fixturenames:
        metafunc.parametrize("backbone_name", sorted(builtin_backbones()))


@pytest.fixture(scope="session")
def builtin_specs() -> dict[str, BackboneSpec]:
    return builtin_backbones()
