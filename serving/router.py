"""The router: one OpenAI-compatible endpoint in front of every replica of every model.

Routes:
- `POST /v1/completions`, `POST /v1/chat/completions`: routed on the body's `model` and
  the `x-service-class` header by the model's policy and forwarded (`serving.router_proxy`:
  retries, streaming passthrough, admission control, cache). A request without `model`
  goes to the only model when there is one.
- `GET /v1/models`: the union of the backends' model lists (a model no backend answered
  for is listed from the router's own table).
- `GET /health` and `GET /healthz` (liveness: the router itself, 200 with backend
  counts), `GET /readyz` (readiness: 200 when a backend is healthy, else 503),
  `GET /metrics` (`serving.router_metrics`).
- `GET /router/backends`: every backend with its live state (JSON).
- `POST /router/backends` `{"url", "model", "variant"?, "weight"?, "max_batch"?,
  "service_class"?, "ttl_s"?}`: a worker registers itself, and repeats the same call as its heartbeat at
  least every `ttl_s` (default `RouterSettings.heartbeat_timeout_s`); `DELETE` with
  `{"url", "model"}` removes it. Both need the bearer token of `RouterSettings.auth`
  (`serving.auth`), and a registered URL's host must be on `RouterSettings.register_allow`
  (403 otherwise); the completion routes need no token.

While the app runs, a health loop (`serving.router_health`) and the source's poll loop
(`serving.discovery.poll_source`) run beside it; the source's first document is read
during start-up, so a bad one fails the start (before the router listens).

To extend: a new route goes in `build_app`; shared state is `request.app[ROUTER]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from serving.auth import auth_middleware
from serving.discovery import BackendSource, SourceUnavailable, poll_source
from serving.http import decode_json, listen, make_runner, read_body
from serving.router_cache import ResponseCache
from serving.router_config import BackendEntry, BackendsDocument, RouterSettings
from serving.router_health import health_loop
from serving.router_metrics import CONTENT_TYPE, RouterMetrics
from serving.router_pool import BackendPool, urls
from serving.router_proxy import Proxy, json_error
from specs.loading import validation_error

LOG = logging.getLogger(__name__)

SourceFactory = Callable[[aiohttp.ClientSession], BackendSource]
OPEN_PATHS = ("/v1/completions", "/v1/chat/completions")
"""POST routes that need no token (inference); every other write does."""


@dataclass
class RouterState:
    """What the handlers and background loops share."""

    settings: RouterSettings
    pool: BackendPool
    metrics: RouterMetrics
    proxy: Proxy
    source_factory: SourceFactory | None = None
    source: BackendSource | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


ROUTER = web.AppKey("router", RouterState)


def build_state(settings: RouterSettings, source_factory: SourceFactory | None = None,
                ) -> RouterState:
    """The router's state; nothing runs until the app starts."""
    pool = BackendPool()
    metrics = RouterMetrics(pool.backends)
    cache = ResponseCache(settings.cache_size, settings.cache_ttl_s) if settings.cache_size else None
    return RouterState(settings, pool, metrics, Proxy(settings, pool, metrics, cache),
                       source_factory)


def apply_document(state: RouterState, document: BackendsDocument) -> None:
    """Take a new backends document into the pool."""
    if state.pool.apply(document):
        LOG.info("backends: %d for %s", len(document.backends),
                 ", ".join(sorted({b.model for b in document.backends})) or "no model")


def open_session(settings: RouterSettings) -> aiohttp.ClientSession:
    """The one upstream session: keep-alive connections without a pool limit, no cookies,
    bytes passed through as they are."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60,
                                     ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=None, connect=settings.connect_timeout_s,
                                    sock_read=settings.read_timeout_s)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                 cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    state = app[ROUTER]
    session = state.proxy.session = open_session(state.settings)
    try:
        if state.source_factory is not None:
            state.source = state.source_factory(session)
            try:
                document = await state.source.fetch()
                if document is not None:
                    apply_document(state, document)
            except SourceUnavailable as exc:
                LOG.warning("backends source unavailable at start, polling: %s", exc)
            state.tasks.append(asyncio.create_task(poll_source(
                state.source, lambda d: apply_document(state, d),
                state.settings.poll_interval_s), name="router-source"))
        state.tasks.append(asyncio.create_task(health_loop(
            state.pool, state.metrics, session, state.settings), name="router-health"))
        yield
    finally:
        for task in state.tasks:
            task.cancel()
        for task in state.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        state.tasks.clear()
        await session.close()


async def completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/completions and /v1/chat/completions."""
    return await request.app[ROUTER].proxy.handle(request)


async def _models_of(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    try:
        async with session.get(url + "/v1/models", allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=2.0)) as response:
            if response.status != 200:
                return []
            data = (await response.json()).get("data")
            return [c for c in data if isinstance(c, dict) and "id" in c] if isinstance(
                data, list) else []
    except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
        return []


async def models(request: web.Request) -> web.Response:
    """GET /v1/models: the union of the backends' answers."""
    state = request.app[ROUTER]
    assert state.proxy.session is not None
    healthy = [b for b in state.pool.backends() if b.healthy]
    answers = await asyncio.gather(*(_models_of(state.proxy.session, u) for u in urls(healthy)))
    cards: dict[str, dict[str, Any]] = {}
    for answer in answers:
        for card in answer:
            cards.setdefault(card["id"], card)
    for model in state.pool.models():
        cards.setdefault(model, {"id": model, "object": "model", "created": 0,
                                 "owned_by": "fleetplan", "root": model, "parent": None})
    return web.json_response({"object": "list", "data": [cards[k] for k in sorted(cards)]})


async def health(request: web.Request) -> web.Response:
    """GET /health: the router is up; how many backends are in rotation."""
    backends = request.app[ROUTER].pool.backends()
    return web.json_response({"backends": len(backends),
                              "healthy": sum(b.healthy for b in backends)})


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: 200 when at least one backend is healthy (a request can be routed)."""
    backends = request.app[ROUTER].pool.backends()
    healthy = sum(b.healthy for b in backends)
    return web.json_response({"backends": len(backends), "healthy": healthy},
                             status=200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics in Prometheus text format 0.0.4."""
    return web.Response(body=request.app[ROUTER].metrics.exposition(),
                        headers={"Content-Type": CONTENT_TYPE})


def describe(state: RouterState) -> list[dict[str, Any]]:
    """Every backend and its live state, JSON-ready."""
    return [{"url": b.url, "model": b.model, "variant": b.variant, "weight": b.weight,
             "max_batch": b.max_batch, "service_class": b.service_class, "healthy": b.healthy, "ejected": b.ejected,
             "outstanding": b.outstanding, "prefill_tokens": b.prefill_tokens,
             "decode_tokens": b.decode_tokens, "context_tokens": b.context_tokens,
             "ewma_ttfb_ms": b.ewma_ttfb_s * 1000,
             "registered": b.heartbeat_deadline is not None}
            for b in state.pool.backends()]


async def backends(request: web.Request) -> web.Response:
    """GET, POST (register / heartbeat) or DELETE /router/backends."""
    state = request.app[ROUTER]
    if request.method == "GET":
        return web.json_response({"backends": describe(state)})
    try:
        body = decode_json(await read_body(request, state.proxy.budget))
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        ttl = float(body.pop("ttl_s", state.settings.heartbeat_timeout_s))
        if not ttl > 0:
            raise ValueError("ttl_s must be > 0")
        entry = BackendEntry.model_validate(body)
    except ValidationError as exc:
        return json_error(400, str(validation_error(exc, None)), "BadRequestError")
    except (ValueError, TypeError) as exc:
        return json_error(400, str(exc), "BadRequestError")
    if request.method == "DELETE":
        removed = state.pool.deregister(entry.url, entry.model)
        return web.json_response({"removed": removed}, status=200 if removed else 404)
    allow = state.settings.register_allow
    if not allow.allows(entry.url):
        LOG.warning("refused to register %s: host not on the allow-list", entry.url)
        return json_error(403, f"{entry.url}: its host is not on the registration allow-list "
                          f"({allow.describe()}; see --register-allow)", "PermissionDenied")
    state.pool.register(entry, time.monotonic(), ttl)
    return web.json_response({"url": entry.url, "model": entry.model,
                              "heartbeat_within_s": ttl})


def build_app(state: RouterState) -> web.Application:
    """The router's aiohttp application; background loops run while it runs."""
    app = web.Application(client_max_size=state.settings.body.max_body_bytes,
                          middlewares=[auth_middleware(state.settings.auth, OPEN_PATHS)])
    app[ROUTER] = state
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("GET", "/router/backends", backends)
    app.router.add_route("POST", "/router/backends", backends)
    app.router.add_route("DELETE", "/router/backends", backends)
    app.cleanup_ctx.append(_lifecycle)
    return app


def quiet_gc() -> None:
    """Move start-up objects out of the collector's sight and collect the young generation
    less often: the request path allocates many short-lived objects, and full collections
    over every imported module's objects showed up as p99 latency spikes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


async def serve(state: RouterState, host: str, port: int, on_ready: Callable[[str], None],
                ) -> None:
    """Serve until SIGINT or SIGTERM; `on_ready(url)` is called once listening. A bad
    first backends document raises `SpecError` before the router listens."""
    runner = make_runner(build_app(state))
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        url = await listen(runner, host, port, shutdown_timeout=2.0, backlog=2048)
        quiet_gc()
        on_ready(url)
        await stop.wait()
    finally:
        await runner.cleanup()
