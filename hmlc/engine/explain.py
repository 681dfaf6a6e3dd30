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

import hashlib
import io
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
from hmlc.progress import Progress

__all__ = [
    "find_feature_layer",
    "grad_cam",
    "overlay_heatmap",
    "heatmap_on_original",
    "render_explanation",
    "explanation_file_names",
    "Explanation",
    "explain_image",
]


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
    progress: Progress | None = None,
) -> np.ndarray:
    """Grad-CAM maps (L, h, w) in [0, 1] of ``scores(model(x))[0, k]`` for k in ``indices`` (one image).

    Each map is ReLU(sum_c mean(grad_c) * A_c) over the layer's activations A,
    divided by its maximum (an all-zero map stays zero). ``progress`` counts each map made.
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
                if progress is not None:
                    progress.update()
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


def heatmap_on_original(
    cam: np.ndarray, shape: tuple[int, ...], region: tuple[float, float, float, float] | None
) -> np.ndarray:
    """``cam`` ([0, 1], any size) laid onto an image of ``shape`` (H, W) over ``region``; zero outside it.

    ``region`` is (top, left, height, width) in the image's pixels, as
    :meth:`hmlc.data.preprocess.Preprocessor.region` gives it; None: the whole image.
    """
    height, width = int(shape[0]), int(shape[1])
    if region is None:
        region = (0.0, 0.0, float(height), float(width))
    top, left, h, w = region
    y0, x0 = max(0, int(round(top))), max(0, int(round(left)))
    y1, x1 = min(height, int(round(top + h))), min(width, int(round(left + w)))
    heat = np.zeros((height, width), dtype=np.float32)
    if y1 > y0 and x1 > x0:
        resized = cv2.resize(cam.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        heat[y0:y1, x0:x1] = np.clip(resized, 0.0, 1.0)
    return heat


def render_explanation(
    image: np.ndarray,
    heat: np.ndarray,
    label: str,
    probability: float,
    region: tuple[float, float, float, float] | None = None,
    alpha: float = 0.4,
) -> bytes:
    """A PNG: the gray ``image`` with ``heat`` (same size, [0, 1]) in the jet colour map, a colour bar,
    the label and its probability as the title, and the window the model saw (``region``) outlined.

    Small images are shown enlarged (at least 400 pixels wide), never shrunk.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    height, width = image.shape[:2]
    scale = max(1.0, 400.0 / width)
    dpi = 100.0
    # Room beside the image for the colour bar, above it for the title.
    fig = Figure(figsize=(width * scale / dpi + 1.4, height * scale / dpi + 0.6), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, (width * scale / dpi) / fig.get_figwidth(), (height * scale / dpi) / fig.get_figheight()))
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    outside = np.zeros((height, width), dtype=bool)
    if region is not None and not np.allclose(region, (0, 0, height, width), atol=0.5):
        top, left, h, w = region
        outside[:] = True
        outside[max(0, round(top)) : round(top + h), max(0, round(left)) : round(left + w)] = False
    # No colour where the model saw nothing.
    shown = ax.imshow(
        np.ma.masked_where(outside, heat), cmap="jet", vmin=0.0, vmax=1.0, alpha=alpha, interpolation="nearest"
    )
    if outside.any():
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, edgecolor="white", linestyle="--", linewidth=1))
    ax.set_axis_off()
    ax.set_title(f"{label}: p = {probability:.3f}", fontsize=11, loc="left")
    bar_left = ax.get_position().x1 + 0.15 / fig.get_figwidth()
    cax = fig.add_axes((bar_left, ax.get_position().y0, 0.18 / fig.get_figwidth(), ax.get_position().height))
    bar = fig.colorbar(shown, cax=cax)
    bar.set_label("Grad-CAM (relative)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    return buffer.getvalue()


@dataclass(frozen=True)
class Explanation:
    label: str
    probability: float
    path: Path


def _file_part(label: str) -> str:
    return re.sub(r"[^\w.-]+", "_", label).strip("_.") or "label"


def explanation_file_names(stem: str, labels: Sequence[str], all_labels: Sequence[str]) -> dict[str, str]:
    """``<stem>_<label>.png`` per label, the label's characters outside ``[\\w.-]`` made ``_``.

    A label whose name would equal another label's of ``all_labels`` (``Fluid/Level`` and
    ``Fluid Level``) gets a short hash of its exact name too, so no two labels share a file
    and the name does not depend on which labels were asked for.
    """
    parts: dict[str, list[str]] = {}
    for label in dict.fromkeys([*all_labels, *labels]):
        parts.setdefault(_file_part(label).casefold(), []).append(label)
    names = {}
    for label in labels:
        part = _file_part(label)
        if len(parts[part.casefold()]) > 1:
            part = f"{part}-{hashlib.sha1(label.encode()).hexdigest()[:8]}"
        names[label] = f"{stem}_{part}.png"
    return names


def explain_image(
    checkpoint: str | os.PathLike[str],
    image_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    alpha: float = 0.4,
) -> list[Explanation]:
    """Write ``<image stem>_<label>.png`` per label (default: all) to ``out_dir``; returns what was written.

    Each PNG is the original image (as read from the file, before any
    preprocessing) with the label's heatmap laid over the part of it the model
    saw (the preprocessor's window, outlined when it is not the whole image),
    a colour bar, and the label with its probability as the title.
    """
    from hmlc.chain_rule import log_chain_rule
    from hmlc.max_constraint import MaxConstraint
    from hmlc.engine.inference import binary_logits
    from hmlc.engine.predictor import load_model, read_image_file
    from hmlc.models import to_model_input

    loaded = load_model(checkpoint, device)
    if loaded.input_kind != "image":
        raise ConfigError(
            f"checkpoint {checkpoint} is a model of feature vectors: Grad-CAM heatmaps need an image model"
        )
    chosen = list(dict.fromkeys(labels)) if labels else list(loaded.labels)
    unknown = [label for label in chosen if label not in loaded.labels]
    if unknown:
        raise ConfigError(
            f"unknown label(s) {', '.join(map(repr, unknown))}; the model's labels are: {', '.join(loaded.labels)}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"heatmap opacity {alpha} must lie in [0, 1]")
    raw = read_image_file(image_path)
    pixels = loaded.pipeline(raw)
    preprocessor = loaded.pipeline.preprocessor
    region = preprocessor.region(raw) if preprocessor is not None else None
    if preprocessor is not None and region is None:
        # The preprocessor cannot say where its output lies in the original: show its output.
        raw = loaded.pipeline.preprocess(raw)
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
    with Progress(len(indices), "Grad-CAM", unit="label") as progress:
        maps = grad_cam(loaded.model, layer, x, log_probabilities, indices, progress)
    with torch.no_grad():
        probs = loaded.probabilities(x)[0].cpu().numpy()  # exactly what hmlc predict gives
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    names = explanation_file_names(Path(image_path).stem, chosen, loaded.labels)
    written = []
    with Progress(len(chosen), "heatmaps", unit="label") as progress:
        for label, k, cam in zip(chosen, indices, maps, strict=True):
            target = out / names[label]
            heat = heatmap_on_original(cam, raw.shape, region)
            data = render_explanation(raw, heat, label, float(probs[k]), region, alpha)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
            written.append(Explanation(label, float(probs[k]), target))
            progress.update()
    return written
