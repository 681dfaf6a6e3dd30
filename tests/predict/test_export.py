"""``hmlc export``: parity with PyTorch, dynamic batch, embedded metadata; ``predict --runtime onnx``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hmlc.data.synthetic import SYNTHETIC_HIERARCHY, export_synthetic
from hmlc.engine.export import load_torchscript, read_export_metadata
from hmlc.engine.predictor import load_model

from .conftest import IMAGE_SIZE, _train, assert_one_line_error, checkpoint_metadata, run_hmlc

LABELS = list(SYNTHETIC_HIERARCHY.labels)


def _reference(run: Path, x: torch.Tensor) -> np.ndarray:
    """What hmlc predict computes from normalised input, in PyTorch."""
    with torch.no_grad():
        return load_model(run).probabilities(x).numpy()


def _random_input(n: int, size: int = IMAGE_SIZE, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("run_name", ["ct_run", "flat_run"])
def test_torchscript_export_matches_pytorch(
    run_name: str, request: pytest.FixtureRequest, hmlc, tmp_path: Path
) -> None:
    run = request.getfixturevalue(run_name)
    out = tmp_path / "model.pt"
    code, stdout, err = hmlc("export", "--checkpoint", run, "--format", "torchscript", "--out", out)
    assert code == 0, err
    assert "verified" in stdout
    # Plain torch, as a user without hmlc would load it.
    extra = {"hmlc.json": ""}
    module = torch.jit.load(str(out), _extra_files=extra)
    meta = json.loads(extra["hmlc.json"])
    for n in (1, 5):  # traced with a batch of 2: the batch size is free
        x = _random_input(n)
        with torch.no_grad():
            got = module(x).numpy()
        assert got.shape == (n, len(LABELS))
        np.testing.assert_allclose(got, _reference(run, x), atol=1e-4, rtol=0)
    trained = checkpoint_metadata(run / "checkpoints" / "best")
    assert meta["labels"] == LABELS
    assert meta["hierarchy_hash"] == trained["hierarchy_hash"]
    assert meta["normalization"] == trained["normalization"]
    assert meta["image_size"] == IMAGE_SIZE
    assert json.loads(Path(f"{out}.json").read_text()) == meta
    assert load_torchscript(out)[1] == meta == read_export_metadata(out)


def test_export_at_another_image_size(ct_run: Path, hmlc, tmp_path: Path) -> None:
    out = tmp_path / "big.pt"
    code, stdout, err = hmlc(
        "export", "--checkpoint", ct_run, "--format", "torchscript", "--out", out, "--image-size", 48
    )
    assert code == 0, err
    module, meta = load_torchscript(out)
    assert meta["image_size"] == 48 and meta["trained_image_size"] == IMAGE_SIZE
    x = _random_input(3, 48)
    with torch.no_grad():
        np.testing.assert_allclose(module(x).numpy(), _reference(ct_run, x), atol=1e-4, rtol=0)


def test_export_errors_exit_2_with_one_line(ct_run: Path, hmlc, tmp_path: Path) -> None:
    code, _, err = hmlc(
        "export", "--checkpoint", tmp_path / "none", "--format", "torchscript", "--out", tmp_path / "m.pt"
    )
    assert "none" in assert_one_line_error(code, err)
    code, _, err = hmlc(
        "export", "--checkpoint", ct_run, "--format", "torchscript", "--out", tmp_path / "m.pt", "--image-size", 4
    )
    assert "--image-size" in assert_one_line_error(code, err)
    assert not (tmp_path / "m.pt").exists()


# -------------------------------------------------------------------- ONNX
@pytest.fixture(scope="module")
def onnx_export(ct_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ct run exported to ONNX once (the exporter takes seconds)."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    from hmlc.engine.export import export_checkpoint

    export_checkpoint(ct_run, "onnx", out)
    return out


@pytest.mark.slow
def test_onnx_export_matches_pytorch_with_a_dynamic_batch(ct_run: Path, onnx_export: Path) -> None:
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_export))
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props["hmlc"])
    assert meta == json.loads(Path(f"{onnx_export}.json").read_text()) == read_export_metadata(onnx_export)
    assert meta["labels"] == LABELS and meta["image_size"] == IMAGE_SIZE
    session = ort.InferenceSession(str(onnx_export), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "image" and inp.shape[1:] == [1, IMAGE_SIZE, IMAGE_SIZE] and not isinstance(inp.shape[0], int)
    for n in (1, 3, 9):
        x = _random_input(n, seed=n)
        (got,) = session.run(None, {"image": x.numpy()})
        np.testing.assert_allclose(got, _reference(ct_run, x), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_predict_with_onnx_runtime_equals_torch(
    ct_run: Path, onnx_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "synth"
    export_synthetic(folder, n=20, seed=4, image_size=40, valid_fraction=0.5)
    outs = {}
    for runtime, checkpoint in (("torch", ct_run), ("onnx", onnx_export)):
        outs[runtime] = tmp_path / f"{runtime}.csv"
        code, _, err = run_hmlc(
            [
                "predict",
                "--checkpoint",
                str(checkpoint),
                "--runtime",
                runtime,
                str(folder / "valid"),
                "--tta",
                "2",
                "--out",
                str(outs[runtime]),
            ],
            capsys,
            monkeypatch,
        )
        assert code == 0, err
    torch_frame, onnx_frame = pd.read_csv(outs["torch"]), pd.read_csv(outs["onnx"])
    assert list(onnx_frame["Path"]) == list(torch_frame["Path"]) and len(torch_frame) == 10
    np.testing.assert_allclose(onnx_frame[LABELS].to_numpy(), torch_frame[LABELS].to_numpy(), atol=1e-4, rtol=0)
    # An ensemble of the checkpoint with itself under ONNX: same labels and hierarchy, accepted.
    code, _, err = run_hmlc(
        [
            "predict",
            "--checkpoint",
            str(onnx_export),
            "--checkpoint",
            str(onnx_export),
            "--runtime",
            "onnx",
            str(folder / "valid"),
            "--out",
            str(tmp_path / "e.csv"),
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err


@pytest.mark.slow
def test_onnx_member_reads_a_dataset_split_with_the_checkpoints_reader_settings(
    ct_run: Path, onnx_export: Path
) -> None:
    """`predict --runtime onnx --dataset` used to ignore the reader settings (CheXpert: 234 rows, not 202)."""
    from hmlc.engine.predictor import dataset_defaults, load_member

    torch_member, onnx_member = load_member(ct_run), load_member(onnx_export, "onnx")
    trained = checkpoint_metadata(ct_run / "checkpoints" / "best")["config"]["data"]
    assert onnx_member.training_data is not None
    assert onnx_member.training_data["params"] == torch_member.training_data["params"] == trained["params"]
    assert onnx_member.training_data["dataset"] == trained["dataset"]
    torch_base, _ = dataset_defaults([torch_member], trained["dataset"])
    onnx_base, source = dataset_defaults([onnx_member], trained["dataset"])
    assert onnx_base == torch_base and source == str(onnx_export)


# ------------------------------------------------------- max-constraint (C-HMCNN)
@pytest.fixture(scope="module")
def chmcnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of train.method=chmcnn: outputs go through the max-constraint module."""
    return _train(tmp_path_factory.mktemp("chmcnn"), "train.method=chmcnn")


def _assert_coherent(p: np.ndarray) -> None:
    for parent, child in SYNTHETIC_HIERARCHY.edge_indices:
        assert (p[:, parent] >= p[:, child]).all()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_max_constraint_exports_to_onnx_and_torchscript_equal_to_pytorch(chmcnn_run: Path, tmp_path: Path) -> None:
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    import onnxruntime as ort

    from hmlc.engine.export import export_checkpoint

    assert checkpoint_metadata(chmcnn_run / "checkpoints" / "best")["output"] == "max-constraint"
    onnx_path, meta = export_checkpoint(chmcnn_run, "onnx", tmp_path / "model.onnx")
    ts_path, _ = export_checkpoint(chmcnn_run, "torchscript", tmp_path / "model.pt")
    assert meta["model_output"] == "max-constraint"
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    module, _ = load_torchscript(ts_path)
    for n in (1, 4, 9):
        x = _random_input(n, seed=10 + n)
        expected = _reference(chmcnn_run, x)
        _assert_coherent(expected)
        (got,) = session.run(None, {"image": x.numpy()})
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
        _assert_coherent(got)
        with torch.no_grad():
            np.testing.assert_allclose(module(x).numpy(), expected, atol=1e-6, rtol=0)


def _advised_command(err: str) -> list[str]:
    """The `hmlc ...` command an error line advises, as arguments."""
    import re
    import shlex

    match = re.search(r"`(hmlc export [^`]+)`", err)
    assert match, err
    return shlex.split(match.group(1))[1:]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_predict_onnx_on_a_torchscript_export_advises_an_export_that_works(
    ct_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    folder = tmp_path / "synth"
    export_synthetic(folder, n=8, seed=4, image_size=40, valid_fraction=0.5)
    script = tmp_path / "export" / "model.pt"
    code, _, err = run_hmlc(
        ["export", "--checkpoint", str(ct_run), "--format", "torchscript", "--out", str(script), "--no-verify"],
        capsys, monkeypatch,
    )
    assert code == 0, err
    predict = ["predict", "--runtime", "onnx", str(folder / "valid"), "--out", str(tmp_path / "p.csv")]
    for given in (script, ct_run):  # a TorchScript export, then a run directory
        code, _, err = run_hmlc([*predict, "--checkpoint", str(given)], capsys, monkeypatch)
        assert_one_line_error(code, err)
        advised = _advised_command(err)
        out = Path(advised[advised.index("--out") + 1])
        assert out.suffix == ".onnx" and f"then pass --checkpoint {out}" in err
        code, _, err = run_hmlc(advised, capsys, monkeypatch)
        assert code == 0, err
        code, _, err = run_hmlc([*predict, "--checkpoint", str(out)], capsys, monkeypatch)
        assert code == 0, err
    assert (script.with_suffix(".onnx")).is_file()
