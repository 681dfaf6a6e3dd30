"""Export a checkpoint to ONNX or TorchScript: normalised images in, unconditional probabilities out.

The exported graph is the backbone, the head and the step to probabilities
(the chain rule for conditionally trained heads, the max-constraint module for
C-HMCNN heads, else a sigmoid), so a user
needs no hmlc to run it. What it cannot hold as operators travels as metadata
(JSON under the key ``hmlc``: ONNX ``metadata_props``, a TorchScript extra file
``hmlc.json``, and ``FILE.json`` next to the file): labels, hierarchy and its
hash, normalisation, image size and the preprocessing with its fitted state.

A model trained on feature vectors exports with its imputation and
standardisation inside the graph: it takes raw float32 vectors (B, D), NaN
for a missing value, and the metadata carries the fitted mean and std too.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hmlc import __version__
from hmlc.errors import CheckpointError, ConfigError
from hmlc.hierarchy import LabelGraph

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_FORMAT_VERSION",
    "METADATA_KEY",
    "ProbabilityModel",
    "export_metadata",
    "export_checkpoint",
    "verify_export",
    "read_export_metadata",
    "load_torchscript",
    "encode_state",
    "decode_state",
]

EXPORT_FORMATS: tuple[str, ...] = ("onnx", "torchscript")
EXPORT_FORMAT_VERSION = 1
#: The metadata key in ONNX metadata_props, and the TorchScript extra file's name without ".json".
METADATA_KEY = "hmlc"
_TS_EXTRA = f"{METADATA_KEY}.json"
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"
FEATURES_INPUT_NAME = "features"


class ProbabilityModel(nn.Module):
    """A trained network followed by its step to unconditional probabilities (B, K)."""

    def __init__(self, model: nn.Module, graph: LabelGraph, output: str, combine: str, multiclass: bool) -> None:
        super().__init__()
        from hmlc.chain_rule import ChainRule
        from hmlc.max_constraint import MaxConstraint

        if output not in ("conditional", "unconditional", "max-constraint"):
            raise CheckpointError(
                f"unknown output kind {output!r}; expected conditional, unconditional or max-constraint"
            )
        self.model = model
        self.multiclass = multiclass
        self.output = output
        self.chain_rule = ChainRule(graph, combine)
        self.max_constraint = MaxConstraint(graph)

    def forward(self, image: Tensor) -> Tensor:
        """Probabilities (B, K) of a normalised batch (B, C, S, S)."""
        logits = self.model(image).float()
        if self.multiclass:
            logits = logits[..., 1] - logits[..., 0]
        if self.output == "conditional":
            return self.chain_rule(logits)
        if self.output == "max-constraint":
            return self.max_constraint(logits)
        return torch.sigmoid(logits)


class _StandardizedModel(nn.Module):
    """Raw feature vectors -> imputation and standardisation -> a :class:`ProbabilityModel`."""

    def __init__(self, standardize: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.standardize = standardize
        self.model = model

    def forward(self, features: Tensor) -> Tensor:
        return self.model(self.standardize(features))


def encode_state(state: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Arrays as JSON: ``{key: {"dtype", "shape", "data" (base64 of the raw bytes)}}``."""
    out = {}
    for key, value in state.items():
        array = np.array(value, order="C", copy=True)  # keeps 0-d arrays 0-d
        out[key] = {
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "data": base64.b64encode(array.tobytes()).decode("ascii"),
        }
    return out


def decode_state(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_state`."""
    out = {}
    for key, item in data.items():
        try:
            raw = base64.b64decode(item["data"])
            out[key] = np.frombuffer(raw, dtype=np.dtype(item["dtype"])).reshape(item["shape"]).copy()
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"exported preprocessing state {key!r} is malformed: {exc}") from None
    return out


def export_metadata(loaded: Any, image_size: int, fmt: str) -> dict[str, Any]:
    """What a user of the exported file needs, from a :class:`hmlc.engine.predictor.LoadedModel`."""
    meta = loaded.metadata
    inputs = _features_inputs(loaded) if loaded.input_kind == "features" else _image_inputs(loaded, image_size)
    return {
        "format": f"hmlc-{fmt}",
        "format_version": EXPORT_FORMAT_VERSION,
        "hmlc_version": __version__,
        "source": str(loaded.source),
        "labels": list(loaded.labels),
        "hierarchy": loaded.graph.to_dict(),
        "hierarchy_name": meta.get("hierarchy_name"),
        "hierarchy_hash": loaded.graph.content_hash,
        "backbone": meta["backbone"],
        **inputs,
        "output": {"name": OUTPUT_NAME, "meaning": "unconditional probabilities, one column per label"},
        "model_output": meta["output"],
        "combine": meta.get("combine", "product"),
        "multiclass": bool(meta["multiclass"]),
        "stage": meta.get("stage"),
        "score_exclude": list(meta.get("score_exclude") or []),
        # The reader settings it was trained with (CheXpert: frontal images only), so that
        # `hmlc predict --runtime onnx --dataset` reads the split as the PyTorch path does.
        "training_data": _training_data(meta),
    }


def _training_data(meta: Any) -> dict[str, Any] | None:
    """The ``data`` section's dataset, reader params and root of the checkpoint's training config."""
    data = (meta.get("config") or {}).get("data")
    if not isinstance(data, dict):
        return None
    return {"dataset": data.get("dataset"), "params": data.get("params") or {}, "root": data.get("root")}


def _image_inputs(loaded: Any, image_size: int) -> dict[str, Any]:
    """The input metadata of an image model: normalisation, sizes, preprocessing and its state."""
    pipeline = loaded.pipeline
    norm = loaded.normalization
    return {
        "in_chans": norm["in_chans"],
        "normalization": {"mean": norm["mean"], "std": norm["std"]},
        "image_size": int(image_size),
        "trained_image_size": int(loaded.metadata["image_size"]),
        "preprocessing": {
            "preprocessor": pipeline.name,
            "params": pipeline.params,
            "state": encode_state(pipeline.state),
        },
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", norm["in_chans"], int(image_size), int(image_size)],
            "dtype": "float32",
            "meaning": "(pixels / 255 - mean) / std per channel, grayscale repeated",
        },
    }


def _features_inputs(loaded: Any) -> dict[str, Any]:
    """The input metadata of a feature-vector model: width, names, the fitted standardisation."""
    pipeline = loaded.pipeline
    return {
        "backbone_params": loaded.metadata.get("backbone_params") or {},
        "input_kind": "features",
        "input_dim": pipeline.dim,
        "feature_names": list(pipeline.names),
        "features": {"transform": loaded.metadata.get("feature_transform"), "state": encode_state(pipeline.state)},
        "input": {
            "name": FEATURES_INPUT_NAME,
            "shape": ["batch", pipeline.dim],
            "dtype": "float32",
            "meaning": "raw feature values, NaN for missing; imputation and standardisation are inside the model",
        },
    }


def _example_input(loaded: Any, meta: Mapping[str, Any], n: int, seed: int) -> Tensor:
    """Random inputs of the exported graph: normalised images, or raw vectors with some NaN."""
    generator = torch.Generator().manual_seed(seed)
    if meta.get("input_kind") == "features":
        transform = loaded.pipeline.transform
        z = torch.randn(n, int(meta["input_dim"]), generator=generator)
        x = z * torch.from_numpy(transform.std) + torch.from_numpy(transform.mean)
        x[torch.rand(x.shape, generator=generator) < 0.1] = float("nan")
        return x
    size, chans = int(meta["image_size"]), int(meta["in_chans"])
    return torch.randn(n, chans, size, size, generator=generator)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence tracer chatter: shape checks frozen into the trace and torch.jit deprecation notes."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _temporary_beside(out: Path) -> Path:
    """An empty file next to ``out`` with the permissions a new file gets (mkstemp makes it private)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


def export_checkpoint(
    checkpoint: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str], image_size: int | None = None
) -> tuple[Path, dict[str, Any]]:
    """Export a checkpoint (folder, file or run directory) to ``out``; returns the path and the metadata.

    Writes ``out`` and ``out.json`` atomically. The ONNX model has a dynamic
    batch axis; both formats take float32 (B, C, S, S) normalised images.
    """
    from hmlc.engine.predictor import load_model
    from hmlc.engine.rundir import write_json

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use {' or '.join(EXPORT_FORMATS)}")
    out = Path(out)
    loaded = load_model(checkpoint, "cpu")
    vectors = loaded.input_kind == "features"
    if vectors and image_size is not None:
        raise ConfigError("--image-size applies to image models; this checkpoint takes feature vectors")
    size = 0 if vectors else int(image_size if image_size is not None else loaded.metadata["image_size"])
    if not vectors and size < 8:
        raise ConfigError(f"--image-size {size}: give at least 8 pixels")
    meta = export_metadata(loaded, size, fmt)
    module: nn.Module = ProbabilityModel(
        loaded.model, loaded.graph, meta["model_output"], meta["combine"], meta["multiclass"]
    ).eval()
    if vectors:
        from hmlc.models import StandardizeFeatures

        transform = loaded.pipeline.transform
        module = _StandardizedModel(StandardizeFeatures(transform.mean, transform.std), module).eval()
    example = _example_input(loaded, meta, 2, 0)
    text = json.dumps(meta)
    tmp = _temporary_beside(out)
    try:
        if fmt == "torchscript":
            with _quiet(), torch.no_grad():
                traced = torch.jit.trace(module, example, check_trace=False)
                torch.jit.save(traced, str(tmp), _extra_files={_TS_EXTRA: text})
        else:
            _export_onnx(module, example, tmp, text, FEATURES_INPUT_NAME if vectors else INPUT_NAME)
        os.replace(tmp, out)
    except CheckpointError:
        raise
    except ImportError as exc:
        raise ConfigError(f"ONNX export needs onnx and onnxscript: pip install 'hmlc[onnx]' ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - exporters fail in many ways; say which model failed
        first = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"cannot export {checkpoint} to {fmt}: {type(exc).__name__}: {first}") from None
    finally:
        tmp.unlink(missing_ok=True)
    write_json(Path(f"{out}.json"), meta)
    return out, meta


def _export_onnx(module: nn.Module, example: Tensor, path: Path, text: str, input_name: str = INPUT_NAME) -> None:
    import onnx  # noqa: F401 - checked here so a missing package gives the install hint
    import onnxscript  # noqa: F401

    batch = torch.export.Dim("batch", min=1)
    with _quiet():
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[input_name],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        program.model.metadata_props[METADATA_KEY] = text
        program.save(str(path), external_data=False)


def read_export_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The hmlc metadata of an exported file (embedded; else ``FILE.json`` beside it)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"exported model {path} does not exist")
    text: str | None = None
    try:
        if path.suffix.lower() == ".onnx":
            text = _onnx_metadata(path)
        else:
            extra = {_TS_EXTRA: ""}
            with _quiet():
                torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            text = extra[_TS_EXTRA] or None
    except CheckpointError:
        raise
    except Exception:  # noqa: BLE001 - unreadable embedded metadata: fall back to the sidecar
        text = None
    if not text:
        sidecar = Path(f"{path}.json")
        if not sidecar.is_file():
            raise CheckpointError(f"{path} holds no hmlc metadata and {sidecar} is missing; export it with hmlc export")
        text = sidecar.read_text(encoding="utf-8")
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"the hmlc metadata of {path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format_version", 0) > EXPORT_FORMAT_VERSION:
        raise CheckpointError(f"the hmlc metadata of {path} is missing or newer than this hmlc reads; upgrade hmlc")
    return meta


def _onnx_metadata(path: Path) -> str | None:
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    except ImportError:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)


def load_torchscript(path: str | os.PathLike[str]) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """An exported TorchScript module (CPU, eval mode) and its metadata."""
    meta = read_export_metadata(path)
    with _quiet():
        module = torch.jit.load(str(path), map_location="cpu")
    return module.eval(), meta


def verify_export(
    path: str | os.PathLike[str], checkpoint: str | os.PathLike[str], n: int = 4, seed: int = 0
) -> float | None:
    """Largest absolute difference between the exported file and PyTorch on ``n`` random inputs.

    None when the runtime for the file (onnxruntime) is not installed.
    """
    from hmlc.engine.predictor import load_model

    path = Path(path)
    loaded = load_model(checkpoint, "cpu")
    meta = read_export_metadata(path)
    x = _example_input(loaded, meta, n, seed)
    with torch.no_grad():
        model_input = loaded.model_input(x) if meta.get("input_kind") == "features" else x
        expected = loaded.probabilities(model_input).numpy()
    if path.suffix.lower() == ".onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            return None
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    else:
        module, _ = load_torchscript(path)
        with torch.no_grad():
            got = module(x).numpy()
    return float(np.abs(np.asarray(got) - expected).max())
