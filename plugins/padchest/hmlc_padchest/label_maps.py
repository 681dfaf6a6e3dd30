"""The label map "padchest->chexpert": CheXpert observations scored from PadChest labels.

Only labels with a clear counterpart are mapped (the plugin's README lists
the others and why). PadChest labels are read after closure over the
PadChest hierarchy (the reader's ``default_eval_closure``), so a source label
stands for itself and every label below it: ``pleural effusion`` includes
``loculated pleural effusion``, ``pneumothorax`` includes
``hydropneumothorax``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PADCHEST_TO_CHEXPERT"]

PADCHEST_TO_CHEXPERT: dict[str, Any] = {
    "source": "padchest",
    "target": "chexpert",
    "description": (
        "CheXpert observations with a clear PadChest counterpart; Lung Lesion is a nodule or a "
        "pulmonary mass (the larger of the two scores)"
    ),
    "labels": {
        "No Finding": "normal",
        "Cardiomegaly": "cardiomegaly",
        "Lung Lesion": ["nodule", "pulmonary mass"],
        "Edema": "pulmonary edema",
        "Consolidation": "consolidation",
        "Pneumonia": "pneumonia",
        "Atelectasis": "atelectasis",
        "Pneumothorax": "pneumothorax",
        "Pleural Effusion": "pleural effusion",
        "Fracture": "fracture",
    },
    # Several sources into one target: the larger score. Exact for 0/1 labels and, unlike
    # noisy-or, it assumes nothing about how the sources depend on each other.
    "combine": "max",
}
