"""Test-only fault injection: a signal sent to this process at a named point.

hmlc's tests kill or interrupt training at exact places (after a given step,
half-way through a checkpoint write) by setting ``HMLC_TEST_FAULTS`` to
comma-separated ``SIGNAL@POINT`` items, e.g.
``SIGKILL@step:ct1:2:3,SIGINT@save:last:2:staged``. ``SIGNAL@POINT@group``
sends it to the whole process group instead, as Ctrl-C in a terminal does
(DataLoader workers included). Points:

- ``step:STAGE:EPOCH:STEP``: after optimizer step STEP (from 1) of epoch
  EPOCH (from 1) of the stage named STAGE;
- ``save:NAME:N:staged``: the N-th save of checkpoint NAME by this process has
  written its new folder and not yet replaced the old one;
- ``save:NAME:N:swapped``: the old folder has been moved aside and the new one
  is not yet in its place.

Unset (always, outside the tests), nothing happens.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["FAULTS_ENV", "fault_point", "count_event"]

#: The environment variable the tests set.
FAULTS_ENV = "HMLC_TEST_FAULTS"

_events: Counter[str] = Counter()


def count_event(name: str) -> int:
    """How many times ``name`` happened in this process, this one included (numbers save points)."""
    _events[name] += 1
    return _events[name]


def fault_point(*parts: object) -> None:
    """Send the signal ``$HMLC_TEST_FAULTS`` names for the point ``parts`` joined by ':', if any."""
    spec = os.environ.get(FAULTS_ENV)
    if not spec:
        return
    point = ":".join(str(p) for p in parts)
    for item in spec.split(","):
        name, _, rest = item.strip().partition("@")
        where, _, scope = rest.partition("@")
        if where == point:
            signum = signal.Signals[name]
            if scope == "group":
                os.killpg(os.getpgrp(), signum)
            else:
                os.kill(os.getpid(), signum)
