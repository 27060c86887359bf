"""Loads measured from the arrivals, and the one-shot sizings the baselines rely on.

- `RequestIndex`: the arrivals per server, by time. `window_loads(index, servers, start,
  end)`: each server's load (rate, mean tokens) over a window; `peak_window_loads` the
  largest rate over 1-minute bins of the window, with its mean tokens: over the whole run
  it is what an operator sizing for a known trace's peak would use.
- `solve(spec, solver, heterogeneous)`: the optimizer with reproducible output (the
  evaluation's policies use `controller.evaluation.calibration.Sizer.solve`, which also
  knows the measured laws and workload samples).
- `single_type_specs(spec)`: the spec restricted to one card type at a time (e.g. `L4`
  keeps `L4` and `2xL4`); `cheapest_single_type(spec, loads, solve)` the card type whose
  plan serves every server within its targets at the lowest cost.

To extend: another load statistic is one more function over `SimRequest`s.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from optimizer.api import optimize
from simulator.records import SimRequest
from specs.documents import FleetSpec, Load
from specs.plan import Plan


class RequestIndex:
    """The arrivals per server, by time, for fast window queries."""

    def __init__(self, requests: Sequence[SimRequest]) -> None:
        self.by_server: dict[str, list[SimRequest]] = {}
        for r in sorted(requests, key=lambda r: r.time_s):
            self.by_server.setdefault(r.server, []).append(r)
        self.times = {s: [r.time_s for r in rs] for s, rs in self.by_server.items()}

    def window(self, server: str, start: float, end: float) -> list[SimRequest]:
        """The server's arrivals in [start, end)."""
        times = self.times.get(server, [])
        return self.by_server.get(server, [])[bisect_left(times, start):bisect_left(times, end)]


def window_loads(index: RequestIndex, servers: Iterable[str], start: float, end: float,
                 fallback: Mapping[str, Load]) -> dict[str, Load]:
    """Per server: arrivals in [start, end) as a rate, with their mean sizes (the
    `fallback` tokens when none arrived)."""
    span = max(end - start, 1e-9)
    out = {}
    for server in servers:
        mine = index.window(server, start, end)
        out[server] = _load(mine, len(mine) / span, fallback[server])
    return out


def peak_window_loads(index: RequestIndex, servers: Iterable[str], start: float, end: float,
                      fallback: Mapping[str, Load], bin_s: float = 60.0) -> dict[str, Load]:
    """Per server: the largest rate over `bin_s` bins of [start, end), with the window's
    mean sizes."""
    out = {}
    for server in servers:
        mine = index.window(server, start, end)
        bins = max(1, math.ceil((end - start) / bin_s))
        counts = np.bincount([min(int((r.time_s - start) // bin_s), bins - 1) for r in mine],
                             minlength=bins)
        span = min(bin_s, end - start)
        out[server] = _load(mine, float(counts.max()) / span if mine else 0.0,
                            fallback[server])
    return out


def _load(requests: Sequence[SimRequest], rate: float, fallback: Load) -> Load:
    if not requests:
        return fallback.model_copy(update={"arrival_rate_rps": round(rate, 6)})
    return Load(arrival_rate_rps=round(rate, 6),
                in_tokens=round(float(np.mean([r.prompt_tokens for r in requests])), 3),
                out_tokens=round(max(1.0, float(np.mean([r.output_tokens for r in requests]))),
                                 3))


def with_loads(spec: FleetSpec, loads: Mapping[str, Load]) -> FleetSpec:
    """The spec with each server's load replaced where `loads` has one."""
    servers = [s.model_copy(update={"load": loads.get(s.name, s.load)}) for s in spec.servers]
    return spec.model_copy(update={"servers": servers})


def solve(spec: FleetSpec, solver: str, heterogeneous: bool | None = None) -> Plan:
    """Optimise with `solver`, no timings in the plan (reproducible)."""
    if heterogeneous is not None:
        options = spec.optimizer.model_copy(update={"heterogeneous": heterogeneous})
        spec = spec.model_copy(update={"optimizer": options})
    return optimize(spec, solver=solver, timer=None)


def single_type_specs(spec: FleetSpec) -> dict[str, FleetSpec]:
    """Per card type: the spec with only that type's accelerators, profiles and capacity."""
    out = {}
    for card in sorted({a.card_type for a in spec.accelerators}):
        names = {a.name for a in spec.accelerators if a.card_type == card}
        out[card] = spec.model_copy(update={
            "accelerators": [a for a in spec.accelerators if a.name in names],
            "profiles": [p for p in spec.profiles if p.accelerator in names],
            "capacity": {k: v for k, v in spec.capacity.items() if k == card},
            "servers": [s.model_copy(update={"current": None}) for s in spec.servers],
        })
    return out


Solve = Callable[[FleetSpec, str, bool | None], Plan]


def cheapest_single_type(spec: FleetSpec, loads: Mapping[str, Load],
                         solver: Solve | None = None) -> tuple[str, Plan]:
    """The card type whose plan (milp, one type) serves every server within its targets
    at the lowest cost; ties by name. Raises ValueError when no single type can."""
    solver = solver or solve
    best: tuple[float, str, Plan] | None = None
    for card, restricted in single_type_specs(spec).items():
        models = {p.model for p in restricted.profiles}
        if any(s.model not in models for s in restricted.servers):
            continue
        plan = solver(with_loads(restricted, loads), "milp", False)
        if plan.unserved or not all(a.meets_targets for a in plan.allocations):
            continue
        if best is None or plan.total_cost_per_hour < best[0]:
            best = (plan.total_cost_per_hour, card, plan)
    if best is None:
        raise ValueError("no single card type can serve every server at its peak load")
    return best[1], best[2]
