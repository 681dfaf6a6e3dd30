"""NIH ChestX-ray14 plugin for hmlc (Wang et al. 2017).

Registers, through :mod:`hmlc_nih.plugin`: the hierarchy "nih" (the 14
findings, flat), the dataset reader "nih" (:mod:`hmlc_nih.dataset`) and the
label maps "nih->chexpert" and "chexpert->nih" (:mod:`hmlc_nih.label_maps`).
Importing this package loads none of them.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The 14 findings in the order of Wang et al. 2017 (the model's output order).
NIH_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
#: What ``Finding Labels`` holds for an image with none of the 14.
NO_FINDING = "No Finding"

HIERARCHY_FILE = Path(__file__).resolve().with_name("hierarchy.yaml")

__all__ = ["HIERARCHY_FILE", "NIH_LABELS", "NO_FINDING", "__version__"]
