"""What a policy's run achieved: cost, SLO attainment, latency percentiles, churn.

A request meets its class's targets when its TTFT is within the class's `ttft_ms` for its
model and its own mean ITL (decode time over tokens after the first) within `itl_ms`
(a target of 0 is no target), whatever statistic the class puts the target on: the
share of requests meeting both is the attainment. A request rejected or unfinished at
the end of the drain counts as a miss. Percentiles are over finished requests.

Cost is the time-average of the sampled fleet cost over the run (every replica in any
phase is paid for), in the spec's currency per hour; `gpu_hours` the accelerator-hours
per accelerator. A scaling action is one variant created, scaled or deleted by a plan
after the initial one; an accelerator switch is a plan that changes the set of
accelerators a server runs on.

To extend: another figure is one more key in `summarize`'s dictionary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from controller.evaluation.run import Applied, PolicyRun, Sample
from simulator.records import RequestRecord
from specs.documents import FleetSpec

GOALS = {"slo_attainment": 0.99, "below_static_peak": 0.30, "below_reactive": 0.15,
         "within_clairvoyant": 0.10}
"""The issue's goals for fleetplan's row."""


def _pct(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def targets_by_server(spec: FleetSpec) -> dict[str, tuple[float, float]]:
    """Per server: (TTFT ms, ITL ms) targets of its class for its model (0: none)."""
    classes = {c.name: c for c in spec.service_classes}
    out = {}
    for s in spec.servers:
        target = classes[s.service_class].target_for(s.model)
        out[s.name] = (target.ttft_ms, target.itl_ms) if target else (0.0, 0.0)
    return out


def meets(record: RequestRecord, ttft_ms: float, itl_ms: float) -> bool:
    """True when the request finished within both targets."""
    if record.finish_s is None or record.ttft_s is None:
        return False
    if ttft_ms and record.ttft_s * 1000.0 > ttft_ms:
        return False
    itl = record.itl_s
    return not (itl_ms and itl is not None and itl * 1000.0 > itl_ms)


def summarize(run: PolicyRun, spec: FleetSpec, duration_s: float) -> dict[str, Any]:
    """The policy's row of `summary.json`."""
    targets = targets_by_server(spec)
    records = run.records
    done = [r for r in records if r.finish_s is not None and r.ttft_s is not None]
    met = [meets(r, *targets[r.server]) for r in records]
    ttft = [r.ttft_s * 1000.0 for r in done]  # type: ignore[operator]
    itl = [r.itl_s * 1000.0 for r in done if r.itl_s is not None]
    e2e = [(r.finish_s - r.arrival_s) * 1000.0 for r in done]  # type: ignore[operator]
    actions, switches = churn(run.applied)
    return {
        "cost": round(mean_cost(run.samples, duration_s), 4),
        "slo_attainment": round(sum(met) / len(records), 5) if records else None,
        "slo_attainment_by_class": by_class(records, met),
        "requests": len(records),
        "unfinished": len(records) - len(done),
        **{f"ttft_p{q}_ms": _pct(ttft, q) for q in (50, 95, 99)},
        **{f"itl_p{q}_ms": _pct(itl, q) for q in (50, 95, 99)},
        **{f"e2e_p{q}_ms": _pct(e2e, q) for q in (50, 95, 99)},
        "scaling_actions": actions,
        "accelerator_switches": switches,
        "gpu_hours": gpu_hours(run.samples, duration_s),
        "wall_s": round(run.wall_s, 2),
        "notes": run.notes,
    }


def by_class(records: Sequence[RequestRecord], met: Sequence[bool]) -> dict[str, Any]:
    """Per service class: requests and the share meeting the targets."""
    out: dict[str, list[int]] = {}
    for r, ok in zip(records, met, strict=True):
        counts = out.setdefault(r.service_class or "", [0, 0])
        counts[0] += 1
        counts[1] += ok
    return {c: {"requests": n, "attainment": round(m / n, 5)} for c, (n, m) in sorted(out.items())}


def _durations(samples: Sequence[Sample], duration_s: float) -> list[float]:
    """How long each sample's fleet stood (until the next sample, or the end)."""
    times = [s.time_s for s in samples] + [duration_s]
    return [max(0.0, min(b, duration_s) - a) for a, b in zip(times, times[1:], strict=False)]


def mean_cost(samples: Sequence[Sample], duration_s: float) -> float:
    """Time-averaged fleet cost per hour over [0, duration_s]."""
    spans = _durations(samples, duration_s)
    return sum(s.cost_per_hour * d for s, d in zip(samples, spans, strict=True)) / duration_s


def gpu_hours(samples: Sequence[Sample], duration_s: float) -> dict[str, float]:
    """Replica-hours per accelerator over the run."""
    out: dict[str, float] = {}
    for s, d in zip(samples, _durations(samples, duration_s), strict=True):
        for acc, n in s.replicas.items():
            out[acc] = out.get(acc, 0.0) + n * d / 3600.0
    return {k: round(v, 4) for k, v in sorted(out.items())}


def churn(applied: Sequence[Applied]) -> tuple[int, int]:
    """(scaling actions, accelerator switches) after the initial plan."""
    actions = sum(1 for a in applied[1:] for c in a.changes
                  if c.kind in ("create", "scale", "delete"))
    switches = 0
    previous = _accelerators(applied[0]) if applied else {}
    for a in applied[1:]:
        now = _accelerators(a)
        switches += sum(1 for server, accs in now.items()
                        if previous.get(server) and accs and accs != previous[server])
        previous = {**previous, **now}
    return actions, switches


def _accelerators(applied: Applied) -> dict[str, frozenset[str]]:
    return {a.server: frozenset(v.accelerator for v in a.variants if v.replicas > 0)
            for a in applied.plan.allocations}


def goals(policies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """fleetplan's row against the goals: each figure, its goal, and whether it holds."""
    fp = policies.get("fleetplan")
    if fp is None:
        return {}
    out: dict[str, Any] = {"slo_attainment": {
        "value": fp["slo_attainment"], "goal": GOALS["slo_attainment"],
        "met": (fp["slo_attainment"] or 0) >= GOALS["slo_attainment"]}}
    for key, other, sign in (("below_static_peak", "static_peak", 1),
                             ("below_reactive", "reactive", 1),
                             ("within_clairvoyant", "clairvoyant", -1)):
        if other not in policies or not policies[other]["cost"]:
            continue
        saving = 1.0 - fp["cost"] / policies[other]["cost"]
        goal = GOALS[key]
        out[key] = {"value": round(saving, 4), "goal": goal * sign,
                    "met": saving >= goal if sign > 0 else -saving <= goal}
    return out
