"""Checkpoints: a folder of safetensors weights and JSON metadata.

Layout of a checkpoint folder::

    model.safetensors   the model's state dict
    state.safetensors   optional extra tensors (optimizer state, RNG state, ...)
    meta.json           {"format_version", "files": {name: {sha256, bytes}}, "metadata"}

Nothing is ever unpickled. Saving is atomic: the folder is written beside the
target under a temporary name and renamed into place, so a crash leaves
either the previous checkpoint or the new one, never a mix. Non-tensor state
(an optimizer's hyper-parameters) goes through :func:`flatten_state` into
JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hmlc.errors import CheckpointError, shorten
from hmlc.faults import count_event, fault_point

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_metadata",
    "flatten_state",
    "unflatten_state",
]

CHECKPOINT_FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
STATE_FILE = "state.safetensors"
META_FILE = "meta.json"
_OWN_FILES = frozenset({MODEL_FILE, STATE_FILE, META_FILE})
_HEADER_FIELD = "hmlc"  # one field: safetensors writes several in a random order
_KEYS_FIELD = "hmlc_keys"  # the fields of checkpoints written before the one above
_ALIASES_FIELD = "hmlc_aliases"
#: Values a checkpoint's ``output`` metadata may hold.
OUTPUT_KINDS = ("unconditional", "conditional", "max-constraint")
#: Largest ``image_size`` a checkpoint may record (that of ``data.image_size``).
MAX_IMAGE_SIZE = 4096


@dataclass
class Checkpoint:
    """A loaded checkpoint: model tensors, free-form metadata, extra tensors."""

    state_dict: dict[str, Tensor]
    metadata: dict[str, Any]
    extra_state: dict[str, Tensor] | None
    path: Path


# --- writing -----------------------------------------------------------------


def _storable(state: Mapping[str, Any], what: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Contiguous CPU tensors safetensors accepts, and aliases of tied tensors.

    safetensors refuses tensors that share memory. A tensor identical to an
    earlier one (tied weights) is stored once and recorded as an alias;
    other tensors sharing memory are copied.
    """
    storage_uses: dict[tuple[str, int], int] = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{what} entry {key!r} is a {type(value).__name__}, not a tensor")
        if value.numel():
            storage = (str(value.device), value.untyped_storage().data_ptr())
            storage_uses[storage] = storage_uses.get(storage, 0) + 1
    tensors: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    first_of_view: dict[tuple[Any, ...], str] = {}
    for key, value in state.items():
        value = value.detach()
        if value.numel():
            storage = (str(value.device), value.untyped_storage().data_ptr())
            view = (*storage, value.storage_offset(), tuple(value.shape), value.stride(), value.dtype)
            if view in first_of_view:
                aliases[key] = first_of_view[view]
                continue
            first_of_view[view] = key
            partial_view = value.untyped_storage().nbytes() != value.numel() * value.element_size()
            shared = storage_uses[storage] > 1 or partial_view
        else:
            shared = False
        value = value.to("cpu")
        tensors[key] = value.clone(memory_format=torch.contiguous_format) if shared else value.contiguous()
    return tensors, aliases


def _write_tensors(path: Path, state: Mapping[str, Any], what: str) -> dict[str, Any]:
    from safetensors.torch import save

    tensors, aliases = _storable(state, what)
    header = {_HEADER_FIELD: json.dumps({"keys": list(state), "aliases": aliases}, sort_keys=True)}
    data = save(tensors, metadata=header)
    _write_bytes(path, data)
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not supported on every platform/file system
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _backup_of(directory: Path) -> Path:
    return directory.parent / f".{directory.name}.previous"


def _hmlc_version() -> str | None:
    try:
        return importlib_metadata.version("hmlc")
    except importlib_metadata.PackageNotFoundError:
        return None


def _meta_text(meta: Mapping[str, Any], metadata_text: Mapping[str, str]) -> str:
    """meta.json: ``meta`` indented, then ``"metadata"``, one line per entry (each value on its line)."""
    head = json.dumps(dict(meta), indent=2)[:-2]  # without the closing "\n}"
    entries = ",\n".join(f"    {json.dumps(key)}: {value}" for key, value in metadata_text.items())
    return head + ',\n  "metadata": {' + (f"\n{entries}\n  " if entries else "") + "}\n}"


def save_checkpoint(
    directory: str | os.PathLike[str],
    model: nn.Module | Mapping[str, Tensor],
    metadata: Mapping[str, Any],
    extra_state: Mapping[str, Tensor] | None = None,
) -> Path:
    """Write a checkpoint folder atomically and return its path.

    ``model`` is a module (its state dict is saved) or a state dict;
    ``metadata`` any JSON-serialisable mapping; ``extra_state`` optional
    tensors saved in a second file (see :func:`flatten_state`). An existing
    checkpoint at ``directory`` is replaced only once the new one is complete.
    """
    directory = Path(directory)
    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    try:
        # Each top-level entry encoded once, by json's C encoder (an indented dump runs the pure-Python
        # one: on a Gene Ontology run's metadata, ~0.1 s per epoch's checkpoint).
        metadata_text = {str(key): json.dumps(value) for key, value in dict(metadata).items()}
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint metadata for {str(directory)!r} is not JSON-serialisable: {error}") from None
    if directory.exists():
        if not directory.is_dir():
            raise CheckpointError(f"cannot write checkpoint {str(directory)!r}: a file of that name exists")
        foreign = sorted(p.name for p in directory.iterdir() if p.name not in _OWN_FILES)
        if foreign:
            raise CheckpointError(
                f"refusing to replace {str(directory)!r}: it holds files that are not part of a checkpoint "
                f"({', '.join(foreign[:3])}); choose another checkpoint folder"
            )
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
        # mkdtemp makes the folder private (0700); give it the mode a plain mkdir() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)
    except OSError as error:
        raise CheckpointError(f"cannot write checkpoint {str(directory)!r}: {error.strerror or error}") from None
    try:
        files = {MODEL_FILE: _write_tensors(staging / MODEL_FILE, state, "model state")}
        if extra_state is not None:
            files[STATE_FILE] = _write_tensors(staging / STATE_FILE, extra_state, "extra state")
        meta = {"format_version": CHECKPOINT_FORMAT_VERSION, "hmlc_version": _hmlc_version(), "files": files}
        _write_bytes(staging / META_FILE, _meta_text(meta, metadata_text).encode("utf-8"))
        _fsync_dir(staging)
        save = count_event(f"save:{directory.name}")
        fault_point("save", directory.name, save, "staged")
        backup = _backup_of(directory)
        if directory.exists():
            if backup.exists():  # left by a crash after a previous swap completed
                shutil.rmtree(backup)
            os.replace(directory, backup)
        # A crash here leaves only the backup; load_checkpoint falls back to it.
        fault_point("save", directory.name, save, "swapped")
        os.replace(staging, directory)
        _fsync_dir(directory.parent)
        shutil.rmtree(backup, ignore_errors=True)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise CheckpointError(f"cannot write checkpoint {str(directory)!r}: {error.strerror or error}") from None
    except BaseException:
        # Interrupted (Ctrl-C): put the previous checkpoint back if it was moved aside.
        backup = _backup_of(directory)
        if not directory.exists() and (backup / META_FILE).is_file():
            os.replace(backup, directory)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


# --- reading -----------------------------------------------------------------


def _checkpoint_dir(path: Path) -> Path:
    if path.name in _OWN_FILES and not path.is_dir():
        path = path.parent
    if not path.exists():
        backup = _backup_of(path)
        if (backup / META_FILE).is_file():
            return backup  # an interrupted save: the previous checkpoint is intact
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if not path.is_dir():
        raise CheckpointError(
            f"{str(path)!r} is not a checkpoint: give a checkpoint folder or its {MODEL_FILE} / {META_FILE}"
        )
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_tensors(directory: Path, name: str, record: Any, device: str) -> dict[str, Tensor]:
    from safetensors import safe_open

    path = directory / name
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(directory)!r} lacks {name}")
    if not isinstance(record, Mapping) or "sha256" not in record:
        raise CheckpointError(f"checkpoint {str(directory)!r}: {META_FILE} has no valid record of {name}")
    if path.stat().st_size != record.get("bytes") or _sha256(path) != record["sha256"]:
        raise CheckpointError(
            f"checkpoint {str(directory)!r}: {name} is corrupt (its size or SHA-256 differs from {META_FILE})"
        )
    try:
        with safe_open(str(path), framework="pt", device=device) as handle:
            header = handle.metadata() or {}
            stored = {key: handle.get_tensor(key) for key in handle.keys()}
        if _HEADER_FIELD in header:
            fields = json.loads(header[_HEADER_FIELD])
            order, aliases = fields.get("keys") or list(stored), fields.get("aliases") or {}
        else:
            order = json.loads(header.get(_KEYS_FIELD, "null")) or list(stored)
            aliases = json.loads(header.get(_ALIASES_FIELD, "{}"))
        tensors = {key: stored[key] if key in stored else stored[aliases[key]] for key in order}
    except CheckpointError:
        raise
    except Exception as error:  # noqa: BLE001 - any parse failure means a bad file
        raise CheckpointError(f"checkpoint {str(directory)!r}: cannot read {name}: {error}") from None
    return tensors


def load_checkpoint(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint folder (or its model.safetensors / meta.json).

    Tensors land on ``device``. Raises :class:`CheckpointError` naming the
    path and the problem when it is missing, corrupt or from a newer hmlc.
    """
    directory = _checkpoint_dir(Path(path))
    meta = _read_meta(directory)
    files = meta.get("files")
    if not isinstance(files, dict) or MODEL_FILE not in files:
        raise CheckpointError(f"checkpoint {str(directory)!r}: {META_FILE} does not list {MODEL_FILE}")
    device = str(device)
    state_dict = _read_tensors(directory, MODEL_FILE, files[MODEL_FILE], device)
    extra = _read_tensors(directory, STATE_FILE, files[STATE_FILE], device) if STATE_FILE in files else None
    return Checkpoint(state_dict=state_dict, metadata=meta["metadata"], extra_state=extra, path=directory)


def read_checkpoint_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's metadata (what ``hmlc train`` recorded) without reading its tensors.

    Same checks and errors as :func:`load_checkpoint`.
    """
    return _read_meta(_checkpoint_dir(Path(path)))["metadata"]


def _read_meta(directory: Path) -> dict[str, Any]:
    """meta.json of a checkpoint folder, checked: a format this hmlc reads and a metadata object."""
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"checkpoint {str(directory)!r} lacks {META_FILE}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {str(directory)!r}: {META_FILE} is not valid JSON ({error})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("format_version"), int):
        raise CheckpointError(f"checkpoint {str(directory)!r}: {META_FILE} has no integer format_version")
    version = meta["format_version"]
    if version > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(directory)!r} has format {version}, newer than this hmlc reads "
            f"({CHECKPOINT_FORMAT_VERSION}); upgrade hmlc"
        )
    if not isinstance(meta.get("metadata"), dict):
        raise CheckpointError(f"checkpoint {str(directory)!r}: {META_FILE} has no metadata object")
    _check_metadata(directory, meta["metadata"])
    return meta


def _check_metadata(directory: Path, metadata: Mapping[str, Any]) -> None:
    """Refuse recorded values hmlc would act on but never writes (a tampered or foreign meta.json)."""
    from hmlc.data.images import max_image_pixels

    def bad(key: str, what: str) -> CheckpointError:
        shown = shorten(json.dumps(metadata[key], default=str))
        return CheckpointError(f"checkpoint {str(directory)!r}: {META_FILE} records {key} {shown}; {what}")

    # A model of feature vectors records no image size.
    if "image_size" in metadata and (metadata["image_size"] is not None or metadata.get("input_kind", "image") == "image"):
        size = metadata["image_size"]
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_IMAGE_SIZE:
            raise bad("image_size", f"expected an integer from 1 to {MAX_IMAGE_SIZE}")
        if size * size > max_image_pixels():
            raise bad("image_size", "over the image pixel limit (data.max_image_pixels / $HMLC_MAX_IMAGE_PIXELS)")
    if "output" in metadata and metadata["output"] not in OUTPUT_KINDS:
        raise bad("output", f"expected one of {', '.join(OUTPUT_KINDS)}")
    if "multiclass" in metadata and not isinstance(metadata["multiclass"], bool):
        raise bad("multiclass", "expected true or false")
    if "labels" in metadata:
        labels = metadata["labels"]
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise bad("labels", "expected a list of label names")


# --- nested state <-> tensors + JSON -------------------------------------------

_TENSOR, _TUPLE, _DICT, _FLOAT = "__tensor__", "__tuple__", "__dict__", "__float__"


def flatten_state(state: Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split nested state (e.g. ``optimizer.state_dict()``) into tensors and JSON.

    Returns ``(tensors, meta)``: ``tensors`` go to safetensors (e.g. as
    ``extra_state`` of :func:`save_checkpoint`), ``meta`` to JSON metadata.
    :func:`unflatten_state` rebuilds the exact structure, integer keys and
    tuples included.
    """
    tensors: dict[str, Tensor] = {}

    def encode(value: Any, where: str) -> Any:
        if isinstance(value, Tensor):
            name = where or "tensor"
            while name in tensors:
                name += "'"
            tensors[name] = value
            return {_TENSOR: name}
        if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {_FLOAT: repr(value)}
        if isinstance(value, tuple):
            return {_TUPLE: [encode(v, f"{where}/{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [encode(v, f"{where}/{i}") for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: encode(v, f"{where}/{k}" if where else k) for k, v in value.items()}
            return {
                _DICT: [
                    [encode(k, f"{where}/key{i}"), encode(v, f"{where}/{k}" if where else str(k))]
                    for i, (k, v) in enumerate(value.items())
                ]
            }
        raise CheckpointError(f"cannot store state entry {where!r} of type {type(value).__name__} in a checkpoint")

    meta = encode(dict(state), "")
    return tensors, meta


def unflatten_state(tensors: Mapping[str, Tensor], meta: Any) -> Any:
    """The nested state :func:`flatten_state` split into ``tensors`` and ``meta``."""

    def decode(value: Any) -> Any:
        if isinstance(value, list):
            return [decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (tag, inner), = value.items()
            if tag == _TENSOR:
                if inner not in tensors:
                    raise CheckpointError(f"saved state refers to tensor {inner!r}, which the checkpoint lacks")
                return tensors[inner]
            if tag == _TUPLE:
                return tuple(decode(v) for v in inner)
            if tag == _FLOAT:
                return float(inner)
            if tag == _DICT:
                return {decode(k): decode(v) for k, v in inner}
        return {k: decode(v) for k, v in value.items()}

    return decode(meta)
