"""Fixtures shared by every test of the core package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hmlc.plugins import reset_host


@pytest.fixture(autouse=True)
def _fresh_plugin_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no plugin host and no plugin selection from the caller's shell.

    The host caches filled registries; a test that fakes installed plugins must
    not leak them into the next test.
    """
    monkeypatch.delenv("HMLC_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("HMLC_DISABLED_PLUGINS", raising=False)
    reset_host()
    yield
    reset_host()
