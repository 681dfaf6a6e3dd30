"""Every hook is tested and documented (datasette's tests/test_plugins.py and test_docs.py habit)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hmlc.plugins import HOOK_NAMES, KINDS
from hmlc.plugins import hookspecs

HERE = Path(__file__).resolve().parent
HOOKS_DOC = HERE.parents[1] / "docs" / "hooks.md"


def test_hook_names_are_the_hookspecs() -> None:
    specs = sorted(name for name in vars(hookspecs) if name.startswith("hmlc_register_"))
    assert list(HOOK_NAMES) == specs
    assert len(HOOK_NAMES) == 8
    # Every hook fills exactly one registry kind.
    assert sorted(hook for hook, _ in KINDS.values()) == sorted(HOOK_NAMES)


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_has_a_test(hook: str) -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in sorted(HERE.glob("test_*.py")) if p.name != Path(__file__).name)
    assert re.search(rf"\b{hook}\b", sources), f"no test in tests/plugins exercises {hook}"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_is_documented(hook: str) -> None:
    text = HOOKS_DOC.read_text(encoding="utf-8")
    assert re.search(rf"\b{hook}\b", text), f"docs/hooks.md does not document {hook}"
