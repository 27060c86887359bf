"""Lexicographic priorities over a MILP session, with an LP-guided start for every solve.

The MILP solver (`optimizer.milp`) formulates; this module decides what to solve, in
which order, against the `Session` Protocol (columns addressed by index), so it runs the
same on HiGHS and on CBC and can be tested with a fake.

Stages: for each priority (1 first), unless `prefix_fits(p)` says every server up to p
can be served (the greedy placed them all; group p is then pinned without a solve), the
group is first tried fully served at least cost (from the best plan known when that plan
serves the whole group; servers whose gates are closed are zeroed in any start), else
maximise the group's served weight (demand + 1e-3 per server, on the `gate` columns: x
of a server's candidates, or its served indicator u) with lower priorities switched off
and higher groups held to what they were given; equal-weight choices are broken toward
lower cost by a tie-breaker worth at most 1e-6 of the group's weight. The servers
served are then pinned (sum of gate = 1) and the others closed. Last, cost is
minimised over how the chosen servers are served. No higher group ever gives up served
load for a lower one: each group is settled before the next is looked at. A stage
stopped by the gap (`mip_gap`) may serve up to that fraction less of its group than the
best possible; with `mip_gap` 0 it is exact (the tests check it against brute force).

Each solve ("stage solve"): the LP relaxation first, from a simplex basis around the
best plan known (the greedy's for the first stage, then each stage's answer: a few
thousand simplex iterations at 10,000 servers instead of twenty thousand); if it is
integral it is the answer. Otherwise a plan near the LP: RENS (servers the LP decided
integrally stay fixed there, except the few hundred that could move most cheaply, i.e.
with the smallest reduced cost off their LP choice; the small MILP over the rest is
solved; skipped when it would free every server, as a heterogeneous LP that splits every
server's load makes it; columns that follow from the others, `Formulation.follows`, are
neither fractional nor fixed there), then a local search from the best plan known (that one, else the start): the
servers where it loses most against the LP in reduced-cost terms, plus partners cheap
to move, are re-optimised in a small MILP, a few rounds (`optimizer.neighbourhoods`);
else RENS ten times wider. These sub-MILPs stop as soon as they reach the target, the
worst objective within the gap of the LP bound. A plan within the gap of the LP bound
is the answer (the LP bound is the proof). Otherwise it seeds the full MILP after
reduced-cost fixing: a column at a bound whose LP reduced cost exceeds the plan's
distance to the LP bound cannot move in any better solution, so fixing it is exact. A
full MILP stopped by the time limit whose incumbent is still proven within the gap
counts as optimal; one whose LP fails (time out) keeps the best plan known, checked by
the solver, as feasible without a bound. (MILP solvers spend most of their time on
these instances finding a first good solution; with an exact packing left to the last
stage, HiGHS alone took 17 s at 10,000 servers to get within 0.1% where the local
search takes a tenth of a second.)

To extend: a new kind of stage is a function here using only the `Session` methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from optimizer import neighbourhoods as hood

Status = Literal["optimal", "feasible", "infeasible", "failed"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_INTEGRAL_TOL = 1e-6
_GAP_NOISE = 1e-12
"""Relative gap below which a plan counts as proven even with `mip_gap` 0: the objective
is recomputed from the values, so it can exceed an exact bound by float rounding."""
_TIE_BREAK = 1e-6
"""Share of a group's served weight the cost tie-breaker can be worth in its stage."""
_SEARCH_SIZE = 150
"""Servers the first local-search round re-optimises (doubled after a round without gain)."""
_SEARCH_ROUNDS = 8
_SUB_GAP = 0.1
"""Local-search sub-MILPs (which stop at the target anyway) run to this share of the
stage's gap: a neighbourhood solved only to the stage's gap stalls short of it."""
_SEARCH_SHARE = 8
"""The local search stops when its neighbourhood would exceed 1/this of the servers."""
_SERVED_SHARE = 0.7
"""Share of the time left that a served-load stage may use."""


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
        self,
        *,
        relax: bool,
        gap: float,
        time_limit: float,
        start: FloatArray | None,
        target: float | None = None,
    ) -> Result:
        """Solve (the LP relaxation with `relax`), optionally from a feasible start (for
        the LP: a hint for the starting basis). A MILP may stop as soon as it has a
        solution at least as good as `target` (backends may ignore it)."""
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
    follows: BoolArray
    """Integer columns whose best value follows once the others are fixed (a variant's
    "open" indicator): never counted as fractional, never fixed by the sub-MILPs."""


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


def _better(a: Result, b: Result, maximize: bool) -> bool:
    """True when `a` has the better objective (by more than float noise)."""
    tol = 1e-9 * max(abs(a.objective), abs(b.objective), 1.0)
    return a.objective > b.objective + tol if maximize else a.objective < b.objective - tol


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
        self.maximize = False
        """The sense of the stage being solved."""

    def _end(self) -> float:
        """Seconds of solver time at which solves stop (the budget, or a sub-budget)."""
        return self.limit if self.cap is None else min(self.limit, self.cap)

    def _solve(
        self,
        relax: bool,
        start: FloatArray | None = None,
        limit: float | None = None,
        target: float | None = None,
        gap: float | None = None,
    ) -> Result:
        left = max(self._end() - self.outcome.seconds, 0.05)
        gap = self.gap if gap is None else gap
        result = self.session.solve(
            relax=relax, gap=gap, time_limit=min(left, limit or left), start=start, target=target
        )
        self.outcome.solves += 1
        self.outcome.seconds += result.seconds
        return result

    def stage(self, maximize: bool, start: FloatArray | None) -> Result:
        """LP (from a basis around `start`); if fractional, a start near it (RENS, then
        a local search from the best plan known), reduced-cost fixing, the reduced MILP."""
        self.maximize = maximize
        if start is not None:
            start = self.restrict(start)
        lp = self._solve(relax=True, start=start)
        if lp.status in ("infeasible", "failed"):
            self.outcome.lp_bound = None
            kept = self._keep(start) if lp.status == "failed" else None
            return kept if kept is not None else lp
        self.outcome.lp_bound = lp.objective
        frac = self.form.integer & (np.abs(lp.values - np.round(lp.values)) > _INTEGRAL_TOL)
        if not frac.any():
            return Result("optimal", np.round(lp.values), lp.objective, lp.objective, lp.seconds)
        sub = self._incumbent(lp, frac & ~self.form.follows, start)
        if sub is not None and self._close(sub, lp):
            return Result("optimal", sub.values, sub.objective, lp.objective, sub.seconds)
        return self._full(lp, sub, start)

    def _full(self, lp: Result, sub: Result | None, start: FloatArray | None) -> Result:
        """The full MILP from the best plan known, after reduced-cost fixing around it;
        optimal exactly when its answer is proven within the gap (whatever the solver
        said: the bound and the recomputed objective decide), even if the time ran out."""
        maximize = self.maximize
        if sub is not None:
            start = sub.values
        fixed = (
            self._reduced_cost_fixing(lp, sub) if sub is not None else np.zeros(0, dtype=np.int64)
        )
        full = self._solve(relax=False, start=start)
        self.session.set_bounds(fixed, self.lower[fixed], self.upper[fixed])
        if full.status not in ("optimal", "feasible"):
            if sub is None:
                return full
            # the sub-MILP's own "optimal" proves nothing for the stage: the LP bound does
            return Result("feasible", sub.values, sub.objective, lp.objective, sub.seconds)
        best, bound = full, full.bound if full.bound is not None else lp.objective
        if sub is not None:
            # fixings only hold for solutions better than `sub`: the bound is one of the two
            bound = max(bound, sub.objective) if maximize else min(bound, sub.objective)
            if _better(sub, full, maximize):
                best = sub  # the fixing excluded the start itself; nothing better exists
        bound = min(bound, lp.objective) if maximize else max(bound, lp.objective)
        gap = relative_gap(best.objective, bound, maximize)
        status: Status = "optimal" if self._proven(gap) else "feasible"
        return Result(status, best.values, best.objective, bound, full.seconds)

    def _target(self, lp: Result) -> float:
        """The worst objective within the gap of the LP bound (sub-MILPs may stop there)."""
        z = lp.objective
        if self.maximize:
            return z / (1 + self.gap) if z >= 0 else z * (1 + self.gap)
        return z / (1 - self.gap) if z >= 0 else z * (1 - self.gap)

    def _close(self, found: Result, lp: Result) -> bool:
        """True when `found` is within the gap of the LP bound."""
        return self._proven(relative_gap(found.objective, lp.objective, self.maximize))

    def _proven(self, gap: float | None) -> bool:
        """True when a relative gap is within the stage's (up to float noise)."""
        return gap is not None and gap <= self.gap + _GAP_NOISE

    def _keep(self, start: FloatArray | None) -> Result | None:
        """`start` checked by the solver with every integer column fixed there (the LP
        failed, e.g. the time ran out): a feasible answer without a bound, or None."""
        if start is None:
            return None
        kept = self._sub_mip(np.zeros(len(self.form.cost), dtype=bool), start, start)
        return None if kept is None else Result("feasible", kept.values, kept.objective, None, 0.0)

    def _sub_mip(
        self,
        free: BoolArray,
        values: FloatArray,
        start: FloatArray | None,
        target: float | None = None,
        gap: float | None = None,
    ) -> Result | None:
        """Solve with every integer column outside `free` fixed at `values`, stopping at
        `target` (a plan within the gap of the LP bound) or at `gap` (default: the
        stage's) from the sub-MILP's own bound."""
        fixed = np.flatnonzero(self.form.integer & ~free & ~self.form.follows)
        value = np.round(values[fixed])
        self.session.set_bounds(fixed, value, value)
        sub = self._solve(
            relax=False,
            start=start,
            limit=0.25 * max(self.limit - self.outcome.seconds, 0.05),
            target=target,
            gap=gap,
        )
        self.session.set_bounds(fixed, self.lower[fixed], self.upper[fixed])
        return sub if sub.status in ("optimal", "feasible") else None

    def _rens(self, lp: Result, frac: BoolArray, size: int) -> Result | None:
        """Sub-MILP around the LP: fractional servers and the `size` cheapest to move free;
        None without a solve when that frees every server (it would be the full MILP
        without a start, as when a heterogeneous LP splits every server's load)."""
        form, owner = self.form, self.form.col_server
        at_lower = form.integer & (np.abs(lp.values - self.lower) <= _INTEGRAL_TOL)
        free = np.union1d(
            hood.undecided(owner, frac),
            hood.cheapest_moves(owner, at_lower, lp.reduced, len(form.priority), size),
        )
        if len(free) >= len(form.priority):
            return None
        return self._sub_mip(hood.columns_of(owner, free), lp.values, None, self._target(lp))

    def _incumbent(self, lp: Result, frac: BoolArray, start: FloatArray | None) -> Result | None:
        """A good solution near the LP: RENS on a small neighbourhood; then a local search
        from the best plan known (that one, else `start`); else RENS ten times wider."""
        fractional = len(hood.undecided(self.form.col_server, frac))
        found = self._rens(lp, frac, max(200, 20 * fractional))
        if found is None or not self._close(found, lp):
            found = self._local_search(lp, frac, found, start)
        if found is None:
            found = self._rens(lp, frac, max(2000, 200 * fractional))
        return found

    def _local_search(
        self, lp: Result, frac: BoolArray, found: Result | None, start: FloatArray | None
    ) -> Result | None:
        """Re-optimise the servers where the best plan loses most against the LP, a few
        rounds, doubling the neighbourhood when a round finds nothing better; stop when
        it would hold more than 1/8 of the servers (the full MILP after reduced-cost
        fixing is then about as cheap)."""
        values = found.values if found is not None else start
        size = _SEARCH_SIZE
        for _ in range(_SEARCH_ROUNDS):
            if values is None or self.outcome.seconds >= self._end():
                break
            if size > len(self.form.priority) // _SEARCH_SHARE:
                break
            free = self._worst(lp, frac, values, size)
            sub = self._sub_mip(free, values, values, self._target(lp), self.gap * _SUB_GAP)
            if sub is None:
                break
            if found is None or _better(sub, found, self.maximize):
                found, values = sub, sub.values
                if self._close(found, lp):
                    break
            else:
                size *= 2
        return found

    def _worst(self, lp: Result, frac: BoolArray, values: FloatArray, size: int) -> BoolArray:
        """Columns of the `size` servers where `values` loses most against the LP, made
        up to `size` with the servers cheapest to move (partners that make room), and
        of the servers the LP left fractional."""
        owner, servers = self.form.col_server, len(self.form.priority)
        loss = hood.server_loss(owner, servers, lp.values, lp.reduced, values, self.maximize)
        worst = hood.worst_servers(loss, size)
        at_lower = self.form.integer & (np.abs(lp.values - self.lower) <= _INTEGRAL_TOL)
        partners = hood.cheapest_moves(owner, at_lower, lp.reduced, servers, size - len(worst))
        free = np.union1d(np.union1d(worst, partners), hood.undecided(owner, frac))
        return hood.columns_of(owner, free)

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

    def restrict(self, start: FloatArray) -> FloatArray:
        """`start` within the current bounds, servers whose gates are all closed taking
        nothing (their other columns zeroed too, as the rows linking them require)."""
        form = self.form
        start = np.clip(start, self.lower, self.upper)
        open_server = np.zeros(len(form.priority), dtype=bool)
        open_server[form.gate_server[self.upper[form.gate_col] > 0]] = True
        owned = form.col_server >= 0
        shut = np.zeros(len(start), dtype=bool)
        shut[owned] = ~open_server[form.col_server[owned]]
        start[shut] = 0.0
        return start

    def serves(self, start: FloatArray | None, group: IntArray) -> bool:
        """True when `start` serves every server of `group` (gate values summing to 1)."""
        if start is None:
            return False
        served = np.zeros(len(self.form.priority))
        np.add.at(served, self.form.gate_server, start[self.form.gate_col])
        return bool((served[group] >= 0.5).all())

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


def _all_served(
    run: _Runner, p: int, group: IntArray, closed: BoolArray, start: FloatArray | None
) -> Result | None:
    """Try group p fully served at least cost (lower groups off), within 30% of the time
    left, from `start` if it serves the whole group; None (and the pins lifted) when no
    such plan was found."""
    _open_upto(run, p, closed)
    _pin(run, group)
    run.session.set_objective(run.form.cost, maximize=False)
    run.cap = run.outcome.seconds + 0.3 * max(run.limit - run.outcome.seconds, 0.0)
    if start is not None:
        start = run.restrict(start)
    result = run.stage(maximize=False, start=start if run.serves(start, group) else None)
    run.cap = None
    if result.status in ("optimal", "feasible"):
        return result
    _pin(run, group, served=False)
    return None


def _served_objective(form: Formulation, p: int) -> FloatArray:
    """Served weight of group p, minus a cost tie-breaker worth at most `_TIE_BREAK` of it
    (costs may be negative, e.g. a served column earning a charge back: scaled by their
    absolute values)."""
    objective = np.zeros(len(form.cost))
    in_group = form.priority[form.gate_server] == p
    objective[form.gate_col[in_group]] = form.weight[form.gate_server[in_group]]
    owned = (form.col_server >= 0) & (form.priority[np.maximum(form.col_server, 0)] == p)
    most = float((np.abs(form.cost[owned]) * form.upper[owned]).sum())
    if most > 0:
        total = float(form.weight[form.priority == p].sum())
        objective[owned] -= _TIE_BREAK * total / most * form.cost[owned]
    return objective


def _served_stage(run: _Runner, p: int, closed: BoolArray, start: FloatArray | None) -> Result:
    """Maximise group p's served weight with lower groups and given-up servers closed,
    within 70% of the time left (the cost stage after it needs some)."""
    _open_upto(run, p, closed)
    run.session.set_objective(_served_objective(run.form, p), maximize=True)
    run.cap = run.outcome.seconds + _SERVED_SHARE * max(run.limit - run.outcome.seconds, 0.0)
    result = run.stage(maximize=True, start=start)
    run.cap = None
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
    start: FloatArray | None = None,
) -> Outcome:
    """Decide each priority group's served servers in turn, then minimise cost.

    A group the greedy could not place is first tried fully served at least cost, else
    its served-load stage runs. `start`: a feasible plan for the first such stage (the
    greedy's); each answer starts the next stage."""
    run = _Runner(form, session, gap, time_limit)
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
        attempt = _all_served(run, p, group, closed, start)
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
