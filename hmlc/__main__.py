"""``python -m hmlc`` (also what ``torchrun -m hmlc`` runs)."""

from hmlc.cli.main import entry

entry()
