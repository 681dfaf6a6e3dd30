"""Label maps between NIH ChestX-ray14 and CheXpert: "nih->chexpert" and "chexpert->nih".

Seven findings are the same observation in both (Effusion is CheXpert's
Pleural Effusion). CheXpert's Lung Lesion is a nodule or a mass: from NIH it
is the larger of the Nodule and Mass scores; to NIH, a CheXpert model's Lung
Lesion score stands for both Nodule and Mass. The plugin's README lists the
labels left unmapped and why.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CHEXPERT_TO_NIH", "NIH_TO_CHEXPERT", "SHARED"]

#: CheXpert label -> the NIH label of the same observation.
SHARED: dict[str, str] = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Pleural Effusion": "Effusion",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
}

NIH_TO_CHEXPERT: dict[str, Any] = {
    "source": "nih",
    "target": "chexpert",
    "description": (
        "CheXpert observations from NIH ChestX-ray14 findings: seven shared findings, and Lung Lesion "
        "as the larger of Nodule and Mass"
    ),
    "labels": {**SHARED, "Lung Lesion": ["Nodule", "Mass"]},
    # The larger score: exact for 0/1 labels; nodules and masses are not independent, so no noisy-or.
    "combine": "max",
}

CHEXPERT_TO_NIH: dict[str, Any] = {
    "source": "chexpert",
    "target": "nih",
    "description": (
        "NIH ChestX-ray14 findings from CheXpert observations: seven shared findings, and Nodule and "
        "Mass both from Lung Lesion"
    ),
    "labels": {
        **{nih: chexpert for chexpert, nih in SHARED.items()},
        "Nodule": "Lung Lesion",
        "Mass": "Lung Lesion",
    },
}
