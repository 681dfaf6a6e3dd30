"""Checkpoints: exact round trips, atomic saves, clear failures, exact optimizer resume."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import hmlc.models.checkpoint as checkpoint_module
from hmlc.errors import CheckpointError
from hmlc.models import (
    CHECKPOINT_FORMAT_VERSION,
    BackboneSpec,
    build_model,
    flatten_state,
    load_checkpoint,
    save_checkpoint,
    unflatten_state,
)

METADATA = {
    "labels": ["Lung Opacity", "Edema", "Pneumonia"],
    "hierarchy": {"edges": [["Lung Opacity", "Edema"]]},
    "normalisation": {"mean": [0.5], "std": [0.25]},
    "stage": 1,
    "best_auc": 0.875,
    "note": "Ödem ✓",
}


def _model(builtin_specs: dict[str, BackboneSpec], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(builtin_specs["tiny_cnn"], num_labels=3)


def _assert_same_tensors(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype and torch.equal(actual[key], value), key


def test_round_trip_is_exact(tmp_path: Path, builtin_specs: dict[str, BackboneSpec]) -> None:
    model = _model(builtin_specs)
    extra = {"rng": torch.get_rng_state(), "step": torch.tensor(7), "half": torch.randn(3).to(torch.bfloat16)}
    path = save_checkpoint(tmp_path / "ckpt", model, METADATA, extra_state=extra)
    assert path == tmp_path / "ckpt"
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "model.safetensors", "state.safetensors"]
    loaded = load_checkpoint(path)
    _assert_same_tensors(loaded.state_dict, model.state_dict())
    _assert_same_tensors(loaded.extra_state, extra)
    assert loaded.metadata == METADATA and loaded.path == path
    assert json.loads((path / "meta.json").read_text())["format_version"] == CHECKPOINT_FORMAT_VERSION
    restored = _model(builtin_specs, seed=1)
    restored.load_state_dict(loaded.state_dict)
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(restored.eval()(x), model.eval()(x))
    # Its files name the checkpoint too.
    assert load_checkpoint(path / "model.safetensors").metadata == METADATA
    assert load_checkpoint(path / "meta.json").extra_state is not None
    assert load_checkpoint(save_checkpoint(tmp_path / "plain", model.state_dict(), {})).extra_state is None


def test_tied_and_overlapping_tensors(tmp_path: Path) -> None:
    base = torch.arange(12.0).view(3, 4)
    state = {"a": base, "tied": base, "row": base[1], "column": base[:, 2], "empty": torch.zeros(0)}
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c", state, {})).state_dict
    _assert_same_tensors(loaded, {k: v.contiguous() for k, v in state.items()})
    assert loaded["tied"] is loaded["a"]  # tied weights stay tied


def test_failed_save_keeps_the_previous_checkpoint(tmp_path: Path, builtin_specs: dict[str, BackboneSpec]) -> None:
    old = _model(builtin_specs, seed=0)
    save_checkpoint(tmp_path / "last", old, {"epoch": 1})
    with pytest.raises(CheckpointError, match="not a tensor"):
        save_checkpoint(tmp_path / "last", _model(builtin_specs, seed=1), {"epoch": 2}, extra_state={"bad": 3})
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "last", _model(builtin_specs, seed=1), {"epoch": object()})
    loaded = load_checkpoint(tmp_path / "last")
    assert loaded.metadata == {"epoch": 1}
    _assert_same_tensors(loaded.state_dict, old.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no temporary folder left


def test_disk_failure_mid_write_keeps_the_previous_checkpoint(
    tmp_path: Path, builtin_specs: dict[str, BackboneSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    save_checkpoint(tmp_path / "last", _model(builtin_specs), {"epoch": 1})
    real_write = checkpoint_module._write_bytes

    def write_then_fail(path: Path, data: bytes) -> None:
        if path.name == "meta.json":
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(checkpoint_module, "_write_bytes", write_then_fail)
    with pytest.raises(CheckpointError, match="No space left"):
        save_checkpoint(tmp_path / "last", _model(builtin_specs, seed=1), {"epoch": 2})
    assert load_checkpoint(tmp_path / "last").metadata == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_crash_between_renames_recovers_the_previous_checkpoint(
    tmp_path: Path, builtin_specs: dict[str, BackboneSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    save_checkpoint(tmp_path / "last", _model(builtin_specs), {"epoch": 1})
    real_replace = os.replace
    calls: list[str] = []

    def crash_on_second_rename(src: str, dst: str) -> None:
        calls.append(str(dst))
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", crash_on_second_rename)
    with pytest.raises(CheckpointError):
        save_checkpoint(tmp_path / "last", _model(builtin_specs, seed=1), {"epoch": 2})
    monkeypatch.setattr(checkpoint_module.os, "replace", real_replace)
    assert not (tmp_path / "last").exists()
    assert load_checkpoint(tmp_path / "last").metadata == {"epoch": 1}
    save_checkpoint(tmp_path / "last", _model(builtin_specs, seed=1), {"epoch": 2})
    assert load_checkpoint(tmp_path / "last").metadata == {"epoch": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_refuses_to_replace_a_folder_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "report.html").write_text("precious")
    with pytest.raises(CheckpointError, match="not part of a checkpoint"):
        save_checkpoint(folder, {"w": torch.ones(1)}, {})
    assert (folder / "report.html").read_text() == "precious"


def test_corrupt_or_missing_checkpoints_fail_clearly(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c", {"w": torch.arange(100.0)}, {"a": 1})
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt"):
        load_checkpoint(path)
    weights.write_bytes(bytes(data[:50]))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    weights.unlink()
    with pytest.raises(CheckpointError, match=r"lacks model\.safetensors"):
        load_checkpoint(path)
    (path / "meta.json").write_text('{"format_version": 1, "files": ')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "c" / "meta.json")
    assert str(tmp_path / "c") in str(info.value)


def test_newer_format_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c", {"w": torch.ones(2)}, {})
    meta = json.loads((path / "meta.json").read_text())
    meta["format_version"] = CHECKPOINT_FORMAT_VERSION + 1
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="upgrade hmlc"):
        load_checkpoint(path)


def test_adam_resumes_exactly(tmp_path: Path, builtin_specs: dict[str, BackboneSpec]) -> None:
    def step(model: nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(4, 1, 32, 32, generator=generator)
        optimizer.zero_grad()
        model(x).square().mean().backward()
        optimizer.step()

    model = _model(builtin_specs)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4)
    for seed in range(3):
        step(model, optimizer, seed)
    tensors, meta = flatten_state(optimizer.state_dict())
    save_checkpoint(tmp_path / "last", model, {"optimizer": meta}, extra_state=tensors)

    loaded = load_checkpoint(tmp_path / "last")
    resumed = _model(builtin_specs, seed=5)
    resumed.load_state_dict(loaded.state_dict)
    resumed_optimizer = torch.optim.Adam(resumed.parameters(), lr=0.5)
    state = unflatten_state(loaded.extra_state, loaded.metadata["optimizer"])
    assert state["param_groups"][0]["betas"] == (0.9, 0.999)
    resumed_optimizer.load_state_dict(state)
    for seed in range(3, 5):
        step(model, optimizer, seed)
        step(resumed, resumed_optimizer, seed)
    _assert_same_tensors(resumed.state_dict(), model.state_dict())


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.sampled_from([math.inf, -math.inf]),
    st.text(max_size=5),
    st.builds(lambda n: torch.arange(float(n)), st.integers(0, 4)),
)
_keys = st.one_of(st.text(max_size=4), st.integers(-3, 3))
_states = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_keys, inner, max_size=3),
    ),
    max_leaves=12,
)


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_keys, _states, max_size=4))
def test_flatten_state_round_trips_through_json(state: dict) -> None:
    tensors, meta = flatten_state(state)
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    restored = unflatten_state(tensors, json.loads(json.dumps(meta, allow_nan=False)))
    assert _same(restored, state)
