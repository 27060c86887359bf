"""Hand-made candidates and servers for solver tests (no queue model involved)."""

from __future__ import annotations

from optimizer.problem import Candidate, Problem, ServerCandidates
from optimizer.transition import transition_value
from queue_models.base import Targets


def cand(
    server: str,
    accelerator: str,
    replicas: int,
    cost_per_replica: float,
    *,
    card_type: str | None = None,
    cards_per_replica: int = 1,
    rate: float = 1.0,
    factor: float = 0.1,
    current: str | None = None,
    current_cost: float = 0.0,
) -> Candidate:
    cost = replicas * cost_per_replica
    return Candidate(
        server=server,
        accelerator=accelerator,
        card_type=card_type or accelerator,
        replicas=replicas,
        max_batch=8,
        max_queue=80,
        cards_per_replica=cards_per_replica,
        cost_per_replica=cost_per_replica,
        max_rate_per_replica_rps=rate,
        cost=cost,
        value=transition_value(accelerator, cost, current, current_cost, factor),
    )


def server(
    name: str,
    candidates: list[Candidate],
    *,
    priority: int = 1,
    demand: float = 1.0,
    min_replicas: int = 0,
    max_replicas: int | None = None,
) -> ServerCandidates:
    return ServerCandidates(
        server=name,
        model="m",
        service_class=f"class{priority}",
        priority=priority,
        arrival_rate_rps=demand,
        demand_rps=demand,
        targets=Targets(),
        candidates=tuple(sorted(candidates, key=lambda c: c.order_key)),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
    )


def problem(servers: list[ServerCandidates], capacity: dict[str, int]) -> Problem:
    return Problem(tuple(sorted(servers, key=lambda s: s.server)), dict(sorted(capacity.items())))
