"""The solver registry: solvers by the name the spec's `optimizer.solver` or `--solver` uses.

A solver is a pure function `(Problem, OptimizerOptions) -> Solution` (no I/O, no clock
reads). The registered names must equal `specs.documents.SOLVER_NAMES` (a test checks).

To extend: write the solver in its own module and add one `SOLVERS.register` line here
(and its name to `SOLVER_NAMES` in specs).
"""

from __future__ import annotations

from collections.abc import Callable

from optimizer.greedy import solve_greedy
from optimizer.milp import solve_milp
from optimizer.problem import Problem, Solution
from optimizer.unlimited import solve_unlimited
from specs.documents import OptimizerOptions
from specs.registry import Registry

Solver = Callable[[Problem, OptimizerOptions], Solution]

SOLVERS = Registry[Solver]("solver")
SOLVERS.register("milp", solve_milp)
SOLVERS.register("greedy", solve_greedy)
SOLVERS.register("unlimited", solve_unlimited)


def get_solver(name: str) -> Solver:
    """The solver called `name`; an unknown name raises `UnknownNameError` listing the known."""
    return SOLVERS.get(name)


def solver_names() -> list[str]:
    """Registered solver names, sorted."""
    return SOLVERS.names()
