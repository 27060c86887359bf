"""The emulated inference worker: an aiohttp server with vLLM's OpenAI-compatible API.

Routes:
- `POST /v1/completions`, `POST /v1/chat/completions`: streaming (one server-sent event
  per token) or not; the header `x-service-class` names a service class, whose priority
  orders the waiting queue (unknown or missing: the lowest). A full waiting queue answers
  429 with `Retry-After`; a request longer than the context length (`max_model_len`) or
  asking for logprobs, 400. Response ids are UUID-based, unique across workers.
- `GET /v1/models` (`max_model_len`: the context length, `serving.worker_config`),
  `GET /metrics` (vLLM metric names, text format 0.0.4).
- `GET /health` (vLLM's), `GET /healthz` (liveness) and `GET /readyz` (readiness): 200
  while the engine loop runs, 503 once it has died.
- `GET|POST /admin/max_batch` (`{"max_batch": N}`): read or change max batch live.
  Every state-changing request except the two completion routes needs the bearer token
  of `WorkerSettings.auth` (`serving.auth`).
- `GET|POST /admin/token_budget` (`{"token_budget": N}`): read or change the token budget
  (tokens per iteration) live; a prefill under way continues in chunks of the new budget.
  (vLLM reads both only at start-up; the emulated worker changes them without a restart.)
- `GET /admin/stats`: engine counters, the profile and the worker's CPU time (JSON), for
  fidelity checks and benchmarks.

Batching happens in `queue_models.engine.BatchEngine`, run in real time by
`serving.driver.EngineDriver`; this module is only HTTP.

To extend: add a route in `build_app` with a handler taking `web.Request`; shared state
is `request.app[WORKER]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass

from aiohttp import web

from queue_models.engine import BatchEngine, EngineError, QueueFullError
from serving.auth import auth_middleware
from serving.driver import EngineDriver, TokenStream
from serving.http import BodyBudget, decode_json, listen, make_runner, read_body
from serving.metrics import CONTENT_TYPE, WorkerMetrics, build_metrics, exposition
from serving.openai_api import (
    BadRequest,
    GenerationRequest,
    Kind,
    ResponseWriter,
    error_body,
    parse_request,
    usage,
)
from serving.overload import profile_service_s, queue_wait_s, retry_after_s
from serving.worker_config import WorkerSettings

SERVICE_CLASS_HEADER = "x-service-class"
OPEN_PATHS = ("/v1/completions", "/v1/chat/completions")
"""POST routes that need no token (inference); every other write does."""
LOG = logging.getLogger(__name__)


@dataclass
class WorkerState:
    """What the handlers share: settings, engine, driver and metrics."""

    settings: WorkerSettings
    engine: BatchEngine
    driver: EngineDriver
    metrics: WorkerMetrics
    budget: BodyBudget
    loop_task: asyncio.Task[None] | None = None

    @property
    def engine_alive(self) -> bool:
        """True while the engine loop runs."""
        return self.loop_task is not None and not self.loop_task.done()


WORKER = web.AppKey("worker", WorkerState)


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None,
           ) -> web.Response:
    return web.json_response(error_body(status, message, kind), status=status, headers=headers)


async def _parse(request: web.Request, kind: Kind, state: WorkerState) -> GenerationRequest:
    body = decode_json(await read_body(request, state.budget))
    parsed = parse_request(kind, body, state.settings.default_max_tokens)
    if parsed.model is not None and parsed.model != state.settings.served_model_name:
        raise LookupError(f"The model `{parsed.model}` does not exist.")
    limit = state.settings.max_model_len
    if parsed.prompt_tokens + parsed.max_tokens > limit:
        raise BadRequest(
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{parsed.prompt_tokens + parsed.max_tokens} tokens ({parsed.prompt_tokens} in the "
            f"prompt, {parsed.max_tokens} in the completion).")
    return parsed


def response_id(kind: Kind) -> str:
    """An id unique across requests, workers and restarts (`cmpl-` / `chatcmpl-` + UUID4)."""
    return f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"


async def _generate(request: web.Request, kind: Kind) -> web.StreamResponse:
    state = request.app[WORKER]
    try:
        parsed = await _parse(request, kind, state)
    except BadRequest as exc:
        return _error(400, str(exc), "BadRequestError")
    except LookupError as exc:
        return _error(404, str(exc), "NotFoundError")
    request_id = response_id(kind)
    priority = state.settings.priority(request.headers.get(SERVICE_CLASS_HEADER))
    overloaded = _over_wait_bound(state, parsed)
    if overloaded is not None:
        return overloaded
    try:
        stream = state.driver.submit(request_id, parsed.prompt_tokens, parsed.max_tokens, priority)
    except QueueFullError as exc:
        retry = str(state.driver.retry_after_s())
        return _error(429, str(exc), "TooManyRequests", {"Retry-After": retry})
    except EngineError as exc:
        return _error(400, str(exc), "BadRequestError")
    writer = ResponseWriter(kind, request_id, state.settings.served_model_name, int(time.time()))
    try:
        if parsed.stream:
            return await _stream(request, parsed, stream, writer)
        while not stream.done:
            await stream.take()
        if stream.failed:
            return _error(500, "the engine loop failed", "InternalServerError")
        return web.json_response(writer.full(parsed.max_tokens,
                                              usage(parsed.prompt_tokens, parsed.max_tokens)))
    finally:
        if not stream.done:
            state.driver.cancel(request_id)


def _over_wait_bound(state: WorkerState, parsed: GenerationRequest) -> web.Response | None:
    """The 429 answer when the request's expected wait for a slot exceeds the bound."""
    bound = state.settings.max_queue_wait_s
    if bound is None:
        return None
    engine = state.engine
    fallback = profile_service_s(engine.config.cost, engine.max_batch, parsed.prompt_tokens,
                                 parsed.max_tokens)
    wait = queue_wait_s(engine.running + engine.waiting, engine.max_batch,
                        state.driver.service.estimate(fallback))
    if wait <= bound:
        return None
    return _error(429, f"expected wait for a batch slot {wait:.1f} s exceeds the bound of "
                  f"{bound:g} s", "TooManyRequests",
                  {"Retry-After": str(retry_after_s(wait, bound))})


async def _stream(request: web.Request, parsed: GenerationRequest, stream: TokenStream,
                  writer: ResponseWriter) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    last = parsed.max_tokens - 1
    try:
        while True:
            start = stream.sent
            count = await stream.take()
            if count:
                await response.write(writer.events(start, count, last))
            if stream.done:
                break
        if stream.failed:  # no [DONE]: the client sees an incomplete stream
            await response.write(b'data: {"error": "the engine loop failed"}\n\n')
            await response.write_eof()
            return response
        report = usage(parsed.prompt_tokens, parsed.max_tokens) if parsed.include_usage else None
        await response.write(writer.end_of_stream(report))
        await response.write_eof()
    except ConnectionError:  # the client went away; the caller cancels the request
        pass
    return response


async def completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/completions."""
    return await _generate(request, "completion")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions."""
    return await _generate(request, "chat")


async def models(request: web.Request) -> web.Response:
    """GET /v1/models."""
    s = request.app[WORKER].settings
    card = {"id": s.served_model_name, "object": "model", "created": 0, "owned_by": "fleetplan",
            "root": s.model, "parent": None, "max_model_len": s.max_model_len}
    return web.json_response({"object": "list", "data": [card]})


async def health(request: web.Request) -> web.Response:
    """GET /health: 200 while the engine loop runs, 503 if it has died (as vLLM does)."""
    return web.Response(status=200 if request.app[WORKER].engine_alive else 503)


async def probe(request: web.Request) -> web.Response:
    """GET /healthz and /readyz: 200 while the engine loop runs, 503 once it has died."""
    state = request.app[WORKER]
    alive = state.engine_alive
    return web.json_response({"ok": alive, "model": state.settings.served_model_name},
                             status=200 if alive else 503)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics in Prometheus text format 0.0.4."""
    body = exposition(request.app[WORKER].metrics)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _live_setting(request: web.Request, key: str, read: Callable[[], int],
                        change: Callable[[int], None]) -> web.Response:
    """GET the setting `key`, or POST/PUT `{key: N}` (N >= 1) to change it live."""
    if request.method in ("POST", "PUT"):
        try:
            value = decode_json(await read_body(request, request.app[WORKER].budget))[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(value)
        except (ValueError, KeyError, TypeError):  # BadRequest is a ValueError
            return _error(400, f"expected {{\"{key}\": N}} with N >= 1", "BadRequestError")
        change(value)
    return web.json_response({key: read()})


async def max_batch(request: web.Request) -> web.Response:
    """GET /admin/max_batch, or POST/PUT `{"max_batch": N}` to change it live."""
    state = request.app[WORKER]
    return await _live_setting(request, "max_batch", lambda: state.engine.max_batch,
                               state.driver.set_max_batch)


async def token_budget(request: web.Request) -> web.Response:
    """GET /admin/token_budget, or POST/PUT `{"token_budget": N}` to change it live."""
    state = request.app[WORKER]
    return await _live_setting(request, "token_budget", lambda: state.engine.token_budget,
                               state.driver.set_token_budget)


async def stats(request: web.Request) -> web.Response:
    """GET /admin/stats: engine counters, profile and CPU time."""
    state = request.app[WORKER]
    engine, config = state.engine, state.engine.config
    return web.json_response({
        "model": state.settings.model, "accelerator": state.settings.accelerator,
        "alpha_ms": config.alpha_ms, "beta_ms": config.beta_ms, "gamma_ms": config.gamma_ms,
        "token_budget": engine.token_budget, "max_queue": config.max_queue,
        "kv_capacity_tokens": config.kv_capacity_tokens, "max_batch": engine.max_batch,
        "running": engine.running, "waiting": engine.waiting, "kv_usage": engine.kv_usage,
        "lag_resyncs": state.driver.lag_resyncs, "cpu_seconds": time.process_time(),
        "stats": asdict(engine.stats),
    })


def build_app(settings: WorkerSettings) -> web.Application:
    """The worker's aiohttp application; the engine loop runs while the app runs."""
    engine = BatchEngine(settings.engine)
    worker_metrics = build_metrics(engine, settings.served_model_name, settings.max_model_len)
    state = WorkerState(settings, engine, EngineDriver(engine, worker_metrics), worker_metrics,
                        BodyBudget(settings.body))
    app = web.Application(client_max_size=settings.body.max_body_bytes,
                          middlewares=[auth_middleware(settings.auth, OPEN_PATHS)])
    app[WORKER] = state
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/healthz", probe)
    app.router.add_get("/readyz", probe)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", "/admin/max_batch", max_batch)
    app.router.add_route("*", "/admin/token_budget", token_budget)
    app.router.add_get("/admin/stats", stats)
    app.cleanup_ctx.append(_engine_loop)
    return app


async def _engine_loop(app: web.Application) -> AsyncIterator[None]:
    state = app[WORKER]
    task = state.loop_task = asyncio.create_task(state.driver.run(), name="engine-loop")
    yield
    if task.done():
        if not task.cancelled() and task.exception() is not None:
            LOG.error("the engine loop had died", exc_info=task.exception())
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def serve(
    settings: WorkerSettings, host: str, port: int, on_ready: Callable[[str], None],
) -> None:
    """Serve until SIGINT or SIGTERM; `on_ready(url)` is called once listening. If the
    engine loop dies, its exception is raised (the process must not serve a dead engine)."""
    app = build_app(settings)
    runner = make_runner(app)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        on_ready(await listen(runner, host, port, shutdown_timeout=1.0))
        stopping = asyncio.create_task(stop.wait())
        engine_loop = app[WORKER].loop_task
        await asyncio.wait({stopping, engine_loop}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if engine_loop.done() and not engine_loop.cancelled():
            engine_loop.result()  # raises the engine loop's exception
    finally:
        await runner.cleanup()
