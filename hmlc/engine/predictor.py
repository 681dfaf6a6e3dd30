"""Predictions of one model or an ensemble, with optional test-time augmentation.

A member of an ensemble is a trained checkpoint (run in PyTorch) or a model
exported to ONNX (run in ONNX Runtime). Each member brings its own image
pipeline, the one it was trained with: decode -> preprocessor (with its fitted
state) -> square resize to the member's image size -> normalisation. Members
return unconditional probabilities (the chain rule for conditionally trained
heads), and the ensemble averages them, and the TTA views, after that step.
Members trained on feature vectors take raw vectors (NaN for missing) and
impute and standardise them with the state fitted on their training rows.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from hmlc.data.dicom import DICOM_SUFFIXES
from hmlc.data.features import ArrayFeatureSource, FeatureSource, FeatureTransform
from hmlc.data.images import decode_image
from hmlc.data.preprocess import Preprocessor, preprocess_image
from hmlc.engine.interrupt import ignore_stop_signals
from hmlc.engine.tta import TestTimeAugmentation
from hmlc.errors import CheckpointError, ConfigError, DataError, HmlcError
from hmlc.hierarchy import LabelGraph
from hmlc.progress import Progress

__all__ = [
    "IMAGE_SUFFIXES",
    "AGGREGATIONS",
    "resolve_checkpoint",
    "read_image_file",
    "ImagePipeline",
    "FeaturePipeline",
    "LoadedModel",
    "load_model",
    "EnsembleMember",
    "TorchMember",
    "OnnxMember",
    "load_member",
    "check_ensemble",
    "PredictionInputs",
    "inputs_from_paths",
    "inputs_from_dataset",
    "inputs_from_vectors",
    "VECTOR_SUFFIXES",
    "Predictor",
    "predictions_frame",
    "write_predictions",
    "resolve_device",
]

#: File endings collected from folders given as inputs.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", *DICOM_SUFFIXES)
#: How image probabilities become study probabilities with ``--aggregate``.
AGGREGATIONS: tuple[str, ...] = ("mean", "max")

#: Files of feature vectors ``hmlc predict`` reads for models trained on vectors.
VECTOR_SUFFIXES: tuple[str, ...] = (".npy", ".csv")

_MODEL_FILE, _META_FILE = "model.safetensors", "meta.json"
_PREPROCESS_PREFIX = "preprocess/"
_FEATURES_PREFIX = "features/"


# ----------------------------------------------------------------- loading
def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint folder meant by ``path``: the folder, one of its files, or a run directory's best."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"checkpoint {path} does not exist; give a checkpoint folder, its meta.json or a run directory"
        )
    if path.is_file():
        if path.name in (_MODEL_FILE, _META_FILE):
            return path.parent
        raise CheckpointError(
            f"{path} is not a checkpoint file; give the checkpoint folder (model.safetensors + meta.json) "
            "or a run directory"
        )
    if (path / _META_FILE).is_file():
        return path
    if (path / "checkpoints").is_dir() or (path / "config.yaml").is_file():
        best = path / "checkpoints" / "best"
        if not (best / _META_FILE).is_file():
            raise CheckpointError(
                f"run directory {path} has no checkpoints/best (no epoch improved the validation AUC); "
                f"give {path / 'checkpoints' / 'last'} instead"
            )
        return best
    raise CheckpointError(
        f"{path} is neither a checkpoint folder (model.safetensors + meta.json) nor a run directory (checkpoints/best)"
    )


def read_image_file(path: str | os.PathLike[str]) -> np.ndarray:
    """A grayscale uint8 (H, W) image from a PNG (8/16 bit), JPEG or DICOM file."""
    if not os.path.isfile(path):
        raise DataError(f"image {path} does not exist")
    return decode_image(path)


class ImagePipeline:
    """A model's image pipeline, as training applies it: preprocessor (optional), then a square resize.

    Calling it is :func:`hmlc.data.preprocess.preprocess_image`. ``key``
    identifies the pipeline: models with equal keys see the same pixels.
    """

    input_kind = "image"

    def __init__(
        self,
        image_size: int,
        preprocessor: Preprocessor | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
            raise CheckpointError(f"image size {image_size!r} is not a positive integer")
        self.image_size = image_size
        self.preprocessor = preprocessor
        #: The preprocessor's parameters as configured (what the checkpoint recorded).
        self.params = dict(params or {})
        fingerprint = preprocessor.fingerprint() if preprocessor is not None else "none"
        self.key = f"{fingerprint}:{image_size}"

    @classmethod
    def from_metadata(
        cls, meta: Mapping[str, Any], state: Mapping[str, np.ndarray], source: str | Path
    ) -> ImagePipeline:
        """The pipeline a checkpoint (or export) was trained with; ``state`` holds the preprocessor's fitted arrays."""
        from hmlc.data.preprocess import resolve_preprocessor

        preprocessing = meta.get("preprocessing") or {}
        name = preprocessing.get("preprocessor")
        params = preprocessing.get("params") or {}
        size = meta.get("image_size")
        if size is None:
            raise CheckpointError(f"checkpoint {source} does not record its image_size")
        if not name:
            if state:
                raise CheckpointError(f"checkpoint {source} holds preprocessing state but names no preprocessor")
            return cls(int(size))
        preprocessor = resolve_preprocessor(name, params, state)
        if not preprocessor.fitted:
            raise CheckpointError(
                f"checkpoint {source} was trained with preprocessor {name!r}, which needs a fitted state, "
                "but holds none; it was written by an older hmlc"
            )
        return cls(int(size), preprocessor, params)

    @property
    def name(self) -> str | None:
        """The preprocessor's registered name, or None."""
        return self.preprocessor.name if self.preprocessor is not None else None

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The preprocessor's fitted state ({} without one)."""
        return self.preprocessor.state() if self.preprocessor is not None else {}

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """The image before the resize: the preprocessor's output, or the image itself."""
        return self.preprocessor(image) if self.preprocessor is not None else image

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W) at any size -> uint8 (S, S), the model's input."""
        return np.ascontiguousarray(preprocess_image(image, self.preprocessor, self.image_size))


class FeaturePipeline:
    """A feature-vector model's input: raw float32 vectors of ``dim`` features (NaN: missing).

    Imputation and standardisation (``transform``, fitted on the training
    rows) run in the member, on the device or inside an exported graph;
    calling the pipeline only checks a vector's width.
    """

    input_kind = "features"
    image_size = None
    preprocessor = None
    name = None
    params: dict[str, Any] = {}

    def __init__(self, transform: FeatureTransform, names: Sequence[str] | None = None) -> None:
        if not transform.fitted:
            raise CheckpointError("a feature-vector model needs its fitted standardisation (features/mean, features/std)")
        self.transform = transform
        self.dim = transform.dim
        self.names = tuple(names) if names else tuple(f"f{j}" for j in range(self.dim))
        self.key = f"features:{transform.fingerprint()}"

    @classmethod
    def from_metadata(
        cls, meta: Mapping[str, Any], state: Mapping[str, np.ndarray], source: str | Path
    ) -> FeaturePipeline:
        """The pipeline a checkpoint (or export) of a feature-vector model was trained with."""
        try:
            transform = FeatureTransform(state)
        except DataError as exc:
            raise CheckpointError(f"checkpoint {source}: {exc}") from None
        if meta.get("input_dim") not in (None, transform.dim):
            raise CheckpointError(f"checkpoint {source}: input_dim {meta['input_dim']} but a state of {transform.dim}")
        return cls(transform, meta.get("feature_names"))

    @property
    def state(self) -> dict[str, np.ndarray]:
        return self.transform.state()

    def __call__(self, vector: np.ndarray) -> np.ndarray:
        vector = np.asarray(vector, dtype=np.float32)
        if vector.shape[-1] != self.dim:
            raise DataError(f"vectors have {vector.shape[-1]} features; the model takes {self.dim}")
        return vector


def input_kind_of_metadata(meta: Mapping[str, Any]) -> str:
    """"features" or "image" (checkpoints written before vectors existed are images)."""
    return str(meta.get("input_kind") or "image")


def _graph(meta: Mapping[str, Any], source: str | Path) -> LabelGraph:
    try:
        data = meta["hierarchy"]
        graph = LabelGraph(data["labels"], [tuple(e) for e in data["edges"]], name=meta.get("hierarchy_name"))
    except (KeyError, TypeError):
        raise CheckpointError(f"checkpoint {source} does not record its hierarchy (labels and edges)") from None
    labels = list(meta.get("labels", graph.labels))
    if list(graph.labels) != labels:
        raise CheckpointError(f"checkpoint {source}: its labels and its hierarchy's label order differ")
    if meta.get("hierarchy_hash") not in (None, graph.content_hash):
        raise CheckpointError(
            f"checkpoint {source}: the recorded hierarchy does not match its hash; the file is corrupt"
        )
    return graph


def _normalization(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The ``to_model_input`` statistics a checkpoint or export recorded: mean, std, in_chans."""
    norm = meta["normalization"]
    return {
        "mean": list(norm["mean"]),
        "std": list(norm["std"]),
        "in_chans": int(meta.get("in_chans", len(norm["mean"]))),
    }


@dataclass
class LoadedModel:
    """A checkpoint's network in eval mode, with what it needs to read images and outputs."""

    model: nn.Module
    metadata: dict[str, Any]
    graph: LabelGraph
    pipeline: ImagePipeline | FeaturePipeline
    source: Path

    @property
    def input_kind(self) -> str:
        return self.pipeline.input_kind

    def model_input(self, batch: torch.Tensor) -> torch.Tensor:
        """The network's input of a batch from :attr:`pipeline`: normalised images, or standardised vectors."""
        from hmlc.models import StandardizeFeatures, to_model_input

        if isinstance(self.pipeline, FeaturePipeline):
            transform = self.pipeline.transform
            return StandardizeFeatures(transform.mean, transform.std).to(batch.device)(batch)
        return to_model_input(batch, self.normalization)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.graph.labels

    @property
    def normalization(self) -> dict[str, Any]:
        return _normalization(self.metadata)

    def probabilities(self, model_input: torch.Tensor) -> torch.Tensor:
        """Unconditional probabilities (B, K) of a normalised batch."""
        from hmlc.engine.inference import outputs_to_probabilities

        meta = self.metadata
        outputs = self.model(model_input)
        return outputs_to_probabilities(
            outputs, self.graph, meta["output"], meta.get("combine", "product"), meta["multiclass"]
        )


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild a checkpoint's model (from a checkpoint folder, file or run directory) in eval mode."""
    from hmlc.models import build_model, load_checkpoint
    from hmlc.plugins import get_host

    folder = resolve_checkpoint(path)
    ckpt = load_checkpoint(folder)
    meta = ckpt.metadata
    vectors = input_kind_of_metadata(meta) == "features"
    required = ("input_dim",) if vectors else ("normalization", "image_size")
    missing = [k for k in ("labels", "backbone", *required, "output", "multiclass") if k not in meta]
    if missing:
        raise CheckpointError(f"checkpoint {folder} lacks metadata {', '.join(missing)}; was it written by hmlc train?")
    graph = _graph(meta, folder)
    spec = get_host().backbone(meta["backbone"])
    model = build_model(
        spec, len(graph), multiclass=bool(meta["multiclass"]), pretrained=False, dropout=float(meta.get("dropout", 0.0)),
        backbone_params=meta.get("backbone_params"), input_dim=int(meta["input_dim"]) if vectors else None,
    )
    try:
        model.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {folder} does not fit backbone {meta['backbone']!r}: {first}") from None
    model.eval().to(device)
    prefix = _FEATURES_PREFIX if vectors else _PREPROCESS_PREFIX
    state = {
        key[len(prefix) :]: value.cpu().numpy()
        for key, value in (ckpt.extra_state or {}).items()
        if key.startswith(prefix)
    }
    pipeline: ImagePipeline | FeaturePipeline = (
        FeaturePipeline.from_metadata(meta, state, folder) if vectors else ImagePipeline.from_metadata(meta, state, folder)
    )
    return LoadedModel(model, dict(meta), graph, pipeline, folder)


# ----------------------------------------------------------------- members
class EnsembleMember(ABC):
    """One model of an ensemble: labels, hierarchy hash, pipeline and a probability function."""

    source: str
    labels: tuple[str, ...]
    hierarchy_hash: str
    pipeline: ImagePipeline | FeaturePipeline
    #: The ``data`` section of the configuration it was trained with, when the member carries it.
    training_data: Mapping[str, Any] | None = None

    @abstractmethod
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Unconditional probabilities (B, K) of uint8 images (B, 1, S, S) from :attr:`pipeline`
        (of raw float32 vectors (B, D) for a feature-vector model)."""


class TorchMember(EnsembleMember):
    """A checkpoint run in PyTorch."""

    def __init__(self, loaded: LoadedModel, device: torch.device) -> None:
        self.loaded = loaded
        self.device = device
        self.source = str(loaded.source)
        self.labels = loaded.labels
        self.hierarchy_hash = loaded.graph.content_hash
        self.pipeline = loaded.pipeline
        data = (loaded.metadata.get("config") or {}).get("data")
        self.training_data = data if isinstance(data, Mapping) else None

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        x = self.loaded.model_input(images.to(self.device, non_blocking=True))
        return self.loaded.probabilities(x).float()


class OnnxMember(EnsembleMember):
    """A model exported by ``hmlc export --format onnx``, run in ONNX Runtime."""

    def __init__(self, path: Path, device: torch.device) -> None:
        from hmlc.engine.export import decode_state, read_export_metadata

        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("--runtime onnx needs onnxruntime: pip install 'hmlc[onnx]'") from None
        meta = read_export_metadata(path)
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise CheckpointError(f"cannot load ONNX model {path}: {' '.join(str(exc).split())[:300]}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = meta
        self.source = str(path)
        data = meta.get("training_data")
        self.training_data = data if isinstance(data, Mapping) else None
        graph = _graph(meta, path)
        self.labels = graph.labels
        self.hierarchy_hash = graph.content_hash
        preprocessing = meta.get("preprocessing") or {}
        if input_kind_of_metadata(meta) == "features":
            # The exported graph imputes and standardises itself: it takes raw vectors.
            state = decode_state((meta.get("features") or {}).get("state") or {})
            self.pipeline = FeaturePipeline.from_metadata(meta, state, path)
            self.normalization = None
        else:
            self.pipeline = ImagePipeline.from_metadata(meta, decode_state(preprocessing.get("state") or {}), path)
            self.normalization = _normalization(meta)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        from hmlc.models import to_model_input

        if self.normalization is None:
            x = images.cpu().float().numpy()
        else:
            x = to_model_input(images.cpu(), self.normalization).numpy()
        (out,) = self.session.run(None, {self.input_name: x})
        return torch.from_numpy(np.asarray(out, dtype=np.float32))


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no GPU is available; use --device cpu")
    return device


def load_member(
    path: str | os.PathLike[str], runtime: str = "torch", device: torch.device | None = None
) -> EnsembleMember:
    """An ensemble member: a checkpoint for ``runtime="torch"``, an exported .onnx file for ``"onnx"``."""
    device = device or torch.device("cpu")
    path = Path(path)
    if runtime == "onnx":
        if path.suffix.lower() != ".onnx":
            raise CheckpointError(_onnx_export_advice(path))
        if not path.is_file():
            raise CheckpointError(f"ONNX model {path} does not exist")
        return OnnxMember(path, device)
    if runtime != "torch":
        raise ConfigError(f"unknown runtime {runtime!r}; use torch or onnx")
    if path.suffix.lower() == ".onnx":
        raise CheckpointError(f"{path} is an ONNX export; run it with --runtime onnx")
    return TorchMember(load_model(path, device), device)


def _onnx_export_advice(path: Path) -> str:
    """What to run when ``--runtime onnx`` is given something that is not an .onnx file: a working
    ``hmlc export`` command (from the checkpoint an export of another format was made from)."""
    import shlex

    from hmlc.engine.export import read_export_metadata

    checkpoint, what = path, f"export {path} first"
    if path.is_file():
        out = path.with_suffix(".onnx")
    else:
        out = path.with_name(f"{path.name}.onnx") if path.name else Path("model.onnx")
    if path.is_file() and path.suffix.lower() not in (".json", ".safetensors"):
        try:
            meta = read_export_metadata(path)
        except CheckpointError:
            meta = {}
        if meta.get("source"):
            kind = "TorchScript" if meta.get("format") == "hmlc-torchscript" else str(meta.get("format", "an"))
            checkpoint = Path(meta["source"])
            if not checkpoint.exists():
                return (
                    f"--runtime onnx runs exported .onnx files; {path} is a {kind} export of checkpoint "
                    f"{checkpoint}, which is not found from here: run `hmlc export --checkpoint CHECKPOINT "
                    f"--format onnx --out {shlex.quote(str(out))}` with that checkpoint and pass the .onnx file"
                )
            what = f"{path} is a {kind} export; export its checkpoint to ONNX"
    command = shlex.join(["hmlc", "export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out)])
    return f"--runtime onnx runs exported .onnx files; {what}: `{command}`, then pass --checkpoint {shlex.quote(str(out))}"


def dataset_defaults(members: Sequence[EnsembleMember], dataset: str) -> tuple[dict[str, Any], str | None]:
    """The reader settings of the first member trained on ``dataset``, as a configuration base.

    ``data.params`` (e.g. CheXpert's ``views: frontal``) always; ``data.root``
    only where that folder exists on this machine. Returns the base and the
    member it came from (None: no member was trained on ``dataset``).
    """
    for member in members:
        data = member.training_data
        if data is None or data.get("dataset") != dataset:
            continue
        section: dict[str, Any] = {"params": dict(data.get("params") or {})}
        root = data.get("root")
        if root and Path(root).expanduser().is_dir():
            section["root"] = root
        return {"data": section}, member.source
    return {}, None


def check_ensemble(members: Sequence[EnsembleMember]) -> None:
    """Refuse members that predict different labels, in another order, or on another hierarchy."""
    if not members:
        raise ConfigError("no checkpoint given; pass --checkpoint PATH")
    first = members[0]
    for other in members[1:]:
        if other.labels != first.labels:
            if set(other.labels) == set(first.labels):
                what = "the same labels in a different order"
            else:
                what = f"different labels ({len(first.labels)} vs {len(other.labels)})"
            raise CheckpointError(
                f"checkpoints {first.source} and {other.source} predict {what}; an ensemble needs identical label lists"
            )
        if other.hierarchy_hash != first.hierarchy_hash:
            raise CheckpointError(
                f"checkpoints {first.source} and {other.source} were trained on different hierarchies "
                f"({first.hierarchy_hash[:12]} vs {other.hierarchy_hash[:12]}); an ensemble needs one hierarchy"
            )


# ------------------------------------------------------------------ inputs
class _FileImages:
    """Image files decoded at their own size (PNG, JPEG, DICOM)."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> np.ndarray:
        return read_image_file(self.paths[i])


@dataclass
class PredictionInputs:
    """Images to predict: ids (the ``Path`` column), study ids and an image source, row for row."""

    ids: list[str]
    studies: list[str]
    images: Any  # hmlc.data.images.ImageSource

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.studies) == len(self.images)):
            raise DataError(
                f"{len(self.ids)} ids, {len(self.studies)} studies and {len(self.images)} images differ in number"
            )
        if not self.ids:
            raise DataError("no images to predict")

    def __len__(self) -> int:
        return len(self.ids)

    def without(self, rows: Sequence[int]) -> PredictionInputs:
        """These inputs less ``rows`` (images that could not be read)."""
        from hmlc.data.images import SubsetImageSource

        keep = np.setdiff1d(np.arange(len(self)), np.asarray(rows, dtype=np.int64))
        return PredictionInputs(
            [self.ids[i] for i in keep], [self.studies[i] for i in keep], SubsetImageSource(self.images, keep)
        )


def inputs_from_paths(
    paths: Sequence[str | os.PathLike[str]], relative_to: str | os.PathLike[str] | None = None
) -> PredictionInputs:
    """Image files and folders (searched recursively for .png .jpg .jpeg .dcm .dicom).

    Ids are the paths as given (a folder's files joined to the folder as
    given), or relative to ``relative_to``; a study is the id's parent folder.
    """
    if not paths:
        raise DataError("no inputs: give image files or folders, or --dataset NAME --split SPLIT")
    files: list[str] = []
    ids: list[str] = []
    seen: set[str] = set()
    for given in paths:
        given_path = Path(given)
        if given_path.is_dir():
            found = sorted(p for p in given_path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {given}")
            # rglob joins each file to the folder as given: the id keeps the user's spelling.
            candidates = [(str(p), p.as_posix()) for p in found]
        elif given_path.is_file():
            candidates = [(str(given_path), given_path.as_posix())]
        else:
            raise DataError(f"input {given} does not exist; give image files or folders")
        for file, ident in candidates:
            if relative_to is not None:
                ident = Path(os.path.relpath(Path(file).resolve(), Path(relative_to).resolve())).as_posix()
            if ident in seen:
                continue
            seen.add(ident)
            files.append(file)
            ids.append(ident)
    studies = [str(PurePosixPath(i).parent) for i in ids]
    return PredictionInputs(ids, studies, _FileImages(files))


def inputs_from_dataset(
    name: str,
    split: str,
    *,
    root: Path | None,
    params: Mapping[str, Any],
    image_size: int | None,
) -> PredictionInputs:
    """One split of a registered dataset, images at ``image_size`` (None: native); ids and studies from its table."""
    from hmlc.plugins import get_host

    from hmlc.data.datasets import read_split

    reader = get_host().dataset(name)
    # Predictions need no label codes: any hierarchy's model can read any dataset.
    loaded = read_split(reader, split, root=root, params=params, image_size=image_size, labels=None)
    frame = loaded.table.frame
    ids = [str(v) for v in frame["id"]]
    studies = [str(v) or i for v, i in zip(frame["study"], ids)]
    return PredictionInputs(ids, studies, loaded.images)


def inputs_from_vectors(path: str | os.PathLike[str], names: Sequence[str]) -> PredictionInputs:
    """Feature vectors from a .npy (N, D) array or a CSV with a column per feature ``names``.

    A CSV's columns are joined by name (any order, extra columns ignored);
    its ids come from an ``id`` or ``Path`` column, else (and for .npy) they
    are the row numbers from 1. Blank or NaN cells are missing values.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input {path} does not exist; give a .npy or .csv file of feature vectors")
    try:
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
            ids = [str(i + 1) for i in range(len(values))]
        else:
            frame = pd.read_csv(path)
            missing = [n for n in names if n not in frame.columns]
            if missing:
                raise DataError(
                    f"{path} lacks feature column(s) {', '.join(missing[:5])}"
                    f"{' ...' if len(missing) > 5 else ''}; the model takes {len(names)} features named like "
                    f"{', '.join(list(names)[:3])}"
                )
            id_column = next((c for c in ("id", "Path") if c in frame.columns), None)
            ids = [str(v) for v in frame[id_column]] if id_column else [str(i + 1) for i in range(len(frame))]
            values = frame[list(names)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read feature vectors from {path}: {exc}") from None
    if values.ndim != 2 or values.shape[1] != len(names):
        raise DataError(f"{path} holds an array of shape {values.shape}; the model takes (N, {len(names)}) vectors")
    return PredictionInputs(ids, ids, ArrayFeatureSource(values, names))


# ----------------------------------------------------------------- predict
class _ViewDataset(Dataset):
    """Per image: a uint8 (T, 1, S, S) stack per pipeline, its index, and an error message or ""."""

    def __init__(
        self, inputs: PredictionInputs, pipelines: Sequence[ImagePipeline], tta: TestTimeAugmentation | None
    ) -> None:
        self.inputs = inputs
        self.pipelines = list(pipelines)
        self.tta = tta

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[tuple[torch.Tensor, ...], int, str]:
        views = self.tta.n if self.tta is not None else 1
        try:
            raw = self.inputs.images.read(i)
            stacks = []
            for pipeline in self.pipelines:
                image = pipeline(raw)
                stack = self.tta(image, self.inputs.ids[i]) if self.tta is not None else image[None]
                stacks.append(torch.from_numpy(np.ascontiguousarray(stack))[:, None])
            return tuple(stacks), i, ""
        except HmlcError as exc:
            # Raised in the main process, so the user sees one line even with workers.
            blank = tuple(
                torch.zeros((views, 1, p.image_size, p.image_size), dtype=torch.uint8) for p in self.pipelines
            )
            return blank, i, str(exc) or type(exc).__name__


class Predictor:
    """An ensemble of members (one or more) with optional TTA, run batch by batch."""

    def __init__(
        self,
        members: Sequence[EnsembleMember],
        tta: TestTimeAugmentation | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        progress: bool = True,
        on_bad_image: str = "error",
    ) -> None:
        check_ensemble(members)
        if batch_size < 1:
            raise ConfigError(f"--batch-size {batch_size}: give at least 1")
        if num_workers < 0:
            raise ConfigError(f"--num-workers {num_workers}: give 0 or more")
        self.members = list(members)
        self.tta = tta
        self.batch_size = batch_size
        self.num_workers = num_workers
        #: Report progress (a bar on a terminal, lines in a log; see :mod:`hmlc.progress`).
        self.progress = progress
        #: "skip": an image that cannot be read gets no prediction (a NaN row) and its row goes to ``skipped``.
        self.on_bad_image = on_bad_image
        self.skipped: list[int] = []
        groups: dict[str, list[EnsembleMember]] = {}
        for member in self.members:
            groups.setdefault(member.pipeline.key, []).append(member)
        self._groups = [(ms[0].pipeline, ms) for ms in groups.values()]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.members[0].labels

    @property
    def load_size(self) -> int | None:
        """The size a dataset reader should deliver images at: the members' one size, or None (as stored).

        Only members without a preprocessor and with one common size can take
        images already resized (the training pipeline then is the same).
        """
        sizes = {m.pipeline.image_size for m in self.members}
        if len(sizes) == 1 and all(m.pipeline.preprocessor is None for m in self.members):
            return sizes.pop()
        return None

    @property
    def input_kind(self) -> str:
        """"image" or "features": what every member takes."""
        return self.members[0].pipeline.input_kind

    def predict(self, inputs: PredictionInputs) -> np.ndarray:
        """Probabilities (N, K), float64: mean over members and TTA views of each one's probabilities."""
        kinds = {m.pipeline.input_kind for m in self.members}
        given = "features" if isinstance(inputs.images, FeatureSource) else "image"
        if kinds != {given}:
            wanted = " and ".join(sorted(kinds))
            raise ConfigError(f"the model(s) take {wanted} inputs but were given {given} inputs")
        if given == "features":
            return self._predict_vectors(inputs)

        self.skipped = []
        dataset = _ViewDataset(inputs, [p for p, _ in self._groups], self.tta)
        loader = DataLoader(
            dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
            worker_init_fn=ignore_stop_signals,  # Ctrl-C and SIGTERM are the main process's to handle
        )
        total = np.zeros((len(inputs), len(self.labels)), dtype=np.float64)
        with Progress(len(inputs), "predict", unit="img", enabled=self.progress) as progress:
            for stacks, index, errors in loader:
                failed = [i for i, e in enumerate(errors) if e]
                if failed and self.on_bad_image != "skip":
                    raise DataError(errors[failed[0]])
                self.skipped.extend(index[failed].tolist())
                rows = index.numpy()
                for stack, (_, members) in zip(stacks, self._groups, strict=True):
                    batch, views = stack.shape[:2]
                    flat = stack.reshape(batch * views, *stack.shape[2:])
                    for member in members:
                        probs = member.probabilities(flat).reshape(batch, views, -1).mean(1)
                        total[rows] += probs.double().cpu().numpy()
                progress.update(len(rows))
        total[self.skipped] = np.nan
        return total / len(self.members)

    def _predict_vectors(self, inputs: PredictionInputs) -> np.ndarray:
        if self.tta is not None:
            raise ConfigError("--tta transforms images; models of feature vectors take no TTA")
        values = inputs.images.array()
        total = np.zeros((len(inputs), len(self.labels)), dtype=np.float64)
        with Progress(len(values), "predict", unit="vectors", enabled=self.progress) as progress:
            for start in range(0, len(values), self.batch_size):
                rows = slice(start, start + self.batch_size)
                for pipeline, members in self._groups:
                    batch = torch.from_numpy(np.ascontiguousarray(pipeline(values[rows])))
                    for member in members:
                        total[rows] += member.probabilities(batch).double().cpu().numpy()
                progress.update(len(values[rows]))
        return total / len(self.members)


def predictions_frame(
    inputs: PredictionInputs, probabilities: np.ndarray, labels: Sequence[str], aggregate: str | None = None
) -> pd.DataFrame:
    """The predictions CSV as a frame: ``Path`` (or ``Study`` when aggregated) and one column per label.

    ``aggregate`` "mean" or "max" combines the images of each study, studies
    in order of first appearance.
    """
    frame = pd.DataFrame(np.asarray(probabilities, dtype=np.float64), columns=list(labels))
    if aggregate is None:
        frame.insert(0, "Path", inputs.ids)
        return frame
    if aggregate not in AGGREGATIONS:
        raise ConfigError(f"--aggregate study:{aggregate} is unknown; use study:mean or study:max")
    frame.insert(0, "Study", inputs.studies)
    return frame.groupby("Study", sort=False, as_index=False)[list(labels)].agg(aggregate)


def write_predictions(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write the predictions CSV atomically (temporary file, then rename)."""
    from hmlc.engine.rundir import atomic_write_text

    try:
        atomic_write_text(Path(path), frame.to_csv(index=False, float_format="%.8g"))
    except OSError as exc:
        raise DataError(f"cannot write predictions to {path}: {exc.strerror or exc}") from None
