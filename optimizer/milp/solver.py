"""`solve_milp`: the registered `milp` solver.

Steps: nothing to place -> an empty plan; single-type mode with every server's cheapest
candidate fitting -> that plan, optimal without a MILP; otherwise dominance pruning,
the model, and `optimizer.lexicographic` on HiGHS from the greedy's plan (heterogeneous
mode: from the single-type milp's plan, `_start_plan`), falling back to CBC once if
HiGHS fails. Servers left unserved get best effort from the saturation policy over the
leftover cards, as in the greedy. The report says "optimal" (within `mip_gap`) or
"feasible" (a time limit stopped a stage), with the bound, gap and the LP bound of the
final cost problem. In heterogeneous mode the objective includes the variant charges of
split servers (`OptimizerOptions.variant_cost_fraction`, `model.variant_charge`), and
the detail says how many variants were charged and what they added.

To extend: a new backend is one more name in `_run` and a `Session` in `backends`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optimizer.greedy import greedy_placement
from optimizer.lexicographic import FloatArray, Outcome, Session, relative_gap, solve_lexicographic
from optimizer.milp.backends import HighsSession, PulpSession
from optimizer.milp.model import Builder, variant_charge
from optimizer.problem import (
    Assignment,
    Problem,
    ServerCandidates,
    Solution,
    Variant,
    capacity_reason,
)
from optimizer.pruning import prune
from optimizer.saturation import best_effort
from optimizer.transition import per_replica_factor
from specs.documents import OptimizerOptions

_SINGLE_SHARE = 0.5
"""Most of the time limit the heterogeneous mode gives the single-type solve of its start
(it usually needs far less; the split model gets what is left, at least this share)."""


def _fits(servers: list[ServerCandidates], capacity: dict[str, int]) -> bool:
    """True when every server's cheapest candidate fits at once."""
    used: dict[str, int] = {}
    for s in servers:
        used[s.candidates[0].card_type] = (
            used.get(s.candidates[0].card_type, 0) + s.candidates[0].cards
        )
    return all(n <= capacity.get(t, 0) for t, n in used.items())


def greedy_start(builder: Builder, placed: list[Assignment]) -> FloatArray | None:
    """The greedy's placements as column values.

    A placement on a pruned candidate moves to the kept candidate that dominates it
    (same card type and no more cards, or an ample type), which keeps it feasible; a
    placement with no such candidate makes the whole start None. Heterogeneous mode:
    `Builder.split_start`.
    """
    chosen = {a.server: a.variants[0].candidate for a in placed}
    if builder.het:
        return builder.split_start(chosen)
    values = np.zeros(builder.n)
    for e in builder.entries:
        c = chosen.get(e.server.server)
        if c is None:
            continue
        col = next(
            (
                col
                for col, k in zip(e.cols, e.candidates, strict=True)
                if k.accelerator == c.accelerator
                or (k.card_type == c.card_type and k.cards <= c.cards)
                or k.card_type in builder.pruned.ample
            ),
            None,
        )
        if col is None:
            return None
        values[col] = 1.0
    return values


def _run(builder: Builder, problem: Problem, options: OptimizerOptions,
         fits: dict[int, bool], placed: list[Assignment], limit: float,
         ) -> tuple[Outcome, str]:
    """Stages on the chosen backend from `placed` (a plan to start from), within `limit`
    seconds, `fits` saying which priorities the greedy placed in full; on a HiGHS
    failure, once more on CBC (which gets its own time limit)."""
    backends = ["highs", "cbc"] if options.milp_backend == "highs" else ["cbc"]
    errors = []
    for name in backends:
        builder_now = builder if name == backends[0] else _rebuilt(builder, problem, options)
        session: Session = (
            HighsSession(builder_now) if name == "highs" else PulpSession(builder_now)
        )
        try:
            outcome = solve_lexicographic(
                builder_now.formulation(),
                session,
                gap=options.mip_gap,
                time_limit=limit,
                prefix_fits=fits,
                start=greedy_start(builder_now, placed),
            )
        except RuntimeError as exc:
            errors.append(f"{name}: {exc}")
            continue
        if outcome.result.status in ("optimal", "feasible"):
            return outcome, name + ("" if not errors else f" (after {'; '.join(errors)})")
        errors.append(f"{name}: final stage {outcome.result.status}")
    raise RuntimeError("MILP failed: " + "; ".join(errors))


def _start_plan(problem: Problem, options: OptimizerOptions, placed: list[Assignment],
                ) -> tuple[list[Assignment], float]:
    """The plan the stages start from, and the solver seconds spent finding it.

    Single-type mode: the greedy's placements `placed`. Heterogeneous mode: the
    single-type milp's plan (each server on one whole candidate, which the split model
    holds), within `_SINGLE_SHARE` of the time limit: its LP is nearly integral and solved
    in a fraction of the split model's time, and it serves about as much as a split plan,
    where the greedy's can serve much less and the split model's own heuristics can take
    seconds to find any plan (the LP splits every server's load). `placed` if it fails.
    """
    if not options.heterogeneous:
        return placed, 0.0
    servers = list(problem.placeable())
    if _fits(servers, dict(problem.capacity)):
        return list(_cheapest(servers).assignments), 0.0
    limit = options.time_limit_s * _SINGLE_SHARE
    single = options.model_copy(update={"heterogeneous": False, "time_limit_s": limit})
    try:
        solved = _model_solution(problem, single)
    except RuntimeError:
        return placed, limit
    return solved.assignments, solved.seconds


def _rebuilt(builder: Builder, problem: Problem, options: OptimizerOptions) -> Builder:
    fresh = Builder(problem, builder.pruned, options.heterogeneous,
                    builder.variant_cost_fraction)
    fresh.build()
    return fresh


def _fraction(options: OptimizerOptions) -> float:
    """The variant charge fraction in force (splits exist only in heterogeneous mode)."""
    return options.variant_cost_fraction if options.heterogeneous else 0.0


def _assignments(builder: Builder, values: FloatArray) -> list[Assignment]:
    out = []
    for e in builder.entries:
        counts = np.round(values[e.cols]).astype(int).tolist()
        if builder.het:
            variants = tuple(
                Variant(c, n) for c, n in zip(e.candidates, counts, strict=True) if n > 0
            )
        else:
            variants = tuple(
                Variant(c, c.replicas) for c, n in zip(e.candidates, counts, strict=True) if n > 0
            )
        if variants:
            out.append(Assignment(e.server.server, variants))
    return out


def _value(assignment: Assignment, server: ServerCandidates, factor: float,
           charge: float = 0.0) -> float:
    """Objective value of one assignment (the candidate's, or the split's cost and
    penalty), plus `charge` for every variant beyond the first."""
    first = assignment.variants[0]
    if len(assignment.variants) == 1 and first.replicas == first.candidate.replicas:
        return first.candidate.value
    total = sum(
        v.cost * per_replica_factor(v.candidate.accelerator, server.current_accelerator, factor)
        for v in assignment.variants
    )
    if all(v.candidate.accelerator != server.current_accelerator for v in assignment.variants):
        total += factor * server.current_cost
    return total + charge * (len(assignment.variants) - 1)


def _charges(assignments: list[Assignment], by_name: dict[str, ServerCandidates],
             fraction: float) -> tuple[int, float]:
    """Variants beyond each server's first, and what they add to the objective."""
    extra = [(len(a.variants) - 1, variant_charge(by_name[a.server], fraction))
             for a in assignments]
    return sum(n for n, _ in extra), sum(n * c for n, c in extra)


def _cheapest(servers: list[ServerCandidates]) -> Solution:
    """Every server on its cheapest candidate: optimal when that fits (no MILP needed)."""
    chosen = [
        Assignment(s.server, (Variant(s.candidates[0], s.candidates[0].replicas),)) for s in servers
    ]
    objective = sum(s.candidates[0].value for s in servers)
    detail = "every server's cheapest candidate fits: optimal without a MILP"
    return Solution(tuple(chosen), {}, "optimal", objective, objective, 0.0, objective, detail)


class _Solved(NamedTuple):
    """What `_model_solution` found (seconds: solver time, the start's included)."""

    assignments: list[Assignment]
    status: str
    bound: float | None
    lp: float | None
    detail: str
    seconds: float


def _model_solution(problem: Problem, options: OptimizerOptions) -> _Solved:
    """Prune, build, solve from the start plan within the time limit."""
    pruned = prune(
        problem.placeable(),
        problem.capacity,
        heterogeneous=options.heterogeneous,
        factor=problem.transition_factor,
    )
    builder = Builder(problem, pruned, options.heterogeneous, _fraction(options))
    builder.build()
    free = [Assignment(name, (Variant(c, c.replicas),)) for name, c in pruned.free.items()]
    free_value = sum(c.value for c in pruned.free.values())
    if not builder.entries:
        return _Solved(free, "optimal", free_value, free_value,
                       "every server is free after pruning", 0.0)
    fits, greedy = greedy_placement(problem.placeable(), problem.capacity)
    placed, used = _start_plan(problem, options, greedy)
    limit = max(options.time_limit_s - used, options.time_limit_s * _SINGLE_SHARE)
    outcome, backend = _run(builder, problem, options, fits, placed, limit)
    result = outcome.result
    detail = (
        f"{backend}, {outcome.solves} solves, {builder.n} columns "
        f"({len(pruned.free)} servers need none), stages [{', '.join(outcome.stages)}]"
    )
    status = "optimal" if outcome.worst == "optimal" else "feasible"
    bound = None if result.bound is None else result.bound + free_value
    lp = None if outcome.lp_bound is None else outcome.lp_bound + free_value
    return _Solved(_assignments(builder, result.values) + free, status, bound, lp, detail,
                   used + outcome.seconds)


def solve_milp(problem: Problem, options: OptimizerOptions) -> Solution:
    """Lexicographic-by-priority MILP over the problem's candidates."""
    servers = list(problem.placeable())
    if not servers:
        return Solution((), {}, "empty", 0.0, 0.0, 0.0, 0.0, "no servers to place")
    if not options.heterogeneous and _fits(servers, dict(problem.capacity)):
        return _cheapest(servers)
    return _finish(problem, options, _model_solution(problem, options))


def _finish(problem: Problem, options: OptimizerOptions, solved: _Solved) -> Solution:
    """Best effort for the unserved (saturation policy), objective, gap and report."""
    assignments = solved.assignments
    by_name = {s.server: s for s in problem.placeable()}
    fraction = _fraction(options)
    objective = sum(
        _value(a, by_name[a.server], problem.transition_factor,
               variant_charge(by_name[a.server], fraction))
        for a in assignments
    )
    served = {a.server for a in assignments}
    left = sorted(
        (s for s in by_name.values() if s.server not in served),
        key=lambda s: (s.priority, s.server),
    )
    available = dict(problem.capacity)
    for a in assignments:
        for v in a.variants:
            available[v.candidate.card_type] = available.get(v.candidate.card_type, 0) - v.cards
    reasons = {s.server: capacity_reason(s, available) for s in left}
    partial = best_effort(options.saturation_policy, left, available)
    full = {a.server for a in partial if a.meets_targets}
    return Solution(
        assignments=tuple(sorted(assignments + partial, key=lambda a: a.server)),
        unserved={k: v for k, v in sorted(reasons.items()) if k not in full},
        status="optimal" if solved.status == "optimal" else "feasible",
        objective=objective,
        best_bound=solved.bound,
        gap=relative_gap(objective, solved.bound, False),
        lp_bound=solved.lp,
        detail=_detail(solved, _charges(assignments, by_name, fraction), fraction),
    )


def _detail(solved: _Solved, charges: tuple[int, float], fraction: float) -> str:
    """The report's detail: backend and stages, variant charges, a time-limit note."""
    count, total = charges
    out = solved.detail
    if total > 0:
        out += (f"; objective includes {count} variant charges ({total:.6g}/h, "
                f"variant_cost_fraction {fraction:g})")
    if solved.status != "optimal":
        out += "; time limit: feasible, not proven optimal"
    return out
