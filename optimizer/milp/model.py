"""The MILP formulation, built with PuLP: one variable per server and accelerator.

The batch size was chosen in candidate generation, so a server has one column per kept
candidate (after `optimizer.pruning`):

- single-type mode: x[s,a] binary, server s runs candidate a's replicas;
  sum_a x[s,a] <= 1 (the row whose lower bound 1 pins the server as served);
- heterogeneous mode: n[s,a] integer replicas of a (at most what a alone needs), u[s]
  binary "served": sum_a rate_a n[s,a] >= demand_s u[s], n[s,a] <= R[s,a] u[s], min and
  max replicas, and z[s] >= u[s] - n[s,current] charging factor x old cost on a switch;
- capacity: cards per card type <= capacity (only for types that can run out);
- objective: cost plus transition penalty (`Candidate.value`; per replica in splits,
  with the accelerator-change charge on replicas off the current accelerator).

`Builder.formulation()` describes the columns for `optimizer.lexicographic` (costs,
bounds, integrality, which columns say "served", which server owns each column).

To extend: a new constraint is a `Builder.row` call in `_single` or `_split`; a new
column kind must set its owner in `formulation`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pulp

from optimizer.lexicographic import Formulation
from optimizer.problem import Candidate, Problem, ServerCandidates
from optimizer.pruning import Pruned
from optimizer.transition import per_replica_factor

ZERO_LOAD_WEIGHT = 1e-3
"""Served weight of a server is its demand (rps) + this, so zero-load servers count too."""


@dataclass
class Entry:
    """One contested server: its kept candidates and their columns."""

    server: ServerCandidates
    candidates: tuple[Candidate, ...]
    cols: list[int]
    gate: list[int]
    pin_row: int = -1


class Builder:
    """Builds the PuLP model and the column arrays the stages need."""

    def __init__(self, problem: Problem, pruned: Pruned, heterogeneous: bool) -> None:
        self.problem, self.pruned, self.het = problem, pruned, heterogeneous
        self.prob = pulp.LpProblem("fleetplan", pulp.LpMinimize)
        self.columns: list[pulp.LpVariable] = []
        self.cost: list[float] = []
        self.rows: list[pulp.LpConstraint] = []
        self.entries: list[Entry] = []

    def var(self, name: str, upper: float, cat: str, cost: float) -> int:
        """A new column (lower bound 0); returns its index."""
        self.columns.append(self.prob.add_variable(name, 0, upper, cat))
        self.cost.append(cost)
        return len(self.columns) - 1

    def row(self, terms: list[tuple[int, float]], sense: int, rhs: float) -> int:
        """A new row sum(coef x[col]) <sense> rhs; returns its index."""
        expr = pulp.LpAffineExpression([(self.columns[c], k) for c, k in terms])
        constraint = pulp.LpConstraint(expr, sense, name=f"r{len(self.rows)}", rhs=rhs)
        self.prob.addConstraint(constraint)
        self.rows.append(constraint)
        return len(self.rows) - 1

    def build(self) -> None:
        """Columns and rows of every contested server, capacity rows, the cost objective."""
        usage: dict[str, list[tuple[int, float]]] = {}
        for i, server in enumerate(self.problem.placeable()):
            candidates = self.pruned.kept.get(server.server, ())
            if not candidates:
                continue
            entry = (
                self._split(i, server, candidates)
                if self.het
                else self._single(i, server, candidates)
            )
            self.entries.append(entry)
            for col, c in zip(entry.cols, candidates, strict=True):
                if c.card_type not in self.pruned.ample:
                    usage.setdefault(c.card_type, []).append(
                        (col, c.cards_per_replica if self.het else c.cards)
                    )
        for card_type, terms in sorted(usage.items()):
            self.row(terms, pulp.LpConstraintLE, self.problem.capacity.get(card_type, 0))
        self.prob.setObjective(
            pulp.LpAffineExpression(
                [(v, c) for v, c in zip(self.columns, self.cost, strict=True) if c]
            )
        )

    def _single(self, i: int, server: ServerCandidates, candidates: tuple[Candidate, ...]) -> Entry:
        cols = [self.var(f"x{i}_{j}", 1, pulp.LpBinary, c.value) for j, c in enumerate(candidates)]
        one = self.row([(c, 1.0) for c in cols], pulp.LpConstraintLE, 1)
        return Entry(server, candidates, cols, cols, one)

    def _split(self, i: int, server: ServerCandidates, candidates: tuple[Candidate, ...]) -> Entry:
        factor, cap = self.problem.transition_factor, server.max_replicas
        u = self.var(f"u{i}", 1, pulp.LpBinary, 0.0)
        cols = [
            self.var(
                f"n{i}_{j}",
                c.replicas if cap is None else min(c.replicas, cap),
                pulp.LpInteger,
                c.cost_per_replica
                * per_replica_factor(c.accelerator, server.current_accelerator, factor),
            )
            for j, c in enumerate(candidates)
        ]
        GE, LE = pulp.LpConstraintGE, pulp.LpConstraintLE  # noqa: N806
        rate = [(n, c.max_rate_per_replica_rps) for n, c in zip(cols, candidates, strict=True)]
        self.row(rate + [(u, -server.demand_rps)], GE, 0)
        if server.min_replicas:
            self.row([(n, 1.0) for n in cols] + [(u, -server.min_replicas)], GE, 0)
        if cap is not None:
            self.row([(n, 1.0) for n in cols], LE, cap)
        for n, c in zip(cols, candidates, strict=True):
            self.row([(n, 1.0), (u, -c.replicas)], LE, 0)
        if server.current_cost > 0:
            z = self.var(f"z{i}", 1, pulp.LpContinuous, factor * server.current_cost)
            here = [
                n
                for n, c in zip(cols, candidates, strict=True)
                if c.accelerator == server.current_accelerator
            ]
            self.row([(z, 1.0), (u, -1.0)] + [(n, 1.0) for n in here], GE, 0)
        return Entry(server, candidates, cols, [u])

    def formulation(self) -> Formulation:
        """The column arrays `optimizer.lexicographic` works with."""
        gate = [(col, k) for k, e in enumerate(self.entries) for col in e.gate]
        owner = np.full(len(self.columns), -1, dtype=np.int64)
        for k, e in enumerate(self.entries):
            owner[e.cols + e.gate] = k
        return Formulation(
            cost=np.array(self.cost, dtype=np.float64),
            integer=np.array([v.cat == pulp.LpInteger for v in self.columns], dtype=bool),
            lower=np.zeros(len(self.columns)),
            upper=np.array([v.upBound for v in self.columns], dtype=np.float64),
            gate_col=np.array([c for c, _ in gate], dtype=np.int64),
            gate_server=np.array([k for _, k in gate], dtype=np.int64),
            col_server=owner,
            pin_row=np.array([e.pin_row for e in self.entries], dtype=np.int64),
            priority=np.array([e.server.priority for e in self.entries], dtype=np.int64),
            weight=np.array([e.server.demand_rps + ZERO_LOAD_WEIGHT for e in self.entries]),
        )
