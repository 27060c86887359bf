"""The load generator as a library: send a schedule of arrivals to target URLs, open loop.

    options = LoadOptions(targets=("http://127.0.0.1:8000",), duration_s=60)
    arrivals = PoissonArrivals(rate_rps=5, duration_s=60).arrivals(np.random.default_rng(0))
    results, elapsed = await LoadGenerator(options).run(arrivals)
    report = build_report(results, options.targets, elapsed, class_targets)

Each arrival is sent at its time (absolute, from the run's start; a late loop sends at
once and the lag is reported) to the next target in round-robin order, whatever
happened to earlier requests (open loop). The run is bounded: it stops scheduling at the
end of the arrivals, at `duration_s` or after `max_requests`, then waits at most
`drain_timeout_s` for requests in flight and cancels the rest (reported as errors
"cancelled"). It only talks to the URLs in `targets`, and follows no redirects.

To extend: progress goes through the `on_progress(sent, done, failed)` callback; a
closed-loop mode would be another `run_*` method sharing `_launch`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import aiohttp

from serving.loadclient import ClientOptions, RequestResult, send
from workloads.arrivals import Arrival

ProgressCallback = Callable[[int, int, int], None]


@dataclass(frozen=True)
class LoadOptions:
    """Where to send and the bounds of the run."""

    targets: tuple[str, ...]
    client: ClientOptions = field(default_factory=ClientOptions)
    duration_s: float | None = None
    max_requests: int | None = None
    drain_timeout_s: float = 30.0
    max_connections: int = 1024

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("at least one target URL is needed")
        for url in self.targets:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError(f"target must be an http(s) URL, got {url!r}")


class LoadGenerator:
    """Runs arrivals against the targets (see the module docstring)."""

    def __init__(self, options: LoadOptions, on_progress: ProgressCallback | None = None) -> None:
        self.options = options
        self.on_progress = on_progress
        self._sent = 0
        self._done = 0
        self._failed = 0
        self._results: list[RequestResult] = []

    async def run(self, arrivals: Iterable[Arrival]) -> tuple[list[RequestResult], float]:
        """Send every arrival within the bounds; returns results and the run's wall time."""
        opts = self.options
        connector = aiohttp.TCPConnector(limit=opts.max_connections, limit_per_host=0,
                                         force_close=False)
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            origin = time.perf_counter()
            tasks = await self._schedule(session, arrivals, origin)
            await self._drain(tasks)
            elapsed = time.perf_counter() - origin
        for task, result in zip(tasks, self._results, strict=True):
            if task.cancelled():  # cancelled before it started
                result.error = "cancelled"
        return list(self._results), elapsed

    async def _schedule(self, session: aiohttp.ClientSession, arrivals: Iterable[Arrival],
                        origin: float) -> list[asyncio.Task[RequestResult]]:
        opts = self.options
        tasks: list[asyncio.Task[RequestResult]] = []
        for arrival in arrivals:
            if opts.duration_s is not None and arrival.time_s > opts.duration_s:
                break
            if opts.max_requests is not None and len(tasks) >= opts.max_requests:
                break
            delay = origin + arrival.time_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            target = opts.targets[len(tasks) % len(opts.targets)]
            tasks.append(self._launch(session, target, arrival, origin))
        return tasks

    def _launch(self, session: aiohttp.ClientSession, target: str, arrival: Arrival,
                origin: float) -> asyncio.Task[RequestResult]:
        result = RequestResult(target=target, service_class=arrival.service_class,
                               scheduled_s=arrival.time_s)
        self._results.append(result)
        task = asyncio.create_task(send(session, target, arrival, self.options.client, result,
                                        origin))
        task.add_done_callback(self._finished)
        self._sent += 1
        self._progress()
        return task

    def _finished(self, task: asyncio.Task[RequestResult]) -> None:
        self._done += 1
        if task.cancelled() or not task.result().ok:
            self._failed += 1
        self._progress()

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self._sent, self._done, self._failed)

    async def _drain(self, tasks: list[asyncio.Task[RequestResult]]) -> None:
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=self.options.drain_timeout_s)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still)
