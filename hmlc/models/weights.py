"""Pretrained backbone weights: local files first, else the libraries' own downloads.

:func:`find_weights` looks for the file a backbone's :class:`WeightsSource`
names in ``model.weights``, then in the caches torchvision, timm and the
Hugging Face hub fill when they download (so weights fetched once by any of
them are found). When the file is in none of them it downloads it the way
those libraries do, into those same caches: torchvision's URL through
``torch.hub.download_url_to_file`` (hash-checked, into
``~/.cache/torch/hub/checkpoints``), timm's Hugging Face repo through
``huggingface_hub.hf_hub_download`` (into ``~/.cache/huggingface/hub``).
Offline, or with ``HF_HUB_OFFLINE=1``, the error names the file and the folder
to put it in. :func:`load_pretrained` loads a file without unpickling anything.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hmlc.errors import CheckpointError, WeightsNotFoundError

if TYPE_CHECKING:
    from torch import Tensor, nn

    from hmlc.models.backbones import BackboneSpec

__all__ = [
    "WeightsSource",
    "WeightsLookup",
    "lookup_weights",
    "download_weights",
    "find_weights",
    "load_pretrained",
    "torch_hub_checkpoint_dir",
    "hf_hub_cache_dir",
    "CLASSIFIER_PREFIXES",
]

WEIGHT_KINDS = ("torchvision", "timm", "file")

# Names ImageNet classifiers give their final layers (torchvision, timm,
# Cadene's pretrainedmodels). Keys under them that the feature extractor lacks
# are the classifier we replaced, so they are dropped on load.
CLASSIFIER_PREFIXES = ("fc", "classifier", "head", "heads", "last_linear", "AuxLogits", "aux1", "aux2")

_LOADABLE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
#: Where torchvision publishes its weight files (``<name>-<sha256 prefix>.pth``).
TORCHVISION_URL = "https://download.pytorch.org/models/"


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's pretrained weights live once downloaded.

    ``kind`` is "torchvision" (``filename`` is the file name in the torch hub
    cache, e.g. "resnet18-f37072fd.pth"), "timm" (``filename`` is the Hugging
    Face hub id, e.g. "timm/resnet10t.c3_in1k"; ``legacy_filename`` the file
    name timm's older URL downloads leave in the torch hub cache) or "file"
    (``filename`` is a path). ``discard`` lists extra key prefixes of the file
    the feature extractor lacks on purpose (its classifier), beyond
    :data:`CLASSIFIER_PREFIXES`. ``url`` is where the torch hub cache file
    (``filename`` for "torchvision", ``legacy_filename`` for "timm") is
    downloaded from; for "torchvision" it defaults to torchvision's
    :data:`TORCHVISION_URL` + ``filename``.
    """

    filename: str
    kind: str
    legacy_filename: str | None = None
    discard: tuple[str, ...] = ()
    url: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in WEIGHT_KINDS:
            raise WeightsNotFoundError(
                f"weights source {self.filename!r} has unknown kind {self.kind!r}; use one of {', '.join(WEIGHT_KINDS)}"
            )
        if not self.filename:
            raise WeightsNotFoundError(f"a {self.kind} weights source needs a non-empty filename")
        if self.kind == "torchvision" and self.url == TORCHVISION_URL + self.filename:
            object.__setattr__(self, "url", None)  # the default: one spelling, so equal sources compare equal

    @property
    def download_url(self) -> str | None:
        """The URL of the file torch.hub caches, or None when there is none to fetch."""
        if self.url:
            return self.url
        return TORCHVISION_URL + self.filename if self.kind == "torchvision" else None


def torch_hub_checkpoint_dir() -> Path:
    """The folder torch.hub (and torchvision, timm's URL downloads) caches weights in."""
    import torch  # torch is imported where it computes, so naming weights (specs) needs none

    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def _hf_snapshot_files(repo_id: str) -> tuple[Path, list[Path]]:
    """The repo's cache folder and its weight files, the snapshot of refs/main first."""
    repo_dir = hf_hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    if not snapshots.is_dir():
        return repo_dir, []
    ordered: list[Path] = []
    main_ref = repo_dir / "refs" / "main"
    if main_ref.is_file():
        ordered.append(snapshots / main_ref.read_text().strip())
    ordered += sorted((p for p in snapshots.iterdir() if p not in ordered), key=lambda p: p.name)
    return repo_dir, [s / name for s in ordered for name in _HF_WEIGHT_FILES]


@dataclass(frozen=True)
class WeightsLookup:
    """Where a backbone's weights were found, or where they would have to be."""

    backbone: str
    #: The local file, when there is one.
    path: Path | None
    #: What is expected, where it was searched and where to put it (a sentence), when there is no file.
    expected: str | None
    #: True when the backbone has no published weights at all (random initialisation only).
    unpublished: bool = False

    @property
    def put(self) -> str | None:
        """Only the instruction: 'put FILE in FOLDER'."""
        if self.expected is None:
            return None
        return self.expected[self.expected.rfind("; ") + 2 :] if "; " in self.expected else self.expected


def lookup_weights(spec: BackboneSpec) -> WeightsLookup:
    """Look for ``spec``'s published weights in the local caches; never raises, never downloads.

    Order: for torchvision weights the torch hub cache; for timm weights the
    Hugging Face hub cache, then the torch hub cache (timm's URL downloads).
    """
    source = spec.weights
    if source is None:
        return WeightsLookup(spec.name, None, None, unpublished=True)
    hub_dir = torch_hub_checkpoint_dir()
    if source.kind == "file":
        path = Path(source.filename).expanduser()
        return WeightsLookup(spec.name, path, None) if path.is_file() else WeightsLookup(
            spec.name, None, f"file {str(path)!r} does not exist; put it there"
        )
    if source.kind == "torchvision":
        path = hub_dir / source.filename
        return WeightsLookup(spec.name, path, None) if path.is_file() else WeightsLookup(
            spec.name, None, f"expected {source.filename} in {hub_dir}; put {source.filename} in {hub_dir}"
        )
    repo_dir, candidates = _hf_snapshot_files(source.filename)
    legacy = source.legacy_filename
    if legacy and not legacy.endswith(_LOADABLE_SUFFIXES):
        legacy = None  # e.g. a .npz only timm's model-specific loaders read
    if legacy:
        candidates.append(hub_dir / legacy)
    for path in candidates:
        if path.is_file():
            return WeightsLookup(spec.name, path, None)
    expected = f"{' or '.join(_HF_WEIGHT_FILES)} of Hugging Face repo {source.filename}"
    searched = f"{repo_dir}/snapshots/*"
    where = f"{repo_dir}/snapshots/<revision>/"
    if legacy:
        expected += f", or {legacy}"
        searched += f", {hub_dir}"
        where += f" (or {legacy} in {hub_dir})"
    return WeightsLookup(spec.name, None, f"expected {expected} (searched {searched}); put model.safetensors in {where}")


def download_weights(spec: BackboneSpec) -> Path:
    """Download ``spec``'s published weights into the cache the library uses, and return the file.

    "timm" sources come from their Hugging Face repo (``model.safetensors``,
    else ``pytorch_model.bin``, as timm fetches them) into the Hugging Face hub
    cache, falling back to the legacy URL; "torchvision" sources from their URL
    into the torch hub cache, the file's sha256 checked against the prefix in
    its name as torchvision does. Raises :class:`WeightsNotFoundError` naming
    the first failure (one line) when nothing could be fetched.
    """
    path, failure = _download(spec)
    if path is None:
        raise WeightsNotFoundError(f"could not download the weights of backbone {spec.name!r}: {failure}")
    return path


def _download(spec: BackboneSpec) -> tuple[Path | None, str]:
    """(the downloaded file, "") or (None, why the first attempt failed)."""
    source = spec.weights
    if source is None or source.kind == "file":
        return None, "it has no published weights to download"
    failures: list[str] = []
    if source.kind == "timm":
        if _env_flag("HF_HUB_OFFLINE"):
            failures.append("HF_HUB_OFFLINE is set")
        else:
            try:
                from huggingface_hub import constants, hf_hub_download
            except ImportError:
                failures.append("huggingface_hub is not installed")
            else:
                offline = _unreachable(constants.ENDPOINT)
                if offline:
                    failures.append(offline)
                hub_logger = logging.getLogger("huggingface_hub")
                level = hub_logger.level
                hub_logger.setLevel(logging.ERROR)  # its retry warnings would break the one-line error
                try:
                    for name in () if offline else _HF_WEIGHT_FILES:
                        try:
                            return Path(hf_hub_download(source.filename, name, cache_dir=hf_hub_cache_dir())), ""
                        except Exception as error:  # noqa: BLE001 - missing file, bad repo: try the next
                            failures.append(f"{source.filename}/{name}: {_first_line(error)}")
                finally:
                    hub_logger.setLevel(level)
    url = source.download_url
    if url:
        import torch

        target = torch_hub_checkpoint_dir() / os.path.basename(url)
        match = torch.hub.HASH_REGEX.search(target.name)
        offline = _unreachable(url)
        try:
            if offline:
                raise OSError(offline)
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(target), match.group(1) if match else None, progress=True)
            return target, ""
        except Exception as error:  # noqa: BLE001 - offline, HTTP error, hash mismatch
            target.unlink(missing_ok=True)
            failures.append(offline or f"{url}: {_first_line(error)}")
    return None, failures[0] if failures else "nothing to download from"


def _unreachable(url: str, timeout: float = 5.0) -> str:
    """Why ``url``'s host cannot be reached ("" when it can): a quick check, so that an offline
    machine fails in seconds rather than after the libraries' retries."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""  # file:// and the like: the download itself says what is wrong
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return ""
    except OSError as error:
        return f"cannot reach {parts.hostname}: {_first_line(error)}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0][:200] if text else "") or type(error).__name__


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def find_weights(
    spec: BackboneSpec, explicit_path: str | os.PathLike[str] | None = None, *, download: bool | None = None
) -> Path:
    """The local file holding ``spec``'s pretrained weights.

    Order: ``explicit_path`` (must exist), then :func:`lookup_weights` (the
    local caches), then :func:`download_weights` into those caches, unless
    ``download`` is False (None: download unless ``HMLC_OFFLINE=1``). Raises
    :class:`WeightsNotFoundError` naming the expected file, the folders
    searched, the fix and why the download failed.
    """
    if explicit_path is not None:
        path = Path(explicit_path).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"weights file {str(path)!r} for backbone {spec.name!r} does not exist; "
                "fix model.weights, or set model.pretrained=false for random initialisation"
            )
        return path
    found = lookup_weights(spec)
    if found.unpublished:
        raise WeightsNotFoundError(
            f"backbone {spec.name!r} has no published pretrained weights; set model.weights=PATH to a "
            "weights file, or model.pretrained=false for random initialisation"
        )
    if found.path is not None:
        return found.path
    failed = ""
    if download is None:
        download = not _env_flag("HMLC_OFFLINE")
        if not download:
            failed = " (not downloaded: HMLC_OFFLINE is set)"
    if download and spec.weights is not None and spec.weights.kind != "file":
        path, failure = _download(spec)
        if path is not None:
            return path
        failed = f" (downloading failed: {failure})"
    raise WeightsNotFoundError(
        f"no pretrained weights for backbone {spec.name!r}: {found.expected} "
        f"or set model.weights=PATH, or model.pretrained=false for random initialisation{failed}"
    )


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of a weights file; never unpickles arbitrary objects."""
    import torch
    from torch import Tensor

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: object = load_file(str(path), device="cpu")
        else:
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any read failure is a bad file
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"cannot read weights file {str(path)!r}: {message}") from error
    # Training checkpoints often nest the weights one level down.
    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model", "state_dict_ema", "model_ema"):
            inner = loaded.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, Tensor) for v in inner.values()):
                loaded = inner
                break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise CheckpointError(f"weights file {str(path)!r} does not hold a state dict of tensors")
    state = {str(k): v for k, v in loaded.items()}
    if state and all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return _fix_legacy_densenet_keys(state)


# torchvision's DenseNet weights predate a rename ("norm.1" -> "norm1");
# torchvision itself rewrites the keys with this pattern on load.
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def _fix_legacy_densenet_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    fixed: dict[str, Tensor] = {}
    for key, value in state.items():
        match = _DENSENET_KEY.match(key)
        fixed[match.group(1) + match.group(2) if match else key] = value
    return fixed


def _adapt_input_conv(weight: Tensor, in_chans: int) -> Tensor:
    """First-conv weights for ``in_chans`` input channels (timm's rule).

    One channel: sum over the pretrained channels, so a grayscale image gives
    the response the network had to the same image repeated in colour.
    Otherwise: repeat the channels cyclically and rescale to keep the scale.
    """
    source_chans = weight.shape[1]
    dtype = weight.dtype
    weight = weight.float()
    if in_chans == 1:
        adapted = weight.sum(dim=1, keepdim=True)
    else:
        repeats = -(-in_chans // source_chans)
        adapted = weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (source_chans / in_chans)
    return adapted.to(dtype)


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def load_pretrained(
    module: nn.Module,
    path: str | os.PathLike[str],
    *,
    discard: Iterable[str] = (),
) -> nn.Module:
    """Load the weights file ``path`` into the feature extractor ``module``.

    Reads .safetensors, or .pth/.pt/.bin with ``torch.load(weights_only=True)``.
    Classifier keys (under :data:`CLASSIFIER_PREFIXES` or ``discard``) that the
    module lacks or that do not fit are dropped; every other key must match
    the module exactly, else :class:`CheckpointError` says how many keys are
    missing, unexpected or of the wrong shape. If the module's first
    convolution takes a different number of input channels than the file's,
    its weights are adapted (summed over channels for grayscale). Returns
    ``module``.
    """
    path = Path(path)
    state = _read_state_dict(path)
    prefixes = tuple(CLASSIFIER_PREFIXES) + tuple(discard)
    own = module.state_dict()
    first_conv = next((k for k, v in own.items() if v.ndim == 4 and k.endswith("weight")), None)

    loadable: dict[str, Tensor] = {}
    unexpected: list[str] = []
    dropped: set[str] = set()
    wrong_shape: list[str] = []
    for key, value in state.items():
        target = own.get(key)
        if target is None:
            if not _under(key, prefixes):
                unexpected.append(key)
            continue
        if value.shape != target.shape:
            if (
                key == first_conv
                and value.ndim == 4
                and value.shape[0] == target.shape[0]
                and value.shape[2:] == target.shape[2:]
            ):
                value = _adapt_input_conv(value, target.shape[1])
            elif _under(key, prefixes):
                dropped.add(key)
                continue
            else:
                wrong_shape.append(f"{key} {tuple(value.shape)} vs {tuple(target.shape)}")
                continue
        loadable[key] = value

    result = module.load_state_dict(loadable, strict=False)
    # BatchNorm fills num_batches_tracked itself for files that lack it.
    missing = [k for k in result.missing_keys if k not in dropped]
    if missing or unexpected or wrong_shape:
        examples = (missing[:2] + unexpected[:2] + wrong_shape[:2])[:3]
        raise CheckpointError(
            f"weights file {str(path)!r} does not match the backbone: {len(missing)} missing, "
            f"{len(unexpected)} unexpected and {len(wrong_shape)} mis-shaped keys (e.g. {'; '.join(examples)}); "
            "point model.weights at weights of this architecture"
        )
    return module
