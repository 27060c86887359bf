"""Recording snapshots as JSON lines and replaying them (by time or in sequence)."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector import (
    Figure,
    FleetSnapshot,
    RecordedSource,
    SnapshotRecorder,
    SourceStatus,
    VariantSnapshot,
)
from collector.observations import observation_of
from specs.errors import SpecError


def snapshot(t: float, rate: float | None) -> FleetSnapshot:
    arrival = Figure.ok(rate, 1.0) if rate is not None else Figure.nan()
    variant = VariantSnapshot(name="v", model="m", accelerator="H100", window_s=60,
                              arrival_rate_rps=arrival)
    return FleetSnapshot(time_s=t, source="scrape", status=SourceStatus.OK, variants=(variant,))


def test_record_and_replay_by_time(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    recorder = SnapshotRecorder(path)
    for t, rate in ((0.0, 1.0), (60.0, None), (120.0, 3.0)):
        recorder.record(snapshot(t, rate))
    replay = RecordedSource.from_path(path)
    assert replay.snapshot(-1.0).status == SourceStatus.UNAVAILABLE
    assert replay.snapshot(30.0) == snapshot(0.0, 1.0)
    nan = replay.snapshot(60.0).variant("v").arrival_rate_rps
    assert nan.status == "nan" and nan.value is None  # unknown stays unknown through JSON
    assert replay.snapshot(150.0).variant("v").arrival_rate_rps.value == 3.0
    ended = replay.snapshot(1000.0)
    assert ended.status == SourceStatus.UNAVAILABLE and "ended" in ended.error


def test_replay_in_sequence(tmp_path: Path) -> None:
    lines = [snapshot(t, 1.0).model_dump_json() for t in (5.0, 1.0)] + [""]
    replay = RecordedSource.from_lines(lines, by_time=False)
    assert [replay.snapshot(0).time_s for _ in range(2)] == [1.0, 5.0]
    assert replay.snapshot(0).status == SourceStatus.UNAVAILABLE


def test_bad_recording_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(snapshot(0, 1.0).model_dump_json() + "\n{\"time_s\": 1}\n")
    with pytest.raises(SpecError, match="line 2"):
        RecordedSource.from_path(path)
    with pytest.raises(SpecError, match="no such recording"):
        RecordedSource.from_path(tmp_path / "absent.jsonl")


def test_skipped_variants_say_why() -> None:
    base = dict(name="v", model="m", accelerator="H100", window_s=60)
    figures = dict(arrival_rate_rps=Figure.ok(2.0), completion_rate_rps=Figure.ok(2.0),
                   replicas=Figure.ok(1.0), in_tokens=Figure.ok(100.0),
                   out_tokens=Figure.ok(50.0), ttft_mean_ms=Figure.ok(30.0),
                   itl_mean_ms=Figure.ok(8.0), max_batch=Figure.ok(16.0))
    ok = observation_of(VariantSnapshot(**base, **figures))
    assert ok.arrival_rate_rps == 2.0 and ok.running is None
    no_batch = observation_of(VariantSnapshot(**base, **{**figures, "max_batch": Figure()}))
    assert "max_batch missing" in no_batch.reason
    few = observation_of(VariantSnapshot(**{**base, "window_s": 2}, **figures))
    assert "only 4 requests" in few.reason
