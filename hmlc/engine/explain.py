"""Grad-CAM heatmaps of a checkpoint's labels, overlaid on the image (Pham et al. 2019, Figure 5).

The explained score of label k is its unconditional log-probability log p(k):
for a conditionally trained head that is the chain rule's output, so the map
shows the evidence for k and for the ancestors it depends on; for a flat
(sigmoid) head the map equals Grad-CAM of the logit, since log sigmoid(z) has
the gradient (1 - p) dz, a positive factor the map's normalisation removes.
The feature map is the output of the backbone's last module that contains a
convolution and returns a (B, C, H, W) tensor, found by running the model once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmlc.errors import ConfigError, DataError

__all__ = ["find_feature_layer", "grad_cam", "overlay_heatmap", "Explanation", "explain_image"]


def find_feature_layer(backbone: nn.Module, example: Tensor) -> str:
    """Name of the last module (in execution order) that contains a Conv2d and outputs a 4-D tensor."""
    candidates = {
        name: module
        for name, module in backbone.named_modules()
        if name and any(isinstance(m, nn.Conv2d) for m in module.modules())
    }
    finished: list[str] = []
    handles = []
    for name, module in candidates.items():

        def hook(_module: nn.Module, _inputs: object, output: object, name: str = name) -> None:
            if isinstance(output, Tensor) and output.ndim == 4:
                finished.append(name)

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            backbone(example)
    finally:
        for handle in handles:
            handle.remove()
    if not finished:
        raise ConfigError(
            "cannot explain this backbone: no module with a convolution returns a (B, C, H, W) feature map"
        )
    return finished[-1]


def grad_cam(
    model: nn.Module,
    layer: nn.Module,
    model_input: Tensor,
    scores: Callable[[Tensor], Tensor],
    indices: Sequence[int],
) -> np.ndarray:
    """Grad-CAM maps (L, h, w) in [0, 1] of ``scores(model(x))[0, k]`` for k in ``indices`` (one image).

    Each map is ReLU(sum_c mean(grad_c) * A_c) over the layer's activations A,
    divided by its maximum (an all-zero map stays zero).
    """
    store: dict[str, Tensor] = {}

    def hook(_module: nn.Module, _inputs: object, output: Tensor) -> None:
        store["activation"] = output

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            out = scores(model(model_input))
            activation = store["activation"]
            maps = []
            for k in indices:
                (grad,) = torch.autograd.grad(out[0, k], activation, retain_graph=True)
                weights = grad[0].mean(dim=(1, 2))
                cam = F.relu((weights[:, None, None] * activation[0]).sum(0))
                peak = cam.max()
                maps.append((cam / peak if peak > 0 else cam).detach().cpu().numpy())
    finally:
        handle.remove()
    return np.stack(maps).astype(np.float32)


def overlay_heatmap(image: np.ndarray, cam: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """A BGR uint8 image: gray ``image`` (H, W) blended with ``cam`` (any size, [0, 1]) in the JET colour map."""
    height, width = image.shape[:2]
    heat = cv2.resize(cam.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.rint(np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    gray = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.addWeighted(colour, alpha, gray, 1.0 - alpha, 0.0)


@dataclass(frozen=True)
class Explanation:
    label: str
    probability: float
    path: Path


def _file_part(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "label"


def explain_image(
    checkpoint: str | os.PathLike[str],
    image_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    alpha: float = 0.4,
) -> list[Explanation]:
    """Write ``<image stem>_<label>.png`` per label (default: all) to ``out_dir``; returns what was written.

    Each PNG is the image as the model sees it before the final resize
    (after the checkpoint's preprocessor, if any; else the image itself, at
    its own size) with the label's heatmap laid over it.
    """
    from hmlc.chain_rule import log_chain_rule
    from hmlc.max_constraint import MaxConstraint
    from hmlc.engine.inference import binary_logits
    from hmlc.engine.predictor import load_model, read_image_file
    from hmlc.models import to_model_input

    loaded = load_model(checkpoint, device)
    chosen = list(labels) if labels else list(loaded.labels)
    unknown = [label for label in chosen if label not in loaded.labels]
    if unknown:
        raise ConfigError(
            f"unknown label(s) {', '.join(map(repr, unknown))}; the model's labels are: {', '.join(loaded.labels)}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"heatmap opacity {alpha} must lie in [0, 1]")
    raw = read_image_file(image_path)
    pixels = loaded.pipeline(raw)
    base = loaded.pipeline.preprocess(raw)  # the picture under the heatmap (the preprocessor runs again: one image)
    x = to_model_input(torch.from_numpy(pixels)[None, None].to(device), loaded.normalization)
    meta = loaded.metadata

    def log_probabilities(outputs: Tensor) -> Tensor:
        logits = binary_logits(outputs.float(), bool(meta["multiclass"]))
        if meta["output"] == "conditional":
            return log_chain_rule(logits, loaded.graph, meta.get("combine", "product"))[0]
        if meta["output"] == "max-constraint":  # log max_B sigmoid(x_B) = logsigmoid(max_B x_B)
            return F.logsigmoid(MaxConstraint(loaded.graph).to(logits.device).propagate(logits))
        return F.logsigmoid(logits)

    backbone = getattr(loaded.model, "backbone", loaded.model)
    layer_name = find_feature_layer(backbone, x)
    layer = backbone.get_submodule(layer_name)
    indices = [loaded.labels.index(label) for label in chosen]
    maps = grad_cam(loaded.model, layer, x, log_probabilities, indices)
    with torch.no_grad():
        probs = loaded.probabilities(x)[0].cpu().numpy()  # exactly what hmlc predict gives
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    stem = Path(image_path).stem
    written = []
    for label, k, cam in zip(chosen, indices, maps, strict=True):
        target = out / f"{stem}_{_file_part(label)}.png"
        ok, data = cv2.imencode(".png", overlay_heatmap(base, cam, alpha))
        if not ok:
            raise DataError(f"cannot encode the heatmap PNG for {label!r}")
        tmp = target.with_name(f".{target.name}.tmp")
        data.tofile(str(tmp))
        os.replace(tmp, target)
        written.append(Explanation(label, float(probs[k]), target))
    return written
