"""Fixtures shared by every test of the core package."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from hmlc.plugins import reset_host

# A test run started in the background by a script (`cmd &` without job control) inherits SIGINT
# ignored, as does every process the tests start, and hmlc rightly leaves an ignored SIGINT
# ignored; the Ctrl-C tests need it delivered. Each test process (xdist's workers too) restores it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.fixture(autouse=True)
def _no_timed_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """No progress lines, whatever the machine's load: a pass that took more than the interval
    (10 s) would add lines to the stderr a test reads. Progress tests set their own interval."""
    monkeypatch.setenv("HMLC_PROGRESS_SECONDS", "off")


@pytest.fixture(params=["torch", "compiled"])
def fold_walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Inference over wide hierarchies with the torch level walk, then with the compiled one
    (hmlc.fold_kernel; skipped without numba): tests using this fixture run once with each."""
    from hmlc import fold_kernel

    compiled = request.param == "compiled"
    if compiled:
        pytest.importorskip("numba", reason="the compiled walk needs numba (pip install hmlc[fast])")
    monkeypatch.setenv("HMLC_NUMBA", "1" if compiled else "0")
    monkeypatch.setattr(fold_kernel, "_state", {})
    assert fold_kernel.available() == compiled
    return request.param
