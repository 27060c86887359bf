"""The two MILP backends: highspy directly, and PuLP's own solve with its bundled CBC.

Both implement `optimizer.lexicographic.Session` over a model built by
`optimizer.milp.model.Builder`.

Why highspy directly: PuLP's HiGHS interface rebuilds the model in Python for every
solve (about 1 s per solve at 100,000 variables) and takes no start solution, while the
stages and their LP-rounding starts solve one model several times. `HighsSession` hands
the builder's arrays to highspy once, then only changes the objective, bounds and row
bounds, and starts LPs from a basis around a known plan. `PulpSession` builds the PuLP
problem (`Builder.pulp`) and goes through `prob.solve` with PuLP's bundled CBC: the
fallback when HiGHS fails, and `milp_backend: cbc`.

Time limits: HiGHS's simplex counts a limit from the object's creation, its MILP solver
from the start of the solve, and the MILP solver overruns it in places; `HighsSession`
sets the option accordingly and also interrupts a MILP from HiGHS's callback. Presolve
checks neither the callback nor, in its probing, the clock often enough: probing is off
for heterogeneous models, where it overran most.

Objectives are recomputed from the returned values: HiGHS 1.16, run from a start, can
report the objective (and an "optimal" status) of a plan it does not return; such a
result is solved once more without the start.

Status: PuLP's `LpStatus` says "Optimal" even when a time limit stopped CBC, so
`prob.sol_status` (1 proven optimal, 2 feasible only) is read. CBC's MILP bound is not
available through PuLP (None; the LP relaxation's value is). HiGHS prints a banner on
stdout even with its output off: file descriptor 1 points to /dev/null while a HiGHS
object is created or run (process-wide for that moment).

To extend: a new backend implements the `Session` methods and maps its statuses onto
optimal / feasible / infeasible / failed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import replace

import highspy
import numpy as np
import pulp

from optimizer.lexicographic import FloatArray, IntArray, Result
from optimizer.milp.model import Builder, Row


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null (HiGHS's banner ignores its output settings)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _csr(rows: list[Row]) -> tuple[IntArray, IntArray, FloatArray]:
    starts = np.cumsum([0] + [len(r.cols) for r in rows[:-1]]).astype(np.int32)
    index = np.concatenate([r.cols for r in rows]).astype(np.int32)
    value = np.concatenate([r.coef for r in rows]).astype(np.float64)
    return starts, index, value


_OPTIONS: tuple[tuple[str, bool | int], ...] = (
    ("output_flag", False),
    ("threads", 1),
    ("random_seed", 0),
    # HiGHS's root heuristics after a restart ignore the time limit and the interrupt
    # callback (a 5.9 s limit ran 17 s at 10,000 servers); our full MILPs come after
    # reduced-cost fixing, which already removes what a restart would
    ("mip_allow_restart", False),
)
_SPLIT_OPTIONS: tuple[tuple[str, bool | int], ...] = (
    # heterogeneous models: MIP presolve's probing checks the time limit too rarely (a
    # local-search sub-MILP with a 1.1 s limit spent 87 s probing at 10,000 servers)
    ("presolve_rule_off", 1 << 15),
)

_COL_STATUS = np.array(
    [highspy.HighsBasisStatus.kLower, highspy.HighsBasisStatus.kBasic], dtype=object
)
_ROW_STATUS = np.array(
    [highspy.HighsBasisStatus.kBasic, highspy.HighsBasisStatus.kUpper], dtype=object
)


class HighsSession:
    """The model's arrays in one highspy object, changed in place between solves.

    An LP solve given a `start` begins from `Builder.basis(start)` instead of the slack
    basis (or whatever the last solve left): from a good integral point the simplex
    needs a few thousand iterations at 10,000 servers instead of twenty thousand.
    """

    def __init__(self, builder: Builder) -> None:
        with quiet_stdout():
            self.h = highspy.Highs()
        for option, value in _OPTIONS + (_SPLIT_OPTIONS if builder.het else ()):
            self.h.setOptionValue(option, value)
        self.builder = builder
        form = builder.formulation()
        n = builder.n
        self.h.addVars(n, form.lower, form.upper)
        self.h.changeColsCost(n, np.arange(n, dtype=np.int32), form.cost)
        ints = np.flatnonzero(form.integer).astype(np.int32)
        self.h.changeColsIntegrality(len(ints), ints, np.ones(len(ints), dtype=np.uint8))
        self.add_rows(builder.rows)
        self.n = n
        self.cost = form.cost.copy()
        self.limit = float("inf")
        self.h.cbMipInterrupt.subscribe(self._interrupt)

    def _interrupt(self, event: highspy.highs.HighsCallbackEvent) -> None:
        """Stop a MILP at its time limit: HiGHS's own check misses it in places (a 7.5 s
        limit ran 60 s at 10,000 servers when its RENS and RINS both ran)."""
        event.interrupt(event.data_out.running_time > self.limit)  # the flag persists

    def set_objective(self, cost: FloatArray, maximize: bool) -> None:
        """Replace the objective and its sense."""
        self.cost = np.asarray(cost, dtype=np.float64).copy()
        self.h.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), cost)
        sense = highspy.ObjSense.kMaximize if maximize else highspy.ObjSense.kMinimize
        self.h.changeObjectiveSense(sense)

    def set_bounds(self, cols: IntArray, lower: FloatArray, upper: FloatArray) -> None:
        """Change column bounds."""
        self.h.changeColsBounds(len(cols), cols.astype(np.int32), lower, upper)

    def add_rows(self, rows: list[Row]) -> None:
        """Append rows lower <= sum(coef x[col]) <= upper."""
        if not rows:
            return
        starts, index, value = _csr(rows)
        lower = np.array([r.lower for r in rows], dtype=np.float64)
        upper = np.array([r.upper for r in rows], dtype=np.float64)
        self.h.addRows(len(rows), lower, upper, len(index), starts, index, value)

    def set_row_bounds(self, rows: IntArray, lower: FloatArray, upper: FloatArray) -> None:
        """Change row bounds."""
        self.h.changeRowsBounds(len(rows), rows.astype(np.int32), lower, upper)

    def _set_basis(self, start: FloatArray) -> None:
        """Start the next simplex from the basis around an integral point, if any."""
        hint = self.builder.basis(start)
        if hint is None:
            return
        basic, upper = hint
        basis = highspy.HighsBasis()
        basis.col_status = list(_COL_STATUS[basic.astype(np.int64)])
        basis.row_status = list(_ROW_STATUS[upper.astype(np.int64)])
        basis.valid = True
        self.h.setBasis(basis)

    def solve(
        self,
        *,
        relax: bool,
        gap: float,
        time_limit: float,
        start: FloatArray | None,
        target: float | None = None,
    ) -> Result:
        """Solve (the LP relaxation with `relax`) from `start` when given: a MILP start,
        or for the LP the basis around it. A MILP stops at `target` (HiGHS's objective
        target, in the objective's own sense; no bound is known then)."""
        h = self.h
        self._prepare(relax, gap, time_limit, start, target)
        before = h.getRunTime()
        with quiet_stdout():
            h.run()
        result, consistent = self._result(relax, max(h.getRunTime() - before, 0.0))
        if not consistent and start is not None:
            # once more without the start, which HiGHS 1.16 keeps across runs until
            # `clearSolver` (then it reports consistently)
            left = max(float(time_limit) - result.seconds, 0.05)
            h.clearSolver()
            again = self.solve(relax=False, gap=gap, time_limit=left, start=None, target=target)
            return replace(again, seconds=again.seconds + result.seconds)
        return result

    def _prepare(
        self,
        relax: bool,
        gap: float,
        time_limit: float,
        start: FloatArray | None,
        target: float | None,
    ) -> None:
        """Options and starting point of the next run."""
        h = self.h
        h.setOptionValue("solve_relaxation", relax)
        h.setOptionValue("mip_rel_gap", gap)
        h.setOptionValue("objective_target", -np.inf if target is None else float(target))
        # HiGHS's simplex compares `time_limit` with the object's total run time over all
        # solves, its MIP solver with this solve's: make the LP limit a deadline
        clock = h.getRunTime() if relax else 0.0
        h.setOptionValue("time_limit", clock + float(time_limit))
        self.limit = float(time_limit)
        if start is not None and relax:
            self._set_basis(start)
        elif start is not None:
            h.setSolution(self.n, np.arange(self.n, dtype=np.int32), start)

    def _result(self, relax: bool, seconds: float) -> tuple[Result, bool]:
        """The solve's result, and whether HiGHS's objective matches its values.

        The objective is recomputed from the values: a MILP run from a start can report
        the objective (and status) of a plan it does not return. Then the values are
        kept as a feasible plan without a bound, and `solve` tries again without the
        start.
        """
        h = self.h
        info, status = h.getInfo(), h.getModelStatus()
        values = np.asarray(h.getSolution().col_value, dtype=np.float64)
        objective = float(self.cost @ values)
        found = info.primal_solution_status == 2
        reported = info.objective_function_value
        if found and not relax and abs(reported - objective) > 1e-7 * max(abs(objective), 1.0):
            return Result("feasible", values, objective, None, seconds), False
        if status == highspy.HighsModelStatus.kOptimal:
            if relax:
                reduced = np.asarray(h.getSolution().col_dual, dtype=np.float64)
                return Result("optimal", values, objective, objective, seconds, reduced), True
            return Result("optimal", values, objective, info.mip_dual_bound, seconds), True
        if found and not relax:
            return Result("feasible", values, objective, info.mip_dual_bound, seconds), True
        infeasible = status == highspy.HighsModelStatus.kInfeasible
        return Result("infeasible" if infeasible else "failed", values, 0.0, None, seconds), True


class PulpSession:
    """The same model solved through PuLP's `prob.solve` with its bundled CBC."""

    def __init__(self, builder: Builder) -> None:
        self.prob, self.columns, self.rows = builder.pulp()

    def set_row_bounds(self, rows: IntArray, lower: FloatArray, upper: FloatArray) -> None:
        """Change row bounds."""
        for r, lo, hi in zip(rows, lower, upper, strict=True):
            constraint = self.rows[r]
            if lo == hi:
                constraint.sense, constraint.constant = pulp.LpConstraintEQ, -float(lo)
            elif np.isfinite(lo) and not np.isfinite(hi):
                constraint.sense, constraint.constant = pulp.LpConstraintGE, -float(lo)
            elif np.isfinite(hi) and not np.isfinite(lo):
                constraint.sense, constraint.constant = pulp.LpConstraintLE, -float(hi)
            else:
                raise ValueError("a PuLP row has one bound or two equal ones")

    def set_objective(self, cost: FloatArray, maximize: bool) -> None:
        """Replace the objective and its sense."""
        self.prob.sense = pulp.LpMaximize if maximize else pulp.LpMinimize
        self.prob.setObjective(
            pulp.LpAffineExpression(
                [(v, float(c)) for v, c in zip(self.columns, cost, strict=True) if c]
            )
        )

    def set_bounds(self, cols: IntArray, lower: FloatArray, upper: FloatArray) -> None:
        """Change column bounds."""
        for c, lo, hi in zip(cols, lower, upper, strict=True):
            self.columns[c].lowBound, self.columns[c].upBound = float(lo), float(hi)

    def solve(
        self,
        *,
        relax: bool,
        gap: float,
        time_limit: float,
        start: FloatArray | None,
        target: float | None = None,
    ) -> Result:
        """Solve (the LP relaxation with `relax`), from `start` (MILP only); no target."""
        del target  # CBC through PuLP has no such option
        if start is not None and not relax:
            for v, x in zip(self.columns, start, strict=True):
                # a solver's values can stray 1e-13 outside the bounds; PuLP refuses those
                v.setInitialValue(min(max(float(x), v.lowBound), v.upBound))
        with (
            warnings.catch_warnings()
        ):  # PuLP 3 deprecates its bundled CBC; it is still the fallback
            warnings.simplefilter("ignore", DeprecationWarning)
            solver = pulp.PULP_CBC_CMD(
                msg=False,
                mip=not relax,
                gapRel=gap,
                timeLimit=time_limit,
                threads=1,
                warmStart=start is not None and not relax,
            )
        with quiet_stdout():
            self.prob.solve(solver)
        values = np.array([v.varValue or 0.0 for v in self.columns], dtype=np.float64)
        objective = float(pulp.value(self.prob.objective) or 0.0)
        seconds = max(float(self.prob.solutionTime), 0.0)
        if self.prob.sol_status == pulp.LpSolutionOptimal:
            if relax:
                reduced = np.array([v.dj or 0.0 for v in self.columns], dtype=np.float64)
                return Result("optimal", values, objective, objective, seconds, reduced)
            return Result("optimal", values, objective, None, seconds)
        if self.prob.sol_status == pulp.LpSolutionIntegerFeasible:
            return Result("feasible", values, objective, None, seconds)
        infeasible = self.prob.status == pulp.LpStatusInfeasible
        return Result("infeasible" if infeasible else "failed", values, 0.0, None, seconds)
