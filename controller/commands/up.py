"""`fleetplan up [--duration S] [-o DIR]`: the embedded default, the closed loop on one machine.

Starts local emulated workers (as the actuator creates them), the router, the scrape
collector, the controller and a load generator on a built-in schedule (ramp, plateau,
burst, fall) over a small heterogeneous example (`controller.embedded.example`); shows a
live view; at the end prints the measured SLO attainment and cost and writes
`report.md`, the PNG plots, `decisions.jsonl`, `state.json` and `fleet.json` to DIR
(default `./fleetplan-run/`). Every process it started is stopped before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from rich.console import Console

from controller.commands.evaluate import default_cache_dir
from controller.embedded.session import UpOptions, run_session
from controller.embedded.view import LiveView


def _duration(text: str) -> float:
    value = float(text)
    if value < 10:
        raise argparse.ArgumentTypeError(f"expected at least 10 seconds, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `up` sub-command."""
    parser = subparsers.add_parser(
        "up", help="run the whole closed loop on this machine over a built-in example",
        description="Local workers + router + collector + controller + load generator on a "
        "built-in schedule; live view; report with plots and the decision log in DIR.")
    parser.add_argument("--duration", type=_duration, default=300.0,
                        help="length of the load schedule, s")
    parser.add_argument("-o", "--output", default="fleetplan-run",
                        help="output folder")
    parser.add_argument("--period", type=float, default=None,
                        help="control period, s (default: duration / 30, between 5 and 15)")
    parser.add_argument("--seed", type=int, default=0, help="load generator seed")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="folder keeping measured capacity tables between runs (default: "
                        "$XDG_CACHE_HOME/fleetplan/capacity, else ~/.cache/fleetplan/capacity)")
    parser.add_argument("--no-cache", action="store_true",
                        help="measure capacity tables afresh and keep them in memory only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run, report, clean up."""
    from controller.report import summary_lines, write_report

    period = args.period or min(max(args.duration / 30.0, 5.0), 15.0)
    options = UpOptions(duration_s=args.duration, out_dir=Path(args.output), period_s=period,
                        startup_s=2 * period, scale_down_delay_s=6 * period, seed=args.seed,
                        cache_dir=None if args.no_cache else (args.cache_dir or
                                                             default_cache_dir()))
    logging.getLogger("serving").setLevel(logging.ERROR)  # replicas come and go by design
    console = Console()
    view = LiveView(console)
    console.print(f"fleetplan up: {args.duration:g} s, control period {period:g} s, "
                  f"output {options.out_dir}/", highlight=False)
    try:
        result = asyncio.run(run_session(options, view))
    finally:
        view.close()
    report = write_report(result, options.out_dir)
    for line in summary_lines(result):
        console.print(line, highlight=False, markup=False)
    console.print(f"report: {report}", highlight=False)
    return 0
