"""One `fleetplan up` run: local workers + router + scrape collector + controller + load.

`run_session(options, view)` runs everything in one asyncio program:

1. writes the example fleet to `DIR/fleet.json`, measures its capacity tables (kept in
   `UpOptions.cache_dir` between runs, so only the first run spends the half minute or
   so) and builds the loop (local workers as
   the actuator, the scrape collector, the tuner, the hysteresis stabiliser, the decision
   log `DIR/decisions.jsonl` and state `DIR/state.json`);
2. serves the controller's endpoints on a free port and runs a first tick (workers start);
3. runs the router in-process on a free port, polling the controller's `/plan`;
4. once a replica is ready, sends the example schedule through the router (open loop,
   classes mixed) while the loop ticks every `period_s`, sampling the fleet every second;
5. stops the loop (the tick in progress finishes), the router, and every worker process.

It returns a `SessionResult` (timeline, tick reports, request results) for the report.

To extend: a new background activity is one more task in `_tasks`, cancelled in `_stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aiohttp import web

from actuator.base import Actuator
from collector.config import CollectorConfig
from collector.scrape import ScrapeCollector
from controller.config import LoopOptions
from controller.daemon import Daemon, start_http
from controller.decision_log import DecisionLog, FileRecorder
from controller.embedded.example import (
    CLASS_MIX,
    IN_TOKENS,
    MODEL,
    OUT_TOKENS,
    fleet_document,
    workload_sample,
)
from controller.embedded.example import schedule as example_schedule
from controller.loop import ControlLoop, LoopParts, Optimizer
from controller.stabilize import StabilizerOptions
from controller.state import StateFile
from controller.tick import TickReport
from controller.wiring import FleetScrapeSource, local_actuator
from optimizer.api import optimize
from optimizer.candidates import CandidateGenerator
from queue_models.capacity_cache import CapacityCache
from queue_models.capacity_model import CapacityTableModel
from queue_models.capacity_sizing import CalibrationOptions
from serving.discovery import PlanSource
from serving.http import make_runner
from serving.loadclient import ClientOptions, RequestResult
from serving.loadgen import LoadGenerator, LoadOptions
from serving.router import build_app as router_app
from serving.router import build_state as router_state
from serving.router_config import RouterSettings
from specs.clock import SystemClock
from specs.documents import FleetSpec
from specs.loading import load_fleet
from workloads.arrivals import ScheduledArrivals, TokenSizes, assign_classes


@dataclass(frozen=True)
class UpOptions:
    """How `fleetplan up` runs."""

    duration_s: float = 300.0
    out_dir: Path = Path("fleetplan-run")
    period_s: float = 10.0
    startup_s: float = 20.0
    scale_down_delay_s: float = 60.0
    seed: int = 0
    cache_dir: Path | None = None
    """Where capacity tables are kept between runs (None: in memory only)."""


@dataclass(frozen=True)
class Sample:
    """The fleet once a second."""

    t: float
    scheduled_rps: float
    completed_rps: float
    desired: dict[str, int]
    ready: dict[str, int]
    per_accelerator: dict[str, int]
    cost_per_hour: float
    capacity_rps: float


@dataclass
class SessionResult:
    """What the run produced."""

    spec: FleetSpec
    options: UpOptions
    samples: list[Sample] = field(default_factory=list)
    ticks: list[tuple[float, TickReport]] = field(default_factory=list)
    results: list[RequestResult] = field(default_factory=list)
    elapsed_s: float = 0.0
    controller_url: str = ""
    router_url: str = ""


View = Callable[[SessionResult], None]


RATE_MARGIN_Z = 1.5
"""The demo's windows are one short period (tens of requests per class): size for the
rate 1.5 standard deviations of counting noise above the measured one."""

CALIBRATION = CalibrationOptions(requests=1500, pool_sizes=(1, 2, 4, 8))
"""Capacity tables of the example: shorter replays than the default (its requests are
all alike) and pools up to its capacity."""


def sizing_generator(spec: FleetSpec, cache_dir: Path | None) -> CandidateGenerator:
    """capacity-table with each class's workload sample and the spec's profiles as the
    reference the tuner's estimates are scaled against."""
    model = CapacityTableModel(CALIBRATION, CapacityCache(cache_dir))
    sample = workload_sample()
    return CandidateGenerator(model, workloads={s.name: sample for s in spec.servers},
                              profiled={(p.model, p.accelerator): p for p in spec.profiles})


def _loop(spec: FleetSpec, spec_path: Path, options: UpOptions,
          generator: CandidateGenerator) -> tuple[ControlLoop, Actuator]:
    out = options.out_dir
    workers = local_actuator(spec_path, out / "workers")
    source = FleetScrapeSource(ScrapeCollector(CollectorConfig(window_s=options.period_s)))
    from tuner.tuner import Tuner

    parts = LoopParts(spec=spec, metrics=source, actuator=workers, clock=SystemClock(),
                      tuner=Tuner(), recorder=FileRecorder(DecisionLog(out / "decisions.jsonl"),
                                                           StateFile(out / "state.json")),
                      optimize=Optimizer({spec.optimizer.queue_model: generator}))
    loop_options = LoopOptions(
        period_s=options.period_s, startup_s=options.startup_s,
        stale_after_s=max(3 * options.period_s, 30.0),
        forecast_half_life_s=options.period_s, rate_margin_z=RATE_MARGIN_Z,
        stabilizer_options=StabilizerOptions(scale_down_delay_s=options.scale_down_delay_s))
    return ControlLoop(parts, loop_options), workers


def _sample(result: SessionResult, daemon: Daemon, t: float, done_before: int) -> Sample:
    plan = daemon.loop.state.last_plan
    fleet = daemon.fleet
    desired: dict[str, int] = {}
    capacity = 0.0
    ready = {v.variant: v.ready_replicas for v in fleet.variants} if fleet else {}
    per_acc: dict[str, int] = {}
    for v in fleet.variants if fleet else ():
        per_acc[v.accelerator] = per_acc.get(v.accelerator, 0) + v.replicas
    cost = 0.0
    units = {a.name: a.cost_per_hour for a in result.spec.accelerators}
    for alloc in plan.allocations if plan else ():
        for pv in alloc.variants:
            name = f"{alloc.server}/{pv.accelerator}"
            desired[name] = pv.replicas
            variant = f"{alloc.server}-{pv.accelerator}".lower()
            capacity += ready.get(variant, 0) * pv.max_rate_per_replica_rps
    for acc, n in per_acc.items():
        cost += n * units.get(acc, 0.0)
    done = sum(1 for r in result.results if r.ok) if result.results else 0
    return Sample(t=t, scheduled_rps=example_schedule(result.options.duration_s).rate(t),
                  completed_rps=float(done - done_before), desired=desired, ready=ready,
                  per_accelerator=per_acc, cost_per_hour=cost, capacity_rps=capacity)


async def _start_router(controller_url: str) -> tuple[web.AppRunner, str]:
    settings = RouterSettings(poll_interval_s=1.0, health_interval_s=1.0)
    state = router_state(settings, lambda session: PlanSource(controller_url + "/plan", session))
    runner = make_runner(router_app(state))  # a client that goes away cancels its request
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, shutdown_timeout=2.0)
    await site.start()
    bound = runner.addresses[0]
    return runner, f"http://{bound[0]}:{bound[1]}"


async def _wait_ready(daemon: Daemon, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fleet = await asyncio.to_thread(daemon.actuator.observe)
        daemon.fleet = fleet
        if fleet.variants and all(v.ready_replicas > 0 for v in fleet.variants):
            return
        await asyncio.sleep(0.5)


async def _load(result: SessionResult, router_url: str, options: UpOptions) -> None:
    rng = np.random.default_rng(options.seed)
    process = ScheduledArrivals(example_schedule(options.duration_s),
                                TokenSizes(IN_TOKENS, OUT_TOKENS))
    arrivals = list(assign_classes(process.arrivals(rng), CLASS_MIX, rng))
    generator = LoadGenerator(LoadOptions(targets=(router_url,),
                                          client=ClientOptions(model=MODEL, timeout_s=60.0),
                                          duration_s=options.duration_s, drain_timeout_s=15.0))
    generator._results = result.results  # noqa: SLF001 - live view of results in progress
    results, elapsed = await generator.run(arrivals)
    result.results = results
    result.elapsed_s = elapsed


async def _sampler(result: SessionResult, daemon: Daemon, start: float, view: View) -> None:
    done_before = 0
    while True:
        await asyncio.sleep(1.0)
        t = time.monotonic() - start
        sample = _sample(result, daemon, t, done_before)
        done_before += int(sample.completed_rps)
        result.samples.append(sample)
        view(result)


async def run_session(options: UpOptions, view: View) -> SessionResult:
    """Run the embedded closed loop (see the module docstring)."""
    options.out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("decisions.jsonl", "state.json"):
        (options.out_dir / stale).unlink(missing_ok=True)
    spec_path = options.out_dir / "fleet.json"
    spec_path.write_text(json.dumps(fleet_document(), indent=2) + "\n", encoding="utf-8")
    spec = load_fleet(spec_path).spec
    generator = sizing_generator(spec, options.cache_dir)
    await asyncio.to_thread(optimize, spec, timer=None, generator=generator)  # calibrate
    loop, workers = _loop(spec, spec_path, options, generator)
    daemon = Daemon(loop, workers)
    result = SessionResult(spec, options)
    start = time.monotonic()
    daemon.on_tick.append(lambda r: result.ticks.append((time.monotonic() - start, r)))
    runner, result.controller_url = await start_http(daemon, "127.0.0.1", 0)
    router_runner = None
    tasks: list[asyncio.Task[None]] = []
    try:
        await daemon.tick()
        await _wait_ready(daemon)
        router_runner, result.router_url = await _start_router(result.controller_url)
        await asyncio.sleep(1.5)  # the router's first poll
        start = time.monotonic()
        tasks = [asyncio.create_task(daemon.run_loop()),
                 asyncio.create_task(daemon.refresh_fleet()),
                 asyncio.create_task(_sampler(result, daemon, start, view))]
        await _load(result, result.router_url, options)
    finally:
        await _stop(daemon, tasks, runner, router_runner, workers)
    return result


async def _stop(daemon: Daemon, tasks: list[asyncio.Task[None]], runner: web.AppRunner,
                router_runner: web.AppRunner | None, workers: Actuator) -> None:
    daemon.request_stop()
    for task in tasks[2:]:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(asyncio.gather(*tasks[:2], return_exceptions=True), 120)
    if router_runner is not None:
        await router_runner.cleanup()
    await runner.cleanup()
    close = getattr(workers, "close", None)
    if callable(close):
        await asyncio.to_thread(close)
