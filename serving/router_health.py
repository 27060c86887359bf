"""Active health checks and heartbeat expiry of the router's backends.

`health_loop` runs every `RouterSettings.health_interval_s`: it ejects self-registered
backends whose heartbeat is overdue (`BackendPool.expire`), then GETs `/health` on every
backend (vLLM and fleetplan's worker answer 200 while they can serve) with a timeout of
at most the interval. `unhealthy_after` failures in a row eject a backend; one success
re-admits a backend ejected for failed checks, connection errors or 5xx answers (one
ejected for a missed heartbeat comes back with its next heartbeat instead).

The proxy ejects on connection errors at once, so a dead replica leaves the rotation
after the first request that finds it dead; the health checks bring it back.

To extend: another probe (e.g. vLLM's `/metrics` for KV usage) is another coroutine
called next to `check`.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from serving.router_config import RouterSettings
from serving.router_metrics import RouterMetrics
from serving.router_pool import BackendPool
from serving.routing import Backend

LOG = logging.getLogger(__name__)


async def check(session: aiohttp.ClientSession, backend: Backend, timeout_s: float) -> bool:
    """True when `GET /health` answers 200 within the timeout."""
    try:
        async with session.get(backend.url + "/health", allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            await response.read()
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


def record(pool: BackendPool, metrics: RouterMetrics, backend: Backend, ok: bool,
           unhealthy_after: int) -> None:
    """Apply one health check result."""
    if ok:
        backend.check_failures = 0
        if backend.ejected not in (None, "heartbeat") and pool.readmit(backend):
            LOG.info("re-admitted %s (%s)", backend.url, backend.model)
        return
    backend.check_failures += 1
    if backend.check_failures >= unhealthy_after and pool.eject(backend, "health"):
        metrics.ejection(backend.url, "health")
        LOG.warning("ejected %s (%s): %d failed health checks", backend.url, backend.model,
                    backend.check_failures)


async def check_all(pool: BackendPool, metrics: RouterMetrics, session: aiohttp.ClientSession,
                    settings: RouterSettings) -> None:
    """One round: heartbeats, then a health check of every backend."""
    for backend in pool.expire(time.monotonic()):
        metrics.ejection(backend.url, "heartbeat")
        LOG.warning("ejected %s (%s): missed heartbeats", backend.url, backend.model)
    backends = pool.backends()
    by_url: dict[str, list[Backend]] = {}
    for backend in backends:
        by_url.setdefault(backend.url, []).append(backend)
    timeout = min(settings.health_interval_s, 2.0)
    results = await asyncio.gather(*(check(session, group[0], timeout)
                                     for group in by_url.values()))
    for group, ok in zip(by_url.values(), results, strict=True):
        for backend in group:
            record(pool, metrics, backend, ok, settings.unhealthy_after)


async def health_loop(pool: BackendPool, metrics: RouterMetrics, session: aiohttp.ClientSession,
                      settings: RouterSettings) -> None:
    """Check forever (until cancelled)."""
    while True:
        await asyncio.sleep(settings.health_interval_s)
        try:
            await check_all(pool, metrics, session, settings)
        except Exception:  # a bug here must not stop health checking for good
            LOG.exception("health check round failed")
