"""Arrival processes and trace readers: deterministic, correctly shaped, precise errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from specs.errors import SpecError
from tests.conftest import shared_path
from workloads.arrivals import (
    Arrival,
    PoissonArrivals,
    RateSchedule,
    ScheduledArrivals,
    TokenSizes,
    TraceArrivals,
    assign_classes,
)
from workloads.traces import TraceRecord, read_azure, read_mooncake, read_trace


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_poisson_rate_and_determinism() -> None:
    process = PoissonArrivals(rate_rps=50, duration_s=200, sizes=TokenSizes(10, 20))
    times = [a.time_s for a in process.arrivals(rng())]
    assert len(times) == pytest.approx(10_000, rel=0.05)
    assert times == sorted(times) and times[-1] < 200
    assert times == [a.time_s for a in process.arrivals(rng())]
    gaps = np.diff(times)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)  # exponential


def test_schedule_parse_rate_and_steps() -> None:
    schedule = RateSchedule.parse("0:0,10:10,10:2,20:2")
    assert schedule.rate(5) == pytest.approx(5)
    assert schedule.rate(10) == 2 and schedule.rate(15) == 2 and schedule.rate(25) == 0
    assert schedule.max_rate_rps == 10 and schedule.end_s == 20
    with pytest.raises(ValueError):
        RateSchedule.parse("0:1,x")
    with pytest.raises(ValueError):
        RateSchedule.parse("10:1,5:1")


def test_scheduled_arrivals_follow_a_ramp() -> None:
    process = ScheduledArrivals(RateSchedule.parse("0:0,400:100"))
    times = np.array([a.time_s for a in process.arrivals(rng(1))])
    assert len(times) == pytest.approx(20_000, rel=0.05)  # integral of the ramp
    first, second = (times < 200).sum(), (times >= 200).sum()
    assert second / first == pytest.approx(3.0, rel=0.1)  # areas 1:3


def test_diurnal_shape() -> None:
    schedule = RateSchedule.diurnal(1, 9, period_s=100, duration_s=200)
    assert schedule.rate(0) == pytest.approx(1)
    assert schedule.rate(50) == pytest.approx(9)
    assert schedule.rate(100) == pytest.approx(1)
    assert schedule.end_s == 200


RECORDS = [TraceRecord(float(t), 100 + t, 10 + t) for t in range(100)]


def test_trace_window_and_time_scale() -> None:
    process = TraceArrivals(RECORDS, time_scale=0.5, start_s=10, window_s=20)
    arrivals = list(process.arrivals(rng()))
    assert [a.time_s for a in arrivals] == [0.5 * i for i in range(20)]
    assert arrivals[0] == Arrival(0.0, 110, 20)


@pytest.mark.parametrize("multiplier", [0.5, 1.0, 2.5])
def test_trace_rate_multiplier(multiplier: float) -> None:
    records = [TraceRecord(0.1 * i, 10, 5) for i in range(4000)]
    arrivals = list(TraceArrivals(records, rate_multiplier=multiplier).arrivals(rng()))
    assert len(arrivals) == pytest.approx(4000 * multiplier, rel=0.05)
    times = [a.time_s for a in arrivals]
    assert times == sorted(times)
    assert times[-1] <= 400.0


def test_trace_token_scale_and_caps() -> None:
    process = TraceArrivals(RECORDS[:1], token_scale=0.5, max_output_tokens=4)
    assert list(process.arrivals(rng())) == [Arrival(0.0, 50, 4)]


def test_class_mix() -> None:
    base = PoissonArrivals(100, 100).arrivals(rng())
    tagged = list(assign_classes(base, {"premium": 1, "bronze": 3}, rng(2)))
    share = sum(a.service_class == "premium" for a in tagged) / len(tagged)
    assert share == pytest.approx(0.25, abs=0.03)
    assert list(assign_classes([Arrival(1, 2, 3)], {}, rng())) == [Arrival(1, 2, 3)]


def test_read_shared_traces() -> None:
    azure = read_azure(shared_path("azure2023", "AzureLLMInferenceTrace_conv.csv"))
    assert len(azure) == 19_366 and azure[0].time_s == 0
    assert azure[1].time_s == pytest.approx(4.314579, abs=1e-9)
    assert (azure[0].prompt_tokens, azure[0].output_tokens) == (374, 44)
    mooncake = read_trace(shared_path("mooncake", "conversation_trace.jsonl"))
    assert len(mooncake) == 12_031 and mooncake[0].prompt_tokens == 6758
    assert all(b.time_s >= a.time_s for a, b in zip(mooncake, mooncake[1:], strict=False))


@pytest.mark.parametrize(("name", "text", "where", "words"), [
    ("bad.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00.1,12,3\n"
     "2023-11-16 18:00:01.1,x,3\n", "line 3", "ContextTokens"),
    ("bad.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n", "line 2", "TIMESTAMP"),
    ("cols.csv", "time,in,out\n1,2,3\n", "line 1", "expected columns"),
    ("bad.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 1}\n{"timestamp": 1}\n',
     "line 2", "input_length"),
    ("bad.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 1}\nnot json\n',
     "line 2", "invalid JSON"),
    ("neg.jsonl", '{"timestamp": 0, "input_length": -5, "output_length": 1}\n', "line 1", ">= 0"),
])
def test_malformed_traces(tmp_path: Path, name: str, text: str, where: str, words: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        read_trace(path)
    assert caught.value.json_path == where and words in caught.value.message
    assert str(path) in str(caught.value)


def test_missing_and_unknown_trace(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such trace file"):
        read_mooncake(tmp_path / "absent.jsonl")
    (tmp_path / "t.txt").write_text("")
    with pytest.raises(SpecError, match="unknown trace format"):
        read_trace(tmp_path / "t.txt")
