"""Lexicographic priorities over a MILP session, with an LP-rounding start for every solve.

The MILP solver (`optimizer.milp`) formulates; this module decides what to solve, in
which order, against the `Session` Protocol (columns addressed by index), so it runs the
same on HiGHS and on CBC and can be tested with a fake.

Stages: for each priority (1 first), unless `prefix_fits(p)` says every server up to p
can be served (the greedy placed them all; group p is then pinned without a solve),
maximise the group's served weight (demand + 1e-3 per server, on the `gate` columns: x
of a server's candidates, or its served indicator u) with lower priorities switched off
and higher groups held to what they were given; equal-weight choices are broken toward
lower cost by a tie-breaker worth at most 1e-6 of the group's weight. The servers
served are then pinned (sum of gate = 1) and the others closed. Last, cost is
minimised over how the chosen servers are served. No higher group ever gives up served
load for a lower one: each group is settled before the next is looked at. A stage
stopped by the gap (`mip_gap`) may serve up to that fraction less of its group than the
best possible; with `mip_gap` 0 it is exact (the tests check it against brute force).

Each solve ("stage solve"): the LP relaxation first; if it is integral it is the answer.
Otherwise a start near the LP: RENS (servers the LP decided integrally stay fixed there,
except the few hundred that could move most cheaply, i.e. with the smallest reduced cost
off their LP choice; the small MILP over the rest is solved), else RINS from the previous
stage's solution (fixed where it agrees with the LP), else RENS ten times wider. A start
within the gap of the LP bound is the answer (the LP bound is the proof). Otherwise it
seeds the full MILP after reduced-cost fixing: a column at a bound whose LP reduced cost
exceeds the start's distance to the LP bound cannot move in any better solution, so
fixing it is exact. (MILP solvers spend most of their time on these instances finding a
first good solution; this is what makes 10,000 servers take seconds, not minutes.)

To extend: a new kind of stage is a function here using only the `Session` methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

Status = Literal["optimal", "feasible", "infeasible", "failed"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_INTEGRAL_TOL = 1e-6
_TIE_BREAK = 1e-6
"""Share of a group's served weight the cost tie-breaker can be worth in its stage."""


@dataclass(frozen=True, slots=True)
class Result:
    """One solve: status, column values, objective, best bound (None if unknown), seconds."""

    status: Status
    values: FloatArray
    objective: float
    bound: float | None
    seconds: float
    reduced: FloatArray | None = None
    """Reduced costs (LP solves only, when the backend reports them)."""


class Session(Protocol):
    """A MILP model whose objective, bounds and rows can change between solves."""

    def set_objective(self, cost: FloatArray, maximize: bool) -> None:
        """Replace the objective (one coefficient per column)."""
        ...

    def set_bounds(self, cols: IntArray, lower: FloatArray, upper: FloatArray) -> None:
        """Change the bounds of some columns."""
        ...

    def set_row_bounds(self, rows: IntArray, lower: FloatArray, upper: FloatArray) -> None:
        """Change the bounds of existing rows."""
        ...

    def solve(
        self, *, relax: bool, gap: float, time_limit: float, start: FloatArray | None
    ) -> Result:
        """Solve (the LP relaxation with `relax`), optionally from a feasible start."""
        ...


@dataclass(frozen=True)
class Formulation:
    """What the stages need to know about the model's columns."""

    cost: FloatArray
    integer: BoolArray
    lower: FloatArray
    upper: FloatArray
    gate_col: IntArray
    """Columns whose sum says a server is served."""
    gate_server: IntArray
    """Server index (into `priority`/`weight`) of each gate column."""
    col_server: IntArray
    """Server index of every column (-1 for none)."""
    pin_row: IntArray
    """Per server, a row sum(gate) <= 1 whose lower bound 1 pins it served (-1: none,
    then its single gate column's lower bound is raised to 1)."""
    priority: IntArray
    weight: FloatArray


@dataclass
class Outcome:
    """The final solve and the bookkeeping of all solves."""

    result: Result
    solves: int = 0
    seconds: float = 0.0
    worst: Status = "optimal"
    stages: list[str] = field(default_factory=list)
    lp_bound: float | None = None
    """LP relaxation value of the last stage solved (the cost stage at the end)."""
    fixed: int = 0
    """Columns fixed by reduced costs, over all stages."""


def relative_gap(objective: float, bound: float | None, maximize: bool) -> float | None:
    """(objective - bound) / |objective| for a minimum (reversed for a maximum)."""
    if bound is None:
        return None
    diff = (bound - objective) if maximize else (objective - bound)
    return max(diff, 0.0) / max(abs(objective), 1e-9) if abs(objective) > 1e-12 else max(diff, 0.0)


class _Runner:
    """Runs stage solves within one time budget, keeping the current column bounds."""

    def __init__(self, form: Formulation, session: Session, gap: float, time_limit: float) -> None:
        self.form, self.session, self.gap, self.limit = form, session, gap, time_limit
        self.lower, self.upper = form.lower.copy(), form.upper.copy()
        self.outcome = Outcome(Result("failed", np.zeros(len(form.cost)), 0.0, None, 0.0))
        self.cap: float | None = None
        """While set, solves stop at this many seconds of solver time (a sub-budget)."""

    def _solve(
        self, relax: bool, start: FloatArray | None = None, limit: float | None = None
    ) -> Result:
        end = self.limit if self.cap is None else min(self.limit, self.cap)
        left = max(end - self.outcome.seconds, 0.05)
        result = self.session.solve(
            relax=relax, gap=self.gap, time_limit=min(left, limit or left), start=start
        )
        self.outcome.solves += 1
        self.outcome.seconds += result.seconds
        return result

    def stage(self, maximize: bool, start: FloatArray | None) -> Result:
        """LP; if fractional, a RENS start, reduced-cost fixing, then the reduced MILP."""
        lp = self._solve(relax=True)
        if lp.status in ("infeasible", "failed"):
            return lp
        self.outcome.lp_bound = lp.objective
        frac = self.form.integer & (np.abs(lp.values - np.round(lp.values)) > _INTEGRAL_TOL)
        if not frac.any():
            return Result("optimal", np.round(lp.values), lp.objective, lp.objective, lp.seconds)
        sub = self._incumbent(lp, frac, start)
        if sub is not None:
            gap = relative_gap(sub.objective, lp.objective, maximize)
            if gap is not None and gap <= self.gap:
                return Result("optimal", sub.values, sub.objective, lp.objective, sub.seconds)
            start = sub.values
        fixed = (
            self._reduced_cost_fixing(lp, sub) if sub is not None else np.zeros(0, dtype=np.int64)
        )
        full = self._solve(relax=False, start=start)
        self.session.set_bounds(fixed, self.lower[fixed], self.upper[fixed])
        if full.status not in ("optimal", "feasible"):
            return sub if sub is not None else full
        best, bound = full, full.bound if full.bound is not None else lp.objective
        if sub is not None:
            # fixings only hold for solutions better than `sub`: the bound is one of the two
            bound = max(bound, sub.objective) if maximize else min(bound, sub.objective)
            if (sub.objective > full.objective) if maximize else (sub.objective < full.objective):
                best = sub  # the fixing excluded the start itself; nothing better exists
        bound = min(bound, lp.objective) if maximize else max(bound, lp.objective)
        return Result(full.status, best.values, best.objective, bound, full.seconds)

    def _neighbourhood(self, lp: Result, frac: BoolArray, size: int) -> BoolArray:
        """Columns left free: servers the LP left fractional, and the `size` servers that
        could move most cheaply (smallest reduced cost off their LP choice)."""
        owner = self.form.col_server
        undecided = np.unique(owner[frac & (owner >= 0)])
        if lp.reduced is not None:
            servers = len(self.form.priority)
            cheapest = np.full(servers, np.inf)
            at_lower = (
                (owner >= 0) & self.form.integer & (np.abs(lp.values - self.lower) <= _INTEGRAL_TOL)
            )
            np.minimum.at(cheapest, owner[at_lower], np.abs(lp.reduced[at_lower]))
            extra = min(servers, size)
            undecided = np.union1d(undecided, np.argsort(cheapest, kind="stable")[:extra])
        return np.isin(owner, undecided) & (owner >= 0)

    def _sub_mip(
        self, free: BoolArray, values: FloatArray, start: FloatArray | None
    ) -> Result | None:
        """Solve with every integer column outside `free` fixed at `values`."""
        fixed = np.flatnonzero(self.form.integer & ~free)
        value = np.round(values[fixed])
        self.session.set_bounds(fixed, value, value)
        sub = self._solve(
            relax=False, start=start, limit=0.25 * max(self.limit - self.outcome.seconds, 0.05)
        )
        self.session.set_bounds(fixed, self.lower[fixed], self.upper[fixed])
        return sub if sub.status in ("optimal", "feasible") else None

    def _incumbent(self, lp: Result, frac: BoolArray, start: FloatArray | None) -> Result | None:
        """A good solution near the LP: RENS on a small neighbourhood; else RINS from the
        known feasible `start` (servers where it and the LP agree stay fixed); else RENS
        on a neighbourhood ten times larger."""
        owner = self.form.col_server
        fractional = len(np.unique(owner[frac]))
        found = self._sub_mip(
            self._neighbourhood(lp, frac, max(200, 20 * fractional)), lp.values, None
        )
        if found is None and start is not None:
            differ = np.zeros(len(self.form.priority), dtype=bool)
            np.logical_or.at(
                differ, owner[owner >= 0], (np.round(start) != np.round(lp.values))[owner >= 0]
            )
            free = (owner >= 0) & (differ[np.maximum(owner, 0)] | np.isin(owner, owner[frac]))
            found = self._sub_mip(free, start, start)
        if found is None:
            found = self._sub_mip(
                self._neighbourhood(lp, frac, max(2000, 200 * fractional)), lp.values, None
            )
        return found

    def _reduced_cost_fixing(self, lp: Result, incumbent: Result) -> IntArray:
        """Fix columns at a bound whose reduced cost exceeds |incumbent - LP| (exact).

        Moving such a column off its bound would cost more than the whole gap, so no
        solution better than the incumbent has it anywhere else. Returns the columns
        fixed (the caller restores their bounds).
        """
        if lp.reduced is None:
            return np.zeros(0, dtype=np.int64)
        slack = abs(incumbent.objective - lp.objective) * (1 + 1e-7) + 1e-9
        x, d = lp.values, np.abs(lp.reduced)
        at_lower = self.form.integer & (np.abs(x - self.lower) <= _INTEGRAL_TOL) & (d > slack)
        at_upper = (
            self.form.integer & (np.abs(x - self.upper) <= _INTEGRAL_TOL) & (d > slack) & ~at_lower
        )
        low, up = np.flatnonzero(at_lower), np.flatnonzero(at_upper)
        self.session.set_bounds(low, self.lower[low], self.lower[low])
        self.session.set_bounds(up, self.upper[up], self.upper[up])
        self.outcome.fixed += len(low) + len(up)
        return np.concatenate([low, up])

    def note(self, result: Result) -> None:
        """Remember the worst status of any stage."""
        order = ("optimal", "feasible", "infeasible", "failed")
        if order.index(result.status) > order.index(self.outcome.worst):
            self.outcome.worst = result.status

    def set_upper(self, cols: IntArray, upper: FloatArray) -> None:
        """Change (and remember) upper bounds."""
        self.upper[cols] = upper
        self.session.set_bounds(cols, self.lower[cols], self.upper[cols])


def _pin(run: _Runner, servers: IntArray, served: bool = True) -> None:
    """Require the servers to be served (pin rows to [1, 1] or gate columns to >= 1);
    with `served` False, lift that requirement again."""
    form = run.form
    rows = form.pin_row[servers]
    with_row = rows >= 0
    if with_row.any():
        n = int(with_row.sum())
        lower = np.ones(n) if served else np.full(n, -np.inf)
        run.session.set_row_bounds(rows[with_row], lower, np.ones(n))
    cols = form.gate_col[np.isin(form.gate_server, servers[~with_row])]
    if len(cols):
        run.lower[cols] = 1.0 if served else 0.0
        run.session.set_bounds(cols, run.lower[cols], run.upper[cols])


def _open_upto(run: _Runner, p: int, closed: BoolArray) -> None:
    """Open the gate columns of groups up to p (except given-up servers), close the rest."""
    form = run.form
    shut = (form.priority[form.gate_server] > p) | closed
    run.set_upper(form.gate_col, np.where(shut, 0.0, form.upper[form.gate_col]))


def _all_served(run: _Runner, p: int, group: IntArray, closed: BoolArray) -> Result | None:
    """Try group p fully served at least cost (lower groups off), within 30% of the time
    left; None (and the pins lifted) when no such plan was found."""
    _open_upto(run, p, closed)
    _pin(run, group)
    run.session.set_objective(run.form.cost, maximize=False)
    run.cap = run.outcome.seconds + 0.3 * max(run.limit - run.outcome.seconds, 0.0)
    result = run.stage(maximize=False, start=None)
    run.cap = None
    if result.status in ("optimal", "feasible"):
        return result
    _pin(run, group, served=False)
    return None


def _served_objective(form: Formulation, p: int) -> FloatArray:
    """Served weight of group p, minus a cost tie-breaker worth `_TIE_BREAK` of it."""
    objective = np.zeros(len(form.cost))
    in_group = form.priority[form.gate_server] == p
    objective[form.gate_col[in_group]] = form.weight[form.gate_server[in_group]]
    owned = (form.col_server >= 0) & (form.priority[np.maximum(form.col_server, 0)] == p)
    most = float((form.cost[owned] * form.upper[owned]).sum())
    if most > 0:
        total = float(form.weight[form.priority == p].sum())
        objective[owned] -= _TIE_BREAK * total / most * form.cost[owned]
    return objective


def _served_stage(run: _Runner, p: int, closed: BoolArray, start: FloatArray | None) -> Result:
    """Maximise group p's served weight with lower groups and given-up servers closed."""
    _open_upto(run, p, closed)
    run.session.set_objective(_served_objective(run.form, p), maximize=True)
    result = run.stage(maximize=True, start=start)
    run.note(result)
    if result.status not in ("optimal", "feasible"):
        raise RuntimeError(f"priority {p}: served-load stage {result.status}")
    return result


def _served_set(run: _Runner, p: int, group: IntArray, result: Result) -> BoolArray:
    """Pin the servers a served-load stage served; return the ones it left out."""
    form = run.form
    served = np.zeros(len(form.priority))
    np.add.at(served, form.gate_server, result.values[form.gate_col])
    chosen, left = group[served[group] >= 0.5], group[served[group] < 0.5]
    _pin(run, chosen)
    load, total = float(form.weight[chosen].sum()), float(form.weight[group].sum())
    run.outcome.stages.append(
        f"{p}: {len(chosen)} of {len(group)} served ({load:.6g} of {total:.6g})"
    )
    return np.isin(form.gate_server, left)


def solve_lexicographic(
    form: Formulation,
    session: Session,
    *,
    gap: float,
    time_limit: float,
    prefix_fits: dict[int, bool],
) -> Outcome:
    """Decide each priority group's served servers in turn, then minimise cost.

    A group the greedy could not place is first tried fully served at least cost (cheap
    when it works, and then, for the last group, already the answer); only when no such
    plan is found does its served-load stage run.
    """
    run = _Runner(form, session, gap, time_limit)
    start: FloatArray | None = None
    closed = np.zeros(len(form.gate_col), dtype=bool)
    priorities = sorted(set(form.priority.tolist()))
    final: Result | None = None
    for p in priorities:
        group = np.flatnonzero(form.priority == p)
        final = None
        if prefix_fits.get(p, False):
            _pin(run, group)
            run.outcome.stages.append(f"{p}: fits")
            continue
        attempt = _all_served(run, p, group, closed)
        if attempt is not None:
            start, final = attempt.values, attempt
            run.outcome.stages.append(f"{p}: all {len(group)} served")
            continue
        result = _served_stage(run, p, closed, start)
        start = result.values
        closed |= _served_set(run, p, group, result)
    _open_upto(run, priorities[-1], closed)
    if final is None or final.status != "optimal":
        session.set_objective(form.cost, maximize=False)
        final = run.stage(maximize=False, start=start)
    run.note(final)
    run.outcome.result = final
    return run.outcome
