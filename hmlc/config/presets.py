"""Built-in presets: the synthetic settings used by the quick start and the ablation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["register_builtin_presets", "SYNTHETIC_PRESETS"]

_POLICIES = {
    "u-ignore": "u-ignore",
    "u-zeros": "u-zeros",
    "u-zeros-lsr": "u-zeros-lsr",
    "u-ones": "u-ones",
    "u-ones-lsr": "u-ones-lsr",
}


def _preset(policy: str, ct: bool) -> dict[str, Any]:
    return {
        "description": f"synthetic data, {policy}{' + CT' if ct else ''} (tiny CNN, CPU-sized)",
        "data": {"dataset": "synthetic"},
        "policy": {"default": policy},
        "train": {"method": "ct" if ct else "flat"},
    }


SYNTHETIC_PRESETS: dict[str, dict[str, Any]] = {}
for _key, _policy in _POLICIES.items():
    SYNTHETIC_PRESETS[f"synthetic/{_key}"] = _preset(_policy, ct=False)
    SYNTHETIC_PRESETS[f"synthetic/{_key}-ct"] = _preset(_policy, ct=True)


def register_builtin_presets(register: Callable[[str, Any], None]) -> None:
    for name, preset in SYNTHETIC_PRESETS.items():
        register(name, preset)
