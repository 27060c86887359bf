"""The controller daemon: the control loop plus its HTTP endpoints, in one asyncio program.

Endpoints:
- `GET /healthz`: 200 while the process and its loop task run;
- `GET /readyz`: 200 once a tick has completed and that tick could read the fleet and
  its metrics source; 503 before, while stopping, and during an outage (the body says
  why: `{"ready", "tick", "metrics_status", "reason"}`);
- `GET /metrics`: Prometheus text (`controller.daemon_metrics`);
- `GET /plan`: `{"plan_id", "plan", "backends": [{"url", "model", "variant", "weight",
  "service_class"}]}`; the router polls it (`fleetplan router --plan URL`) and reads
  `backends`: one entry per ready replica of each planned variant, with the variant's
  router weight (variants the actuator does not know URLs for are left out);
- `POST /invoke`: run a tick now; answers the tick's summary once it has run. It needs
  the bearer token of the daemon's `AuthPolicy` (`serving.auth`; the GET endpoints are
  read-only and open).

Every tick is logged (`controller.daemon`): INFO when it decided, WARNING with the reasons
when it held the fleet, and once when the metrics source or fleet comes back.

`Daemon(loop, actuator)` holds the shared state; `serve_daemon(daemon, host, port)` runs
the app and the loop until `stop` (SIGTERM and SIGINT set it in `run_forever`). On stop
the loop is asked to stop: a tick in progress finishes (skipping actuation if it has not
started; an actuation in progress completes), then the server shuts down.

To extend: a new endpoint is one handler reading `request.app[DAEMON]` and one route in
`build_app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from actuator.base import Actuator, ActuatorUnavailable, FleetState, variant_name
from controller.daemon_metrics import LoopMetrics
from controller.loop import ControlLoop
from controller.tick import TickReport, blind
from serving.auth import AuthPolicy, auth_middleware
from serving.http import listen, make_runner
from specs.plan import Plan

FLEET_REFRESH_S = 2.0
LOG = logging.getLogger(__name__)


class Daemon:
    """What the handlers and the background tasks share (no work in the constructor)."""

    def __init__(self, loop: ControlLoop, actuator: Actuator) -> None:
        self.loop = loop
        self.actuator = actuator
        self.stop = asyncio.Event()
        self.wake = asyncio.Event()
        self.ticked = asyncio.Condition()
        self.fleet: FleetState | None = None
        self.statuses: Counter[str] = Counter()
        self.registry = CollectorRegistry()
        self.registry.register(LoopMetrics(self._view))
        self.on_tick: list[Callable[[TickReport], None]] = []

    def _view(self) -> tuple[TickReport | None, FleetState | None, Counter[str]]:
        return self.loop.last_report, self.fleet, self.statuses

    async def tick(self) -> TickReport:
        """One tick in a worker thread (the loop's clock gives the time)."""
        previous = self.loop.last_report
        report = await asyncio.to_thread(self.loop.tick)
        self.statuses[report.status] += 1
        log_tick(report, previous)
        for callback in self.on_tick:
            callback(report)
        async with self.ticked:
            self.ticked.notify_all()
        return report

    async def run_loop(self) -> None:
        """Tick every period, or at once when woken, until stopped."""
        while not self.stop.is_set():
            await self.tick()
            self.wake.clear()
            waiters = [asyncio.ensure_future(self.stop.wait()),
                       asyncio.ensure_future(self.wake.wait())]
            await asyncio.wait(waiters, timeout=self.loop.options.period_s,
                               return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def refresh_fleet(self) -> None:
        """Keep `fleet` (for /plan and /metrics) fresh every few seconds."""
        while not self.stop.is_set():
            with contextlib.suppress(ActuatorUnavailable):
                self.fleet = await asyncio.to_thread(self.actuator.observe)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), FLEET_REFRESH_S)

    def request_stop(self) -> None:
        """Stop after the current tick (see the module docstring)."""
        self.loop.request_stop()
        self.stop.set()


DAEMON = web.AppKey("daemon", Daemon)


def log_tick(report: TickReport, previous: TickReport | None) -> None:
    """One log line per tick (see the module docstring)."""
    outage = blind(report)
    if outage:
        LOG.warning("tick %d held, metrics %s: %s", report.tick,
                    report.metrics_status or "not read", outage)
        return
    if previous is not None and blind(previous):
        LOG.warning("tick %d: fleet and metrics readable again (metrics %s)", report.tick,
                    report.metrics_status)
    LOG.info("tick %d %s, metrics %s, plan %s%s", report.tick, report.status,
             report.metrics_status, report.plan_id or "unchanged",
             f": {'; '.join(report.reasons)}" if report.reasons else "")


def readiness(daemon: Daemon) -> tuple[bool, str]:
    """Whether the daemon is ready, and why not (see the module docstring)."""
    report = daemon.loop.last_report
    if daemon.stop.is_set():
        return False, "stopping"
    if report is None:
        return False, "no tick has completed yet"
    outage = blind(report)
    return (False, outage) if outage else (True, "ok")


def backends(plan: Plan | None, fleet: FleetState | None) -> list[dict[str, Any]]:
    """Router backends: each ready replica of each planned variant, with its weight and
    max batch (the one the fleet reports for the variant, else the plan's)."""
    if plan is None or fleet is None:
        return []
    observed = {v.variant: v for v in fleet.variants}
    out = []
    for alloc in plan.allocations:
        for v in alloc.variants:
            name = variant_name(alloc.server, v.accelerator)
            state = observed.get(name)
            if state is None:
                continue
            batch = state.max_batch or v.max_batch
            for url in state.endpoints:
                out.append({"url": url, "model": alloc.model, "variant": name,
                            "weight": v.router_weight, "max_batch": batch,
                            "service_class": alloc.service_class})
    return out


async def healthz(request: web.Request) -> web.Response:
    """Alive."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready once a tick has completed that could read the fleet and its metrics."""
    daemon = request.app[DAEMON]
    report = daemon.loop.last_report
    ready, reason = readiness(daemon)
    return web.json_response({"ready": ready, "tick": report.tick if report else 0,
                              "metrics_status": report.metrics_status if report else "",
                              "reason": reason}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text."""
    daemon = request.app[DAEMON]
    body = generate_latest(daemon.registry)
    gauges = getattr(daemon.actuator, "gauges", None)
    if gauges is not None:  # metrics mode: desired replicas per variant, for an HPA or KEDA
        body += gauges.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


async def plan(request: web.Request) -> web.Response:
    """The current plan with router backends."""
    daemon = request.app[DAEMON]
    state = daemon.loop.state
    current = state.last_plan
    return web.json_response({
        "plan_id": state.last_plan_id,
        "plan": current.model_dump(mode="json") if current else None,
        "backends": backends(current, daemon.fleet)})


async def invoke(request: web.Request) -> web.Response:
    """Run a tick now and answer its summary."""
    daemon = request.app[DAEMON]
    if daemon.stop.is_set():
        return web.json_response({"error": "stopping"}, status=503)
    before = daemon.loop.state.tick
    async with daemon.ticked:
        daemon.wake.set()
        await asyncio.wait_for(daemon.ticked.wait_for(
            lambda: daemon.loop.state.tick > before), timeout=600)
    report = daemon.loop.last_report
    assert report is not None
    return web.json_response({"tick": report.tick, "status": report.status,
                              "metrics_status": report.metrics_status,
                              "reasons": report.reasons, "plan_id": report.plan_id,
                              "timings_ms": report.timings_ms})


def build_app(daemon: Daemon, auth: AuthPolicy | None = None) -> web.Application:
    """The daemon's aiohttp application (`auth`: who may POST; default: nobody)."""
    app = web.Application(middlewares=[auth_middleware(auth or AuthPolicy())])
    app[DAEMON] = daemon
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/plan", plan)
    app.router.add_post("/invoke", invoke)
    return app


async def start_http(daemon: Daemon, host: str, port: int, auth: AuthPolicy | None = None,
                     ) -> tuple[web.AppRunner, str]:
    """Start listening; returns the runner (to clean up) and the base URL."""
    runner = make_runner(build_app(daemon, auth))
    await runner.setup()
    try:
        url = await listen(runner, host, port, shutdown_timeout=2.0)
    except BaseException:
        await runner.cleanup()
        raise
    return runner, url


async def run_forever(daemon: Daemon, host: str, port: int,
                      on_ready: Callable[[str], None], auth: AuthPolicy | None = None) -> None:
    """Serve and tick until SIGTERM or SIGINT; the current tick finishes first."""
    runner, url = await start_http(daemon, host, port, auth)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, daemon.request_stop)
    tasks = [asyncio.create_task(daemon.run_loop(), name="control-loop"),
             asyncio.create_task(daemon.refresh_fleet(), name="fleet-refresh")]
    on_ready(url)
    try:
        await asyncio.gather(*tasks)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
