"""The `unlimited` solver: every server takes its cheapest candidate; capacity is ignored.

This is capacity planning (inferno's `unlimited` option): the plan says what the fleet
would cost and how many cards of each type it would need if nothing ran out. The cards
used may exceed the capacity; the plan's `cards_used` shows by how much.

To extend: nothing to configure; a variant (e.g. cheapest within a budget) is a new
solver module registered in `optimizer.registry`.
"""

from __future__ import annotations

from optimizer.problem import Assignment, Problem, Solution, Variant
from specs.documents import OptimizerOptions


def solve_unlimited(problem: Problem, options: OptimizerOptions) -> Solution:
    """Each placeable server gets its first candidate (lowest value, then name)."""
    del options  # the choice does not depend on any option
    assignments = []
    for server in problem.placeable():
        best = server.candidates[0]
        assignments.append(Assignment(server.server, (Variant(best, best.replicas),)))
    objective = sum(a.variants[0].candidate.value for a in assignments)
    return Solution(
        assignments=tuple(assignments),
        unserved={},
        status="optimal",
        objective=objective,
        best_bound=objective,
        gap=0.0,
        detail="optimal without capacity limits (capacity planning; cards may exceed capacity)",
    )
