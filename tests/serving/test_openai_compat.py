"""OpenAI compatibility of the worker and the router: response ids, logprobs, the context
length in /v1/models, and the /healthz and /readyz probes."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import aiohttp
import pytest

from serving.auth import AuthPolicy
from serving.router_config import RouterSettings
from serving.worker_config import worker_settings
from specs.errors import SpecError
from specs.loading import load_fleet
from tests.serving.conftest import running_worker, settings
from tests.serving.test_router_app import FAST_HEALTH, running_router
from tests.serving.test_worker_config import EXAMPLE


async def _post(s: aiohttp.ClientSession, url: str, body: dict) -> tuple[int, dict]:
    async with s.post(url, json=body) as resp:
        return resp.status, await resp.json()


def test_response_ids_are_unique_across_workers() -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (a, _), running_worker(settings()) as (b, _), \
                aiohttp.ClientSession() as s:
            body = {"prompt": [1, 2, 3], "max_tokens": 2}
            ids = [(await _post(s, url + "/v1/completions", body))[1]["id"]
                   for url in (a, b, a, b)]
            chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
            ids += [(await _post(s, url + "/v1/chat/completions", chat))[1]["id"]
                    for url in (a, b)]
            assert len(set(ids)) == len(ids)
            assert all(i.startswith("cmpl-") for i in ids[:4])
            assert all(i.startswith("chatcmpl-") for i in ids[4:])

    asyncio.run(scenario())


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/completions", {"prompt": "hello", "logprobs": 1}),
    ("/v1/completions", {"prompt": "hello", "logprobs": 0}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "logprobs": True}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                              "top_logprobs": 3}),
])
def test_logprobs_requested_is_a_clear_400(path: str, body: dict) -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (url, _), aiohttp.ClientSession() as s:
            status, answer = await _post(s, url + path, body)
            assert status == 400
            assert answer["object"] == "error" and "logprobs" in answer["message"]

    asyncio.run(scenario())


def test_logprobs_not_requested_is_served() -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (url, _), aiohttp.ClientSession() as s:
            chat = {"messages": [{"role": "user", "content": "hi"}], "logprobs": False,
                    "max_tokens": 2}
            assert (await _post(s, url + "/v1/chat/completions", chat))[0] == 200
            body = {"prompt": "hi", "logprobs": None, "max_tokens": 2}
            assert (await _post(s, url + "/v1/completions", body))[0] == 200

    asyncio.run(scenario())


def test_models_reports_the_configured_context_length() -> None:
    configured = replace(settings(max_batch=64, kv_capacity_tokens=1_000_000),
                         context_tokens=4096)

    async def scenario() -> None:
        async with running_worker(configured) as (url, _), aiohttp.ClientSession() as s:
            async with s.get(url + "/v1/models") as resp:
                card = (await resp.json())["data"][0]
            assert card["max_model_len"] == 4096
            status, answer = await _post(s, url + "/v1/completions",
                                         {"prompt": [1] * 4000, "max_tokens": 97})
            assert status == 400 and "maximum context length is 4096" in answer["message"]
            status, _ = await _post(s, url + "/v1/completions",
                                    {"prompt": [1] * 4000, "max_tokens": 96})
            assert status == 200

    asyncio.run(scenario())


def test_worker_context_length_from_the_command_line_options() -> None:
    spec = load_fleet(EXAMPLE).spec
    s = worker_settings(spec, "llama_3_1_8b", "H100", max_model_len=2048)
    assert s.max_model_len == 2048
    kv = s.engine.kv_capacity_tokens
    assert worker_settings(spec, "llama_3_1_8b", "H100").max_model_len <= kv
    with pytest.raises(SpecError, match="KV"):
        worker_settings(spec, "llama_3_1_8b", "H100", max_model_len=kv + 1)


def test_worker_healthz_and_readyz() -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (url, state), aiohttp.ClientSession() as s:
            for path in ("/healthz", "/readyz", "/health"):
                async with s.get(url + path) as resp:
                    assert resp.status == 200, path
            state.loop_task.cancel()
            await asyncio.sleep(0)
            for path in ("/healthz", "/readyz"):
                async with s.get(url + path) as resp:
                    assert resp.status == 503, path

    asyncio.run(scenario())


def test_router_healthz_and_readyz() -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (worker, _), \
                running_router(RouterSettings(**FAST_HEALTH,
                                              auth=AuthPolicy(token="t0ken"))) as (url, _), \
                aiohttp.ClientSession(headers={"Authorization": "Bearer t0ken"}) as s:
            async with s.get(url + "/healthz") as resp:
                assert resp.status == 200
            async with s.get(url + "/readyz") as resp:
                assert resp.status == 503  # nothing to route to yet
            async with s.post(url + "/router/backends",
                              json={"url": worker, "model": "m"}) as resp:
                assert resp.status == 200
            async with s.get(url + "/readyz") as resp:
                assert resp.status == 200
                assert (await resp.json())["healthy"] == 1

    asyncio.run(scenario())
