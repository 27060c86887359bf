"""The MILP formulation: one variable per server and accelerator, held as arrays.

The batch size was chosen in candidate generation, so a server has one column per kept
candidate (after `optimizer.pruning`):

- single-type mode: x[s,a] binary, server s runs candidate a's replicas;
  sum_a x[s,a] <= 1 (the row whose lower bound 1 pins the server as served);
- heterogeneous mode: n[s,a] integer replicas of a (at most what a alone needs), u[s]
  binary "served": sum_a rate_a n[s,a] >= demand_s u[s], n[s,a] <= R[s,a] u[s], min and
  max replicas, and z[s] >= u[s] - n[s,current] charging factor x old cost on a switch;
  with a variant charge F[s] > 0 (`variant_charge`) and two or more candidates, binary
  y[s,a] "variant open" instead: n[s,a] <= R[s,a] y[s,a], u[s] <= sum_a y[s,a] <= A u[s],
  each y costing F[s] and u earning F[s] back, so the objective charges F[s] for every
  variant beyond a server's first (an unsplit server's objective is unchanged);
- capacity: cards per card type <= capacity (only for types that can run out);
- objective: cost plus transition penalty (`Candidate.value`; per replica in splits,
  with the accelerator-change charge on replicas off the current accelerator), plus the
  variant charges of splits.

The model is kept as plain arrays (columns: cost, bounds, integrality, names; rows:
sparse coefficients and lower/upper bounds), which `HighsSession` hands to highspy as
they are. `Builder.pulp()` turns the same arrays into a PuLP problem for the CBC
backend; it is built only when CBC runs, because creating 100,000 PuLP variables costs
about a second at 10,000 servers and HiGHS never needs them.

`Builder.formulation()` describes the columns for `optimizer.lexicographic` (costs,
bounds, integrality, which columns say "served", which server owns each column, which
follow from the others), `Builder.basis(values)` a simplex starting basis around an
integral point (single-type mode only), and `Builder.split_start(chosen)` a point of the
heterogeneous model with each server on one whole-server candidate (the greedy's).

To extend: a new constraint is a `Builder.row` call in `_single` or `_split`; a new
column kind must pass its owner to `Builder.var`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pulp

from optimizer.lexicographic import BoolArray, FloatArray, Formulation, IntArray
from optimizer.problem import Candidate, Problem, ServerCandidates
from optimizer.pruning import Pruned
from optimizer.transition import per_replica_factor

ZERO_LOAD_WEIGHT = 1e-3
"""Served weight of a server is its demand (rps) + this, so zero-load servers count too."""

INF = float("inf")


@dataclass(frozen=True, slots=True)
class Row:
    """lower <= sum(coef[k] x[cols[k]]) <= upper."""

    cols: IntArray
    coef: FloatArray
    lower: float
    upper: float


@dataclass
class Entry:
    """One contested server: its kept candidates and their columns."""

    server: ServerCandidates
    candidates: tuple[Candidate, ...]
    cols: list[int]
    gate: list[int]
    pin_row: int = -1
    opened: list[int] = field(default_factory=list)
    """Heterogeneous mode with a variant charge: the y column of each candidate."""
    switch: int = -1
    """Heterogeneous mode: the z column (accelerator change), -1 when none."""


def variant_charge(server: ServerCandidates, fraction: float) -> float:
    """The objective's charge for each variant of `server` beyond its first: `fraction` of
    one replica's hourly cost of the server's cheapest single-accelerator candidate."""
    if fraction <= 0 or not server.candidates:
        return 0.0
    return fraction * server.candidates[0].cost_per_replica


class Builder:
    """Builds the model's arrays and the column arrays the stages need."""

    def __init__(self, problem: Problem, pruned: Pruned, heterogeneous: bool,
                 variant_cost_fraction: float = 0.0) -> None:
        self.problem, self.pruned, self.het = problem, pruned, heterogeneous
        self.variant_cost_fraction = variant_cost_fraction
        self.names: list[str] = []
        self.cost: list[float] = []
        self.upper: list[float] = []
        self.integer: list[bool] = []
        self.owner: list[int] = []
        self.rows: list[Row] = []
        self.entries: list[Entry] = []

    @property
    def n(self) -> int:
        """Number of columns."""
        return len(self.cost)

    def var(self, name: str, upper: float, integer: bool, cost: float, owner: int) -> int:
        """A new column (lower bound 0) owned by entry `owner`; returns its index."""
        self.names.append(name)
        self.cost.append(cost)
        self.upper.append(upper)
        self.integer.append(integer)
        self.owner.append(owner)
        return len(self.cost) - 1

    def row(self, terms: list[tuple[int, float]], lower: float, upper: float) -> int:
        """A new row lower <= sum(coef x[col]) <= upper; returns its index."""
        cols = np.fromiter((c for c, _ in terms), dtype=np.int64, count=len(terms))
        coef = np.fromiter((k for _, k in terms), dtype=np.float64, count=len(terms))
        self.rows.append(Row(cols, coef, lower, upper))
        return len(self.rows) - 1

    def build(self) -> None:
        """Columns and rows of every contested server, then the capacity rows."""
        usage: dict[str, list[tuple[int, float]]] = {}
        for server in self.problem.placeable():
            candidates = self.pruned.kept.get(server.server, ())
            if not candidates:
                continue
            k = len(self.entries)
            entry = (
                self._split(k, server, candidates)
                if self.het
                else self._single(k, server, candidates)
            )
            self.entries.append(entry)
            for col, c in zip(entry.cols, candidates, strict=True):
                if c.card_type not in self.pruned.ample:
                    usage.setdefault(c.card_type, []).append(
                        (col, c.cards_per_replica if self.het else c.cards)
                    )
        for card_type, terms in sorted(usage.items()):
            self.row(terms, -INF, self.problem.capacity.get(card_type, 0))

    def _single(self, k: int, server: ServerCandidates, candidates: tuple[Candidate, ...]) -> Entry:
        cols = [self.var(f"x{k}_{j}", 1, True, c.value, k) for j, c in enumerate(candidates)]
        one = self.row([(c, 1.0) for c in cols], -INF, 1)
        return Entry(server, candidates, cols, cols, one)

    def _split(self, k: int, server: ServerCandidates, candidates: tuple[Candidate, ...]) -> Entry:
        factor, cap = self.problem.transition_factor, server.max_replicas
        u = self.var(f"u{k}", 1, True, 0.0, k)
        cols = [
            self.var(
                f"n{k}_{j}",
                c.replicas if cap is None else min(c.replicas, cap),
                True,
                c.cost_per_replica
                * per_replica_factor(c.accelerator, server.current_accelerator, factor),
                k,
            )
            for j, c in enumerate(candidates)
        ]
        rate = [(n, c.max_rate_per_replica_rps) for n, c in zip(cols, candidates, strict=True)]
        self.row(rate + [(u, -server.demand_rps)], 0, INF)
        if server.min_replicas:
            self.row([(n, 1.0) for n in cols] + [(u, -server.min_replicas)], 0, INF)
        if cap is not None:
            self.row([(n, 1.0) for n in cols], -INF, cap)
        opened: list[int] = []
        charge = variant_charge(server, self.variant_cost_fraction)
        if charge > 0 and len(cols) > 1:
            opened = self._open_variants(k, u, cols, charge)
        else:
            for n, c in zip(cols, candidates, strict=True):
                self.row([(n, 1.0), (u, -c.replicas)], -INF, 0)
        z = -1
        if server.current_cost > 0:
            z = self.var(f"z{k}", 1, False, factor * server.current_cost, k)
            here = [
                n
                for n, c in zip(cols, candidates, strict=True)
                if c.accelerator == server.current_accelerator
            ]
            self.row([(z, 1.0), (u, -1.0)] + [(n, 1.0) for n in here], 0, INF)
        return Entry(server, candidates, cols, [u], opened=opened, switch=z)

    def _open_variants(self, k: int, u: int, cols: list[int], charge: float) -> list[int]:
        """Binary y per replica column: n <= (its upper bound) y, u <= sum y <= len(y) u;
        each open variant costs `charge` and serving earns one back."""
        opened = [self.var(f"y{k}_{j}", 1, True, charge, k) for j in range(len(cols))]
        for n, y in zip(cols, opened, strict=True):
            self.row([(n, 1.0), (y, -self.upper[n])], -INF, 0)
        self.row([(u, 1.0)] + [(y, -1.0) for y in opened], -INF, 0)
        self.row([(y, 1.0) for y in opened] + [(u, -float(len(opened)))], -INF, 0)
        self.cost[u] = -charge
        return opened

    def split_start(self, chosen: Mapping[str, Candidate]) -> FloatArray | None:
        """A point of the heterogeneous model: each server in `chosen` on all the
        replicas of one kept candidate at least as good as its chosen one (the same
        accelerator, else the same card type with no more cards and at least the rate
        per replica: no more cards in all), the others unserved. None when a server has
        no such candidate or its replicas exceed the column's bound (max replicas)."""
        values = np.zeros(self.n)
        for e in self.entries:
            c = chosen.get(e.server.server)
            if c is None:
                continue
            j = _covering(e.candidates, c)
            if j is None or e.candidates[j].replicas > self.upper[e.cols[j]]:
                return None
            values[e.cols[j]] = e.candidates[j].replicas
            values[e.gate[0]] = 1.0
            if e.opened:
                values[e.opened[j]] = 1.0
            if e.switch >= 0:
                values[e.switch] = float(
                    e.candidates[j].accelerator != e.server.current_accelerator)
        return values

    @cached_property
    def form(self) -> Formulation:
        """The column arrays `optimizer.lexicographic` works with (built once)."""
        gate = [(col, k) for k, e in enumerate(self.entries) for col in e.gate]
        return Formulation(
            cost=np.array(self.cost, dtype=np.float64),
            integer=np.array(self.integer, dtype=bool),
            lower=np.zeros(self.n),
            upper=np.array(self.upper, dtype=np.float64),
            gate_col=np.array([c for c, _ in gate], dtype=np.int64),
            gate_server=np.array([k for _, k in gate], dtype=np.int64),
            col_server=np.array(self.owner, dtype=np.int64),
            pin_row=np.array([e.pin_row for e in self.entries], dtype=np.int64),
            priority=np.array([e.server.priority for e in self.entries], dtype=np.int64),
            weight=np.array([e.server.demand_rps + ZERO_LOAD_WEIGHT for e in self.entries]),
            follows=np.array([name.startswith("y") for name in self.names], dtype=bool),
        )

    def formulation(self) -> Formulation:
        """The column arrays `optimizer.lexicographic` works with."""
        return self.form

    def basis(self, values: FloatArray) -> tuple[BoolArray, BoolArray] | None:
        """A starting basis around an integral point (single-type mode; else None).

        Basic: the column a server takes, the selection row of a server taking none,
        every capacity row. Nonbasic: every other column (at its lower bound) and the
        selection rows of served servers (at their upper bound 1). That is one basic
        variable per row, and the basis matrix is triangular, so never singular.
        Returns (basic columns, rows at their upper bound).
        """
        if self.het:
            return None
        basic = np.asarray(values, dtype=np.float64) >= 0.5
        taken = np.zeros(len(self.entries), dtype=bool)
        np.logical_or.at(taken, self.form.col_server, basic)
        upper = np.zeros(len(self.rows), dtype=bool)
        upper[self.form.pin_row[taken]] = True
        if int(basic.sum()) != int(taken.sum()):
            return None  # not one column per served server: not a point of this model
        return basic, upper

    def pulp(self) -> tuple[pulp.LpProblem, list[pulp.LpVariable], list[pulp.LpConstraint]]:
        """The same model as a PuLP problem (cost objective), for the CBC backend."""
        prob = pulp.LpProblem("fleetplan", pulp.LpMinimize)
        columns = [
            prob.add_variable(name, 0, upper, pulp.LpInteger if integer else pulp.LpContinuous)
            for name, upper, integer in zip(self.names, self.upper, self.integer, strict=True)
        ]
        constraints = []
        for i, row in enumerate(self.rows):
            expr = pulp.LpAffineExpression(
                [(columns[c], float(k)) for c, k in zip(row.cols, row.coef, strict=True)]
            )
            sense, rhs = _sense(row.lower, row.upper)
            constraint = pulp.LpConstraint(expr, sense, name=f"r{i}", rhs=rhs)
            prob.addConstraint(constraint)
            constraints.append(constraint)
        prob.setObjective(
            pulp.LpAffineExpression([(v, c) for v, c in zip(columns, self.cost, strict=True) if c])
        )
        return prob, columns, constraints


def _covering(candidates: tuple[Candidate, ...], chosen: Candidate) -> int | None:
    """Index of the candidate on `chosen`'s accelerator, else of the first on its card
    type with no more cards and at least the rate per replica (it needs no more
    replicas, so no more cards in all); None if there is none."""
    for j, c in enumerate(candidates):
        if c.accelerator == chosen.accelerator:
            return j
    for j, c in enumerate(candidates):
        if (c.card_type == chosen.card_type
                and c.cards_per_replica <= chosen.cards_per_replica
                and c.max_rate_per_replica_rps >= chosen.max_rate_per_replica_rps):
            return j
    return None


def _sense(lower: float, upper: float) -> tuple[int, float]:
    """PuLP's sense and right-hand side of lower <= expr <= upper (one side finite)."""
    if lower == upper:
        return pulp.LpConstraintEQ, lower
    if np.isfinite(lower):
        return pulp.LpConstraintGE, lower
    return pulp.LpConstraintLE, upper
