"""Checkpoints trained with a preprocessor: its fitted state is restored and it runs before the resize."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from hmlc.data.preprocess import Preprocessor
from hmlc.data.synthetic import SYNTHETIC_HIERARCHY
from hmlc.engine.export import decode_state, read_export_metadata
from hmlc.models import load_checkpoint, save_checkpoint
from hmlc.plugins import get_host, hookimpl

LABELS = list(SYNTHETIC_HIERARCHY.labels)


class Shade(Preprocessor):
    """Crops ``border`` pixels off each side and multiplies by a fitted gain."""

    name = "shade"
    requires_fit = True

    def __init__(self, border: int = 0) -> None:
        self.border = border
        self.gain: np.ndarray | None = None

    def settings(self) -> dict[str, int]:
        return {"border": self.border}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.gain = np.asarray(state["gain"], dtype=np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {} if self.gain is None else {"gain": self.gain}

    def __call__(self, image: np.ndarray) -> np.ndarray:
        assert self.gain is not None, "the fitted state was not loaded"
        return shade(image, self.border, float(self.gain))


def shade(image: np.ndarray, border: int, gain: float) -> np.ndarray:
    cropped = image[border:-border, border:-border] if border else image
    return np.clip(np.rint(cropped.astype(np.float32) * gain), 0, 255).astype(np.uint8)


@pytest.fixture
def shaded_checkpoint(ct_run: Path, tmp_path: Path) -> Path:
    """ct_run's last weights, recorded as trained with the "shade" preprocessor (border 5, fitted gain 0.6)."""

    @hookimpl
    def hmlc_register_preprocessors(register) -> None:  # type: ignore[no-untyped-def]
        register("shade", Shade)

    get_host().pm.register(SimpleNamespace(hmlc_register_preprocessors=hmlc_register_preprocessors), name="shade")
    ckpt = load_checkpoint(ct_run / "checkpoints" / "last")
    meta = {**ckpt.metadata, "preprocessing": {"preprocessor": "shade", "params": {"border": 5}}}
    extra = {"preprocess/gain": torch.tensor(0.6)}
    return save_checkpoint(tmp_path / "shaded", ckpt.state_dict, meta, extra_state=extra)


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(9)
    paths = []
    for i in range(6):
        img = rng.integers(0, 256, (50 + 4 * i, 46), dtype=np.uint8)
        cv2.circle(img, (20, 25), 8, 250, -1)
        paths.append(tmp_path / f"img{i}.png")
        cv2.imwrite(str(paths[-1]), img)
    return paths


def _predict(hmlc, out: Path, *args: object) -> pd.DataFrame:
    code, _, err = hmlc("predict", *args, "--out", out)
    assert code == 0, err
    return pd.read_csv(out)


def test_the_preprocessor_runs_with_its_state_before_the_resize(
    ct_run: Path, shaded_checkpoint: Path, images: list[Path], hmlc, tmp_path: Path
) -> None:
    by_hand = []
    for path in images:
        target = tmp_path / f"by-hand-{path.name}"
        cv2.imwrite(str(target), shade(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), 5, 0.6))
        by_hand.append(target)
    shaded = _predict(hmlc, tmp_path / "a.csv", "--checkpoint", shaded_checkpoint, *images)
    plain = _predict(hmlc, tmp_path / "b.csv", "--checkpoint", ct_run / "checkpoints" / "last", *by_hand)
    np.testing.assert_array_equal(shaded[LABELS].to_numpy(), plain[LABELS].to_numpy())
    untouched = _predict(hmlc, tmp_path / "c.csv", "--checkpoint", ct_run / "checkpoints" / "last", *images)
    assert not np.allclose(shaded[LABELS].to_numpy(), untouched[LABELS].to_numpy(), atol=1e-6)


def test_an_ensemble_of_different_pipelines_is_the_mean(
    ct_run: Path, shaded_checkpoint: Path, images: list[Path], hmlc, tmp_path: Path
) -> None:
    plain_ckpt = ct_run / "checkpoints" / "last"
    a = _predict(hmlc, tmp_path / "a.csv", "--checkpoint", shaded_checkpoint, *images, "--tta", 3)
    b = _predict(hmlc, tmp_path / "b.csv", "--checkpoint", plain_ckpt, *images, "--tta", 3)
    ensemble = ["--checkpoint", shaded_checkpoint, "--checkpoint", plain_ckpt]
    both = _predict(hmlc, tmp_path / "c.csv", *ensemble, *images, "--tta", 3, "--batch-size", 4)
    expected = (a[LABELS].to_numpy() + b[LABELS].to_numpy()) / 2
    np.testing.assert_allclose(both[LABELS].to_numpy(), expected, atol=1e-7)


def test_exports_carry_the_preprocessor_and_its_state(shaded_checkpoint: Path, hmlc, tmp_path: Path) -> None:
    out = tmp_path / "shaded.pt"
    code, _, err = hmlc("export", "--checkpoint", shaded_checkpoint, "--format", "torchscript", "--out", out)
    assert code == 0, err
    preprocessing = read_export_metadata(out)["preprocessing"]
    assert preprocessing["preprocessor"] == "shade" and preprocessing["params"] == {"border": 5}
    state = decode_state(preprocessing["state"])
    assert set(state) == {"gain"} and state["gain"].dtype == np.float32
    assert float(state["gain"]) == pytest.approx(0.6)


@pytest.mark.slow
def test_onnx_runtime_applies_the_exported_preprocessing(
    shaded_checkpoint: Path, images: list[Path], hmlc, tmp_path: Path
) -> None:
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    model = tmp_path / "shaded.onnx"
    assert hmlc("export", "--checkpoint", shaded_checkpoint, "--format", "onnx", "--out", model)[0] == 0
    torch_frame = _predict(hmlc, tmp_path / "t.csv", "--checkpoint", shaded_checkpoint, *images)
    onnx_frame = _predict(hmlc, tmp_path / "o.csv", "--checkpoint", model, "--runtime", "onnx", *images)
    np.testing.assert_allclose(onnx_frame[LABELS].to_numpy(), torch_frame[LABELS].to_numpy(), atol=1e-4, rtol=0)
