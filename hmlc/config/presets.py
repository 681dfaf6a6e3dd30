"""Built-in presets: the synthetic settings used by the quick start and the ablation.

Names follow the paper's order, policy first, then ``-ct``, then ``-lsr``
("U-Ones+CT+LSR" is ``u-ones-ct-lsr``), as the CheXpert presets do. The
names of the first releases (``synthetic/u-ones-lsr-ct``) still work as
deprecated aliases; their description says so in ``hmlc list presets``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

__all__ = ["register_builtin_presets", "SYNTHETIC_PRESETS", "DEPRECATED_PRESET_ALIASES", "deprecated_alias"]

_BASE_POLICIES = ("u-ignore", "u-zeros", "u-ones")


def _preset(policy: str, ct: bool) -> dict[str, Any]:
    return {
        "description": f"synthetic data, {policy}{' + CT' if ct else ''} (tiny CNN, CPU-sized)",
        "data": {"dataset": "synthetic"},
        "policy": {"default": policy},
        "train": {"method": "ct" if ct else "flat"},
    }


def _settings() -> dict[str, tuple[str, bool]]:
    """Name suffix -> (policy, conditional training), in the paper's naming order."""
    settings: dict[str, tuple[str, bool]] = {}
    for base in _BASE_POLICIES:
        settings[base] = (base, False)
        settings[f"{base}-ct"] = (base, True)
        if base != "u-ignore":
            settings[f"{base}-lsr"] = (f"{base}-lsr", False)
            settings[f"{base}-ct-lsr"] = (f"{base}-lsr", True)
    return settings


SYNTHETIC_PRESETS: dict[str, dict[str, Any]] = {
    f"synthetic/{suffix}": _preset(policy, ct) for suffix, (policy, ct) in _settings().items()
}

#: Old name -> current name. The old names keep working; listings mark them deprecated.
DEPRECATED_PRESET_ALIASES: dict[str, str] = {
    f"synthetic/{base}-lsr-ct": f"synthetic/{base}-ct-lsr" for base in ("u-zeros", "u-ones")
}


def deprecated_alias(current: str, preset: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``preset`` whose description says it is a deprecated name for ``current``."""
    alias = copy.deepcopy(preset)
    alias["description"] = f"deprecated alias of {current} (use that name): {preset.get('description', '')}"
    return alias


def register_builtin_presets(register: Callable[[str, Any], None]) -> None:
    """Register the synthetic presets and their deprecated aliases."""
    for name, preset in SYNTHETIC_PRESETS.items():
        register(name, copy.deepcopy(preset))
    for old, current in DEPRECATED_PRESET_ALIASES.items():
        register(old, deprecated_alias(current, SYNTHETIC_PRESETS[current]))
