"""The hook implementations of the example plugin (entry point ``example``).

hmlc calls each hook once, the first time it needs that kind of component,
with a ``register(name, obj)`` callback. Keep imports of heavy modules inside
the hooks so that ``hmlc --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hmlc.plugins import hookimpl

from hmlc_example import CSV_PRESET_FILE, HIERARCHY_FILE

Register = Callable[[str, Any], None]


@hookimpl
def hmlc_register_hierarchies(register: Register) -> None:
    # A path is loaded lazily, the first time the hierarchy is used.
    register("example-catalogue", str(HIERARCHY_FILE))


@hookimpl
def hmlc_register_datasets(register: Register) -> None:
    from hmlc_example.shapes import ShapesDataset

    register("example-shapes", ShapesDataset())


@hookimpl
def hmlc_register_presets(register: Register) -> None:
    # A preset is a partial configuration: a dict ...
    register(
        "example/shapes",
        {
            "description": "example-catalogue on generated shapes, U-Ones+LSR + CT (tiny CNN, CPU)",
            "hierarchy": "example-catalogue",
            "data": {"dataset": "example-shapes", "image_size": 64},
            "policy": {"default": "u-ones-lsr"},
            "train": {"method": "ct", "epochs": 3, "head_epochs": 1},
        },
    )
    # ... or a path to a YAML file.
    register("example/csv", str(CSV_PRESET_FILE))
