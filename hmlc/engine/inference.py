"""Batched forward passes and the step from model outputs to probabilities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from hmlc.data.features import FeatureSource
from hmlc.data.images import ImageIndexDataset
from hmlc.engine.interrupt import ignore_stop_signals
from hmlc.hierarchy import LabelGraph
from hmlc.progress import Progress

__all__ = ["binary_logits", "outputs_to_probabilities", "forward_images"]


def binary_logits(outputs: torch.Tensor, multiclass: bool) -> torch.Tensor:
    """Per-label logits of "positive"; for a 3-way head, l1 - l0 (so sigmoid = p1 / (p0 + p1))."""
    if multiclass:
        return outputs[..., 1] - outputs[..., 0]
    return outputs


def outputs_to_probabilities(
    outputs: torch.Tensor, graph: LabelGraph, output_kind: str, combine: str, multiclass: bool
) -> torch.Tensor:
    """Unconditional probabilities: the chain rule for conditional outputs, the
    max-constraint module for ``max-constraint`` outputs (C-HMCNN), else a sigmoid."""
    from hmlc.chain_rule import chain_rule

    logits = binary_logits(outputs.float(), multiclass)
    if output_kind == "conditional":
        return chain_rule(logits, graph, combine=combine)
    if output_kind == "max-constraint":
        from hmlc.max_constraint import max_constraint

        return max_constraint(logits, graph)
    return torch.sigmoid(logits)


@torch.no_grad()
def forward_images(
    fn: Callable[[torch.Tensor], torch.Tensor],
    images: Any,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    batch_size: int = 128,
    num_workers: int = 0,
    autocast: Callable[[], Any] | None = None,
    indices: np.ndarray | None = None,
    skipped: list[int] | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Run ``fn(prepare(batch))`` over an image source (or a feature source); float32 outputs on ``device``.

    With a ``skipped`` list (data.on_bad_image=skip), an image that cannot be
    read does not stop the pass: its row of the outputs is that of a black
    image, and its position (among ``indices`` when given) is appended to ``skipped``.
    ``progress`` (made for ``len(indices)`` or ``len(images)`` items) counts each batch done.
    """
    if isinstance(images, FeatureSource):
        values = torch.from_numpy(np.ascontiguousarray(images.array()))
        if indices is not None:
            values = values[torch.as_tensor(indices, dtype=torch.long)]
        batches = (values[i : i + batch_size] for i in range(0, len(values), batch_size))
        return _forward_batches(fn, batches, prepare, device, autocast, progress)
    dataset: Dataset = ImageIndexDataset(images, "error" if skipped is None else "skip")
    if indices is not None:
        dataset = torch.utils.data.Subset(dataset, indices.tolist())
    # Its own generator: an inference pass leaves the global random state (dropout's) untouched.
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda",
        generator=torch.Generator(), worker_init_fn=ignore_stop_signals,
    )

    def batches() -> Any:
        done = 0
        for x, idx in loader:
            if skipped is not None:
                skipped.extend((done + np.flatnonzero(idx.numpy() < 0)).tolist())
            done += len(idx)
            yield x

    return _forward_batches(fn, batches(), prepare, device, autocast, progress)


def _forward_batches(
    fn: Callable[[torch.Tensor], torch.Tensor],
    batches: Any,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    autocast: Callable[[], Any] | None,
    progress: Progress | None,
) -> torch.Tensor:
    outs = []
    for x in batches:
        x = prepare(x.to(device, non_blocking=True))
        if autocast is not None:
            with autocast():
                y = fn(x)
        else:
            y = fn(x)
        outs.append(y.float())
        if progress is not None:
            progress.update(len(x))
    return torch.cat(outs) if outs else torch.empty(0, device=device)
