"""Turn a solver's `Solution` into the `specs.plan.Plan` document.

Per server (in name order): an allocation with one variant per accelerator, or none
for a server scaled to zero; router weights proportional to the load each variant is
sized for (a split sends each variant demand x its share of the summed max rates);
predicted TTFT/ITL per variant at its per-replica load (the targets' statistic); the
token budget the candidate was sized with (None for a zero-load candidate);
what could not be served and why (no accelerator meets the targets, or capacity,
with `partial` when best effort gave it fewer replicas than its targets need); cards
used per card type, total cost and the solver's report.

A best-effort variant is sized for the whole load (router weight 1); its predicted
latencies are at that overload, so they show how far from the targets it is.

To extend: a new plan field is filled here from the `Solution` or the `Problem`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from optimizer.problem import (
    Assignment,
    Problem,
    ServerCandidates,
    Solution,
    Variant,
    cards_by_type,
)
from queue_models.base import ServiceParams, Targets
from specs.documents import FleetSpec, Load
from specs.plan import Plan, ServerAllocation, SolverReport, Unserved, VariantAllocation

Predictor = Callable[[ServiceParams, float, Targets], tuple[float, float]]


def _finite(x: float) -> float:
    return x if math.isfinite(x) and x >= 0 else 0.0


def _no_candidate_reason(server: ServerCandidates) -> str:
    if not server.rejected:
        return "no accelerator has a profile for the model"
    listed = "; ".join(f"{acc}: {why}" for acc, why in server.rejected)
    return f"no accelerator meets the targets ({listed})"


def _variant(
    variant: Variant, rate_rps: float, weight: float, server: ServerCandidates, predict: Predictor
) -> VariantAllocation:
    c = variant.candidate
    ttft, itl = c.predicted_ttft_ms, c.predicted_itl_ms
    exact = variant.replicas == c.replicas and abs(rate_rps - server.demand_rps) <= 1e-12
    if c.params is not None and variant.replicas > 0 and not (exact and (ttft or itl)):
        ttft, itl = predict(c.params, rate_rps / variant.replicas, server.targets)
    return VariantAllocation(
        accelerator=c.accelerator,
        card_type=c.card_type,
        replicas=variant.replicas,
        max_batch=c.max_batch,
        token_budget=c.params.token_budget if c.params is not None else None,
        cards=variant.cards,
        cost_per_hour=variant.cost,
        arrival_rate_rps=rate_rps,
        router_weight=weight,
        max_rate_per_replica_rps=c.max_rate_per_replica_rps,
        predicted_ttft_ms=_finite(ttft),
        predicted_itl_ms=_finite(itl),
    )


def _variants(
    assignment: Assignment, server: ServerCandidates, predict: Predictor
) -> list[VariantAllocation]:
    demand = server.demand_rps
    if len(assignment.variants) == 1:
        return [_variant(assignment.variants[0], demand, 1.0, server, predict)]
    total = sum(v.capacity_rps for v in assignment.variants)
    out = []
    for v in sorted(assignment.variants, key=lambda v: v.candidate.accelerator):
        share = v.capacity_rps / total if total > 0 else 1.0 / len(assignment.variants)
        out.append(_variant(v, demand * share, share, server, predict))
    return out


def _server(
    server: ServerCandidates,
    assignment: Assignment | None,
    solution: Solution,
    load: Load,
    predict: Predictor,
) -> tuple[ServerAllocation | None, list[Unserved]]:
    """One server's allocation (if any) and its unserved entries."""
    base = dict(
        server=server.server,
        model=server.model,
        service_class=server.service_class,
        priority=server.priority,
        load=load,
    )
    if server.scale_to_zero:
        return ServerAllocation(**base), []
    if not server.candidates:
        return None, [Unserved(server=server.server, reason=_no_candidate_reason(server))]
    allocation = None
    if assignment is not None:
        variants = _variants(assignment, server, predict)
        allocation = ServerAllocation(
            **base,
            variants=variants,
            cost_per_hour=sum(v.cost_per_hour for v in variants),
            meets_targets=assignment.meets_targets,
        )
    reason = solution.unserved.get(server.server)
    unserved = (
        []
        if reason is None
        else [Unserved(server=server.server, reason=reason, partial=assignment is not None)]
    )
    return allocation, unserved


def build_plan(
    spec: FleetSpec,
    problem: Problem,
    solution: Solution,
    predict: Predictor,
    *,
    solver: str,
    queue_model: str = "",
    batch_policy: str = "",
    candidate_time_s: float = 0.0,
    solve_time_s: float = 0.0,
) -> Plan:
    """The plan document of a solution (deterministic for equal inputs and timings)."""
    loads = {s.name: s.load for s in spec.servers}
    by_server = {a.server: a for a in solution.assignments}
    allocations: list[ServerAllocation] = []
    unserved: list[Unserved] = []
    for server in problem.servers:
        allocation, missing = _server(
            server, by_server.get(server.server), solution, loads[server.server], predict
        )
        allocations.extend([allocation] if allocation is not None else [])
        unserved.extend(missing)
    report = SolverReport(
        solver=solver,
        status=solution.status,
        objective=solution.objective,
        best_bound=solution.best_bound,
        gap=solution.gap,
        lp_bound=solution.lp_bound,
        candidate_time_s=candidate_time_s,
        solve_time_s=solve_time_s,
        detail=solution.detail,
    )
    return Plan(
        allocations=allocations,
        unserved=unserved,
        total_cost_per_hour=sum(a.cost_per_hour for a in allocations),
        cards_used=cards_by_type(list(solution.assignments)),
        solver=report,
        queue_model=queue_model,
        batch_policy=batch_policy,
    )
