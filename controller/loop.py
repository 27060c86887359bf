"""The control loop: one tick = observe -> collect -> forecast -> tune -> optimise ->
stabilise -> actuate -> record.

`ControlLoop.tick(now)` runs one tick and returns a `TickReport` (controller.tick); it is
a plain function of its injected parts (`LoopParts`: the spec, a `MetricsSource`, an
`Actuator`, a `Clock`, an optimise function, an optional tuner, a `Recorder`) and its
state (`LoopState`), so tests drive it directly with a fake clock and fakes. The daemon
(`controller.daemon.Daemon.run_loop`) repeats it every `period_s` and on demand.

Safety, in order:
- the fleet cannot be read, the metrics source is down, or no server has fresh metrics:
  nothing is decided or changed (status `held`); servers without fresh metrics keep their
  current replicas; a server with no replica running (nothing to measure) is sized for
  its last known, else its configured, load (so an empty fleet can start);
- a failed solve (exception or status failed/infeasible) keeps the last plan, unchanged;
- the final plan is fully computed, then checked (min replicas, capacity) before the
  actuator is called; a stop requested before that point skips actuation, a stop during
  it lets the actuator finish: a plan is never half applied by the loop;
- dry-run never calls `apply`; metrics mode calls it on an actuator built in metrics
  mode, which changes nothing and only exports desired replicas (for an HPA or KEDA).

To extend: a new stage is one method called from `tick` inside `watch(stage)`, with its
inputs and outputs recorded on the `TickReport`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from actuator.base import Actuator, ActuatorUnavailable, FleetState
from collector.snapshot import FleetSnapshot, SourceStatus
from controller.config import LoopOptions
from controller.correction import CorrectionState, correct, observations, with_corrections
from controller.forecast import FORECASTERS, Series, sizing_rate, upper_rate, with_half_life
from controller.safety import (
    enforce_min_replicas,
    hold_servers,
    make_before_break,
    over_capacity,
    planned_changes,
)
from controller.sources import MetricsSource, server_loads, tuner_observations
from controller.stabilize import STABILIZERS, StabilizeInput
from controller.state import LoopState
from controller.tick import (
    RunningVariant,
    TickReport,
    TickStatus,
    TunedParameters,
    change_entries,
    current_replicas,
    held_entries,
    running_variants,
)
from optimizer.api import make_generator, optimize
from optimizer.candidates import CandidateGenerator
from specs.clock import Clock
from specs.documents import CurrentAllocation, FleetSpec, Load
from specs.plan import Plan
from tuner.merge import merge_profiles, tuned_profiles
from tuner.state import TunerState
from tuner.tuner import Tuner

OptimizeFn = Callable[[FleetSpec, str | None], Plan]


class Recorder(Protocol):
    """Where each tick's report and the new state go (decision log, state file)."""

    def record(self, report: TickReport, state: LoopState) -> None:
        """Persist one tick."""
        ...


class NullRecorder:
    """Records nothing."""

    def record(self, report: TickReport, state: LoopState) -> None:
        """Do nothing."""


class Optimizer:
    """`optimize` with a sizing cache kept warm across ticks and no timings in the plan
    (so a replayed tick gives the same plan byte for byte). `generators` (by queue model
    name) are used where given, e.g. ones that know measured laws and workload samples;
    others are made from the spec on first use, with its profiles as the reference that
    later, tuned profiles are scaled against (queue models that replay, capacity-table,
    then never re-measure because of tuning)."""

    def __init__(self, generators: dict[str, CandidateGenerator] | None = None) -> None:
        self._generators = generators if generators is not None else {}

    def __call__(self, spec: FleetSpec, solver: str | None) -> Plan:
        """Optimise `spec` with `solver` (default: the spec's)."""
        return optimize(spec, solver=solver, timer=None, generator=self._generator(spec))

    def predict_itl(self, spec: FleetSpec, server: str, accelerator: str,
                    max_batch: int | None, token_budget: int | None,
                    rate_rps: float) -> float | None:
        """Mean ITL (ms) the spec's measured queue model predicts for one replica of a
        variant at a rate; None for analytic models or without a profile."""
        generator = self._generator(spec)
        found = next((s for s in spec.servers if s.name == server), None)
        profile = spec.profile(found.model, accelerator) if found else None
        if not generator.sizes_itself or found is None or profile is None:
            return None
        params = generator.params_for(profile, found, max_batch or profile.max_batch,
                                      token_budget)
        value = float(generator.prepared(params).itl_ms(max(rate_rps, 1e-6), None))
        return value if math.isfinite(value) else None

    def rates(self, spec: FleetSpec) -> dict[tuple[str, str], float]:
        """The highest per-replica rate of each (server, accelerator) among the spec's
        candidates (absent: the accelerator cannot serve the server)."""
        problem = self._generator(spec).problem(spec, predict=False)
        out: dict[tuple[str, str], float] = {}
        for server in problem.servers:
            for c in server.candidates:
                key = (c.server, c.accelerator)
                out[key] = max(out.get(key, 0.0), c.max_rate_per_replica_rps)
        return out

    def _generator(self, spec: FleetSpec) -> CandidateGenerator:
        name = spec.optimizer.queue_model
        try:  # a mapping may make its generators on first use (__missing__)
            return self._generators[name]
        except KeyError:
            generator = self._generators[name] = make_generator(spec, profiled=True)
            return generator


@dataclass
class LoopParts:
    """What the loop is built from (the controller's wiring builds the real ones)."""

    spec: FleetSpec
    metrics: MetricsSource
    actuator: Actuator
    clock: Clock
    optimize: OptimizeFn = field(default_factory=Optimizer)
    tuner: Tuner | None = None
    recorder: Recorder = field(default_factory=NullRecorder)
    timer: Callable[[], float] = time.perf_counter


class _Watch:
    def __init__(self, timer: Callable[[], float]) -> None:
        self.timer = timer
        self.ms: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = self.timer()
        try:
            yield
        finally:
            self.ms[stage] = round((self.timer() - start) * 1000.0, 3)


def plan_id(tick: int, plan: Plan) -> str:
    """A stable id: the tick and a hash of the plan's JSON."""
    digest = hashlib.sha1(plan.model_dump_json().encode()).hexdigest()[:10]
    return f"{tick:06d}-{digest}"


class ControlLoop:
    """See the module docstring."""

    def __init__(self, parts: LoopParts, options: LoopOptions,
                 state: LoopState | None = None) -> None:
        self.parts = parts
        self.options = options
        self.state = state or LoopState()
        self.last_report: TickReport | None = None
        self._stop = threading.Event()

    def request_stop(self) -> None:
        """Ask the loop to stop: a tick not yet actuating skips actuation."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop.is_set()

    # -- one tick -----------------------------------------------------------------------

    def tick(self, now: float | None = None) -> TickReport:
        """Run one tick at `now` (default: the clock) and return its report."""
        now = self.parts.clock.now() if now is None else now
        watch = _Watch(self.parts.timer)
        n = self.state.tick + 1
        base = {"tick": n, "time_s": now, "stabilizer_before": self.state.stabilizer,
                "previous_plan": self.state.last_plan}
        with watch("observe"):
            fleet, error = self._observe()
        if fleet is None:
            return self._held(watch, base, [error], self.state)
        running = running_variants(fleet)
        base["fleet"] = running
        with watch("collect"):
            snapshot, error = self._collect(now, fleet)
        measured = server_loads(snapshot, self.parts.spec, self.options.stale_after_s)
        loads = measured
        if snapshot.status != SourceStatus.UNAVAILABLE:
            loads = self._bootstrap(measured, running)
        base.update(metrics_status=str(snapshot.status), measured=loads)
        if not loads:
            return self._held(watch, base, [error or "no server has fresh metrics"], self.state)
        with watch("forecast"):
            forecasts, forecast_rps, sizing = self._forecast(
                loads, now, _windows(snapshot), frozen=set(loads) - set(measured))
        with watch("tune"):
            tuner_state, spec, count = self._tune(snapshot, fleet)
        spec = self._spec_for(spec, sizing, running)
        with watch("correct"):
            correction = self._correct(snapshot, fleet, spec)
        spec = with_corrections(spec, correction)
        state = self.state.model_copy(update={"forecasts": forecasts, "tuner": tuner_state,
                                              "correction": correction})
        base.update(forecast_rps=forecast_rps, sizing=sizing, observations=count, spec=spec,
                    tuned=_tuned(tuner_state), solver=self.options.solver or spec.optimizer.solver)
        with watch("optimize"):
            proposed, error = self._solve(spec)
        if proposed is None:
            return self._finish(watch, base, "solve-failed", [error], state)
        return self._decide_and_act(watch, base, proposed, loads, running, state)

    def _decide_and_act(self, watch: _Watch, base: dict, proposed: Plan, loads: dict[str, Load],
                        running: list[RunningVariant], state: LoopState) -> TickReport:
        current = current_replicas(running)
        inp = StabilizeInput(base["spec"], proposed, current, self.state.last_plan,
                             base["time_s"], rates=self._rates(base["spec"], proposed, current))
        with watch("stabilize"):
            result = STABILIZERS.get(self.options.stabilizer)(
                self.state.stabilizer, inp, self.options.stabilizer_options)
            missing = [s.name for s in self.parts.spec.servers if s.name not in loads]
            final = enforce_min_replicas(hold_servers(result.plan, missing, inp), inp.spec)
            final, waiting = make_before_break(final, running, inp.spec, self.state.last_plan)
        reasons = [f"no fresh metrics for {', '.join(missing)}: kept as is"] if missing else []
        reasons.extend(waiting)
        base.update(proposed=proposed, plan=final, held=held_entries(result.held))
        over = over_capacity(final, inp.spec)
        if over:
            reasons.append(f"final plan exceeds capacity of {', '.join(over)}: fleet kept")
            return self._finish(watch, base, "held", reasons, state)
        pid = plan_id(base["tick"], final)
        base["plan_id"] = pid
        decided = state.model_copy(update={"stabilizer": result.state, "last_plan": final,
                                           "last_plan_id": pid})
        if self.stopping:
            return self._finish(watch, base, "stopped", [*reasons, "stop requested"], state)
        with watch("actuate"):
            status, changes, failures = self._actuate(final, pid, current, base)
        base.update(changes=changes, failures=failures)
        return self._finish(watch, base, status, reasons, decided)

    # -- stages -------------------------------------------------------------------------

    def _observe(self) -> tuple[FleetState | None, str]:
        try:
            return self.parts.actuator.observe(), ""
        except ActuatorUnavailable as exc:
            return None, f"fleet cannot be read: {exc}"

    def _collect(self, now: float, fleet: FleetState) -> tuple[FleetSnapshot, str]:
        try:
            snapshot = self.parts.metrics.collect(now, fleet)
        except Exception as exc:  # noqa: BLE001 - any source failure means "no metrics"
            snapshot = FleetSnapshot(time_s=now, source="error",
                                     status=SourceStatus.UNAVAILABLE, error=str(exc))
        if snapshot.status == SourceStatus.UNAVAILABLE:
            return snapshot, f"metrics unavailable: {snapshot.error or 'no answer'}"
        if now - snapshot.time_s > self.options.stale_after_s:
            return snapshot.model_copy(update={"status": SourceStatus.UNAVAILABLE}), (
                f"metrics stale: snapshot {now - snapshot.time_s:.0f} s old")
        return snapshot, ""

    def _bootstrap(self, loads: dict[str, Load], running: list[RunningVariant],
                   ) -> dict[str, Load]:
        """Servers with no replica running have nothing to measure: they are sized for
        their last known (else configured) load, so an empty fleet can start."""
        serving = {v.server for v in running if v.replicas > 0}
        out = dict(loads)
        for server in self.parts.spec.servers:
            if server.name not in out and server.name not in serving:
                out[server.name] = self._last_load(server.name, server.load)
        return out

    def _forecast(self, loads: dict[str, Load], now: float, windows: dict[str, float],
                  frozen: set[str],
                  ) -> tuple[dict[str, Series], dict[str, float], dict[str, Load]]:
        """Forecasts and sizing rates per server; a `frozen` server (nothing measured:
        its load is the last level, `_bootstrap`) is sized at that load and its series
        left as it is, so a trend is not extrapolated from no data."""
        forecaster = with_half_life(FORECASTERS.get(self.options.forecaster),
                                    self.options.forecast_half_life_s)
        series = dict(self.state.forecasts)
        forecast_rps: dict[str, float] = {}
        sizing: dict[str, Load] = {}
        for server, load in sorted(loads.items()):
            if server in frozen:
                forecast_rps[server], sizing[server] = load.arrival_rate_rps, load
                continue
            series[server] = forecaster.update(series.get(server), now, load.arrival_rate_rps)
            forecast_rps[server] = round(forecaster.predict(series[server],
                                                            self.options.startup_s), 6)
            current = upper_rate(load.arrival_rate_rps,
                                 windows.get(server, self.options.period_s),
                                 self.options.rate_margin_z)
            rate = sizing_rate(forecaster, series[server], current, self.options.startup_s)
            sizing[server] = load.model_copy(update={"arrival_rate_rps": round(rate, 6)})
        return series, forecast_rps, sizing

    def _tune(self, snapshot: FleetSnapshot, fleet: FleetState,
              ) -> tuple[TunerState, FleetSpec, int]:
        spec, tuner = self.parts.spec, self.parts.tuner
        if tuner is None or not self.options.tune:
            return self.state.tuner, spec, 0
        observations = tuner_observations(snapshot, fleet)
        try:
            state, _ = tuner.update(self.state.tuner, observations, spec.profiles)
        except Exception:  # noqa: BLE001 - a tuner failure must not stop the loop
            return self.state.tuner, spec, 0
        if any(f.served is not None for f in state.filters):
            spec = merge_profiles(spec, state, tuner.config.keep_configured_profiles)
        return state, spec, len(observations)

    def _rates(self, spec: FleetSpec, proposed: Plan, current: dict[tuple[str, str], int],
               ) -> Callable[[str, str], float | None] | None:
        """Per-replica rates under the current sizing, for the stabiliser to weigh holding
        a switch; computed only when the proposal switches some server. None when no
        server switches or the optimizer cannot say (the plans' own rates then stand)."""
        rates = getattr(self.parts.optimize, "rates", None)
        running = {(srv, acc) for (srv, acc), n in current.items() if n > 0}
        switching = any((a.server, v.accelerator) not in running
                        for a in proposed.allocations for v in a.variants if v.replicas > 0)
        if rates is None or not switching:
            return None
        try:
            found: dict[tuple[str, str], float] = rates(spec)
        except Exception:  # noqa: BLE001 - then the plans' own rates stand
            return None
        return lambda server, accelerator: found.get((server, accelerator))

    def _correct(self, snapshot: FleetSnapshot, fleet: FleetState,
                 spec: FleetSpec) -> CorrectionState:
        """New correction factors from the window (`controller.correction`); unchanged
        when correction is off or the optimizer cannot predict."""
        before = self.state.correction
        predict = getattr(self.parts.optimize, "predict_itl", None)
        if not self.options.correct or predict is None:
            return before
        try:
            observed = observations(snapshot, fleet, lambda *a: predict(spec, *a))
        except Exception:  # noqa: BLE001 - a failed prediction must not stop the loop
            return before
        servers = [s.name for s in spec.servers]
        return correct(before, observed, servers, self.options.correction)

    def _spec_for(self, spec: FleetSpec, sizing: dict[str, Load],
                  running: list[RunningVariant]) -> FleetSpec:
        """The spec to optimise: sized loads (last known for servers without metrics) and
        the current allocation of every server."""
        servers = []
        for server in spec.servers:
            load = sizing.get(server.name) or self._last_load(server.name, server.load)
            servers.append(server.model_copy(update={
                "load": load, "current": _current(server.name, running) or server.current,
                "time_scale": self.state.correction.for_server(server.name)}))
        return spec.model_copy(update={"servers": servers})

    def _last_load(self, server: str, configured: Load) -> Load:
        series = self.state.forecasts.get(server)
        if series is None:
            return configured
        return configured.model_copy(update={"arrival_rate_rps": round(series.level, 6)})

    def _solve(self, spec: FleetSpec) -> tuple[Plan | None, str]:
        try:
            plan = self.parts.optimize(spec, self.options.solver)
        except Exception as exc:  # noqa: BLE001 - a failed solve keeps the last plan
            return None, f"solve failed, last plan kept: {type(exc).__name__}: {exc}"
        status = plan.solver.status if plan.solver else "heuristic"
        if status in ("failed", "infeasible"):
            return None, f"solve {status}, last plan kept"
        return plan, ""

    def _actuate(self, plan: Plan, pid: str, current: dict[tuple[str, str], int],
                 base: dict) -> tuple[TickStatus, list, list[str]]:
        mode = self.options.mode
        if mode == "dry-run":
            return mode, planned_changes(plan, current), []
        reason = f"tick {base['tick']}: " + ", ".join(
            f"{s} {load.arrival_rate_rps:.2f} rps" for s, load in sorted(base["sizing"].items()))
        try:
            result = self.parts.actuator.apply(plan, plan_id=pid, reason=reason)
        except ActuatorUnavailable as exc:
            return "applied", [], [f"actuator unavailable: {exc}"]
        if mode == "metrics":
            return mode, planned_changes(plan, current), change_entries(result)[1]
        changes, failures = change_entries(result)
        return "applied", changes, failures

    # -- endings ------------------------------------------------------------------------

    def _held(self, watch: _Watch, base: dict, reasons: list[str],
              state: LoopState) -> TickReport:
        return self._finish(watch, base, "held", reasons, state)

    def _finish(self, watch: _Watch, base: dict, status: TickStatus, reasons: list[str],
                state: LoopState) -> TickReport:
        state = state.model_copy(update={"tick": base["tick"]})
        report = TickReport(status=status, reasons=[r for r in reasons if r],
                            timings_ms=dict(watch.ms), **base)
        self.state = state
        with watch("record"):
            self.parts.recorder.record(report, state)
        report = report.model_copy(update={"timings_ms": dict(watch.ms)})
        self.last_report = report
        return report


def _current(server: str, running: list[RunningVariant]) -> CurrentAllocation | None:
    mine = [v for v in running if v.server == server and v.replicas > 0]
    if not mine:
        return None
    top = max(mine, key=lambda v: (v.replicas, v.accelerator))
    return CurrentAllocation(accelerator=top.accelerator, replicas=top.replicas,
                             max_batch=top.max_batch)


def _windows(snapshot: FleetSnapshot) -> dict[str, float]:
    """Each server's measurement window, s (its variants' longest)."""
    out: dict[str, float] = {}
    for v in snapshot.variants:
        if v.server is not None:
            out[v.server] = max(out.get(v.server, 0.0), v.window_s)
    return out


def _tuned(state: TunerState) -> list[TunedParameters]:
    return [TunedParameters(model=t.model, accelerator=t.accelerator, alpha_ms=t.alpha_ms,
                            beta_ms=t.beta_ms, gamma_ms=t.gamma_ms, phase=t.phase,
                            updates=t.updates)
            for t in tuned_profiles(state)]
