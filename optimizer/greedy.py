"""The `greedy` solver: inferno's limited-capacity heuristic, with its saturation policies.

Every placeable server has its candidates sorted by inferno's value (cost plus the
transition penalty minus the old cost), then accelerator name. Its regret `delta` is the
value of its second candidate minus its first (infinite with one left). Servers are
taken in order of priority (1 first), then larger regret, then larger value, then name
(inferno leaves the last tie to Go's map order). A server whose current candidate's
cards fit the free cards of that card type takes it; otherwise it moves to its next
candidate, its regret is recomputed and it goes back in line; with none left it is
unallocated. Unallocated servers then get best effort from the saturation policy
(`optimizer.saturation`): after each priority group, or, with `delayed_best_effort`,
once after all groups.

Values and regrets are rounded to 1e-9 before comparison, so float noise (1.1 x 69 is
75.9000...01) never decides an order that should be a tie broken by name.

To extend: the order is `_order_key`; a different candidate preference is a different
`Candidate.value` (see `optimizer.transition`), not a change here.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby

from optimizer.problem import (
    Assignment,
    Problem,
    ServerCandidates,
    Solution,
    Variant,
    capacity_reason,
)
from optimizer.saturation import best_effort
from optimizer.transition import inferno_value
from specs.documents import OptimizerOptions

_DIGITS = 9


@dataclass
class _Entry:
    """A server in the greedy's line: its candidates (by value) and where it is in them."""

    server: ServerCandidates
    values: list[float]
    index: int = 0
    delta: float = field(default=math.inf)

    @classmethod
    def of(cls, server: ServerCandidates) -> _Entry:
        """The entry of a server at its first candidate."""
        values = [
            round(inferno_value(c.value, server.current_cost), _DIGITS) for c in server.candidates
        ]
        entry = cls(server, values)
        entry.update_delta()
        return entry

    def update_delta(self) -> None:
        """Regret: next value minus current value, infinite for the last candidate."""
        nxt = self.index + 1
        self.delta = (
            round(self.values[nxt] - self.values[self.index], _DIGITS)
            if nxt < len(self.values)
            else math.inf
        )

    def order_key(self) -> tuple[int, float, float, str]:
        """Priority ascending, regret descending, value descending, name ascending."""
        return (self.server.priority, -self.delta, -self.values[self.index], self.server.server)


def _allocate(
    servers: Sequence[ServerCandidates], available: dict[str, int]
) -> tuple[list[Assignment], list[ServerCandidates]]:
    """Place servers greedily; returns assignments and unallocated servers (in give-up order)."""
    heap = [(e.order_key(), e) for e in map(_Entry.of, servers)]
    heapq.heapify(heap)
    placed: list[Assignment] = []
    given_up: list[ServerCandidates] = []
    while heap:
        _, entry = heapq.heappop(heap)
        candidate = entry.server.candidates[entry.index]
        if available.get(candidate.card_type, 0) >= candidate.cards:
            available[candidate.card_type] = available.get(candidate.card_type, 0) - candidate.cards
            placed.append(
                Assignment(entry.server.server, (Variant(candidate, candidate.replicas),))
            )
            continue
        entry.index += 1
        if entry.index == len(entry.values):
            given_up.append(entry.server)
            continue
        entry.update_delta()
        heapq.heappush(heap, (entry.order_key(), entry))
    return placed, given_up


def fully_placed_priorities(
    servers: Sequence[ServerCandidates], capacity: Mapping[str, int]
) -> dict[int, bool]:
    """Per priority p: did the greedy (no best effort) place every server of priority <= p?"""
    return greedy_placement(servers, capacity)[0]


def greedy_placement(
    servers: Sequence[ServerCandidates], capacity: Mapping[str, int]
) -> tuple[dict[int, bool], list[Assignment]]:
    """`fully_placed_priorities` and the greedy's placements (no best effort) of one run.

    One run answers every p, because the greedy places priorities strictly in order.
    The placements are a feasible plan the MILP can start from.
    """
    placed, given_up = _allocate(servers, dict(capacity))
    first_missing = min((s.priority for s in given_up), default=None)
    fits = {
        p: first_missing is None or p < first_missing for p in sorted({s.priority for s in servers})
    }
    return fits, placed


def solve_greedy(problem: Problem, options: OptimizerOptions) -> Solution:
    """inferno's greedy with the options' saturation policy and delayed best effort."""
    available = {t: int(n) for t, n in problem.capacity.items()}
    servers = sorted(problem.placeable(), key=lambda s: (s.priority, s.server))
    if options.delayed_best_effort:
        groups = [servers]
    else:
        groups = [list(g) for _, g in groupby(servers, key=lambda s: s.priority)]
    assignments: list[Assignment] = []
    unserved: dict[str, str] = {}
    for group in groups:
        placed, given_up = _allocate(group, available)
        assignments.extend(placed)
        reasons = {s.server: capacity_reason(s, available) for s in given_up}
        partial = best_effort(options.saturation_policy, given_up, available)
        assignments.extend(partial)
        full = {a.server for a in partial if a.meets_targets}
        unserved.update({k: v for k, v in reasons.items() if k not in full})
    assignments.sort(key=lambda a: a.server)
    objective = sum(
        a.variants[0].candidate.value * a.variants[0].replicas / a.variants[0].candidate.replicas
        for a in assignments
    )
    return Solution(
        assignments=tuple(assignments),
        unserved=dict(sorted(unserved.items())),
        status="heuristic",
        objective=objective,
        detail=f"greedy, saturation policy {options.saturation_policy}"
        + (", delayed best effort" if options.delayed_best_effort else ""),
    )
