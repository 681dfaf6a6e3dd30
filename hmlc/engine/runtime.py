"""Where and how training runs: device, precision, seeds, torch.distributed."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from hmlc.errors import ConfigError

__all__ = ["Runtime", "setup_runtime", "seed_everything", "teardown_runtime", "every_rank", "union_over_ranks"]


@dataclass
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    rank: int
    world_size: int
    local_rank: int
    distributed: bool
    #: Under DDP, a gloo group for the host's own agreements (stop requests, steps to leave out):
    #: asking costs no GPU synchronisation under NCCL. None: the default group (already gloo) or no DDP.
    cpu_group: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device asks for CUDA but no GPU is available; use train.device=cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def setup_runtime(
    device: str = "auto",
    precision: str = "auto",
    channels_last: bool = True,
    deterministic: bool = False,
    threads: int | None = None,
) -> Runtime:
    """Resolve the device and precision; join the process group under torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _resolve_device(device, local_rank)
    # Launched by torchrun: DDP even with one process (same code path as on N GPUs).
    distributed = world_size > 1 or "TORCHELASTIC_RUN_ID" in os.environ
    if distributed and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
    # Every rank runs this, so every rank creates the group (a collective), in the same order.
    cpu_group = dist.new_group(backend="gloo") if distributed and dist.get_backend() != "gloo" else None
    if threads:
        torch.set_num_threads(threads)
    amp_dtype: torch.dtype | None = None
    if dev.type == "cuda":
        if precision == "auto":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        elif precision == "bf16":
            amp_dtype = torch.bfloat16
        elif precision == "fp16":
            amp_dtype = torch.float16
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return Runtime(
        device=dev,
        amp_dtype=amp_dtype,
        channels_last=channels_last and dev.type == "cuda",
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        distributed=distributed,
        cpu_group=cpu_group,
    )


def every_rank(mine: bool, group: Any = None) -> bool:
    """Whether every rank of ``group`` says yes: a collective, every rank must ask at the same point."""
    flag = torch.tensor([int(mine)], dtype=torch.int64)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=group)
    return bool(flag.item())


def union_over_ranks(items: set[int], group: Any = None) -> set[int]:
    """The union of every rank's ``items``, on every rank (a collective)."""
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, sorted(items), group=group)
    return {int(i) for part in gathered for i in part}


def teardown_runtime(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()
