"""CheXpert plugin for hmlc (Pham et al. 2019).

Registers, through :mod:`hmlc_chexpert.plugin`: the hierarchy "chexpert",
the dataset reader "chexpert" (:mod:`hmlc_chexpert.dataset`), the
preprocessor "template-match" (:mod:`hmlc_chexpert.template_match`), the
paper's six backbones (:mod:`hmlc_chexpert.backbones`) and the presets
"chexpert/..." (:mod:`hmlc_chexpert.presets`). Importing this package
loads none of them.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The 14 observations in CheXpert's CSV column order (the model's output order).
CHEXPERT_LABELS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

HIERARCHY_FILE = Path(__file__).with_name("hierarchy.yaml")

__all__ = ["CHEXPERT_LABELS", "HIERARCHY_FILE", "__version__"]
