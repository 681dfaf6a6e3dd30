"""Stopping on SIGINT or SIGTERM: training finishes its step, checkpoints and exits 130 / 143."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["Interrupted", "StopRequest", "raise_on_sigterm", "ignore_stop_signals"]

#: The signals that ask hmlc to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """hmlc stopped on a signal: ``what`` happened, ``hint`` says how to continue.

    A :class:`KeyboardInterrupt`, so that nothing that catches ``Exception``
    swallows it (DataLoader workers end quietly on it). The CLI prints
    ``hmlc: WHAT; HINT`` and exits with 128 + the signal's number.
    """

    def __init__(self, signum: int, what: str = "interrupted", hint: str = "") -> None:
        self.signum = int(signum)
        self.what = what
        self.hint = hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.what}; {self.hint}" if self.hint else self.what

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def raise_on_sigterm() -> Any:
    """Make SIGTERM raise :class:`Interrupted` (like Ctrl-C's KeyboardInterrupt); returns the old handler.

    Without it SIGTERM ends the process at once, with no line and no cleanup.
    Outside the main thread, or where SIGTERM is ignored, nothing changes (returns None).
    """
    if not _in_main_thread() or signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    return signal.signal(signal.SIGTERM, handler)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """``worker_init_fn`` of hmlc's DataLoaders: workers ignore SIGINT and SIGTERM.

    Ctrl-C in a terminal, and SIGTERM from a scheduler or ``docker stop``,
    reach every process of the group. The main process decides what happens
    (training finishes its step first, which needs its batch) and shuts the
    workers down; a worker ends by itself when the main process is gone.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


class StopRequest:
    """While entered: the first SIGINT or SIGTERM is only recorded, a second raises :class:`Interrupted`.

    Training asks :meth:`requested` after every step and stops there. Under
    DDP every rank must ask at the same points: the ranks agree (any rank's
    signal stops all of them), so that they stop after the same step. The
    previous handlers come back on exit. Outside the main thread (where Python
    cannot install handlers) signals keep their usual effect, and an ignored
    signal stays ignored.
    """

    def __init__(self, distributed: bool = False, group: Any = None) -> None:
        self.signum: int | None = None
        #: What a second signal says: set by the trainer once a checkpoint exists.
        self.hard_hint = ""
        self._distributed = distributed
        #: The process group the ranks ask in (the runtime's CPU group: no GPU synchronisation under
        #: NCCL); None: the default group.
        self._group: Any = group
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if _in_main_thread():
            for signum in STOP_SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:  # e.g. SIGINT of a background job: still ignored
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            return
        raise Interrupted(signum, "interrupted again", self.hard_hint)

    def requested(self) -> bool:
        """Whether a stop was asked for (on any rank, under DDP: a collective)."""
        if not self._distributed:
            return self.signum is not None
        import torch
        import torch.distributed as dist

        flag = torch.tensor([self.signum or 0], dtype=torch.int64)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
        if flag.item() and self.signum is None:
            self.signum = int(flag.item())
        return bool(flag.item())
