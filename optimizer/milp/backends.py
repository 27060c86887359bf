"""The two MILP backends: highspy directly, and PuLP's own solve with its bundled CBC.

Both implement `optimizer.lexicographic.Session` over a model built by
`optimizer.milp.model.Builder`.

Why highspy directly: PuLP builds the model, but its HiGHS interface rebuilds it in
Python for every solve (about 1 s per solve at 100,000 variables) and takes no start
solution, while the stages and their LP-rounding starts solve one model several times.
`HighsSession` hands PuLP's model to highspy once, as arrays, then only changes the
objective, bounds and row bounds. `PulpSession` goes through `prob.solve` with PuLP's
bundled CBC: the fallback when HiGHS fails, and `milp_backend: cbc`.

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

import highspy
import numpy as np
import pulp

from optimizer.lexicographic import FloatArray, IntArray, Result
from optimizer.milp.model import Builder

Row = tuple[IntArray, FloatArray, float, float]


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
    starts = np.cumsum([0] + [len(cols) for cols, _, _, _ in rows[:-1]]).astype(np.int32)
    index = np.concatenate([cols for cols, _, _, _ in rows]).astype(np.int32)
    value = np.concatenate([coef for _, coef, _, _ in rows]).astype(np.float64)
    return starts, index, value


class HighsSession:
    """PuLP's model in one highspy object, changed in place between solves."""

    def __init__(self, builder: Builder) -> None:
        with quiet_stdout():
            self.h = highspy.Highs()
        for option, value in (("output_flag", False), ("threads", 1), ("random_seed", 0)):
            self.h.setOptionValue(option, value)
        index = {v: i for i, v in enumerate(builder.columns)}
        n = len(builder.columns)
        form = builder.formulation()
        self.h.addVars(n, form.lower, form.upper)
        self.h.changeColsCost(n, np.arange(n, dtype=np.int32), form.cost)
        ints = np.flatnonzero(form.integer).astype(np.int32)
        self.h.changeColsIntegrality(len(ints), ints, np.ones(len(ints), dtype=np.uint8))
        self.add_rows([_pulp_row(c, index) for c in builder.rows])
        self.n = n

    def set_objective(self, cost: FloatArray, maximize: bool) -> None:
        """Replace the objective and its sense."""
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
        lower = np.array([lo for _, _, lo, _ in rows], dtype=np.float64)
        upper = np.array([hi for _, _, _, hi in rows], dtype=np.float64)
        self.h.addRows(len(rows), lower, upper, len(index), starts, index, value)

    def set_row_bounds(self, rows: IntArray, lower: FloatArray, upper: FloatArray) -> None:
        """Change row bounds."""
        self.h.changeRowsBounds(len(rows), rows.astype(np.int32), lower, upper)

    def solve(
        self, *, relax: bool, gap: float, time_limit: float, start: FloatArray | None
    ) -> Result:
        """Solve (the LP relaxation with `relax`), from `start` when given."""
        h = self.h
        h.setOptionValue("solve_relaxation", relax)
        h.setOptionValue("mip_rel_gap", gap)
        h.setOptionValue("time_limit", float(time_limit))
        if start is not None and not relax:
            h.setSolution(self.n, np.arange(self.n, dtype=np.int32), start)
        before = h.getRunTime()
        with quiet_stdout():
            h.run()
        info, status = h.getInfo(), h.getModelStatus()
        seconds = max(h.getRunTime() - before, 0.0)
        values = np.asarray(h.getSolution().col_value, dtype=np.float64)
        if status == highspy.HighsModelStatus.kOptimal:
            if relax:
                reduced = np.asarray(h.getSolution().col_dual, dtype=np.float64)
                return Result(
                    "optimal",
                    values,
                    info.objective_function_value,
                    info.objective_function_value,
                    seconds,
                    reduced,
                )
            return Result(
                "optimal", values, info.objective_function_value, info.mip_dual_bound, seconds
            )
        if info.primal_solution_status == 2 and not relax:
            return Result(
                "feasible", values, info.objective_function_value, info.mip_dual_bound, seconds
            )
        infeasible = status == highspy.HighsModelStatus.kInfeasible
        return Result("infeasible" if infeasible else "failed", values, 0.0, None, seconds)


def _pulp_row(constraint: pulp.LpConstraint, index: dict[pulp.LpVariable, int]) -> Row:
    cols = np.array([index[v] for v in constraint], dtype=np.int64)
    coef = np.array([constraint[v] for v in constraint], dtype=np.float64)
    rhs = -constraint.constant
    lower = rhs if constraint.sense in (pulp.LpConstraintGE, pulp.LpConstraintEQ) else -np.inf
    upper = rhs if constraint.sense in (pulp.LpConstraintLE, pulp.LpConstraintEQ) else np.inf
    return cols, coef, lower, upper


class PulpSession:
    """The same model solved through PuLP's `prob.solve` with its bundled CBC."""

    def __init__(self, builder: Builder) -> None:
        self.prob, self.columns, self.rows = builder.prob, builder.columns, builder.rows

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
        self, *, relax: bool, gap: float, time_limit: float, start: FloatArray | None
    ) -> Result:
        """Solve (the LP relaxation with `relax`), from `start` when given."""
        if start is not None:
            for v, x in zip(self.columns, start, strict=True):
                v.setInitialValue(float(x))
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
