"""The plan document: what the optimizer decided, for someone else to apply.

A `Plan` carries, per server, one or more variant allocations (several when a server is
split across accelerator types, with router weights proportional to the load each
variant is sized for), what could not be served and why, card usage per type, and the
solver's own report (status, objective, bound, gap, time).

To extend: add fields with descriptions and defaults, so older plan files still load.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from specs.documents import Document, Load, NonNegFloat

SolveStatus = Literal["optimal", "feasible", "heuristic", "infeasible", "failed", "empty"]


class VariantAllocation(Document):
    """Replicas of one server on one accelerator with one max batch size and token budget."""

    accelerator: str = Field(description="Accelerator unit name.")
    card_type: str = Field(description="Card type counted against capacity.")
    replicas: int = Field(ge=0, description="Replica count.")
    max_batch: int = Field(ge=1, description="Max batch size (concurrent requests per replica).")
    token_budget: int | None = Field(
        None, ge=1, description="Tokens per iteration (chunked-prefill budget, vLLM's "
        "--max-num-batched-tokens) of each replica; None: not set, the engine's default.",
    )
    cards: int = Field(ge=0, description="Cards used by all replicas of this variant.")
    cost_per_hour: NonNegFloat = Field(description="Cost of all replicas of this variant per hour.")
    arrival_rate_rps: NonNegFloat = Field(description="Load this variant is sized for, req/s.")
    router_weight: NonNegFloat = Field(description="Share of the server's requests to route here.")
    max_rate_per_replica_rps: NonNegFloat = Field(
        0.0, description="Largest per-replica rate meeting the targets, req/s."
    )
    predicted_ttft_ms: NonNegFloat = Field(0.0, description="Predicted TTFT at the sized load, ms.")
    predicted_itl_ms: NonNegFloat = Field(0.0, description="Predicted ITL at the sized load, ms.")


class ServerAllocation(Document):
    """The allocation chosen for one server."""

    server: str = Field(description="Server name.")
    model: str = Field(description="Model served.")
    service_class: str = Field(description="Service class.")
    priority: int = Field(description="Priority of the service class.")
    load: Load = Field(description="Load the allocation was sized for.")
    variants: list[VariantAllocation] = Field(
        default_factory=list, description="One entry per accelerator variant (empty: scaled to zero)."
    )
    cost_per_hour: NonNegFloat = Field(0.0, description="Cost of all variants per hour.")
    meets_targets: bool = Field(True, description="False for a best-effort, under-sized allocation.")


class Unserved(Document):
    """A server that could not be (fully) served, and why."""

    server: str = Field(description="Server name.")
    reason: str = Field(description="Why it is not served (capacity, no feasible accelerator...).")
    partial: bool = Field(False, description="True when a best-effort allocation was made.")


class SolverReport(Document):
    """How the solve went."""

    solver: str = Field(description="Solver name.")
    status: SolveStatus = Field(description="optimal (proven), feasible, heuristic, ...")
    objective: float | None = Field(
        None, description="Objective value: cost plus the transition penalty and, for a "
        "heterogeneous milp, the variant charge of every variant beyond a server's first "
        "(`optimizer.variant_cost_fraction`; `detail` says how many and how much).",
    )
    best_bound: float | None = Field(None, description="Best proven lower bound (MILP).")
    gap: float | None = Field(None, description="Relative optimality gap (MILP).")
    lp_bound: float | None = Field(
        None, description="LP relaxation value of the MILP's final cost problem (milp only): "
        "a lower bound on the objective with the same servers served.",
    )
    candidate_time_s: NonNegFloat = Field(0.0, description="Time to build candidates, s.")
    solve_time_s: NonNegFloat = Field(0.0, description="Time to solve, s.")
    detail: str = Field("", description="Backend and anything worth knowing.")


class Plan(Document):
    """Allocations for every server, what could not be served, and solver statistics."""

    allocations: list[ServerAllocation] = Field(
        default_factory=list, description="One entry per served server, sorted by name."
    )
    unserved: list[Unserved] = Field(default_factory=list, description="Servers not fully served.")
    total_cost_per_hour: NonNegFloat = Field(0.0, description="Cost of the whole plan per hour.")
    cards_used: dict[str, int] = Field(default_factory=dict, description="Cards used per type.")
    solver: SolverReport | None = Field(None, description="The solver's report.")
    queue_model: str = Field(
        "", description="Queue model the candidates were sized with (empty: not recorded)."
    )
    batch_policy: str = Field(
        "", description="How max batch sizes were chosen: 'scaled' (the profile's ceiling, "
        "token-scaled by batch-queue-v06) or 'search' (best batch up to it); empty: not recorded.",
    )

    def allocation(self, server: str) -> ServerAllocation | None:
        """The allocation of `server`, if it has one."""
        return next((a for a in self.allocations if a.server == server), None)
