"""`fleetplan loadgen`: send a bounded open-loop load to worker URLs and report latencies.

Arrivals: `--rate` (Poisson), `--schedule` (piecewise-linear rate), `--diurnal`, or
`--trace` (Azure CSV or Mooncake JSON lines, with `--time-scale` and `--rate-multiplier`).
The report (per service class and overall: counts, errors, TTFT/ITL/E2E statistics,
throughput, SLO attainment against `--spec`'s class targets for `--model`) is printed as a
table; `--json FILE` also writes it. Bad input (missing trace, malformed row, unknown
class) is a `SpecError`: exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from serving.loadclient import ClientOptions
from serving.loadgen import LoadGenerator, LoadOptions
from serving.report import ClassReport, LoadReport, build_report
from specs.documents import ModelTarget
from specs.errors import SpecError
from specs.loading import load_fleet, write_json_atomic
from workloads.arrivals import (
    Arrival,
    PoissonArrivals,
    RateSchedule,
    ScheduledArrivals,
    TokenSizes,
    TraceArrivals,
    assign_classes,
)
from workloads.traces import read_trace


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `loadgen` sub-command."""
    p = subparsers.add_parser(
        "loadgen", help="send a bounded load to worker URLs and report TTFT/ITL/E2E",
        description="Open-loop load generator for OpenAI-compatible servers (fleetplan workers, "
        "vLLM): streaming requests, latencies measured at the client.",
    )
    p.add_argument("--target", action="append", required=True, metavar="URL",
                   help="base URL of a server (repeat for several; round-robin)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--rate", type=float, help="Poisson arrivals at RATE req/s")
    source.add_argument("--schedule", help="piecewise-linear rate 't:rate,t:rate,...' (s, req/s)")
    source.add_argument("--diurnal", metavar="MIN:MAX:PERIOD",
                        help="cosine day shape from MIN to MAX req/s over PERIOD s")
    source.add_argument("--trace", help="trace file: Azure CSV or Mooncake JSON lines")
    _add_shape_arguments(p)
    _add_request_arguments(p)
    p.set_defaults(func=run)


def _add_shape_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, help="stop sending after S seconds (required with "
                   "--rate and --diurnal)")
    p.add_argument("--max-requests", type=int, help="stop after N requests")
    p.add_argument("--prompt-tokens", type=int, default=512, help="prompt tokens (synthetic)")
    p.add_argument("--output-tokens", type=int, default=128, help="output tokens (synthetic)")
    p.add_argument("--trace-format", choices=("azure", "mooncake"), help="default: by extension")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="multiply trace times (0.5 replays twice as fast)")
    p.add_argument("--rate-multiplier", type=float, default=1.0,
                   help="send each trace request this many times on average (0.5 thins)")
    p.add_argument("--trace-start", type=float, default=0.0, help="skip S s of trace time")
    p.add_argument("--trace-window", type=float, help="replay only S s of trace time")
    p.add_argument("--token-scale", type=float, default=1.0, help="scale trace token counts")
    p.add_argument("--max-prompt-tokens", type=int, help="cap trace prompt lengths")
    p.add_argument("--max-output-tokens", type=int, help="cap trace output lengths")


def _add_request_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--service-class", help="send every request with this class header")
    p.add_argument("--class-mix", help="random classes 'name=weight,name=weight'")
    p.add_argument("--spec", help="fleet spec whose class targets the report checks")
    p.add_argument("--model", help="model name sent in requests and used for the spec's targets")
    p.add_argument("--endpoint", choices=("completions", "chat"), default="completions",
                   help="API to call: /v1/completions or /v1/chat/completions")
    p.add_argument("--prompt-format", choices=("ids", "text"), default="ids",
                   help="prompt as token ids (exact length) or text (completions only)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--request-timeout", type=float, default=300.0, help="per request, s")
    p.add_argument("--drain-timeout", type=float, default=30.0,
                   help="wait at most S s for requests in flight at the end")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _mix(args: argparse.Namespace) -> dict[str, float]:
    if args.service_class:
        return {args.service_class: 1.0}
    if not args.class_mix:
        return {}
    try:
        return {name.strip(): float(w) for name, w in
                (item.split("=") for item in args.class_mix.split(",") if item.strip())}
    except ValueError:
        raise SpecError(f"--class-mix: expected 'name=weight,...', got {args.class_mix!r}",
                        json_path="--class-mix") from None


def _need_duration(args: argparse.Namespace, what: str) -> float:
    if args.duration is None or args.duration <= 0:
        raise SpecError(f"{what} needs a positive --duration", json_path="--duration")
    return args.duration


def build_arrivals(args: argparse.Namespace, rng: np.random.Generator) -> Iterator[Arrival]:
    """The arrivals the arguments describe, tagged with classes."""
    sizes = TokenSizes(args.prompt_tokens, args.output_tokens)
    try:
        if args.rate is not None:
            process = PoissonArrivals(args.rate, _need_duration(args, "--rate"), sizes)
        elif args.schedule:
            process = ScheduledArrivals(RateSchedule.parse(args.schedule), sizes)
        elif args.diurnal:
            low, high, period = (float(x) for x in args.diurnal.split(":"))
            schedule = RateSchedule.diurnal(low, high, period, _need_duration(args, "--diurnal"))
            process = ScheduledArrivals(schedule, sizes)
        else:
            process = TraceArrivals(
                read_trace(args.trace, args.trace_format), time_scale=args.time_scale,
                rate_multiplier=args.rate_multiplier, start_s=args.trace_start,
                window_s=args.trace_window, token_scale=args.token_scale,
                max_prompt_tokens=args.max_prompt_tokens, max_output_tokens=args.max_output_tokens,
            )
    except ValueError as exc:
        raise SpecError(str(exc), json_path="arguments") from None
    return assign_classes(process.arrivals(rng), _mix(args), rng)


def class_targets(args: argparse.Namespace, classes: set[str]) -> dict[str, ModelTarget]:
    """Targets of the requested classes for `--model` in `--spec` (empty without a spec)."""
    if not args.spec:
        return {}
    if not args.model:
        raise SpecError("--spec needs --model to pick the class targets", json_path="--model")
    loaded = load_fleet(args.spec)
    known = {c.name: c for c in loaded.spec.service_classes}
    unknown = sorted(classes - set(known))
    if unknown:
        raise SpecError(f"unknown service class {unknown[0]!r}", json_path="$.service_classes",
                        file=loaded.path, hint="classes: " + ", ".join(sorted(known)))
    return {name: t for name in classes if (t := known[name].target_for(args.model)) is not None}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(report: LoadReport, console: Console) -> None:
    """Print the report: counts and throughput, then latency statistics, per class."""
    rows: list[ClassReport] = [*report.classes, report.overall]
    counts = Table(title=f"fleetplan loadgen: {report.duration_s:.1f} s, "
                   f"{len(report.targets)} target(s)")
    for column in ("class", "requests", "ok", "errors", "req/s", "out tok/s", "SLO attained"):
        counts.add_column(column, justify="left" if column == "class" else "right")
    for row in rows:
        slo = "-" if row.slo is None else f"{row.slo.attainment:.1%}"
        counts.add_row(row.service_class, str(row.requests), str(row.ok), str(row.errors),
                       f"{row.throughput_rps:.2f}", f"{row.output_tokens_per_s:.0f}", slo)
    latency = Table(title="latency (ms, at the client)")
    for column in ("class", "metric", "n", "mean", "p50", "p95", "p99"):
        latency.add_column(column, justify="left" if column in ("class", "metric") else "right")
    for row in rows:
        for metric, s in (("TTFT", row.ttft_ms), ("ITL", row.itl_ms), ("E2E", row.e2e_ms)):
            latency.add_row(row.service_class, metric, str(s.count), _ms(s.mean), _ms(s.p50),
                            _ms(s.p95), _ms(s.p99))
    console.print(counts)
    console.print(latency)


async def _run(args: argparse.Namespace, options: LoadOptions,
               arrivals: Iterator[Arrival]) -> tuple[list, float]:
    show = not args.no_progress and sys.stderr.isatty()
    if not show:
        return await LoadGenerator(options).run(arrivals)
    columns = (TextColumn("sent {task.fields[sent]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("failed {task.fields[failed]}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("load", total=args.max_requests, sent=0, failed=0)

        def update(sent: int, done: int, failed: int) -> None:
            progress.update(task, completed=done, sent=sent, failed=failed)

        return await LoadGenerator(options, update).run(arrivals)


def run(args: argparse.Namespace) -> int:
    """Generate the load, print the report, write it if asked."""
    rng = np.random.default_rng(args.seed)
    arrivals = build_arrivals(args, rng)
    targets = class_targets(args, set(_mix(args)))
    try:
        options = LoadOptions(
            targets=tuple(args.target), duration_s=args.duration,
            max_requests=args.max_requests, drain_timeout_s=args.drain_timeout,
            client=ClientOptions(endpoint=args.endpoint, model=args.model,
                                 prompt_format=args.prompt_format,
                                 timeout_s=args.request_timeout),
        )
    except ValueError as exc:
        raise SpecError(str(exc), json_path="--target") from None
    results, elapsed = asyncio.run(_run(args, options, arrivals))
    report = build_report(results, options.targets, elapsed, targets)
    render(report, Console())
    if args.json:
        write_json_atomic(args.json, report)
    return 0
