"""`fleetplan size PROBLEM.json`: size one replica for a queue-analysis problem.

Modes mirror inferno's queue-analysis answers: `optimize` (best max batch, then the
largest rate meeting the targets; `solution-optimize.json`), `solve` (performance at the
problem's rate; `solution-solve.json`) and `target` (the largest rate per target;
`solution-target.json`). The output uses inferno's field names.
"""

from __future__ import annotations

import argparse
import json

from queue_models.base import ServiceParams, Targets
from queue_models.problems import (
    TargetsInfeasible,
    optimize_problem,
    solve_problem,
    target_problem,
)
from queue_models.registry import DEFAULT_QUEUE_MODEL, get_queue_model, queue_model_names
from specs.errors import SpecError
from specs.loading import write_json_atomic
from specs.queue_problem import QueueProblem, read_queue_problem

MODES = {"optimize": optimize_problem, "solve": solve_problem, "target": target_problem}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `size` sub-command."""
    parser = subparsers.add_parser(
        "size", help="size one replica for a queue-analysis problem document",
        description="Read an inferno queue-analysis problem (problem-data.json) and print the "
        "sizing result as JSON with inferno's field names.",
    )
    parser.add_argument("problem", help="problem document (JSON)")
    parser.add_argument(
        "--queue-model", default=DEFAULT_QUEUE_MODEL,
        help=f"queue model: {', '.join(queue_model_names())}",
    )
    parser.add_argument(
        "--mode", choices=sorted(MODES), default="optimize",
        help="optimize: best max batch and max rate at the targets (default); solve: "
        "performance at the problem's rate; target: max rate per target",
    )
    parser.add_argument("-o", "--output", help="also write the JSON to this file")
    parser.set_defaults(func=run)


def _params(problem: QueueProblem) -> tuple[ServiceParams, Targets]:
    params = ServiceParams(
        alpha_ms=problem.alpha_ms, beta_ms=problem.beta_ms, gamma_ms=problem.gamma_ms,
        in_tokens=problem.in_tokens, out_tokens=problem.out_tokens,
        max_batch=problem.max_batch, max_queue=problem.max_queue,
        token_budget=problem.token_budget,
    )
    targets = Targets(
        ttft_ms=problem.target_ttft_ms, itl_ms=problem.target_itl_ms,
        tokens_per_s=problem.target_tps,
    )
    return params, targets


def run(args: argparse.Namespace) -> int:
    """Size the problem and print the answer."""
    model = get_queue_model(args.queue_model)
    problem = read_queue_problem(args.problem)
    params, targets = _params(problem)
    try:
        answer = MODES[args.mode](model, params, problem.rate_rps, targets)
    except TargetsInfeasible as exc:
        raise SpecError(f"targets cannot be met: {exc}", file=args.problem,
                        hint="loosen targetTTFT/targetITL or use faster hardware") from None
    if args.output:
        write_json_atomic(args.output, answer)
    print(json.dumps(answer, indent=2))
    return 0
