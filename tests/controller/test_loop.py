"""ControlLoop.tick with a fake clock, fake metrics and a fake actuator."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from controller.config import LoopOptions
from controller.decision_log import DecisionLog, FileRecorder, read_reports, replay, same_plan
from controller.loop import ControlLoop, LoopParts
from controller.safety import plan_replicas
from controller.stabilize import StabilizerOptions
from controller.state import StateFile
from specs.clock import FakeClock
from specs.loading import load_fleet
from tests.controller.fakes import FakeActuator, FakeMetrics

EXAMPLE = Path(__file__).resolve().parents[2] / "specs" / "examples" / "heterogeneous-fleet.json"


@pytest.fixture(scope="module")
def spec():
    return load_fleet(EXAMPLE).spec


class Scale:
    def __init__(self, spec, factor: float = 1.0) -> None:
        self.base = {s.name: s.load.arrival_rate_rps for s in spec.servers}
        self.factor = factor

    def __call__(self, server: str, now: float) -> float:
        return self.base[server] * self.factor


def make(spec, tmp_path: Path | None = None, **options):
    clock = FakeClock(1000.0)
    scale = Scale(spec)
    metrics = FakeMetrics(spec, scale)
    actuator = FakeActuator(spec)
    recorder = None
    if tmp_path is not None:
        recorder = FileRecorder(DecisionLog(tmp_path / "log.jsonl"),
                                StateFile(tmp_path / "state.json"))
    parts = LoopParts(spec=spec, metrics=metrics, actuator=actuator, clock=clock)
    if recorder is not None:
        parts.recorder = recorder
    loop = ControlLoop(parts, LoopOptions(**options))
    return loop, clock, scale, metrics, actuator


def test_first_tick_applies_the_plan(spec):
    loop, _, _, _, actuator = make(spec)
    report = loop.tick()
    assert report.status == "applied", report.reasons
    assert len(actuator.calls) == 1
    assert {k: n for k, n in actuator.fleet.items() if n} == plan_replicas(report.plan)
    assert set(report.timings_ms) >= {"collect", "forecast", "optimize", "stabilize", "actuate"}


@pytest.mark.parametrize("failure", ["down", "unavailable", "stale"])
def test_metrics_down_for_three_ticks_changes_nothing(spec, failure):
    loop, clock, scale, metrics, actuator = make(spec)
    loop.tick()
    fleet = dict(actuator.fleet)
    calls = len(actuator.calls)
    scale.factor = 0.1
    if failure == "stale":
        metrics.age_s = 10_000.0
    else:
        setattr(metrics, failure, True)
    for _ in range(3):
        clock.advance(60)
        report = loop.tick()
        assert report.status == "held"
        assert report.reasons
    assert len(actuator.calls) == calls
    assert actuator.fleet == fleet


def test_fleet_unreadable_holds(spec):
    loop, _, _, _, actuator = make(spec)
    actuator.unavailable = True
    report = loop.tick()
    assert report.status == "held" and not actuator.calls


def test_dry_run_changes_nothing(spec):
    loop, clock, scale, _, actuator = make(spec, mode="dry-run")
    for factor in (1.0, 3.0):
        scale.factor = factor
        report = loop.tick()
        clock.advance(60)
        assert report.status == "dry-run"
        assert report.changes
    assert actuator.calls == [] and actuator.fleet == {}


def test_failed_solve_keeps_last_plan(spec):
    loop, clock, _, _, actuator = make(spec)
    first = loop.tick()

    def broken(spec, solver):
        raise RuntimeError("solver crashed")

    loop.parts.optimize = broken
    clock.advance(60)
    report = loop.tick()
    assert report.status == "solve-failed"
    assert len(actuator.calls) == 1
    assert loop.state.last_plan == first.plan


def test_replayed_ticks_give_the_same_plans(spec, tmp_path):
    loop, clock, scale, _, _ = make(spec, tmp_path,
                                    stabilizer_options=StabilizerOptions(scale_down_delay_s=120))
    for factor in (1.0, 2.5, 4.0, 1.0, 1.0, 0.5, 0.5):
        scale.factor = factor
        loop.tick()
        clock.advance(60)
    reports = read_reports(tmp_path / "log.jsonl")
    assert len(reports) == 7
    assert any(r.held for r in reports)
    line = (tmp_path / "log.jsonl").read_text().splitlines()[3]
    for report in [*reports, line]:
        again = replay(report, loop.options)
        parsed = report if not isinstance(report, str) else reports[3]
        assert same_plan(again.proposed, parsed.proposed)
        assert same_plan(again.final, parsed.plan)


def test_scale_down_waits_then_happens(spec):
    loop, clock, scale, _, actuator = make(
        spec, stabilizer_options=StabilizerOptions(scale_down_delay_s=180))
    scale.factor = 4.0
    loop.tick()
    high = sum(actuator.fleet.values())
    scale.factor = 1.0
    kinds = []
    for _ in range(8):
        clock.advance(60)
        report = loop.tick()
        kinds.append({h.kind for h in report.held})
    assert "scale-down" in kinds[0]
    assert sum(actuator.fleet.values()) < high


def test_restart_resumes_state(spec, tmp_path):
    loop, clock, scale, _, actuator = make(spec, tmp_path)
    scale.factor = 4.0
    loop.tick()
    scale.factor = 1.0
    clock.advance(60)
    loop.tick()
    saved = StateFile(tmp_path / "state.json").load()
    assert saved == loop.state
    assert saved.tick == 2 and saved.stabilizer.history and saved.forecasts
    again = ControlLoop(loop.parts, loop.options, saved)
    clock.advance(60)
    assert again.tick().tick == 3


def test_stop_before_actuation_applies_nothing(spec):
    loop, _, _, _, actuator = make(spec)
    loop.request_stop()
    report = loop.tick()
    assert report.status == "stopped"
    assert actuator.calls == [] and actuator.fleet == {}


def test_stop_during_actuation_lets_it_finish(spec):
    loop, _, _, _, actuator = make(spec)
    actuator.block = threading.Event()
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("report", loop.tick()))
    worker.start()
    assert actuator.entered.wait(30)
    loop.request_stop()
    actuator.block.set()
    worker.join(30)
    report = result["report"]
    assert report.status == "applied"
    assert {k: n for k, n in actuator.fleet.items() if n} == plan_replicas(report.plan)


def test_state_file_with_old_pending_scale_downs_loads(spec, tmp_path):
    """A state file written before the scale-down window (stabiliser `pending`) loads, with
    the held scale-downs dropped, and the loop resumes from it."""
    loop, clock, scale, _, _ = make(spec, tmp_path)
    scale.factor = 4.0
    loop.tick()
    path = tmp_path / "state.json"
    document = json.loads(path.read_text())
    document["stabilizer"] = {"pending": {"premium-llama/H100": {"since": 1000.0, "floor": 1}}}
    path.write_text(json.dumps(document))
    saved = StateFile(path).load()
    assert saved.tick == 1 and saved.stabilizer.history == {}
    again = ControlLoop(loop.parts, loop.options, saved)
    clock.advance(60)
    report = again.tick()
    assert report.tick == 2 and report.status == "applied"
    assert StateFile(path).load().stabilizer.history


def test_rate_margin_sizes_above_the_measured_rate(spec):
    loop, *_ = make(spec, rate_margin_z=2.0, period_s=10.0)
    report = loop.tick()
    for server, load in report.measured.items():
        window = 10.0  # the fake source reports no variants: the period stands in
        expected = load.arrival_rate_rps + 2.0 * (load.arrival_rate_rps / window) ** 0.5
        assert report.sizing[server].arrival_rate_rps == pytest.approx(expected, rel=1e-4)


def test_a_server_with_nothing_to_measure_is_sized_at_its_last_level(spec):
    """No replica and no metrics: sized for the forecaster's last level, which is not fed
    back into the forecaster (that extrapolated a rising trend without bound)."""
    loop, clock, scale, metrics, _ = make(spec, mode="dry-run", period_s=60.0)
    for k in range(6):  # a rising load gives the forecaster a trend
        scale.factor = 1.0 + 0.3 * k
        loop.tick()
        clock.advance(60)
    name = spec.servers[0].name
    level = loop.state.forecasts[name].level
    metrics.silent = {name}
    sized = []
    for _ in range(5):
        report = loop.tick()
        clock.advance(60)
        assert report.measured[name].arrival_rate_rps == pytest.approx(level, rel=1e-6)
        sized.append(report.sizing[name].arrival_rate_rps)
    assert sized == [pytest.approx(level, rel=1e-6)] * 5
    assert loop.state.forecasts[name].level == pytest.approx(level, rel=1e-6)
