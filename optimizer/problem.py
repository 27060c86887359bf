"""The optimizer's working values: candidates per server, the problem, a solver's answer.

`Candidate` is one way to serve a whole server on one accelerator (replicas, max batch,
cost, the per-replica max rate under the targets). `ServerCandidates` holds a server's
feasible candidates, sorted by objective value and then accelerator name, plus why the
other accelerators were rejected. `Problem` is what every solver receives: the servers
(sorted by name) and the cards available per card type. A solver answers with a
`Solution`: one `Assignment` per server it gave replicas to, the servers it left
(partly) unserved with a reason, and its own status line.

All values are frozen dataclasses, so a solver cannot change its input and equal inputs
give equal outputs.

To extend: add a field with a default; keep `Candidate` free of objects that are not
hashable (it is used as a dictionary key by the cache and by the solvers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from queue_models.base import ServiceParams, Targets
from specs.plan import SolveStatus


@dataclass(frozen=True, slots=True)
class Candidate:
    """Serve a whole server with `replicas` replicas of one accelerator at one max batch."""

    server: str
    accelerator: str
    card_type: str
    replicas: int
    max_batch: int
    max_queue: int
    cards_per_replica: int
    cost_per_replica: float
    max_rate_per_replica_rps: float
    cost: float
    value: float
    """Objective coefficient: cost plus the transition penalty against the current allocation."""
    params: ServiceParams | None = None
    """The queue model's configuration of one replica (None for a zero-load candidate)."""
    predicted_ttft_ms: float = 0.0
    predicted_itl_ms: float = 0.0

    @property
    def cards(self) -> int:
        """Cards all replicas use."""
        return self.replicas * self.cards_per_replica

    @property
    def order_key(self) -> tuple[float, str]:
        """Sort key within a server: value, then accelerator name (deterministic ties)."""
        return (self.value, self.accelerator)


@dataclass(frozen=True, slots=True)
class ServerCandidates:
    """One server, what it needs, and every accelerator that can serve it."""

    server: str
    model: str
    service_class: str
    priority: int
    arrival_rate_rps: float
    demand_rps: float
    """Rate to size for: the arrival rate, or more when a tokens/s target asks for it."""
    targets: Targets
    candidates: tuple[Candidate, ...]
    """Feasible candidates sorted by `Candidate.order_key`."""
    rejected: tuple[tuple[str, str], ...] = ()
    """(accelerator, reason) for accelerators that cannot serve the server."""
    scale_to_zero: bool = False
    """Zero load and min_replicas 0: the server gets no replicas and is not unserved."""
    min_replicas: int = 0
    max_replicas: int | None = None
    current_accelerator: str | None = None
    current_replicas: int = 0
    current_cost: float = 0.0

    @property
    def needs_capacity(self) -> bool:
        """True when a solver must place the server (it is loaded or has min replicas)."""
        return not self.scale_to_zero and bool(self.candidates)


@dataclass(frozen=True, slots=True)
class Problem:
    """Every server's candidates and the cards available per card type."""

    servers: tuple[ServerCandidates, ...]
    capacity: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    transition_factor: float = 0.1

    def server(self, name: str) -> ServerCandidates:
        """The server called `name` (KeyError when absent)."""
        for entry in self.servers:
            if entry.server == name:
                return entry
        raise KeyError(name)

    def placeable(self) -> tuple[ServerCandidates, ...]:
        """Servers a solver has to place, in name order."""
        return tuple(s for s in self.servers if s.needs_capacity)


@dataclass(frozen=True, slots=True)
class Variant:
    """`replicas` replicas of one candidate's accelerator and batch."""

    candidate: Candidate
    replicas: int

    @property
    def cards(self) -> int:
        """Cards these replicas use."""
        return self.replicas * self.candidate.cards_per_replica

    @property
    def cost(self) -> float:
        """Cost of these replicas per hour."""
        return round(self.replicas * self.candidate.cost_per_replica, 9)

    @property
    def capacity_rps(self) -> float:
        """Load these replicas carry within the targets."""
        return self.replicas * self.candidate.max_rate_per_replica_rps


@dataclass(frozen=True, slots=True)
class Assignment:
    """What a solver gave one server: one variant, or several in heterogeneous mode."""

    server: str
    variants: tuple[Variant, ...]
    meets_targets: bool = True
    """False for a best-effort allocation with fewer replicas than the targets need."""

    @property
    def cost(self) -> float:
        """Cost of all variants per hour."""
        return sum(v.cost for v in self.variants)


@dataclass(frozen=True, slots=True)
class Solution:
    """A solver's answer: assignments, unserved servers with reasons, and its report."""

    assignments: tuple[Assignment, ...]
    unserved: Mapping[str, str]
    """Server -> reason, for every placeable server not fully served (partial ones too)."""
    status: SolveStatus
    objective: float | None = None
    best_bound: float | None = None
    gap: float | None = None
    lp_bound: float | None = None
    detail: str = ""


def cards_by_type(assignments: tuple[Assignment, ...] | list[Assignment]) -> dict[str, int]:
    """Cards used per card type, sorted by type name."""
    used: dict[str, int] = {}
    for assignment in assignments:
        for variant in assignment.variants:
            card_type = variant.candidate.card_type
            used[card_type] = used.get(card_type, 0) + variant.cards
    return dict(sorted(used.items()))


def capacity_reason(server: ServerCandidates, available: Mapping[str, int]) -> str:
    """Why a server was not placed: what its cheapest candidates need against free cards."""
    needs = ", ".join(
        f"{c.replicas} x {c.accelerator} = {c.cards} {c.card_type} cards "
        f"({max(available.get(c.card_type, 0), 0)} free)"
        for c in server.candidates[:3]
    )
    more = f" and {len(server.candidates) - 3} more" if len(server.candidates) > 3 else ""
    return f"not enough capacity: needs {needs}{more}"
