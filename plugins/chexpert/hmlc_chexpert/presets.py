"""The settings of Pham et al. 2019 as presets: the ten rows of Table 1 and the ensemble members,
plus ``chexpert/smoke``, a CPU run of a minute or two.

Every paper preset is a complete recipe on the CheXpert reader: frontal
images, template-match cropping, DenseNet-121 from ImageNet weights, Adam
(0.9, 0.999), batch 32, learning rate 1e-4 divided by 10 after each epoch, 5
epochs, label closure on. Only ``data.root`` is left to the user.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from hmlc_chexpert.backbones import PAPER_BACKBONES, paper_backbone_specs

__all__ = ["CHEXPERT_PRESETS", "COMPETITION_LABELS", "SMOKE_PRESET", "TABLE1_SETTINGS", "register_paper_presets"]

#: The five labels of the CheXpert competition, over which the paper averages AUCs.
COMPETITION_LABELS: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")

#: Paper resize/crop ratio (256 -> 224), kept for backbones with larger inputs.
_RESIZE_PER_CROP = 256 / 224

#: Preset suffix -> (uncertainty policy, conditional training), in Table 1's row order.
TABLE1_SETTINGS: dict[str, tuple[str, bool]] = {
    "u-ignore": ("u-ignore", False),
    "u-ignore-ct": ("u-ignore", True),
    "u-zeros": ("u-zeros", False),
    "u-zeros-ct": ("u-zeros", True),
    "u-zeros-lsr": ("u-zeros-lsr", False),
    "u-zeros-ct-lsr": ("u-zeros-lsr", True),
    "u-ones": ("u-ones", False),
    "u-ones-ct": ("u-ones", True),
    "u-ones-lsr": ("u-ones-lsr", False),
    "u-ones-ct-lsr": ("u-ones-lsr", True),
}

_TITLES = {"u-ignore": "U-Ignore", "u-zeros": "U-Zeros", "u-ones": "U-Ones"}


def _recipe(policy: str, ct: bool, backbone: str = "densenet121", input_size: int = 224) -> dict[str, Any]:
    lsr = policy.endswith("-lsr")
    title = _TITLES[policy.removesuffix("-lsr")] + ("+CT" if ct else "") + ("+LSR" if lsr else "")
    return {
        "description": f"Pham et al. 2019, {title}: {backbone}, ImageNet init, {input_size} px template-matched "
        "frontal images, 5 epochs",
        "hierarchy": "chexpert",
        "data": {
            "dataset": "chexpert",
            "params": {"views": "frontal"},
            "image_size": input_size,
            "blank": "negative",
            "closure": {"enabled": True, "negative_down": False},
            "preprocessor": "template-match",
            "preprocessor_params": {"resize": round(input_size * _RESIZE_PER_CROP), "crop": input_size},
            # The paper's recipe lists no training augmentation.
            "augment": False,
        },
        "policy": {
            "default": policy,
            "params": {"u-zeros-lsr": {"low": 0.0, "high": 0.3}, "u-ones-lsr": {"low": 0.55, "high": 0.85}},
        },
        "model": {"backbone": backbone, "pretrained": True},
        "train": {
            "method": "ct" if ct else "flat",
            "epochs": 5,
            "lr": 1e-4,
            "lr_decay": 0.1,
            "batch_size": 32,
            "betas": [0.9, 0.999],
            "weight_decay": 0.0,
            # CT stage 2 fine-tunes the stage-1 head on features computed once;
            # the stage-1 schedule suits it, and a 4th epoch would run at 1e-7.
            "head_epochs": 3,
            "head_lr": 1e-4,
            "head_loss": "unconditional",
        },
        "evaluation": {"labels": list(COMPETITION_LABELS)},
    }


def _build_presets() -> dict[str, dict[str, Any]]:
    presets = {f"chexpert/{key}": _recipe(policy, ct) for key, (policy, ct) in TABLE1_SETTINGS.items()}
    sizes = {spec.name: spec.input_size for spec in paper_backbone_specs()}
    for backbone in PAPER_BACKBONES:
        preset = _recipe("u-ones-lsr", True, backbone, sizes[backbone])
        preset["description"] = (
            f"ensemble member: U-Ones+CT+LSR on {backbone} at {sizes[backbone]} px (Pham et al. 2019)"
        )
        presets[f"chexpert/ensemble/{backbone}"] = preset
    return presets


#: Preset name -> configuration dict (with a "description" for listings).
CHEXPERT_PRESETS: dict[str, dict[str, Any]] = _build_presets()


#: ``chexpert/smoke``: the reader, hierarchy, closure, policy and metric of the paper's recipe on a
#: CPU budget: the tiny CNN from scratch on 128 px frontal images (no ImageNet weights, no template
#: to fit), flat U-Ones+LSR training for 8 epochs. Meant to check an install and a data folder,
#: not to reproduce the paper: on the 636-image CheXpert sample its mean AUC is about 0.7.
SMOKE_PRESET: dict[str, Any] = {
    "description": "CPU smoke run: tiny CNN from scratch, 128 px frontal images, U-Ones+LSR, 8 epochs "
    "(minutes on a CPU; not the paper's recipe)",
    "hierarchy": "chexpert",
    "data": {
        "dataset": "chexpert",
        "params": {"views": "frontal"},
        "image_size": 128,
        "blank": "negative",
        "closure": {"enabled": True, "negative_down": False},
        "preprocessor": None,
        "augment": False,
    },
    "policy": {"default": "u-ones-lsr", "params": {"u-ones-lsr": {"low": 0.55, "high": 0.85}}},
    "model": {"backbone": "tiny_cnn", "pretrained": False},
    "train": {"method": "flat", "epochs": 8, "lr": 1e-3, "lr_decay": 0.8, "batch_size": 16},
    "evaluation": {"labels": list(COMPETITION_LABELS)},
}


def register_paper_presets(register: Callable[[str, Any], None]) -> None:
    """Register every preset of :data:`CHEXPERT_PRESETS` and ``chexpert/smoke`` (copies, so callers
    cannot alter them)."""
    for name, preset in CHEXPERT_PRESETS.items():
        register(name, copy.deepcopy(preset))
    register("chexpert/smoke", copy.deepcopy(SMOKE_PRESET))
