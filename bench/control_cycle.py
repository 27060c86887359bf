"""Tick time of the control loop split by stage, for 10, 100 and 1,000 servers.

    .venv/bin/python bench/control_cycle.py [--sizes 10,100,1000] [--ticks 4] [--solver NAME]

The fleet is specs/examples/heterogeneous-fleet.json with its five servers repeated (loads
varied per copy, capacity scaled), measured by an in-memory metrics source and changed by
an in-memory actuator, so the numbers are the controller's own work: forecast, optimise
(candidates + solve, the sizing cache warm after the first tick), stabilise, record
(decision-log line serialised, not written). The tuner has no observations here. The
first tick (cold sizing cache) is reported separately from the mean of the others.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from actuator.base import ActuationResult, FleetState, VariantState, variant_name
from collector.snapshot import Figure, FleetSnapshot, ServerSnapshot, SourceStatus
from controller.config import LoopOptions
from controller.loop import ControlLoop, LoopParts
from controller.tick import TickReport
from specs.clock import FakeClock
from specs.documents import FleetSpec
from specs.loading import load_fleet
from specs.plan import Plan

EXAMPLE = Path(__file__).resolve().parents[1] / "specs" / "examples" / "heterogeneous-fleet.json"


def fleet(n: int) -> FleetSpec:
    """`n` servers: the example's five repeated, loads varied, capacity scaled."""
    base = load_fleet(EXAMPLE).spec
    servers = []
    for i in range(n):
        s = base.servers[i % len(base.servers)]
        load = s.load.model_copy(update={"arrival_rate_rps": s.load.arrival_rate_rps
                                         * (0.5 + (i * 37 % 100) / 100)})
        servers.append(s.model_copy(update={"name": f"{s.name}-{i:04d}", "load": load,
                                            "current": None}))
    scale = max(1, n // 5)
    capacity = {k: v * scale for k, v in base.capacity.items()}
    return base.model_copy(update={"servers": servers, "capacity": capacity})


class Source:
    def __init__(self, spec: FleetSpec) -> None:
        self.spec, self.factor = spec, 1.0

    def collect(self, now: float, fleet: FleetState) -> FleetSnapshot:
        return FleetSnapshot(time_s=now, source="bench", status=SourceStatus.OK, servers=tuple(
            ServerSnapshot(name=s.name, variants=(),
                           arrival_rate_rps=Figure.ok(s.load.arrival_rate_rps * self.factor),
                           in_tokens=Figure.ok(s.load.in_tokens),
                           out_tokens=Figure.ok(s.load.out_tokens)) for s in self.spec.servers))


class Fleet:
    def __init__(self, spec: FleetSpec) -> None:
        self.models = {s.name: s.model for s in spec.servers}
        self.replicas: dict[tuple[str, str], int] = {}

    def observe(self) -> FleetState:
        return FleetState(tuple(VariantState(variant_name(s, a), s, self.models[s], a, n, n)
                                for (s, a), n in sorted(self.replicas.items()) if n))

    def apply(self, plan: Plan, *, plan_id: str, reason: str) -> ActuationResult:
        self.replicas = {(a.server, v.accelerator): v.replicas for a in plan.allocations
                         for v in a.variants}
        return ActuationResult("apply", plan_id)


class Serialise:
    def record(self, report: TickReport, state: object) -> None:
        report.model_dump_json()


def run(n: int, ticks: int, solver: str | None) -> list[TickReport]:
    spec = fleet(n)
    source, clock = Source(spec), FakeClock(0.0)
    loop = ControlLoop(LoopParts(spec=spec, metrics=source, actuator=Fleet(spec), clock=clock,
                                 recorder=Serialise()), LoopOptions(solver=solver))
    reports = []
    for i in range(ticks):
        source.factor = 1.0 + 0.2 * (i % 3)
        reports.append(loop.tick())
        clock.advance(60)
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--ticks", type=int, default=4)
    parser.add_argument("--solver", default=None, help="solver (default: the spec's, milp)")
    args = parser.parse_args()
    stages = ("observe", "collect", "forecast", "tune", "optimize", "stabilize", "actuate",
              "record")
    print(f"| servers | tick | {' | '.join(stages)} | total ms |")
    print("|---:|---|" + "---:|" * (len(stages) + 1))
    for n in (int(x) for x in args.sizes.split(",")):
        reports = run(n, args.ticks, args.solver)
        assert all(r.status == "applied" for r in reports), [r.reasons for r in reports]
        for label, chosen in (("first", reports[:1]), ("warm mean", reports[1:])):
            if not chosen:
                continue
            cells = [statistics.fmean(r.timings_ms.get(s, 0.0) for r in chosen) for s in stages]
            total = statistics.fmean(r.total_ms for r in chosen)
            print(f"| {n} | {label} | " + " | ".join(f"{c:.1f}" for c in cells)
                  + f" | {total:.0f} |", flush=True)


if __name__ == "__main__":
    main()
