"""Progress of a pass over data, the one reporter every long loop of hmlc uses.

On a terminal (stderr is a TTY) a :class:`Progress` is a tqdm bar that
disappears when the pass ends. Redirected to a log, it is a plain line every
``$HMLC_PROGRESS_SECONDS`` seconds (default 10; ``0``: at every update;
``off``: no progress at all, bars neither) with what is done, the rate, the time spent and the time
left, and a closing line when the pass printed any (unless the last one was already final). Under torchrun only
rank 0 reports; ``enabled=False`` (``train.progress=false`` in training)
silences it.

    with Progress(len(images), "valid", unit="img") as progress:
        for batch in batches:
            ...
            progress.update(len(batch))

A loop of long items (ablation runs, benchmark cases) that prints its own
lines says where it stands with :meth:`Progress.clock` ("3m10s elapsed,
about 6m20s left") or :meth:`Progress.summary`, from a Progress made with
``enabled=False`` (it then shows nothing itself).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import IO, Any, TypeVar

__all__ = [
    "Progress", "PROGRESS_SECONDS_ENV", "DEFAULT_PROGRESS_SECONDS", "progress_seconds", "format_duration",
    "format_clock", "say",
]

#: Environment variable: seconds between two progress lines in a log (``off``: no lines).
PROGRESS_SECONDS_ENV = "HMLC_PROGRESS_SECONDS"
DEFAULT_PROGRESS_SECONDS = 10.0

T = TypeVar("T")


def progress_seconds() -> float | None:
    """Seconds between two progress lines in a log: ``$HMLC_PROGRESS_SECONDS``, else 10; None: off.

    A value that is not a number of seconds (0 or more) or ``off`` is ignored
    with a warning: progress must never stop a run.
    """
    raw = os.environ.get(PROGRESS_SECONDS_ENV, "").strip().lower()
    if not raw:
        return DEFAULT_PROGRESS_SECONDS
    if raw in ("off", "none", "never"):
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value >= 0 or math.isinf(value):
        print(
            f"hmlc: warning: ${PROGRESS_SECONDS_ENV}={raw!r} is not a number of seconds or 'off'; "
            f"using {DEFAULT_PROGRESS_SECONDS:g}",
            file=sys.stderr,
        )
        return DEFAULT_PROGRESS_SECONDS
    return value


def _main_rank() -> bool:
    """False on the non-zero ranks of a torchrun job (they report nothing)."""
    try:
        return int(os.environ.get("RANK", "0")) == 0
    except ValueError:
        return True


def say(text: str) -> None:
    """A line on stderr for what a long command is doing; under torchrun only rank 0 speaks."""
    if _main_rank():
        print(text, file=sys.stderr, flush=True)


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``: short, for progress lines."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_clock(elapsed: float, left: float) -> str:
    """``4m10s elapsed, about 8m20s left`` (no estimate when ``left`` is unknown, NaN, or 0)."""
    estimate = f", about {format_duration(left)} left" if math.isfinite(left) and left > 0 else ""
    return f"{format_duration(elapsed)} elapsed{estimate}"


class Progress:
    """A pass over ``total`` items (None: unknown): a bar on a terminal, lines in a log, or nothing.

    ``desc`` names the pass (``valid``, ``stage1 2/5``, ``cache train``);
    ``unit`` the items (``img``, ``run``). ``stream`` defaults to stderr; its
    ``isatty()`` chooses between the bar and the lines.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        *,
        unit: str = "img",
        enabled: bool = True,
        initial: int = 0,
        stream: IO[str] | None = None,
        interval: float | None = -1.0,
    ) -> None:
        # interval: seconds between lines in a log; negative: $HMLC_PROGRESS_SECONDS; None: no lines.
        self.total = total
        self.desc = desc
        self.unit = unit
        self.done = initial
        self._initial = initial
        self._stream = stream if stream is not None else sys.stderr
        self._postfix: dict[str, Any] = {}
        self._status = ""
        self._start = time.monotonic()
        self._lines = 0
        self._shown = -1  # items done at the last line
        self._bar: Any = None
        self._closed = False
        #: Seconds between two lines in a log (None: no lines).
        self.interval: float | None = None
        #: "bar", "lines" or "off".
        self.mode = "off"
        seconds = progress_seconds() if interval is not None and interval < 0 else interval
        if enabled and _main_rank() and seconds is not None:
            if _isatty(self._stream):
                from tqdm import tqdm

                self.mode = "bar"
                self._bar = tqdm(
                    total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                    file=self._stream,
                )
            else:
                self.interval = seconds
                self.mode = "lines"
        self._next_line = self._start + (self.interval or 0.0)

    # ------------------------------------------------------------ reporting
    @property
    def disable(self) -> bool:
        """True when nothing is shown (tqdm's name, so code written for a tqdm bar reads it alike)."""
        return self.mode == "off"

    @property
    def elapsed(self) -> float:
        """Seconds since the pass began."""
        return time.monotonic() - self._start

    @property
    def rate(self) -> float:
        """Items per second done by this pass (NaN before the first)."""
        new, elapsed = self.done - self._initial, self.elapsed
        return new / elapsed if new > 0 and elapsed > 0 else math.nan

    @property
    def left(self) -> float:
        """Seconds the rest should take at the rate so far (NaN when unknown, 0 when done)."""
        if self.total is None:
            return math.nan
        if self.done >= self.total:
            return 0.0
        return (self.total - self.done) / self.rate

    def update(self, n: int = 1) -> None:
        """``n`` more items done."""
        self.done += n
        if self.mode == "bar":
            self._bar.update(n)
        elif self.mode == "lines" and time.monotonic() >= self._next_line:
            self._line()

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the counts (e.g. ``loss="0.4123"``), replacing earlier ones."""
        self._postfix = {k: v for k, v in values.items() if v is not None}
        if self.mode == "bar":
            self._bar.set_postfix(self._postfix, refresh=False)

    def status(self, text: str) -> None:
        """What the pass is doing besides counting (e.g. starting worker processes); shown at once.

        An empty ``text`` clears it.
        """
        self._status = text
        if self.mode == "bar":
            self._bar.set_postfix_str(text)
        elif self.mode == "lines" and text:
            self._line()

    def summary(self) -> str:
        """Where the pass stands: ``2/6 run, 1.3 run/s, 3m10s elapsed, about 6m20s left``."""
        parts = [f"{self.done:,}/{self.total:,} {self.unit}" if self.total is not None else f"{self.done:,} {self.unit}"]
        if self.total:
            parts[0] += f" ({100.0 * self.done / self.total:.0f}%)"
        rate = self.rate
        if not math.isnan(rate):
            if rate >= 1:
                parts.append(f"{rate:,.0f} {self.unit}/s" if rate >= 100 else f"{rate:.3g} {self.unit}/s")
            else:
                parts.append(f"{format_duration(1 / rate)}/{self.unit}")
        parts.append(self.clock())
        parts += [f"{k} {v}" for k, v in self._postfix.items()]
        if self._status:
            parts.append(self._status)
        return ", ".join(parts)

    def clock(self) -> str:
        """``4m10s elapsed, about 8m20s left`` (no estimate before the first item is done)."""
        return format_clock(self.elapsed, self.left)

    def _line(self) -> None:
        print(f"{self.desc}: {self.summary()}", file=self._stream, flush=True)
        self._lines += 1
        self._shown = self.done
        self._next_line = time.monotonic() + (self.interval or 0.0)

    def close(self) -> None:
        """End the pass: the bar disappears; a log that got progress lines gets a closing one
        (unless the last line already showed the final count)."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "bar":
            self._bar.close()
        elif self.mode == "lines" and self._lines and self._shown != self.done:
            self._status = ""
            self._line()

    def iterate(self, items: Iterable[T], size: Any = None) -> Iterator[T]:
        """The items of ``items``, counting ``size(item)`` (default 1) for each as it is yielded."""
        for item in items:
            yield item
            self.update(1 if size is None else int(size(item)))

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or odd stream: treat as a log
        return False
