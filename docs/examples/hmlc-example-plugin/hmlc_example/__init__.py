"""An example hmlc plugin: a pet-shop catalogue hierarchy, a generated dataset and presets."""

from pathlib import Path

__version__ = "0.1.0"

#: The catalogue hierarchy (nested ``children`` form; "Dog With Toy" has two parents).
HIERARCHY_FILE = Path(__file__).with_name("catalogue.yaml")

#: A preset kept as a YAML file: train the catalogue on a CSV folder.
CSV_PRESET_FILE = Path(__file__).with_name("preset_csv.yaml")

__all__ = ["HIERARCHY_FILE", "CSV_PRESET_FILE", "__version__"]
