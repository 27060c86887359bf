"""The optimizer's entry point: `optimize(spec) -> Plan`.

Pure apart from measuring its own duration: no I/O, no printing. The solver is
`solver` or the spec's `optimizer.solver`; the queue model is `queue_model` or the
spec's `optimizer.queue_model`; unknown names raise `UnknownNameError` listing the known
ones. Candidate time and solve time are measured with `timer` (default
`time.perf_counter`) and written to the plan's solver report; pass `timer=None` to
leave them 0, which makes the plan byte-for-byte reproducible (the CLI's
`--no-timings`). Everything else in the plan is deterministic already.

Predicted latencies are computed for the chosen variants only (while building the plan),
not for every candidate, which keeps candidate generation fast at 10,000 servers.

To extend: a new solver is registered in `optimizer.registry`; a new queue model in
`queue_models.registry`; both become available here by name.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from optimizer.candidates import CandidateGenerator
from optimizer.plan_builder import build_plan
from optimizer.problem import Problem
from optimizer.registry import get_solver
from queue_models.registry import get_queue_model
from specs.documents import FleetSpec, OptimizerOptions
from specs.plan import Plan

Timer = Callable[[], float]


def make_generator(
    spec: FleetSpec,
    *,
    queue_model: str | None = None,
    batch_policy: str = "auto",
    profiled: bool = False,
) -> CandidateGenerator:
    """A candidate generator for the spec's (or the given) queue model; with `profiled`,
    the spec's profiles are the reference later (tuned) profiles are scaled against."""
    reference = {(p.model, p.accelerator): p for p in spec.profiles} if profiled else None
    return CandidateGenerator(
        get_queue_model(queue_model or spec.optimizer.queue_model), batch_policy=batch_policy,
        profiled=reference,
    )


def build_problem(
    spec: FleetSpec,
    *,
    queue_model: str | None = None,
    batch_policy: str = "auto",
    predict: bool = True,
) -> Problem:
    """Every server's candidates (with predicted latencies unless `predict` is False)."""
    generator = make_generator(spec, queue_model=queue_model, batch_policy=batch_policy)
    return generator.problem(spec, predict=predict)


def solver_options(spec: FleetSpec, generator: CandidateGenerator) -> OptimizerOptions:
    """The spec's optimizer options as the solver gets them: a model that sizes from
    measured pools (`capacity-table`) gets no heterogeneous splits, since its tables
    hold pools of one configuration, and a pool split over accelerators and routed
    least-loaded does not add up to its parts (measured: the clairvoyant bound on
    synthetic-bursts fell from 99.7% to 97.0% attainment with splits)."""
    options = spec.optimizer
    if options.heterogeneous and generator.sizes_itself:
        return options.model_copy(update={"heterogeneous": False})
    return options


def optimize(
    spec: FleetSpec,
    *,
    solver: str | None = None,
    queue_model: str | None = None,
    batch_policy: str = "auto",
    timer: Timer | None = time.perf_counter,
    generator: CandidateGenerator | None = None,
) -> Plan:
    """Choose accelerator, replicas and max batch for every server of `spec`."""
    name = solver or spec.optimizer.solver
    solve = get_solver(name)
    if generator is None:
        generator = make_generator(spec, queue_model=queue_model, batch_policy=batch_policy)
    clock = timer or (lambda: 0.0)
    start = clock()
    problem = generator.problem(spec, predict=False)
    built = clock()
    solution = solve(problem, solver_options(spec, generator))
    solved = clock()
    return build_plan(
        spec,
        problem,
        solution,
        generator.predict,
        solver=name,
        queue_model=generator.model.name,
        batch_policy=generator.batch_policy,
        candidate_time_s=max(built - start, 0.0),
        solve_time_s=max(solved - built, 0.0),
    )
