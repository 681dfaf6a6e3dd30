"""CheXpert plugin for hmlc."""

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
