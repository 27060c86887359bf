"""Best effort for servers left unallocated: inferno's four saturation policies.

When capacity runs out, some servers get no candidate that meets their targets. A
saturation policy hands the remaining cards to them anyway, fewer replicas than their
targets need (the plan marks these `meets_targets: false` and lists them as partially
served). Each policy is a pure function of the unallocated servers (in the order they
were given up on) and the free cards per type, returning the best-effort assignments and
taking the cards from `available`:

- `None`: nothing;
- `PriorityExhaustive`: each server in turn takes as many replicas as fit (at most the
  count its targets need) of its first candidate whose card type has room for one;
- `RoundRobin`: one replica at a time, round-robin over all servers, each on its first
  candidate with room, until no server can take another replica;
- `PriorityRoundRobin`: `RoundRobin` within each run of equal priority, in order.

inferno's round robin does not stop at the replica count the targets need; here a server
stops there (one that reaches it is fully served). With the greedy this never binds
(free cards only shrink, so a server given up on cannot reach its count), but it keeps
the policy sound for any caller.

To extend: write `policy(servers, available) -> list[Assignment]` and register it under
the name the spec uses (`specs.documents.SATURATION_POLICIES`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import groupby

from optimizer.problem import Assignment, Candidate, ServerCandidates, Variant
from specs.registry import Registry

SaturationPolicy = Callable[[Sequence[ServerCandidates], dict[str, int]], list[Assignment]]

SATURATION = Registry[SaturationPolicy]("saturation policy")


def _assignment(server: ServerCandidates, candidate: Candidate, replicas: int) -> Assignment:
    variant = Variant(candidate, replicas)
    return Assignment(server.server, (variant,), meets_targets=replicas >= candidate.replicas)


def no_best_effort(
    servers: Sequence[ServerCandidates], available: dict[str, int]
) -> list[Assignment]:
    """Policy `None`: unallocated servers stay unallocated."""
    del servers, available
    return []


def priority_exhaustive(
    servers: Sequence[ServerCandidates], available: dict[str, int]
) -> list[Assignment]:
    """Policy `PriorityExhaustive`: each server in turn takes all it can use."""
    out = []
    for server in servers:
        for candidate in server.candidates:
            fit = available.get(candidate.card_type, 0) // candidate.cards_per_replica
            replicas = min(fit, candidate.replicas)
            if replicas > 0:
                available[candidate.card_type] -= replicas * candidate.cards_per_replica
                out.append(_assignment(server, candidate, replicas))
                break
    return out


def _first_with_room(server: ServerCandidates, available: dict[str, int]) -> Candidate | None:
    for candidate in server.candidates:
        if available.get(candidate.card_type, 0) >= candidate.cards_per_replica:
            return candidate
    return None


def round_robin(servers: Sequence[ServerCandidates], available: dict[str, int]) -> list[Assignment]:
    """Policy `RoundRobin`: one replica per server per round until none can take more."""
    chosen: dict[str, Candidate] = {}
    given: dict[str, int] = {}
    active = [s.server for s in servers]
    by_name = {s.server: s for s in servers}
    while active:
        still = []
        for name in active:
            candidate = chosen.get(name) or _first_with_room(by_name[name], available)
            if candidate is None:
                continue
            chosen[name] = candidate
            room = available.get(candidate.card_type, 0) // candidate.cards_per_replica
            if min(room, candidate.replicas - given.get(name, 0)) <= 0:
                continue
            given[name] = given.get(name, 0) + 1
            available[candidate.card_type] -= candidate.cards_per_replica
            still.append(name)
        active = still
    return [_assignment(by_name[n], chosen[n], given[n]) for n in by_name if given.get(n)]


def priority_round_robin(
    servers: Sequence[ServerCandidates], available: dict[str, int]
) -> list[Assignment]:
    """Policy `PriorityRoundRobin`: round robin within each run of equal priority."""
    out: list[Assignment] = []
    for _, group in groupby(servers, key=lambda s: s.priority):
        out.extend(round_robin(list(group), available))
    return out


SATURATION.register("None", no_best_effort)
SATURATION.register("PriorityExhaustive", priority_exhaustive)
SATURATION.register("PriorityRoundRobin", priority_round_robin)
SATURATION.register("RoundRobin", round_robin)


def best_effort(
    policy: str, servers: Sequence[ServerCandidates], available: dict[str, int]
) -> list[Assignment]:
    """Apply the named policy (an unknown name raises `UnknownNameError`)."""
    return SATURATION.get(policy)(servers, available)
