"""The hierarchical multi-label classification benchmarks for hmlc (Vens et al. 2008).

Registers, through :mod:`hmlc_hmc.plugin`: the dataset reader "hmc"
(:mod:`hmlc_hmc.dataset`, over the ARFF parser :mod:`hmlc_hmc.arff`) and
the presets "hmc/..." (:mod:`hmlc_hmc.presets`) built from the benchmark
suite :data:`SUITE_FILE` (:mod:`hmlc_hmc.suite`). Importing this package
loads none of them.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The benchmark suite: datasets, published C-HMCNN figures, recipe, methods, search grid.
SUITE_FILE = Path(__file__).with_name("suite.yaml")

__all__ = ["SUITE_FILE", "__version__"]
