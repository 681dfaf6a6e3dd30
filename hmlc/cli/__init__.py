"""The ``hmlc`` command-line interface."""

from hmlc.cli.main import main

__all__ = ["main"]
