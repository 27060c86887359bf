"""Dominance pruning: drop candidates no optimal plan needs, before the MILP sees them.

A candidate that cannot fit the card type's whole capacity is dropped. Of the rest,
candidate k of a server is dominated by an earlier (not more valuable) candidate j when
taking j instead of k can never break a capacity limit or raise the objective:

- j is on the same card type, costs no more (value) and uses no more cards; or
- j is on an *ample* card type, one whose capacity covers every server taking its most
  card-hungry candidate of that type at once, and costs no more.

Candidates are sorted by value (then name), so the first candidate on an ample type
dominates everything after it. A server whose only remaining candidate is on an ample
type is *free*: it takes that candidate in every optimal plan and needs no variable.

In heterogeneous mode a replica of variant a is dominated by one of variant b on the
same card type when b's replica costs no more, uses no more cards and carries at least
the same rate; ample types are not used there.

Pruning never changes the optimum (only which of several equal-cost plans is found).

To extend: a new rule must keep "every feasible plan stays feasible and no worse after
replacing the dominated candidate"; add a test with a brute-force check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from optimizer.problem import Candidate, ServerCandidates
from optimizer.transition import per_replica_factor


@dataclass(frozen=True, slots=True)
class Pruned:
    """Candidates kept per server, and servers that need no variable (free)."""

    kept: dict[str, tuple[Candidate, ...]]
    free: dict[str, Candidate]
    ample: frozenset[str]


def ample_types(
    servers: tuple[ServerCandidates, ...], capacity: Mapping[str, int]
) -> frozenset[str]:
    """Card types whose capacity covers every server's hungriest candidate of that type."""
    demand: dict[str, int] = {}
    for server in servers:
        most: dict[str, int] = {}
        for c in server.candidates:
            most[c.card_type] = max(most.get(c.card_type, 0), c.cards)
        for card_type, cards in most.items():
            demand[card_type] = demand.get(card_type, 0) + cards
    return frozenset(t for t, cards in demand.items() if cards <= capacity.get(t, 0))


def _prune_single(
    server: ServerCandidates, capacity: Mapping[str, int], ample: frozenset[str]
) -> list[Candidate]:
    kept: list[Candidate] = []
    fewest: dict[str, int] = {}
    for c in server.candidates:
        if c.cards > capacity.get(c.card_type, 0):
            continue
        if fewest.get(c.card_type, c.cards + 1) <= c.cards:
            continue
        kept.append(c)
        fewest[c.card_type] = c.cards
        if c.card_type in ample:
            break
    return kept


def _replica_value(c: Candidate, server: ServerCandidates, factor: float) -> float:
    return c.cost_per_replica * per_replica_factor(
        c.accelerator, server.current_accelerator, factor
    )


def _prune_split(
    server: ServerCandidates, capacity: Mapping[str, int], factor: float
) -> list[Candidate]:
    fits = [c for c in server.candidates if c.cards_per_replica <= capacity.get(c.card_type, 0)]
    kept = []
    for c in fits:
        dominated = any(
            o is not c
            and o.card_type == c.card_type
            and o.cards_per_replica <= c.cards_per_replica
            and o.max_rate_per_replica_rps >= c.max_rate_per_replica_rps
            and _replica_value(o, server, factor) <= _replica_value(c, server, factor)
            and (
                o.order_key < c.order_key
                or _replica_value(o, server, factor) < _replica_value(c, server, factor)
                or o.max_rate_per_replica_rps > c.max_rate_per_replica_rps
                or o.cards_per_replica < c.cards_per_replica
            )
            for o in fits
        )
        if not dominated:
            kept.append(c)
    return kept


def prune(
    servers: tuple[ServerCandidates, ...],
    capacity: Mapping[str, int],
    *,
    heterogeneous: bool = False,
    factor: float = 0.1,
) -> Pruned:
    """Kept candidates per server (order preserved); free servers separately."""
    ample = frozenset() if heterogeneous else ample_types(servers, capacity)
    kept: dict[str, tuple[Candidate, ...]] = {}
    free: dict[str, Candidate] = {}
    for server in servers:
        if heterogeneous:
            kept[server.server] = tuple(_prune_split(server, capacity, factor))
            continue
        cands = _prune_single(server, capacity, ample)
        if len(cands) == 1 and cands[0].card_type in ample:
            free[server.server] = cands[0]
        else:
            kept[server.server] = tuple(cands)
    return Pruned(kept, free, ample)
