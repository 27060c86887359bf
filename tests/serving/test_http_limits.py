"""Request bodies are bounded and malformed JSON is a 400, in the worker and the router."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from serving.auth import AuthPolicy
from serving.http import MIB, BodyBudget, BodyLimits, decode_json
from serving.openai_api import BadRequest
from serving.router_config import RouterSettings
from tests.serving.conftest import ADMIN, TOKEN, running_worker, settings
from tests.serving.test_router_app import running_router

NESTED = b'{"model": "m", "prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def test_deeply_nested_json_is_a_clear_400_not_a_500() -> None:
    with pytest.raises(BadRequest, match="nested too deeply"):
        decode_json(NESTED)
    with pytest.raises(BadRequest, match="not UTF-8"):
        decode_json(b'{"a": "\xff"}')

    async def scenario() -> None:
        async with running_worker(settings()) as (worker, _), \
                running_router(RouterSettings(auth=AuthPolicy(token=TOKEN)),
                               [{"url": worker, "model": "m"}]) as (router, _), \
                aiohttp.ClientSession() as s:
            for url in (worker + "/v1/completions", router + "/v1/completions",
                        router + "/router/backends"):
                async with s.post(url, data=NESTED, headers={
                        "Content-Type": "application/json", **ADMIN}) as resp:
                    assert resp.status == 400, url
                    assert "nested too deeply" in (await resp.json())["message"]

    asyncio.run(scenario())


def test_a_body_over_the_limit_is_413_before_it_is_read() -> None:
    async def scenario() -> None:
        big = b'{"prompt": "' + b"x" * (5 * MIB) + b'"}'
        async with running_worker(settings()) as (worker, _), \
                running_router(RouterSettings(), [{"url": worker, "model": "m"}]) as (router, _), \
                aiohttp.ClientSession() as s:
            for url in (worker + "/v1/completions", router + "/v1/completions"):
                async with s.post(url, data=big) as resp:
                    assert resp.status == 413, url
                    assert "exceeds the limit" in (await resp.json())["message"]

    asyncio.run(scenario())


def test_bodies_read_at_once_share_a_bounded_budget() -> None:
    async def scenario() -> None:
        budget = BodyBudget(BodyLimits(max_body_bytes=10, max_buffered_bytes=20, wait_s=0.05))
        async with budget.reserve(10), budget.reserve(10):
            assert budget.in_use == 20
            with pytest.raises(TimeoutError):
                async with budget.reserve(1):
                    pass
        assert budget.in_use == 0

        async def later() -> None:
            await asyncio.sleep(0.01)

        async with budget.reserve(20):
            waiter = asyncio.create_task(later())
            await waiter
        async with budget.reserve(5):  # room again once released
            assert budget.in_use == 5

    asyncio.run(scenario())


def test_the_router_answers_503_when_the_body_budget_is_full() -> None:
    async def scenario() -> None:
        limits = BodyLimits(max_body_bytes=1000, max_buffered_bytes=1000, wait_s=0.05)
        async with running_router(RouterSettings(body=limits), []) as (router, state), \
                aiohttp.ClientSession() as s, \
                state.proxy.budget.reserve(1000), \
                s.post(router + "/v1/completions", json={"model": "m"}) as resp:  # no room
            assert resp.status == 503 and resp.headers["Retry-After"] == "1"

    asyncio.run(scenario())
