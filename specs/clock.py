"""Time as a dependency: the `Clock` protocol, the wall clock and a fake clock for tests.

Policy code never reads time itself; the loop (or the simulator) passes `now` in, taken
from a `Clock`. To extend (e.g. a virtual-time clock driven by an event queue),
implement `now()`.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Seconds since an arbitrary epoch, monotonic non-decreasing."""

    def now(self) -> float:
        """The current time in seconds."""
        ...


class SystemClock:
    """Wall-clock time (Unix seconds)."""

    def now(self) -> float:
        """The current Unix time in seconds."""
        return time.time()


class MonotonicClock:
    """A monotonic clock for measuring intervals (seconds, arbitrary epoch)."""

    def now(self) -> float:
        """The current monotonic time in seconds."""
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to; for tests and virtual time."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        """The clock's current time."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by `seconds` (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds
        return self._now

    def set(self, t: float) -> None:
        """Jump to time `t` (not earlier than now)."""
        if t < self._now:
            raise ValueError("a clock cannot go backwards")
        self._now = float(t)
