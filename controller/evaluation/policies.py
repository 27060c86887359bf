"""The five ways of running a fleet that an evaluation compares, on the same arrivals and
the same simulated hardware.

| name | what it is |
|---|---|
| `static_peak` | the cheapest single card type sized (milp, one type) for the trace's peak 1-minute rate; never changes |
| `reactive` | a KEDA/HPA-style autoscaler on that card type: desired = ceil(replicas x max(waiting / target, KV usage / target)), 10% tolerance, scale-down stabilisation window 300 s; max batch from the peak sizing; replicas within each server's `max_replicas` and the spec's capacity |
| `inferno_greedy` | the real control loop with inferno's choices: greedy solver, one type per server, last-value "forecast", no stabiliser, true profiles, transition penalty only |
| `fleetplan` | the real control loop: milp, heterogeneous, Holt forecast, hysteresis stabiliser, tuner on, profiles starting `tuner_start_error` off |
| `clairvoyant` | milp (heterogeneous, true profiles) each period, sized for the true peak 1-minute rate until the next plan's new replicas are ready: a practical bound, not a proof |

Each policy gives an initial plan (its replicas are ready at t = 0) and then acts each
period through the `RunContext`'s actuator (the simulated cluster behind a recorder).
Everything is deterministic.

To extend: write a class with `initial_plan(ctx) -> Plan` and `tick(ctx, now) -> None`
and register a factory in `POLICIES` (and its name in `scenario.POLICY_NAMES`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from actuator.base import Actuator, variant_name
from controller.config import LoopOptions
from controller.evaluation.calibration import Sizer
from controller.evaluation.scenario import Scenario
from controller.evaluation.sizing import (
    RequestIndex,
    cheapest_single_type,
    peak_window_loads,
    single_type_specs,
    window_loads,
    with_loads,
)
from controller.loop import ControlLoop, LoopParts, Optimizer
from controller.safety import make_before_break
from controller.sources import MetricsSource
from controller.stabilize import StabilizerOptions
from controller.tick import TickReport
from specs.clock import FakeClock
from specs.documents import CurrentAllocation, FleetSpec, Load
from specs.errors import SpecError
from specs.plan import Plan
from specs.registry import Registry
from tuner.tuner import Tuner

INITIAL_WINDOW_S = 300.0
"""Dynamic policies start with a fleet sized for the first five minutes' mean rate."""


@dataclass
class RunContext:
    """What a policy sees: the scenario, the true spec, the arrivals, the cluster."""

    scenario: Scenario
    truth: FleetSpec
    index: RequestIndex
    actuator: Actuator
    metrics: MetricsSource
    sizer: Sizer

    def configured(self) -> dict[str, Load]:
        """The spec's configured load per server (token fallbacks)."""
        return {s.name: s.load for s in self.truth.servers}

    def servers(self) -> list[str]:
        """Server names."""
        return [s.name for s in self.truth.servers]

    def initial_loads(self) -> dict[str, Load]:
        """Mean load over the first window."""
        end = min(INITIAL_WINDOW_S, self.scenario.duration_s)
        return window_loads(self.index, self.servers(), 0.0, end, self.configured())

    def run_peak(self) -> dict[str, Load]:
        """Peak 1-minute load of the whole run."""
        return peak_window_loads(self.index, self.servers(), 0.0, self.scenario.duration_s,
                                 self.configured())


class Policy(Protocol):
    """One way of running the fleet."""

    def initial_plan(self, ctx: RunContext) -> Plan:
        """The fleet at t = 0 (ready)."""
        ...

    def tick(self, ctx: RunContext, now: float) -> None:
        """Act at `now` (may call `ctx.actuator.apply`)."""
        ...


def peak_single_type(ctx: RunContext, policy: str) -> tuple[str, Plan]:
    """The cheapest single card type and its plan for the run's peak load; a `SpecError`
    (bad input, exit 2) when no card type of the spec can serve it."""
    try:
        return cheapest_single_type(ctx.truth, ctx.run_peak(), ctx.sizer.solve)
    except ValueError:
        peaks = ", ".join(f"{s} {load.arrival_rate_rps:g} req/s"
                          for s, load in sorted(ctx.run_peak().items()))
        raise SpecError(f"{policy}: no single card type of the spec can serve the run's "
                        f"peak 1-minute load ({peaks}) within its capacity and targets",
                        json_path="$.capacity",
                        hint="raise the capacity, or leave static_peak and reactive out "
                        "with --policies") from None


class StaticPeak:
    """Sized once for the peak, on the cheapest single card type."""

    def __init__(self) -> None:
        self.card_type = ""

    def initial_plan(self, ctx: RunContext) -> Plan:
        """The peak plan."""
        self.card_type, plan = peak_single_type(ctx, "static_peak")
        return plan

    def tick(self, ctx: RunContext, now: float) -> None:
        """Never changes anything."""


@dataclass
class Reactive:
    """KEDA/HPA-style threshold autoscaling on one card type (see the module table)."""

    target_waiting: float = 2.0
    target_kv: float = 0.8
    tolerance: float = 0.1
    down_window_s: float = 300.0
    template: Plan | None = None
    card_type: str = ""
    history: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    def initial_plan(self, ctx: RunContext) -> Plan:
        """Max batch from the peak sizing of the cheapest type; replicas for the start."""
        self.card_type, self.template = peak_single_type(ctx, "reactive")
        restricted = single_type_specs(ctx.truth)[self.card_type]
        start = ctx.sizer.solve(with_loads(restricted, ctx.initial_loads()), "milp",
                                heterogeneous=False)
        counts = {(a.server, v.accelerator): v.replicas
                  for a in start.allocations for v in a.variants}
        return _with_counts(self.template, lambda s, acc, n: counts.get((s, acc), 1))

    def tick(self, ctx: RunContext, now: float) -> None:
        """One HPA evaluation per variant, then bounded by the servers' `max_replicas` and
        the spec's capacity (`fit_capacity`): a saturated fleet cannot grow without bound."""
        assert self.template is not None
        fleet = ctx.actuator.observe()
        snapshot = ctx.metrics.collect(now, fleet)
        figures = {v.name: v for v in snapshot.variants}
        live = {v.variant: v.replicas for v in fleet.variants}
        bounds = {s.name: (max(1, s.min_replicas), s.max_replicas or 10**6)
                  for s in ctx.truth.servers}
        wanted = {(a.server, v.accelerator): self._desired(
                      now, variant_name(a.server, v.accelerator),
                      live.get(variant_name(a.server, v.accelerator), 0),
                      figures.get(variant_name(a.server, v.accelerator)), bounds[a.server])
                  for a in self.template.allocations for v in a.variants}
        floors = {key: bounds[key[0]][0] for key in wanted}
        counts = fit_capacity(ctx.truth, wanted, floors)
        plan = _with_counts(self.template, lambda s, acc, n: counts[(s, acc)])
        ctx.actuator.apply(plan, plan_id=f"reactive-{now:.0f}", reason="hpa")

    def _desired(self, now: float, name: str, current: int, figure: object,
                 bounds: tuple[int, int]) -> int:
        waiting = getattr(getattr(figure, "waiting", None), "value", None)
        kv = getattr(getattr(figure, "kv_cache_usage", None), "value", None)
        if current == 0 or waiting is None:
            want = max(current, bounds[0])
        else:
            ratio = max(waiting / self.target_waiting, (kv or 0.0) / self.target_kv)
            want = current if abs(ratio - 1.0) <= self.tolerance else math.ceil(current * ratio)
        want = min(max(want, bounds[0]), bounds[1])
        past = [(t, n) for t, n in self.history.get(name, []) if t > now - self.down_window_s]
        self.history[name] = [*past, (now, want)]
        return max(n for _, n in self.history[name])


def cards_per_replica(spec: FleetSpec) -> dict[tuple[str, str], tuple[str, int]]:
    """(server, accelerator) -> (card type, cards one replica takes)."""
    accelerators = {a.name: a for a in spec.accelerators}
    units = {(p.model, p.accelerator): p.units_per_replica for p in spec.profiles}
    out = {}
    for s in spec.servers:
        for (model, acc), n in units.items():
            if model == s.model and acc in accelerators:
                out[(s.name, acc)] = (accelerators[acc].card_type,
                                      n * accelerators[acc].multiplicity)
    return out


def fit_capacity(spec: FleetSpec, wanted: dict[tuple[str, str], int],
                 floors: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """`wanted` replicas per (server, accelerator), trimmed until every card type's
    cards fit the spec's capacity: one replica at a time off the largest variant (ties
    by name), never below its floor (the server's min_replicas)."""
    cards = cards_per_replica(spec)
    counts = dict(wanted)
    for card, limit in sorted(spec.capacity.items()):
        mine = sorted(k for k in counts if k in cards and cards[k][0] == card)
        used = sum(counts[k] * cards[k][1] for k in mine)
        while used > limit:
            over = [k for k in mine if counts[k] > floors.get(k, 0)]
            if not over:
                break
            top = max(over, key=lambda k: (counts[k], k))
            counts[top] -= 1
            used -= cards[top][1]
    return counts


def _with_counts(plan: Plan, count: Callable[[str, str, int], int]) -> Plan:
    """`plan` with each variant's replicas from `count(server, accelerator, planned)`."""
    allocations = []
    for a in plan.allocations:
        variants = [v.model_copy(update={"replicas": count(a.server, v.accelerator, v.replicas)})
                    for v in a.variants]
        allocations.append(a.model_copy(update={"variants": variants}))
    return plan.model_copy(update={"allocations": allocations})


@dataclass
class LoopPolicy:
    """The real `ControlLoop` in virtual time with the given choices."""

    solver: str
    heterogeneous: bool
    forecaster: str
    stabilizer: str
    tune: bool
    profiles_off: bool
    clock: FakeClock = field(default_factory=FakeClock)
    loop: ControlLoop | None = None
    reports: list[TickReport] = field(default_factory=list)

    def initial_plan(self, ctx: RunContext) -> Plan:
        """The loop's solver on the policy's spec at the first window's load."""
        spec = self._spec(ctx)
        options = LoopOptions(period_s=ctx.scenario.period_s, startup_s=ctx.scenario.startup_s,
                              forecaster=self.forecaster, stabilizer=self.stabilizer,
                              stabilizer_options=StabilizerOptions(
                                  scale_down_delay_s=ctx.scenario.loop.scale_down_delay_s),
                              forecast_half_life_s=ctx.scenario.loop.forecast_half_life_s,
                              rate_margin_z=ctx.scenario.loop.rate_margin_z,
                              tune=self.tune,
                              solver=self.solver)
        parts = LoopParts(spec=spec, metrics=ctx.metrics, actuator=ctx.actuator,
                          clock=self.clock, tuner=Tuner() if self.tune else None,
                          optimize=Optimizer(ctx.sizer.generators(spec)))
        self.loop = ControlLoop(parts, options)
        return ctx.sizer.solve(spec, self.solver)

    def tick(self, ctx: RunContext, now: float) -> None:
        """One loop tick."""
        assert self.loop is not None
        self.clock.set(now)
        self.reports.append(self.loop.tick(now))

    def _spec(self, ctx: RunContext) -> FleetSpec:
        spec = with_loads(ctx.truth, ctx.initial_loads())
        options = spec.optimizer.model_copy(update={"heterogeneous": self.heterogeneous,
                                                    "solver": self.solver})
        spec = spec.model_copy(update={"optimizer": options})
        if self.profiles_off:
            factor = 1.0 - ctx.scenario.tuner_start_error
            profiles = [p.model_copy(update={"alpha_ms": p.alpha_ms * factor,
                                             "beta_ms": p.beta_ms * factor,
                                             "gamma_ms": p.gamma_ms * factor})
                        for p in spec.profiles]
            spec = spec.model_copy(update={"profiles": profiles})
        return spec


class Clairvoyant:
    """milp each period for the true peak rate until the next plan's replicas are ready."""

    def __init__(self, foresight: RequestIndex | None = None) -> None:
        self.last: Plan | None = None
        self.foresight = foresight
        """The arrivals it plans for (default: the run's own; bench/burst_blind.py gives
        it the scenario without its bursts, to measure what not foreseeing them costs)."""

    def initial_plan(self, ctx: RunContext) -> Plan:
        """Sized for the first horizon."""
        self.last = self._plan(ctx, 0.0)
        return self.last

    def tick(self, ctx: RunContext, now: float) -> None:
        """Re-plan with the future known; capacity is removed only once its replacement
        is ready (`controller.safety.make_before_break`)."""
        plan, _ = make_before_break(self._plan(ctx, now), ctx.actuator.observe().variants,
                                    ctx.truth, self.last)
        ctx.actuator.apply(plan, plan_id=f"clairvoyant-{now:.0f}", reason="true future rate")
        self.last = plan

    def _plan(self, ctx: RunContext, now: float) -> Plan:
        s = ctx.scenario
        horizon = now + s.period_s + s.startup_s
        loads = peak_window_loads(self.foresight or ctx.index, ctx.servers(), now,
                                  max(horizon, now + 60.0),
                                  ctx.configured())
        spec = _with_current(with_loads(ctx.truth, loads), ctx.actuator) if now else \
            with_loads(ctx.truth, loads)
        return ctx.sizer.solve(spec, "milp", heterogeneous=True)


def _with_current(spec: FleetSpec, actuator: Actuator) -> FleetSpec:
    """Each server's current allocation (its largest live variant), for the transition
    penalty."""
    fleet = actuator.observe()
    servers = []
    for s in spec.servers:
        mine = [v for v in fleet.variants if v.server == s.name and v.replicas > 0]
        top = max(mine, key=lambda v: (v.replicas, v.accelerator), default=None)
        current = None if top is None else CurrentAllocation(
            accelerator=top.accelerator, replicas=top.replicas, max_batch=top.max_batch)
        servers.append(s.model_copy(update={"current": current}))
    return spec.model_copy(update={"servers": servers})


POLICIES: Registry[Callable[[], Policy]] = Registry("policy")
POLICIES.register("static_peak", StaticPeak)
POLICIES.register("reactive", Reactive)
POLICIES.register("inferno_greedy", lambda: LoopPolicy(
    "greedy", heterogeneous=False, forecaster="last_value", stabilizer="none", tune=False,
    profiles_off=False))
POLICIES.register("fleetplan", lambda: LoopPolicy(
    "milp", heterogeneous=True, forecaster="holt", stabilizer="hysteresis", tune=True,
    profiles_off=True))
POLICIES.register("clairvoyant", Clairvoyant)
