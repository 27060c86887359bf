"""Overload bounded in time: the expected wait for a batch slot, and 429 with Retry-After
from the worker and the router once it exceeds the bound."""

from __future__ import annotations

import asyncio
import math

import aiohttp
import pytest
from aiohttp import web

from queue_models.iteration_cost import LinearCost
from serving.overload import ServiceTime, profile_service_s, queue_wait_s, retry_after_s
from serving.router_admission import expected_wait_s, over_wait_bound, record_departure
from serving.router_config import RouterSettings
from serving.routing import Backend
from tests.serving.conftest import running_worker, settings
from tests.serving.test_router_app import fake_upstream, running_router

pytestmark = pytest.mark.timeout(60)


def test_the_wait_counts_requests_beyond_the_batch_at_its_departure_rate() -> None:
    assert queue_wait_s(3, 4, 8.0) == 0.0  # a free slot
    assert queue_wait_s(4, 4, 8.0) == 2.0  # first in line: one departure, every 2 s
    assert queue_wait_s(7, 4, 8.0) == 8.0
    assert retry_after_s(8.0, 5.0) == 3 and retry_after_s(5.1, 5.0) == 1
    assert retry_after_s(1000.0, 5.0) == 60
    assert profile_service_s(LinearCost(10.0, 0.0, 0.0), 8, 100, 50) == pytest.approx(0.51)
    service = ServiceTime(alpha=0.5)
    assert service.estimate(3.0) == 3.0
    service.observe(2.0)
    service.observe(4.0)
    assert service.estimate(3.0) == 3.0 and service.mean_s == 3.0


def test_the_router_measures_departures_while_the_batch_is_full() -> None:
    backend = Backend("http://b", "m", "v", max_batch=2)
    assert expected_wait_s(Backend("http://x", "m", "x")) is None  # no max batch
    backend.outstanding = 3
    assert expected_wait_s(backend) == 0.0  # unmeasured: up to two batches
    backend.outstanding = 4
    assert math.isinf(expected_wait_s(backend))
    for t in (10.0, 10.5, 11.0):  # full: one departure every 0.5 s
        record_departure(backend, t)
    assert backend.ewma_departure_gap_s == 0.5
    assert expected_wait_s(backend) == pytest.approx(1.5)  # 3 ahead of a free slot
    assert over_wait_bound([backend], 1.0) == pytest.approx(1.5)
    assert over_wait_bound([backend], 2.0) is None and over_wait_bound([backend], None) is None
    backend.outstanding = 1
    record_departure(backend, 30.0)  # not full: no interval
    assert backend.ewma_departure_gap_s == 0.5


async def _in_system(state: object, count: int) -> None:
    for _ in range(250):
        if state.engine.running + state.engine.waiting >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the requests did not arrive")


def test_the_worker_answers_429_once_the_expected_wait_exceeds_the_bound() -> None:
    # 20 ms per iteration, 200 tokens: 4 s in the batch; batch 2: a departure every 2 s
    worker = settings(alpha_ms=20.0, beta_ms=0.0, gamma_ms=0.0, max_batch=2)
    worker = type(worker)(**{**worker.__dict__, "max_queue_wait_s": 5.0})
    body = {"prompt": "x", "max_tokens": 200}

    async def scenario() -> None:
        async with running_worker(worker) as (url, state), aiohttp.ClientSession() as s:
            held = [asyncio.create_task(s.post(url + "/v1/completions", json=body))
                    for _ in range(4)]  # 2 running, waits of 2 s and 4 s
            await _in_system(state, 4)
            quick = aiohttp.ClientTimeout(total=2.0)
            async with s.post(url + "/v1/completions", json=body, timeout=quick) as response:
                assert response.status == 429  # it would wait 3 x 4.02 s / 2 = 6.03 s
                assert response.headers["Retry-After"] == "2"  # 6.03 - 5, rounded up
                assert "exceeds the bound of 5 s" in (await response.json())["message"]
            assert state.engine.waiting == 2
            for task in held:
                task.cancel()
            await asyncio.gather(*held, return_exceptions=True)

    asyncio.run(scenario())


def test_the_router_bounds_what_it_sends_to_a_replica_it_has_not_measured() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"usage": {"completion_tokens": 1}})

    async def scenario() -> None:
        async with fake_upstream(slow) as up, running_router(
                RouterSettings(), [{"url": up, "model": "m", "max_batch": 2}]) as (url, state), \
                aiohttp.ClientSession() as s:
            body = {"model": "m", "prompt": "x"}
            held = [asyncio.create_task(s.post(url + "/v1/completions", json=body))
                    for _ in range(4)]  # two batches
            try:
                backend = state.pool.backends()[0]
                for _ in range(250):
                    if backend.outstanding == 4:
                        break
                    await asyncio.sleep(0.02)
                quick = aiohttp.ClientTimeout(total=2.0)
                async with s.post(url + "/v1/completions", json=body, timeout=quick) as answer:
                    assert answer.status == 429 and answer.headers["Retry-After"] == "1"
            finally:
                release.set()  # the upstream answers the held requests in any case
            for response in await asyncio.gather(*held):
                assert response.status == 200
                response.release()

    asyncio.run(scenario())
