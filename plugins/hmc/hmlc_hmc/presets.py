"""C-HMCNN's MLP recipe as presets, built from the suite file (:mod:`hmlc_hmc.suite`).

* ``hmc/<method>`` (``hmc/flat``, ``hmc/ct``): model selection, train on
  ``train`` and validate on ``valid``; give the dataset with
  ``--set data.params.name=<dataset>`` (hidden size and epochs: the
  medians of C-HMCNN's FunCat choices, 500 and 106).
* ``hmc/<dataset>/<method>``: the published protocol's final run for one
  dataset, trained on ``trainvalid`` and scored on ``test``, with C-HMCNN's
  hidden size and epochs for it.

Every preset: the ``hmc`` reader, the ``mlp`` backbone with two hidden
layers, ReLU and dropout 0.7 (C-HMCNN's three linear layers with the hmlc
head as the third), Adam at a constant learning rate 8e-4, batch 64 (C-HMCNN:
1e-4 and batch 4; suite.yaml cites the measurements behind the change), weight
decay 1e-5, label closure on. The hidden size is C-HMCNN's up to
``recipe.max_hidden_dim`` (2000: only seq_GO's 9000 is capped; seq_GO trains
at its own rate, 1e-4, measured on valid: suite.yaml). CT's stage 2
(the head alone) is hmlc's and not in C-HMCNN: a tenth of the stage-1 epochs at the same learning rate.
Only ``data.root`` (or ``$HMLC_DATA``) is left to the user.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from hmlc_hmc.suite import HmcSuite, load_suite

__all__ = ["build_presets", "register_suite_presets"]


def _recipe(suite: HmcSuite, method: str, width: int, epochs: int, lr: float | None = None) -> dict[str, Any]:
    r = suite.recipe
    lr = r["lr"] if lr is None else lr
    return {
        "data": {
            "dataset": "hmc",
            "closure": {"enabled": True, "negative_down": False},
            "blank": "negative",
            "augment": False,
        },
        # The files hold 1/0 only: no uncertain code for a policy to act on.
        "policy": {"default": "u-zeros"},
        "model": {
            "backbone": "mlp",
            "pretrained": False,
            "dropout": 0.0,
            "backbone_params": {
                "layers": r["hidden_layers"],
                "width": width,
                "dropout": r["dropout"],
                "activation": r["activation"],
            },
        },
        "train": {
            "method": method,
            "epochs": epochs,
            "lr": lr,
            "lr_decay": 1.0,
            "batch_size": r["batch_size"],
            "betas": [0.9, 0.999],
            "weight_decay": r["weight_decay"],
            "fused_adam": r["fused_adam"],
            "checkpoint_every_s": r["checkpoint_every_s"],
            "head_epochs": max(1, round(epochs / 10)),
            "head_lr": lr,
            "head_loss": "unconditional",
        },
    }


def build_presets(suite: HmcSuite | None = None) -> dict[str, dict[str, Any]]:
    """Preset name -> configuration dict (with a "description"), for every method and dataset of ``suite``."""
    suite = suite or load_suite()
    presets: dict[str, dict[str, Any]] = {}
    fun = suite.defaults["FUN"]
    for method in suite.methods:
        preset = _recipe(suite, method, fun["hidden_dim"], fun["epochs"])
        preset["description"] = (
            f"C-HMCNN's MLP recipe, {method}, model selection (train -> valid); set data.params.name"
        )
        preset["data"].update({"train_split": "train", "eval_split": "valid"})
        presets[f"hmc/{method}"] = preset
    for dataset in suite.datasets.values():
        for method in suite.methods:
            preset = _recipe(suite, method, dataset.width, dataset.epochs, dataset.lr)
            origin = "C-HMCNN's" if dataset.from_paper else f"median {dataset.ontology}"
            hidden = (f"{origin} hidden size {dataset.width}" if dataset.width == dataset.hidden_dim
                      else f"hidden size {dataset.width} (C-HMCNN's {dataset.hidden_dim}, capped)")
            rate = f", learning rate {dataset.lr:g}" if dataset.lr is not None else ""
            preset["description"] = (
                f"{dataset.name}, {method}: final run (trainvalid -> test), {hidden} and {dataset.epochs} epochs{rate}"
            )
            preset["data"].update({"params": {"name": dataset.name}, "train_split": "trainvalid", "eval_split": "test"})
            presets[f"hmc/{dataset.name}/{method}"] = preset
    return presets


def register_suite_presets(register: Callable[[str, Any], None]) -> None:
    """Register every preset of :func:`build_presets` (copies, so callers cannot alter them)."""
    for name, preset in build_presets().items():
        register(name, copy.deepcopy(preset))
