"""A progress bar for `fleetplan evaluate`: per policy, in simulated time, on stderr.

`TerminalBar(stream)` is a `PolicyProgress`: called as `bar(policy, now_s, end_s)` after
each control period, it redraws one line (`reactive [#####.....] 30:00 / 60:00 simulated`)
and ends it when `now_s` reaches `end_s`. It draws nothing when the stream is not a
terminal, so logs and pipes get only the evaluation's line messages.

To extend: another display (a rich bar, a log line every N minutes) is one more callable
with the same signature, chosen in `controller.commands.evaluate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

PolicyProgress = Callable[[str, float, float], None]
"""(policy, simulated time now, simulated time at the end), seconds."""

WIDTH = 30
"""Characters of the bar."""


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


def render(policy: str, now_s: float, end_s: float, width: int = WIDTH) -> str:
    """One line of the bar."""
    share = 1.0 if end_s <= 0 else min(max(now_s / end_s, 0.0), 1.0)
    done = round(share * width)
    return (f"{policy:<15} [{'#' * done}{'.' * (width - done)}] "
            f"{_clock(now_s)} / {_clock(end_s)} simulated")


class TerminalBar:
    """See the module docstring."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()

    def __call__(self, policy: str, now_s: float, end_s: float) -> None:
        """Redraw the bar (nothing when the stream is not a terminal)."""
        if not self.enabled:
            return
        end = "\n" if now_s >= end_s else ""
        self.stream.write("\r" + render(policy, now_s, end_s) + end)
        self.stream.flush()
