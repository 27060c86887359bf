"""The router in process, in front of in-process workers and fake upstreams on 127.0.0.1:
passthrough, retries, ejection and re-admission, admission control, cache, registration.

`running_router` and `fake_upstream` are also used by the other router test modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from serving.auth import AuthPolicy
from serving.http import listen, make_runner
from serving.router import RouterState, SourceFactory, apply_document, build_app, build_state
from serving.router_config import BACKEND_HEADER, RouterSettings, parse_backends
from tests.serving.conftest import ADMIN, TOKEN, metric_samples, running_worker, settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FAST_HEALTH = dict(health_interval_s=0.05, unhealthy_after=2)


@contextlib.asynccontextmanager
async def running_router(router_settings: RouterSettings, backends: list[dict] | None = None,
                         source_factory: SourceFactory | None = None,
                         ) -> AsyncIterator[tuple[str, RouterState]]:
    """Serve a router on a free port; yields (base URL, state); always cleans up."""
    state = build_state(router_settings, source_factory)
    runner = make_runner(build_app(state))  # as `fleetplan router` runs it
    await runner.setup()
    try:
        if backends is not None:
            apply_document(state, parse_backends({"backends": backends}, "test"))
        yield await listen(runner, "127.0.0.1", 0), state
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def fake_upstream(handler: Handler, health_status: Callable[[], int] = lambda: 200,
                        ) -> AsyncIterator[str]:
    """A fake backend: `handler` answers both completion routes."""
    app = web.Application()
    app.router.add_post("/v1/completions", handler)
    app.router.add_post("/v1/chat/completions", handler)

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=health_status())

    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def dead_url() -> str:
    """A URL nobody listens on (a port bound and released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def router_metrics(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(url + "/metrics") as response:
        return metric_samples(await response.text())


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))


BODY = {"model": "m", "prompt": [1] * 20, "max_tokens": 4}


def test_streaming_and_plain_passthrough_models_and_errors() -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (w1, _), running_worker(settings()) as (w2, _), \
                running_router(RouterSettings(), [{"url": w1, "model": "m"},
                                                  {"url": w2, "model": "m"}]) as (url, state), \
                aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/completions", json={**BODY, "stream": True}) as r:
                assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
                assert r.headers[BACKEND_HEADER] in (w1, w2)
                events = [line async for line in r.content if line.startswith(b"data: ")]
            assert len(events) == 5 and events[-1] == b"data: [DONE]\n"
            async with s.post(url + "/v1/chat/completions", json={
                    "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}) as r:
                body = await r.json()
            assert body["object"] == "chat.completion" and body["usage"]["completion_tokens"] == 3
            async with s.post(url + "/v1/completions", json={"prompt": "no model given"}) as r:
                assert r.status == 200, "the only model is the default"
            async with s.post(url + "/v1/completions", json={**BODY, "model": "other"}) as r:
                assert r.status == 404 and "does not exist" in (await r.json())["message"]
            async with s.post(url + "/v1/completions", data=b"{oops") as r:
                assert r.status == 400
            async with s.get(url + "/v1/models") as r:
                assert [c["id"] for c in (await r.json())["data"]] == ["m"]
            metrics = await router_metrics(s, url)
            assert metrics["fleetplan_router_requests_total"] == 5
            assert metrics["fleetplan_router_decision_seconds_count"] == 3
            assert all(b.outstanding == b.prefill_tokens == b.decode_tokens
                       == b.context_tokens == 0 for b in state.pool.backends())
            assert state.proxy.predictor("m").predict(20, None) == 128, "too few samples yet"

    run(scenario())


def test_connection_errors_are_retried_elsewhere_and_eject() -> None:
    async def scenario() -> None:
        dead = dead_url()
        async with running_worker(settings()) as (live, _), running_router(
                RouterSettings(default_policy="round_robin", health_interval_s=60),
                [{"url": dead, "model": "m"}, {"url": live, "model": "m"}]) as (url, state), \
                aiohttp.ClientSession() as s:
            for stream in (False, True, False, True):
                async with s.post(url + "/v1/completions", json={**BODY, "stream": stream}) as r:
                    assert r.status == 200 and r.headers[BACKEND_HEADER] == live
                    await r.read()
            dead_backend = next(b for b in state.pool.backends() if b.url == dead)
            assert dead_backend.ejected == "connection"
            metrics = await router_metrics(s, url)
            assert metrics["fleetplan_router_retries_total"] == 1, "ejected after one try"
            assert metrics["fleetplan_router_ejections_total"] == 1

    run(scenario())


def test_5xx_before_the_first_byte_is_retried_then_ejects_and_health_readmits() -> None:
    calls = {"bad": 0}
    health = {"status": 200}

    async def failing(request: web.Request) -> web.Response:
        calls["bad"] += 1
        return web.json_response({"error": "boom"}, status=503)

    async def scenario() -> None:
        async with fake_upstream(failing, lambda: health["status"]) as bad, \
                running_worker(settings()) as (good, _), running_router(
                RouterSettings(default_policy="round_robin", health_interval_s=60),
                [{"url": bad, "model": "m"}, {"url": good, "model": "m"}]) as (url, state), \
                aiohttp.ClientSession() as s:
            for _ in range(8):
                async with s.post(url + "/v1/completions", json=BODY) as r:
                    assert r.status == 200
            assert calls["bad"] == 3, "three 5xx in a row eject the backend"
            bad_backend = next(b for b in state.pool.backends() if b.url == bad)
            assert bad_backend.ejected == "errors"
            from serving.router_health import check_all
            await check_all(state.pool, state.metrics, state.proxy.session, state.settings)
            assert bad_backend.healthy, "a good health check re-admits it"

    run(scenario())


def test_every_replica_failing_passes_the_last_error_on() -> None:
    async def failing(request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    async def scenario() -> None:
        async with fake_upstream(failing) as bad, running_router(
                RouterSettings(max_retries=5), [{"url": bad, "model": "m"},
                                                {"url": dead_url(), "model": "m"}]) as (url, _), \
                aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/completions", json=BODY) as r:
                assert r.status in (500, 502)
            metrics = await router_metrics(s, url)
            assert metrics["fleetplan_router_retries_total"] == 2, "each replica tried once"

    run(scenario())


def test_a_failure_after_the_first_byte_reaches_the_client() -> None:
    async def breaks(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"choices": [{"text": "a"}]}\n\n')
        await asyncio.sleep(0.05)
        request.transport.close()  # dies mid-stream
        return response

    async def scenario() -> None:
        async with fake_upstream(breaks) as bad, running_router(
                RouterSettings(), [{"url": bad, "model": "m"}]) as (url, state), \
                aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/completions", json={**BODY, "stream": True}) as r:
                assert r.status == 200
                text = (await r.read()).decode()
            assert text.startswith('data: {"choices"') and '"error"' in text
            assert "[DONE]" not in text
            metrics = await router_metrics(s, url)
            assert metrics.get("fleetplan_router_retries_total", 0) == 0
            assert metrics["fleetplan_router_requests_total"] == 1
            assert state.pool.backends()[0].outstanding == 0
        text = state.metrics.exposition().decode()
        assert 'outcome="stream_error"' in text

    run(scenario())


def test_admission_control_answers_429_when_every_replica_is_full() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"usage": {"completion_tokens": 1}})

    async def scenario() -> None:
        async with fake_upstream(slow) as up, running_router(
                RouterSettings(max_outstanding=2, retry_after_s=3),
                [{"url": up, "model": "m"}]) as (url, _), aiohttp.ClientSession() as s:
            held = [asyncio.create_task(s.post(url + "/v1/completions", json=BODY))
                    for _ in range(2)]
            await asyncio.sleep(0.2)
            async with s.post(url + "/v1/completions", json=BODY) as r:
                assert r.status == 429 and r.headers["Retry-After"] == "3"
            release.set()
            for response in await asyncio.gather(*held):
                assert response.status == 200
                response.release()

    run(scenario())


def test_cache_answers_repeated_temperature_zero_requests() -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (w, state_w), running_router(
                RouterSettings(cache_size=16), [{"url": w, "model": "m"}]) as (url, _), \
                aiohttp.ClientSession() as s:
            body = json.dumps({**BODY, "temperature": 0}).encode()
            answers = []
            for _ in range(3):
                async with s.post(url + "/v1/completions", data=body) as r:
                    answers.append(await r.read())
            async with s.post(url + "/v1/completions", json={**BODY, "temperature": 1}) as r:
                await r.read()
            first, *hits = (json.loads(a) for a in answers)
            ids = {first["id"]} | {h["id"] for h in hits}
            assert len(ids) == 3 and all(i.startswith("cmpl-") for i in ids), "a new id per answer"
            for hit in hits:
                assert {k: v for k, v in hit.items() if k not in ("id", "created")} == \
                    {k: v for k, v in first.items() if k not in ("id", "created")}
            assert state_w.engine.stats.finished == 2, "two requests reached the worker"
            metrics = await router_metrics(s, url)
            assert metrics["fleetplan_router_cache_hits_total"] == 2
            assert metrics["fleetplan_router_cache_misses_total"] == 1

    run(scenario())


def test_registration_heartbeats_and_health_checks() -> None:
    health = {"status": 200}

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"usage": {"completion_tokens": 1}})

    async def scenario() -> None:
        async with fake_upstream(ok, lambda: health["status"]) as up, running_router(
                RouterSettings(**FAST_HEALTH, auth=AuthPolicy(token=TOKEN)),
        ) as (url, state), aiohttp.ClientSession(headers=ADMIN) as s:
            async with s.post(url + "/v1/completions", json=BODY) as r:
                assert r.status == 404, "no backend yet"
            register = {"url": up, "model": "m", "variant": "v", "ttl_s": 0.3}
            async with s.post(url + "/router/backends", json=register) as r:
                assert r.status == 200 and (await r.json())["heartbeat_within_s"] == 0.3
            async with s.post(url + "/v1/completions", json=BODY) as r:
                assert r.status == 200
            await asyncio.sleep(0.6)
            async with s.get(url + "/router/backends") as r:
                (listed,) = (await r.json())["backends"]
            assert listed["ejected"] == "heartbeat" and listed["registered"]
            async with s.post(url + "/router/backends", json=register) as r:
                assert r.status == 200
            assert state.pool.backends()[0].healthy, "a heartbeat re-admits it"
            register["ttl_s"] = 60
            async with s.post(url + "/router/backends", json=register) as r:
                assert r.status == 200
            health["status"] = 503
            await asyncio.sleep(0.4)
            assert state.pool.backends()[0].ejected == "health"
            health["status"] = 200
            await asyncio.sleep(0.3)
            assert state.pool.backends()[0].healthy
            async with s.post(url + "/router/backends", json={"url": "ftp://x", "model": "m"}) as r:
                assert r.status == 400
            async with s.delete(url + "/router/backends", json={"url": up, "model": "m"}) as r:
                assert r.status == 200
            assert state.pool.backends() == []
            metrics = await router_metrics(s, url)
            assert metrics["fleetplan_router_ejections_total"] == 2

    run(scenario())


def test_a_client_that_goes_away_frees_the_backend() -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (w, worker), running_router(
                RouterSettings(), [{"url": w, "model": "m"}]) as (url, state), \
                aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/completions",
                              json={**BODY, "max_tokens": 5000, "stream": True}) as r:
                await r.content.readline()
            for _ in range(100):
                if worker.engine.running == 0 and state.pool.backends()[0].outstanding == 0:
                    break
                await asyncio.sleep(0.02)
            assert worker.engine.running == 0 and worker.engine.stats.cancelled == 1
            assert state.pool.backends()[0].outstanding == 0

    run(scenario())
