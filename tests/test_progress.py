"""The progress reporter: a bar on a terminal, timed lines in a log, nothing when off or off rank 0."""

from __future__ import annotations

import io
import math

import pytest

from hmlc.progress import Progress, format_duration, progress_seconds


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_lines_with_counts_rate_and_time_left(monkeypatch) -> None:
    monkeypatch.setenv("HMLC_PROGRESS_SECONDS", "0")
    log = io.StringIO()
    with Progress(100, "valid", stream=log) as progress:
        progress.update(25)
        progress.update(25)
    lines = log.getvalue().splitlines()
    assert len(lines) == 2  # one per update; the last was final: no closing line repeats it
    assert lines[0].startswith("valid: 25/100 img (25%), ") and "img/s" in lines[0] and "left" in lines[0]
    assert lines[1].startswith("valid: 50/100 img (50%), ")


def test_a_pass_that_printed_gets_a_closing_line(monkeypatch) -> None:
    monkeypatch.setenv("HMLC_PROGRESS_SECONDS", "3600")
    log = io.StringIO()
    with Progress(10, "predict", stream=log) as progress:
        progress.status("loading")  # a line now, then none for an hour
        progress.update(10)
    assert log.getvalue().splitlines()[1].startswith("predict: 10/10 img (100%), ")


def test_lines_come_at_most_once_per_interval(monkeypatch) -> None:
    monkeypatch.setenv("HMLC_PROGRESS_SECONDS", "3600")
    log = io.StringIO()
    with Progress(10, "predict", stream=log) as progress:
        for _ in range(10):
            progress.update()
    assert log.getvalue() == ""  # a pass shorter than the interval prints nothing, not even a closing line


def test_a_status_is_shown_at_once(monkeypatch) -> None:
    monkeypatch.setenv("HMLC_PROGRESS_SECONDS", "3600")
    log = io.StringIO()
    progress = Progress(870, "cache train+valid", stream=log)
    progress.status("starting 2 worker processes")
    assert log.getvalue() == "cache train+valid: 0/870 img (0%), 0s elapsed, starting 2 worker processes\n"
    progress.close()


@pytest.mark.parametrize("how", ["disabled", "off", "rank 1"])
def test_nothing_is_shown_when_off_or_on_another_rank(monkeypatch, how) -> None:
    monkeypatch.setenv("HMLC_PROGRESS_SECONDS", "off" if how == "off" else "0")
    if how == "rank 1":
        monkeypatch.setenv("RANK", "1")
    for stream in (io.StringIO(), _Terminal()):
        with Progress(4, "x", stream=stream, enabled=how != "disabled") as progress:
            progress.update(4)
        assert progress.disable and stream.getvalue() == ""


def test_a_terminal_gets_a_bar_that_disappears(monkeypatch) -> None:
    monkeypatch.setenv("HMLC_PROGRESS_SECONDS", "0")
    term = _Terminal()
    with Progress(4, "train", stream=term) as progress:
        assert progress.mode == "bar"
        progress.update(4)
    shown = term.getvalue()
    assert shown.startswith("\rtrain:") and "/4 [" in shown  # tqdm's bar, redrawn in place
    assert "\n" not in shown and shown.endswith("\r")  # and wiped at the end


def test_summary_estimates_what_is_left(monkeypatch) -> None:
    progress = Progress(6, "ablate", unit="run", enabled=False)
    assert math.isnan(progress.left) and progress.summary().startswith("0/6 run (0%), ")
    progress._start -= 120  # two runs in two minutes
    progress.update(2)
    assert progress.left == pytest.approx(240, rel=0.01)
    assert "1m00s/run" in progress.summary() and "about 4m00s left" in progress.summary()
    assert progress.clock() == "2m00s elapsed, about 4m00s left"
    progress.update(4)
    assert progress.clock() == "2m00s elapsed"  # all done: nothing left


def test_the_interval_setting(monkeypatch, capsys) -> None:
    monkeypatch.delenv("HMLC_PROGRESS_SECONDS", raising=False)
    assert progress_seconds() == 10.0
    monkeypatch.setenv("HMLC_PROGRESS_SECONDS", "2.5")
    assert progress_seconds() == 2.5
    monkeypatch.setenv("HMLC_PROGRESS_SECONDS", "Off")
    assert progress_seconds() is None
    monkeypatch.setenv("HMLC_PROGRESS_SECONDS", "soon")
    assert progress_seconds() == 10.0
    assert "HMLC_PROGRESS_SECONDS='soon'" in capsys.readouterr().err
    assert [format_duration(s) for s in (4.4, 65, 7322, math.nan)] == ["4s", "1m05s", "2h02m", "?"]
