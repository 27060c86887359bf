"""`fleetplan optimize PATH`: choose accelerators, replicas and max batch sizes offline.

PATH is a native fleet document, an inferno `system-data.json` or a directory of
inferno's six files. Prints a fixed-width table per server (accelerator, replicas, max
batch, cost, predicted TTFT/ITL against the targets, cards), the servers that could not
be served and why, cards used per card type against capacity, and totals. With `-o FILE`
it also writes the plan as JSON (native `Plan`, or inferno's solution with
`--format inferno`), atomically. Exit 0 also when some servers could not be served (they
are listed); exit 2 on bad input or an unknown solver/queue model name, before anything
is written. `--no-timings` leaves the report's candidate and solve times at 0, so the
JSON is byte-for-byte the same on every run.
"""

from __future__ import annotations

import argparse
import time

from optimizer.api import optimize
from optimizer.registry import solver_names
from queue_models.registry import queue_model_names
from specs.documents import FleetSpec, ModelTarget
from specs.inferno import to_inferno_solution
from specs.loading import load_fleet, write_json_atomic
from specs.plan import Plan, ServerAllocation, SolverReport

_HEADER = (
    f"{'server':<28} {'class':<12} {'accelerator':<12} {'repl':>5} {'batch':>5} "
    f"{'cost/h':>10} {'TTFT ms (target)':>20} {'ITL ms (target)':>18} {'cards':>11}"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `optimize` sub-command."""
    parser = subparsers.add_parser(
        "optimize",
        help="choose accelerators, replicas and max batch sizes for a fleet",
        description="Optimise a native document, an inferno system-data.json or a directory of "
        "inferno's files; print a table per server and totals; optionally write the plan. "
        "Exit 0 also when some servers cannot be served (they are listed); 2 on bad input.",
    )
    parser.add_argument("path", help="fleet document or inferno directory")
    parser.add_argument(
        "--solver", help=f"solver: {', '.join(solver_names())} (default: the document's)"
    )
    parser.add_argument(
        "--queue-model",
        help=f"queue model: {', '.join(queue_model_names())} (default: the document's)",
    )
    parser.add_argument(
        "--format",
        choices=("native", "inferno"),
        default="native",
        help="plan format written with -o: native Plan (default) or inferno's solution",
    )
    parser.add_argument("-o", "--output", help="write the plan as JSON to this file")
    parser.add_argument(
        "--no-timings",
        action="store_true",
        help="leave candidate/solve times at 0 (reproducible JSON)",
    )
    parser.set_defaults(func=run)


def _target(value: float, statistic: str) -> str:
    if value <= 0:
        return "-"
    suffix = "" if ModelTarget.percentile(statistic) is None else f" {statistic}"
    return f"{value:g}{suffix}"


def _rows(target: ModelTarget, alloc: ServerAllocation) -> list[str]:
    klass = f"{alloc.service_class}/{alloc.priority}"
    if not alloc.variants:
        return [f"{alloc.server:<28} {klass:<12} {'(scaled to zero)':<12}"]
    rows = []
    for i, v in enumerate(alloc.variants):
        name = alloc.server if i == 0 else "  + split"
        flag = "" if alloc.meets_targets else " best effort"
        ttft = f"{v.predicted_ttft_ms:.1f} ({_target(target.ttft_ms, target.ttft_statistic)})"
        itl = f"{v.predicted_itl_ms:.1f} ({_target(target.itl_ms, target.itl_statistic)})"
        cards = f"{v.cards} {v.card_type}"
        rows.append(
            f"{name:<28} {klass:<12} {v.accelerator:<12} {v.replicas:>5} {v.max_batch:>5} "
            f"{v.cost_per_hour:>10.2f} {ttft:>20} {itl:>18} {cards:>11}{flag}"
        )
    return rows


def _report(report: SolverReport | None) -> str:
    if report is None:
        return "solver: (none)"
    parts = [f"solver {report.solver}: {report.status}"]
    if report.objective is not None:
        parts.append(f"objective {report.objective:.2f}")
    if report.best_bound is not None:
        parts.append(f"bound {report.best_bound:.2f}")
    if report.gap is not None:
        parts.append(f"gap {100 * report.gap:.4f}%")
    if report.candidate_time_s or report.solve_time_s:
        parts.append(
            f"candidates {report.candidate_time_s:.3f} s, solve {report.solve_time_s:.3f} s"
        )
    return ", ".join(parts) + (f" ({report.detail})" if report.detail else "")


def render(spec: FleetSpec, plan: Plan) -> str:
    """The readable table of a plan."""
    lines = [_HEADER, "-" * len(_HEADER)]
    servers = {s.name: s for s in spec.servers}
    for alloc in plan.allocations:
        lines.extend(_rows(spec.targets_for(servers[alloc.server]), alloc))
    if plan.unserved:
        lines += ["", f"not fully served ({len(plan.unserved)}):"]
        for u in plan.unserved:
            lines.append(f"  {u.server}: {'best effort only; ' if u.partial else ''}{u.reason}")
    lines += ["", "cards used per card type:"]
    for card_type in sorted(set(plan.cards_used) | set(spec.capacity)):
        used, cap = plan.cards_used.get(card_type, 0), spec.capacity.get(card_type, 0)
        over = "  OVER CAPACITY" if used > cap else ""
        lines.append(f"  {card_type:<12} {used:>7} / {cap}{over}")
    served = sum(1 for a in plan.allocations if a.meets_targets)
    lines += [
        "",
        f"total cost {plan.total_cost_per_hour:.2f}/h; {served} servers meet their targets, "
        f"{len(plan.unserved)} not fully served",
        _report(plan.solver),
        f"queue model {plan.queue_model}, max batch by {plan.batch_policy}",
    ]
    return "\n".join(line.rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    """Load, optimise, print, and write the plan when asked."""
    spec = load_fleet(args.path).spec
    plan = optimize(
        spec,
        solver=args.solver,
        queue_model=args.queue_model,
        timer=None if args.no_timings else time.perf_counter,
    )
    print(render(spec, plan))
    if args.output:
        document = to_inferno_solution(plan) if args.format == "inferno" else plan
        write_json_atomic(args.output, document)
    return 0
