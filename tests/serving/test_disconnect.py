"""A client that goes away before a non-streaming answer cancels its request: the worker's
engine frees the batch slot, and the router closes its upstream request (so the worker
behind it frees the slot too) and its own accounting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from serving.router_config import RouterSettings
from tests.serving.conftest import running_worker, settings
from tests.serving.test_router_app import running_router

pytestmark = pytest.mark.timeout(30)  # without cancellation, clean-up waits on the handlers
LONG = {"model": "m", "prompt": "x", "max_tokens": 50_000}  # 100 s of decoding


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


async def _abandon(url: str, wait_s: float = 0.3) -> None:
    """POST a long non-streaming request and give up on it after `wait_s`."""
    timeout = aiohttp.ClientTimeout(total=wait_s)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        try:
            async with s.post(url + "/v1/completions", json=LONG) as response:
                await response.read()
        except TimeoutError:
            return
    raise AssertionError("the long request answered")


def test_an_abandoned_request_frees_the_workers_batch_slot() -> None:
    async def scenario() -> None:
        async with running_worker(settings(max_batch=1)) as (url, state):
            await _abandon(url)
            assert await _until(lambda: state.engine.running == 0), "the slot is still held"
            assert state.engine.stats.cancelled == 1

    asyncio.run(scenario())


def test_an_abandoned_request_through_the_router_frees_both() -> None:
    async def scenario() -> None:
        async with running_worker(settings(max_batch=1)) as (worker_url, worker), \
                running_router(RouterSettings(), [{"url": worker_url, "model": "m"}]) as (
                    url, router):
            await _abandon(url)
            backend = router.pool.backends()[0]
            assert await _until(lambda: worker.engine.running == 0 and backend.outstanding == 0)
            assert worker.engine.stats.cancelled == 1

    asyncio.run(scenario())
