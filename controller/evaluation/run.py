"""Run one policy over a scenario on the simulated cluster, in virtual time.

`run_policy(scenario, name, requests)` builds a `SimCluster` with the true profiles,
starts it with the policy's initial plan (replicas ready at t = 0), submits the
arrivals, and then every `period_s` advances virtual time and lets the policy act. Every
`SAMPLE_S` it samples the fleet: replicas per accelerator (any phase: starting and
draining pods are paid for), ready replicas, cost per hour, and each server's capacity
(ready replicas times the planned max rate per replica of their variant). After
`duration_s` no request arrives; the run goes on for `drain_s` so requests in flight can
finish (cost is counted over `duration_s` only). Returns a `PolicyRun`: the request
records (compact: `simulator.records.RecordTable`), the samples, every plan applied with
its changes, and the wall time.

To extend: another per-sample figure is one more field of `Sample` filled in `_sample`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from actuator.base import ActuationResult, FleetState, VariantChange, variant_name
from collector.snapshot import FleetSnapshot
from controller.evaluation.calibration import Sizer, collector_window, make_sizer
from controller.evaluation.policies import POLICIES, Policy, RunContext
from controller.evaluation.progress import PolicyProgress
from controller.evaluation.scenario import Scenario
from controller.evaluation.sizing import RequestIndex
from simulator.cluster import SimCluster, SimConfig
from simulator.records import RecordTable, SimRequest
from simulator.timing import TableLaw, read_known_table
from specs.documents import FleetSpec
from specs.errors import SpecError
from specs.plan import Plan

SAMPLE_S = 5.0
"""How often the fleet is sampled for cost and plots, s of virtual time."""


@dataclass(frozen=True)
class Applied:
    """One plan applied, when, and what it changed."""

    time_s: float
    plan: Plan
    changes: tuple[VariantChange, ...]


class RecordingActuator:
    """The cluster as the loop's `Actuator` and `MetricsSource`, remembering every plan
    applied (and each variant's planned max rate per replica)."""

    def __init__(self) -> None:
        self.cluster: SimCluster | None = None
        self.applied: list[Applied] = []
        self.rates: dict[str, float] = {}

    def _sim(self) -> SimCluster:
        if self.cluster is None:
            raise RuntimeError("the cluster is not built yet (policy acted before t = 0)")
        return self.cluster

    def observe(self) -> FleetState:
        """The cluster's fleet."""
        return self._sim().observe()

    def collect(self, now: float, fleet: FleetState) -> FleetSnapshot:
        """The cluster's window figures."""
        return self._sim().collect(now, fleet)

    def apply(self, plan: Plan, *, plan_id: str, reason: str) -> ActuationResult:
        """Apply on the cluster and record it."""
        cluster = self._sim()
        result = cluster.apply(plan, plan_id=plan_id, reason=reason)
        self.applied.append(Applied(cluster.now, plan, result.changes))
        for alloc in plan.allocations:
            for v in alloc.variants:
                self.rates[variant_name(alloc.server, v.accelerator)] = \
                    v.max_rate_per_replica_rps
        return result


@dataclass(frozen=True)
class Sample:
    """The fleet at one instant."""

    time_s: float
    replicas: dict[str, int]
    """Replicas per accelerator, any phase."""
    ready: dict[str, int]
    """Ready replicas per accelerator."""
    cost_per_hour: float
    capacity_rps: dict[str, float]
    """Per server: ready replicas times planned max rate per replica."""


@dataclass
class PolicyRun:
    """Everything one policy's run produced."""

    policy: str
    records: RecordTable
    """Per-request outcomes, as compact columns (iterate for `RequestRecord`s)."""
    samples: list[Sample]
    applied: list[Applied]
    wall_s: float
    ticks: int = 0
    notes: list[str] = field(default_factory=list)


def sim_config(scenario: Scenario, data_dir: Path) -> SimConfig:
    """The simulated hardware of a scenario (timing tables read from `data_dir`)."""
    s = scenario.sim
    return SimConfig(startup_s=scenario.startup_s, window_s=collector_window(scenario),
                     noise_cv=s.noise_cv,
                     seed=s.seed, kv_capacity_tokens=s.kv_capacity_tokens,
                     max_queue=s.max_queue, laws=timing_laws(scenario, data_dir))


def timing_laws(scenario: Scenario, data_dir: Path) -> dict[tuple[str, str], TableLaw]:
    """(model, accelerator) -> the law of its measured timing table."""
    out = {}
    for i, t in enumerate(scenario.sim.timing):
        path = Path(t.path) if Path(t.path).is_absolute() else data_dir / t.path
        try:
            table = read_known_table(path, model=t.table_model, hardware=t.hardware,
                                     tensor_parallel=t.tensor_parallel)
        except SpecError as exc:
            raise SpecError(f"timing table: {exc}", json_path=f"$.sim.timing[{i}]",
                            hint="pass --data-dir (the folder holding splitwise/)") from None
        out[(t.model, t.accelerator)] = TableLaw.from_table(table)
    return out


def run_policy(scenario: Scenario, name: str, requests: Sequence[SimRequest],
               truth: FleetSpec | None = None, data_dir: Path = Path("."),
               sizer: Sizer | None = None, progress: PolicyProgress | None = None,
               ) -> PolicyRun:
    """Run policy `name` over the scenario (see the module docstring). `sizer` is how the
    policy sizes (default: the scenario's laws and the arrivals' workload samples, tables
    in memory); pass one sizer to every policy of a comparison so they share tables.
    `progress(name, now, end)` is called after every control period."""
    started = time.perf_counter()
    truth = truth or scenario.fleet()
    policy: Policy = POLICIES.get(name)()
    actuator = RecordingActuator()
    index = RequestIndex(requests)
    sizer = sizer or make_sizer(scenario, index, timing_laws(scenario, data_dir))
    ctx = RunContext(scenario, truth, index, actuator, actuator, sizer)
    initial = policy.initial_plan(ctx)
    cluster = SimCluster(truth, sim_config(scenario, data_dir), initial={
        (a.server, v.accelerator): v.replicas for a in initial.allocations for v in a.variants})
    actuator.cluster = cluster
    actuator.apply(initial, plan_id="initial", reason="initial fleet")
    cluster.submit(requests)
    report = (lambda now: progress(name, now, scenario.duration_s)) if progress else None
    samples = _run_periods(scenario, policy, ctx, cluster, actuator, report)
    cluster.advance_to(scenario.duration_s + scenario.drain_s)
    return PolicyRun(name, RecordTable(cluster.records), samples, actuator.applied,
                     time.perf_counter() - started,
                     ticks=int(scenario.duration_s // scenario.period_s),
                     notes=_notes(policy))


def _run_periods(scenario: Scenario, policy: Policy, ctx: RunContext, cluster: SimCluster,
                 actuator: RecordingActuator,
                 progress: Callable[[float], None] | None = None) -> list[Sample]:
    samples = [_sample(cluster, actuator, 0.0)]
    t, n = 0.0, 0
    while t < scenario.duration_s - 1e-9:
        n += 1
        end = min(n * scenario.period_s, scenario.duration_s)
        while t < end - 1e-9:
            t = min(t + SAMPLE_S, end)
            cluster.advance_to(t)
            samples.append(_sample(cluster, actuator, t))
        if t < scenario.duration_s - 1e-9:
            policy.tick(ctx, t)
        if progress is not None:
            progress(t)
    return samples


def _sample(cluster: SimCluster, actuator: RecordingActuator, now: float) -> Sample:
    spec = cluster.spec
    cost = {a.name: a.cost_per_hour for a in spec.accelerators}
    units = {(p.model, p.accelerator): p.units_per_replica for p in spec.profiles}
    model = {s.name: s.model for s in spec.servers}
    rate = actuator.rates
    replicas: dict[str, int] = {}
    ready: dict[str, int] = {}
    capacity = {s.name: 0.0 for s in spec.servers}
    total = 0.0
    for r in cluster.replicas.values():
        replicas[r.accelerator] = replicas.get(r.accelerator, 0) + 1
        total += cost[r.accelerator] * units.get((model[r.server], r.accelerator), 1)
        if r.phase == "ready":
            ready[r.accelerator] = ready.get(r.accelerator, 0) + 1
            capacity[r.server] += rate.get(r.variant, 0.0)
    return Sample(now, dict(sorted(replicas.items())), dict(sorted(ready.items())),
                  round(total, 6), capacity)


def _notes(policy: Policy) -> list[str]:
    card = getattr(policy, "card_type", "")
    out = [f"single card type: {card}"] if card else []
    reports = getattr(policy, "reports", [])
    held = sum(1 for r in reports if r.status != "applied")
    if reports:
        out.append(f"{len(reports)} ticks, {held} not applied")
    return out
