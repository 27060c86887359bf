"""The router's request path: route one OpenAI request to a backend and pass the answer on.

`Proxy.handle(request)` for `/v1/completions` and `/v1/chat/completions`:

1. parse the routing fields of the body (`serving.router_request`); the body bytes are
   forwarded unchanged;
2. find the candidates for the model and service class (`BackendPool.candidates`); an
   unknown model is a 404;
3. answer from the response cache when the request is cacheable and cached;
4. admission control (`serving.router_admission`): 429 with `Retry-After` when every
   candidate is full, or every candidate's expected wait for a batch slot is over
   `max_queue_wait_s`, or the tenant is over its fair share under pressure;
5. up to 1 + `max_retries` attempts, each on a replica not tried yet, chosen by the
   model's policy: a connection error, a 5xx, a 429 or an empty stream before the first
   byte reaches the client moves on to the next replica (connection errors eject the
   replica at once, `errors_to_eject` 5xx in a row eject it too); once a byte has been
   written to the client, an upstream failure ends the stream with an error event and
   no `[DONE]`, so the client sees it. When every attempt failed, the last backend's
   5xx or 429 is passed on, or a 502 when none answered;
6. streaming answers are written chunk by chunk as they arrive (no buffering), and the
   first chunk is awaited before the client's response starts, so a replica that fails
   before its first token is retried transparently.

Accounting (`Flight`): while a request is at a backend, the backend's outstanding count,
prompt tokens not yet prefilled (until the first byte), estimated decode tokens still to
come (decremented per streamed event) and context tokens (prompt plus streamed tokens)
include it; these are what the policies read.
Completed requests teach the model's `DecodePredictor` their output length.

To extend: another endpoint is a route in `serving.router` that calls `handle`; another
retry rule changes `_attempt`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from serving.http import BodyBudget, read_body
from serving.openai_api import BadRequest, error_body
from serving.overload import retry_after_s
from serving.router_admission import (
    TenantLoad,
    over_fair_share,
    over_wait_bound,
    record_departure,
    saturated,
)
from serving.router_cache import ResponseCache, reissued
from serving.router_config import BACKEND_HEADER, SERVICE_CLASS_HEADER, RouterSettings
from serving.router_metrics import RouterMetrics
from serving.router_pool import BackendPool, GroupKey
from serving.router_request import ParsedBody, TokenCounter, completion_tokens, parse_body
from serving.routing import POLICIES, Backend, DecodePredictor, Policy, RouteRequest

LOG = logging.getLogger(__name__)
EWMA_ALPHA = 0.2
_HOP_BY_HOP = frozenset({"host", "content-length", "connection", "keep-alive",
                         "transfer-encoding", "te", "trailer", "upgrade",
                         "proxy-authorization", "proxy-connection"})
_PASSED_BACK = ("Content-Type", "Content-Encoding", "Cache-Control", "Retry-After",
                "X-Request-Id")


class Flight:
    """One attempt's share of a backend's accounting; `end()` removes what is left."""

    __slots__ = ("backend", "prefill", "decode", "context", "started")

    def __init__(self, backend: Backend, route: RouteRequest, now: float) -> None:
        self.backend, self.started = backend, now
        self.prefill, self.decode = route.prompt_tokens, route.decode_estimate
        self.context = route.prompt_tokens
        backend.outstanding += 1
        backend.prefill_tokens += self.prefill
        backend.decode_tokens += self.decode
        backend.context_tokens += self.context

    def completed(self, now: float) -> None:
        """The request completed (before `end`): a departure for the service rate."""
        record_departure(self.backend, now)

    def first_byte(self, now: float) -> None:
        """The backend answered: its prefill is done; fold the wait into the EWMA."""
        b = self.backend
        b.prefill_tokens -= self.prefill
        self.prefill = 0
        waited = now - self.started
        b.ewma_ttfb_s = waited if b.ewma_ttfb_s == 0 else (
            b.ewma_ttfb_s + EWMA_ALPHA * (waited - b.ewma_ttfb_s))

    def tokens(self, count: int) -> None:
        """`count` tokens were generated."""
        done = min(count, self.decode)
        b = self.backend
        b.decode_tokens -= done
        self.decode -= done
        b.context_tokens += count
        self.context += count

    def end(self) -> None:
        """The attempt is over."""
        b = self.backend
        b.outstanding -= 1
        b.prefill_tokens -= self.prefill
        b.decode_tokens -= self.decode
        b.context_tokens -= self.context
        self.prefill = self.decode = self.context = 0


@dataclass(frozen=True, slots=True)
class Retry:
    """An attempt that failed before the first byte (maybe with an answer to pass on)."""

    reason: str
    status: int = 0
    body: bytes = b""
    headers: Mapping[str, str] | None = None


def json_error(status: int, message: str, kind: str,
               headers: Mapping[str, str] | None = None) -> web.Response:
    """An OpenAI-style error answer."""
    return web.json_response(error_body(status, message, kind), status=status,
                             headers=headers)


class Proxy:
    """Routes and forwards requests (see the module docstring)."""

    def __init__(self, settings: RouterSettings, pool: BackendPool, metrics: RouterMetrics,
                 cache: ResponseCache | None) -> None:
        self.settings = settings
        self.pool = pool
        self.metrics = metrics
        self.cache = cache
        self.session: aiohttp.ClientSession | None = None
        self.tenants = TenantLoad()
        self.budget = BodyBudget(settings.body)
        self.predictors: dict[str, DecodePredictor] = {}
        self._policies: dict[GroupKey, Policy] = {}
        self._generation = -1

    # -- policies and predictions -------------------------------------------------------

    def policy(self, group: GroupKey) -> Policy:
        """The policy instance of a candidate group (rebuilt when membership changes)."""
        if self._generation != self.pool.generation:
            self._policies.clear()
            self._generation = self.pool.generation
        policy = self._policies.get(group)
        if policy is None:
            model = group[0]
            name = self.settings.policy_name(model, self.pool.document_policies,
                                             self.pool.planned(model))
            seed = None if self.settings.seed is None else f"{self.settings.seed}:{group}"
            policy = POLICIES.get(name)(self.settings.policy_options, random.Random(seed))
            self._policies[group] = policy
        return policy

    def predictor(self, model: str) -> DecodePredictor:
        """The decode-length predictor of `model`."""
        found = self.predictors.get(model)
        if found is None:
            found = self.predictors[model] = DecodePredictor()
        return found

    def _route_request(self, model: str, parsed: ParsedBody, headers: CIMultiDictProxy[str],
                       ) -> RouteRequest:
        service_class = headers.get(SERVICE_CLASS_HEADER)
        estimate = self.predictor(model).predict(parsed.prompt_tokens, service_class,
                                                 parsed.max_tokens)
        return RouteRequest(
            model=model, service_class=service_class,
            session_key=headers.get(self.settings.session_header) or parsed.user,
            prompt_tokens=parsed.prompt_tokens, max_tokens=parsed.max_tokens,
            decode_estimate=estimate, stream=parsed.stream)

    # -- the request path ---------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Route one completion or chat request."""
        raw = await read_body(request, self.budget)
        try:
            parsed = parse_body(raw)
        except BadRequest as exc:
            self.metrics.request("", request.headers.get(SERVICE_CLASS_HEADER), "", "bad_request")
            return json_error(400, str(exc), "BadRequestError")
        service_class = request.headers.get(SERVICE_CLASS_HEADER)
        model = parsed.model or self._only_model()
        group, candidates = self.pool.candidates(model or "", service_class)
        if model is None or not candidates:
            self.metrics.request(model or "", service_class, "", "no_backend")
            known = ", ".join(self.pool.models()) or "none"
            message = (f"The model `{model}` does not exist." if model else
                       "The request names no model and the router serves several.")
            return json_error(404, f"{message} Models: {known}.", "NotFoundError")
        if self.cache is not None and parsed.cacheable:
            cached = self.cache.get(request.path, raw, time.monotonic())
            self.metrics.cache(model, cached is not None)
            if cached is not None:
                self.metrics.request(model, service_class, "", "cached")
                return web.Response(body=reissued(cached.body), headers={"Content-Type": cached.content_type})
        rejected = self._admission(request, candidates)
        if rejected is not None:
            self.metrics.request(model, service_class, "", "rejected")
            return rejected
        route = self._route_request(model, parsed, request.headers)
        tenant = self._tenant(request)
        if tenant is not None:
            self.tenants.start(tenant)
        try:
            return await self._forward(request, raw, route, group, parsed.cacheable)
        finally:
            if tenant is not None:
                self.tenants.finish(tenant)

    def _only_model(self) -> str | None:
        models = self.pool.models()
        return models[0] if len(models) == 1 else None

    def _tenant(self, request: web.Request) -> str | None:
        header = self.settings.tenant_header
        return request.headers.get(header) if header else None

    def _admission(self, request: web.Request, candidates: list[Backend]) -> web.Response | None:
        limit = self.settings.max_outstanding
        retry = {"Retry-After": str(self.settings.retry_after_s)}
        if saturated(candidates, limit):
            return json_error(429, "every replica is at its limit of requests in flight",
                              "TooManyRequests", retry)
        wait = over_wait_bound(candidates, self.settings.max_queue_wait_s)
        if wait is not None:
            return self._wait_refusal(wait)
        tenant = self._tenant(request)
        if tenant is None:
            return None
        held = self.tenants.outstanding(tenant)
        active = self.tenants.active + (held == 0)  # counting this tenant
        if over_fair_share(held, active, candidates, limit):
            return json_error(429, f"tenant {tenant!r} is over its fair share",
                              "TooManyRequests", retry)
        return None

    def _wait_refusal(self, wait_s: float) -> web.Response:
        """429 for an expected wait over the bound (inf: rate not measured yet)."""
        bound = self.settings.max_queue_wait_s or 0.0
        if math.isfinite(wait_s):
            message = (f"every replica's expected wait for a batch slot ({wait_s:.1f} s) "
                       f"exceeds {bound:g} s")
            after = retry_after_s(wait_s, bound)
        else:
            message = "every replica has two batches in flight (its rate not measured yet)"
            after = self.settings.retry_after_s
        return json_error(429, message, "TooManyRequests", {"Retry-After": str(after)})

    def _upstream_headers(self, headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
        out = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _HOP_BY_HOP)
        if "Content-Type" not in out:
            out["Content-Type"] = "application/json"
        return out

    async def _forward(self, request: web.Request, raw: bytes, route: RouteRequest,
                       group: GroupKey, cacheable: bool) -> web.StreamResponse:
        headers = self._upstream_headers(request.headers)
        policy = self.policy(group)
        tried: list[Backend] = []
        last = Retry("none")
        for _ in range(self.settings.max_retries + 1):
            _, candidates = self.pool.candidates(route.model, route.service_class)
            left = [b for b in candidates if b not in tried] if tried else candidates
            if not left:
                break
            start = time.perf_counter()
            backend = policy.choose(route, left, time.monotonic())
            self.metrics.decision.observe(time.perf_counter() - start)
            tried.append(backend)
            flight = Flight(backend, route, time.monotonic())
            try:
                result = await self._attempt(request, raw, headers, backend, flight, route,
                                             cacheable)
            finally:
                flight.end()
            if not isinstance(result, Retry):
                return result
            last = result
            self.metrics.retry(route.model, result.reason)
        return self._give_up(route, tried, last)

    def _give_up(self, route: RouteRequest, tried: list[Backend], last: Retry) -> web.Response:
        backend = tried[-1].url if tried else ""
        if last.status:
            outcome = "rejected" if last.status == 429 else "upstream_error"
            self.metrics.request(route.model, route.service_class, backend, outcome)
            headers = {k: v for k, v in (last.headers or {}).items()
                       if k in ("Content-Type", "Retry-After")}
            return web.Response(status=last.status, body=last.body, headers=headers)
        self.metrics.request(route.model, route.service_class, backend, "upstream_error")
        return json_error(502, f"no backend answered ({len(tried)} tried, last error: "
                          f"{last.reason})", "BadGateway")

    async def _attempt(self, request: web.Request, raw: bytes, headers: CIMultiDict[str],
                       backend: Backend, flight: Flight, route: RouteRequest, cacheable: bool,
                       ) -> web.StreamResponse | Retry:
        assert self.session is not None, "the proxy's session is opened by the app"
        try:
            async with self.session.post(backend.url + request.path, data=raw,
                                         headers=headers) as upstream:
                if upstream.status >= 500 or upstream.status == 429:
                    return self._failed_status(backend, upstream.status, await upstream.read(),
                                               upstream.headers)
                if upstream.headers.get("Content-Type", "").startswith("text/event-stream"):
                    return await self._stream(request, upstream, backend, flight, route)
                body = await upstream.read()
                flight.first_byte(time.monotonic())
                return self._answer(request, upstream, body, flight, route, cacheable, raw)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            self._eject(backend, "connection")
            return Retry("connection", 0, str(exc).encode())
        except aiohttp.SocketTimeoutError:
            self.metrics.request(route.model, route.service_class, backend.url, "upstream_error")
            return json_error(504, f"{backend.url} did not answer in time", "GatewayTimeout")
        except aiohttp.ClientError:
            self._count_error(backend)
            return Retry("connection")

    def _failed_status(self, backend: Backend, status: int, body: bytes,
                       headers: Mapping[str, str]) -> Retry:
        if status >= 500:
            self._count_error(backend)
        return Retry(f"http_{status // 100}xx" if status != 429 else "http_429", status, body,
                     dict(headers))

    def _count_error(self, backend: Backend) -> None:
        backend.consecutive_errors += 1
        if backend.consecutive_errors >= self.settings.errors_to_eject:
            self._eject(backend, "errors")

    def _eject(self, backend: Backend, reason: str) -> None:
        if self.pool.eject(backend, reason):
            self.metrics.ejection(backend.url, reason)
            LOG.warning("ejected %s (%s): %s", backend.url, backend.model, reason)

    def _passed_back(self, upstream: aiohttp.ClientResponse, backend: Backend) -> dict[str, str]:
        headers = {k: v for k in _PASSED_BACK if (v := upstream.headers.get(k)) is not None}
        if self.settings.backend_header:
            headers[BACKEND_HEADER] = backend.url
        return headers

    def _answer(self, request: web.Request, upstream: aiohttp.ClientResponse, body: bytes,
                flight: Flight, route: RouteRequest, cacheable: bool, raw: bytes,
                ) -> web.Response:
        backend = flight.backend
        status = upstream.status
        backend.consecutive_errors = 0
        headers = self._passed_back(upstream, backend)
        if status == 200:
            flight.completed(time.monotonic())
            tokens = completion_tokens(body)
            if tokens:
                self.predictor(route.model).observe(route.prompt_tokens, route.service_class,
                                                    tokens)
            if cacheable and self.cache is not None:
                self.cache.put(request.path, raw, body, headers.get("Content-Type", ""),
                               time.monotonic())
        outcome = "ok" if status < 400 else "client_error"
        self.metrics.request(route.model, route.service_class, backend.url, outcome)
        return web.Response(status=status, body=body, headers=headers)

    async def _stream(self, request: web.Request, upstream: aiohttp.ClientResponse,
                      backend: Backend, flight: Flight, route: RouteRequest,
                      ) -> web.StreamResponse | Retry:
        try:
            first = await upstream.content.readany()
        except (aiohttp.ClientError, TimeoutError):
            self._count_error(backend)
            return Retry("connection")
        if not first:
            self._count_error(backend)
            return Retry("empty")
        flight.first_byte(time.monotonic())
        backend.consecutive_errors = 0
        response = web.StreamResponse(status=upstream.status,
                                      headers=self._passed_back(upstream, backend))
        counter = TokenCounter()
        outcome = await self._pump(request, response, upstream, first, counter, flight)
        if outcome == "ok" and upstream.status == 200:
            flight.completed(time.monotonic())
            self.predictor(route.model).observe(route.prompt_tokens, route.service_class,
                                                counter.output_tokens)
        elif outcome == "ok":
            outcome = "client_error"
        self.metrics.request(route.model, route.service_class, backend.url, outcome)
        return response

    async def _pump(self, request: web.Request, response: web.StreamResponse,
                    upstream: aiohttp.ClientResponse, first: bytes, counter: TokenCounter,
                    flight: Flight) -> str:
        """Copy the stream to the client; returns the outcome."""
        chunk = first
        try:
            await response.prepare(request)
            while chunk:
                await response.write(chunk)
                flight.tokens(counter.feed(chunk))
                try:
                    chunk = await upstream.content.readany()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    error = {"error": {"message": f"the backend failed mid-stream: "
                                       f"{type(exc).__name__}", "type": "BadGateway"}}
                    await response.write(f"data: {json.dumps(error)}\n\n".encode())
                    await response.write_eof()
                    return "stream_error"
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            return "cancelled"
        return "ok" if counter.done else "stream_error"
