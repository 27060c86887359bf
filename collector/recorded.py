"""Recorded snapshots: write a run's snapshots as JSON lines, replay them later.

`SnapshotRecorder(path).record(snapshot)` appends one `FleetSnapshot` per line.
`RecordedSource.from_path(path)` (or `.from_lines`) replays them as a `MetricsSource`:
`snapshot(now)` returns the latest recorded snapshot taken at or before `now` (so a loop
replayed in virtual time sees what the live loop saw), or, in sequence mode
(`by_time=False`), the next one on each call. Before the first snapshot, more than
`max_gap_s` after the last one (default: twice the median spacing), or past the end in
sequence mode, it returns an `unavailable` snapshot saying so: a replay never invents load.
A malformed line is a `SpecError` naming the file and the line.

To extend: another storage (e.g. a compressed file) is another constructor building the
same list of snapshots.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import ValidationError

from collector.snapshot import FleetSnapshot, SourceStatus
from specs.errors import SpecError


class SnapshotRecorder:
    """Appends snapshots to a JSON-lines file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def record(self, snapshot: FleetSnapshot) -> None:
        """Append one line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(snapshot.model_dump_json() + "\n")


class RecordedSource:
    """`MetricsSource` replaying recorded snapshots (see the module docstring)."""

    source = "replay"

    def __init__(self, snapshots: Sequence[FleetSnapshot], by_time: bool = True,
                 max_gap_s: float | None = None) -> None:
        self.snapshots = sorted(snapshots, key=lambda s: s.time_s)
        self.by_time = by_time
        self._times = [s.time_s for s in self.snapshots]
        gaps = sorted(b - a for a, b in zip(self._times, self._times[1:], strict=False))
        self.max_gap_s = max_gap_s if max_gap_s is not None else (
            2.0 * gaps[len(gaps) // 2] if gaps else float("inf"))
        self._next = 0

    @classmethod
    def from_lines(cls, lines: Iterable[str], file: Path | None = None,
                   by_time: bool = True) -> RecordedSource:
        """Parse JSON lines (blank lines skipped)."""
        snapshots = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                snapshots.append(FleetSnapshot.model_validate_json(line))
            except ValidationError as exc:
                first = exc.errors()[0]
                raise SpecError(f"line {number}: not a snapshot ({first['msg']})",
                                file=file) from None
        return cls(snapshots, by_time)

    @classmethod
    def from_path(cls, path: str | Path, by_time: bool = True) -> RecordedSource:
        """Read a file written by `SnapshotRecorder`."""
        path = Path(path)
        if not path.is_file():
            raise SpecError("no such recording", file=path)
        with path.open(encoding="utf-8") as handle:
            return cls.from_lines(handle, path, by_time)

    def snapshot(self, now: float) -> FleetSnapshot:
        """The recorded snapshot for `now` (see the module docstring)."""
        if self.by_time:
            index = bisect.bisect_right(self._times, now) - 1
            if index < 0:
                return self._none(now, "no recorded snapshot this early")
            if index == len(self.snapshots) - 1 and now - self._times[-1] > self.max_gap_s:
                return self._none(now, "the recording has ended")
            return self.snapshots[index]
        if self._next >= len(self.snapshots):
            return self._none(now, "the recording has ended")
        self._next += 1
        return self.snapshots[self._next - 1]

    def _none(self, now: float, why: str) -> FleetSnapshot:
        return FleetSnapshot(time_s=now, source=self.source, status=SourceStatus.UNAVAILABLE,
                             error=why)
