"""`fleetplan evaluate`: compare five ways of running a fleet on the same arrivals and the
same simulated hardware, in virtual time.

    fleetplan evaluate SCENARIO -o DIR
    fleetplan evaluate --trace FILE [--trace-format azure|mooncake] --spec PATH -o DIR
    fleetplan evaluate --list

SCENARIO is a built-in scenario name (`--list`) or a scenario file (see
`controller.evaluation.scenario`). DIR receives `summary.json`, `report.md` and PNG plots,
written only once every run has finished. Traces are read from `--data-dir` (default:
`shared/data` beside the checkout, or `$FLEETPLAN_DATA_DIR`). `--duration` shortens the
run (a reduced version of the standard set); `--validate` adds the queue-model validation
on the scenario's hardware (`validation.md`). Progress goes to stderr: a line per policy,
and a bar in simulated time when stderr is a terminal. Exit 2 on bad input, before
anything runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from controller.commands.argtypes import positive_float, positive_int
from controller.evaluation.progress import TerminalBar
from controller.evaluation.report import evaluate
from controller.evaluation.scenario import (
    POLICY_NAMES,
    Scenario,
    TraceSource,
    Workload,
    builtin_scenarios,
    load_scenario,
)
from specs.errors import SpecError
from specs.loading import load_fleet


def default_data_dir() -> Path:
    """`$FLEETPLAN_DATA_DIR`, else `shared/data` beside the checkout."""
    env = os.environ.get("FLEETPLAN_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/fleetplan/capacity`, else `~/.cache/fleetplan/capacity`."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "fleetplan" / "capacity"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` sub-command."""
    parser = subparsers.add_parser(
        "evaluate", help="compare fleetplan with four other policies on a simulated fleet",
        description="Run static peak, reactive, inferno greedy, fleetplan and the clairvoyant "
        "bound on the same arrivals and simulated hardware; write summary.json, report.md "
        "and plots into DIR.")
    parser.add_argument("scenario", nargs="?", help="built-in scenario name or scenario file")
    parser.add_argument("-o", "--output", help="output folder (DIR)")
    parser.add_argument("--trace", help="evaluate one trace instead of a scenario")
    parser.add_argument("--trace-format", choices=("azure", "mooncake"),
                        help="trace format (default: from the extension)")
    parser.add_argument("--spec", help="fleet spec for --trace (its first server gets the "
                        "trace unless --server names another)")
    parser.add_argument("--server", help="server that receives --trace")
    parser.add_argument("--data-dir", type=Path, help="folder of the public traces "
                        "(default: $FLEETPLAN_DATA_DIR or shared/data beside the checkout)")
    parser.add_argument("--policies", help="comma-separated subset of: " + ", ".join(POLICY_NAMES))
    parser.add_argument("--duration", type=positive_float, help="simulate only this many "
                        "seconds of arrivals")
    parser.add_argument("--validate", action="store_true", help="also compare the queue "
                        "model with the simulated hardware (validation.md)")
    parser.add_argument("--cache-dir", type=Path, help="folder keeping measured capacity "
                        "tables between runs (default: $XDG_CACHE_HOME/fleetplan/capacity, "
                        "else ~/.cache/fleetplan/capacity)")
    parser.add_argument("--no-cache", action="store_true", help="measure capacity tables "
                        "afresh and keep them in memory only")
    parser.add_argument("--calibration-requests", type=positive_int, help="requests "
                        "replayed per capacity-table probe (default: the scenario's, 4000; "
                        "fewer is faster and coarser)")
    parser.add_argument("--list", action="store_true", help="list built-in scenarios and exit")
    parser.set_defaults(func=run)


def _trace_scenario(args: argparse.Namespace) -> Scenario:
    if not args.spec:
        raise SpecError("--trace needs --spec PATH")
    spec_path = Path(args.spec).resolve()
    spec = load_fleet(spec_path).spec
    server = args.server or spec.servers[0].name
    trace = TraceSource(path=str(Path(args.trace).resolve()), format=args.trace_format)
    scenario = Scenario(name=Path(args.trace).stem, spec=str(spec_path),
                        description=f"Trace {args.trace} for server {server} of {args.spec}.",
                        workloads=[Workload(server=server, trace=trace)])
    scenario.fleet()
    return scenario


def _scenario(args: argparse.Namespace) -> Scenario:
    if args.trace:
        scenario = _trace_scenario(args)
    elif args.scenario:
        scenario = load_scenario(args.scenario)
    else:
        raise SpecError("give a SCENARIO or --trace FILE --spec PATH",
                        hint="built-in: " + ", ".join(builtin_scenarios()))
    update: dict[str, object] = {}
    if args.duration:
        update["duration_s"] = min(args.duration, scenario.duration_s)
    if args.calibration_requests:
        update["calibration"] = scenario.calibration.model_copy(
            update={"requests": args.calibration_requests})
    if args.policies:
        names = [p.strip() for p in args.policies.split(",") if p.strip()]
        unknown = [p for p in names if p not in POLICY_NAMES]
        if unknown:
            raise SpecError(f"unknown policy {unknown[0]!r}", hint="policies: " +
                            ", ".join(POLICY_NAMES))
        update["policies"] = names
    return scenario.model_copy(update=update)


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; 0 when it ran (whatever the results), 2 on bad input."""
    if args.list:
        for name in builtin_scenarios():
            print(f"{name}: {load_scenario(name).description}")
        return 0
    if not args.output:
        raise SpecError("-o DIR is required")
    scenario = _scenario(args)
    data_dir = args.data_dir or default_data_dir()
    cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
    summary = evaluate(scenario, data_dir, Path(args.output), validation=args.validate,
                       progress=lambda line: print(line, file=sys.stderr, flush=True),
                       cache_dir=cache, bar=TerminalBar(sys.stderr))
    for name, row in summary["policies"].items():
        share = row["slo_attainment"]
        print(f"{name:<16} cost/h {row['cost']:>9.2f}  SLO {100 * (share or 0):6.2f}%  "
              f"TTFT p99 {row['ttft_p99_ms'] or 0:>9.0f} ms  ITL p99 "
              f"{row['itl_p99_ms'] or 0:>7.1f} ms  actions {row['scaling_actions']}")
    print(f"wrote {args.output}/summary.json, report.md and plots")
    return 0
