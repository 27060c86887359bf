"""The worker's HTTP API in process: OpenAI shapes, streaming, errors, admin and metrics."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from serving.metrics import CONTENT_TYPE
from tests.serving.conftest import ADMIN, metric_samples, running_worker, settings


async def _stream(session: aiohttp.ClientSession, url: str, body: dict,
                  headers: dict | None = None) -> list[dict]:
    async with session.post(url, json=body, headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = [line[6:].strip() async for line in resp.content if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_completions_streaming_and_not() -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (url, state), aiohttp.ClientSession() as s:
            body = {"prompt": [7] * 40, "max_tokens": 5, "stream": True,
                    "stream_options": {"include_usage": True}}
            chunks = await _stream(s, url + "/v1/completions", body)
            assert len(chunks) == 6  # one per token, then usage
            assert [c["choices"][0]["finish_reason"] for c in chunks[:5]] == [None] * 4 + ["length"]
            assert chunks[-1]["usage"] == {"prompt_tokens": 40, "completion_tokens": 5,
                                           "total_tokens": 45}
            async with s.post(url + "/v1/completions",
                              json={"prompt": "x" * 41, "max_tokens": 3}) as resp:
                full = await resp.json()
            assert full["object"] == "text_completion"
            assert full["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
            assert full["choices"][0]["text"] == " lorem ipsum dolor"

    asyncio.run(scenario())


def test_chat_streaming_one_event_per_token() -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (url, _), aiohttp.ClientSession() as s:
            body = {"messages": [{"role": "system", "content": "abcd" * 3},
                                 {"role": "user", "content": [{"type": "text", "text": "ab"}]}],
                    "max_completion_tokens": 4, "stream": True}
            chunks = await _stream(s, url + "/v1/chat/completions", body)
            assert len(chunks) == 4
            assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
            assert all(c["object"] == "chat.completion.chunk" for c in chunks)
            async with s.post(url + "/v1/chat/completions",
                              json={"messages": [{"role": "user", "content": "hi"}]}) as resp:
                full = await resp.json()
            assert full["choices"][0]["message"]["role"] == "assistant"
            assert full["usage"]["completion_tokens"] == 16  # the default max tokens

    asyncio.run(scenario())


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"prompt": ["a", "b"]}, 400, "batched"),
    ({"prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
    ({"prompt": "x", "n": 2}, 400, "n = 1"),
    ({"max_tokens": 3}, 400, "prompt"),
    ({"prompt": "x", "model": "other"}, 404, "does not exist"),
    ({"prompt": [1] * 200_000}, 400, "maximum context length"),
])
def test_bad_requests(body: dict, status: int, words: str) -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (url, _), aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/completions", json=body) as resp:
                assert resp.status == status
                error = await resp.json()
            assert error["object"] == "error" and words in error["message"]
            async with s.post(url + "/v1/completions", data=b"{not json") as resp:
                assert resp.status == 400

    asyncio.run(scenario())


def test_models_health_metrics_admin() -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (url, state), aiohttp.ClientSession() as s:
            async with s.get(url + "/health") as resp:
                assert resp.status == 200
            async with s.get(url + "/v1/models") as resp:
                assert (await resp.json())["data"][0]["id"] == "m"
            await _stream(s, url + "/v1/completions", {"prompt": [1] * 10, "max_tokens": 4,
                                                       "stream": True})
            # OpenMetrics is asked for, text 0.0.4 is served (client_python#1177)
            headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
            async with s.get(url + "/metrics", headers=headers) as resp:
                assert resp.headers["Content-Type"] == CONTENT_TYPE
                assert "version=0.0.4" in CONTENT_TYPE
                samples = metric_samples(await resp.text())
            assert samples["vllm:request_success_total"] == 1
            assert samples["vllm:generation_tokens_total"] == 4
            assert samples["vllm:prompt_tokens_total"] == 10
            assert samples["vllm:inter_token_latency_seconds_count"] == 3
            assert samples["vllm:time_to_first_token_seconds_count"] == 1
            assert samples["vllm:num_requests_running"] == 0
            async with s.post(url + "/admin/max_batch", json={"max_batch": 3},
                              headers=ADMIN) as resp:
                assert (await resp.json()) == {"max_batch": 3}
            async with s.post(url + "/admin/max_batch", json={"max_batch": 0},
                              headers=ADMIN) as resp:
                assert resp.status == 400
            async with s.get(url + "/admin/stats") as resp:
                stats = await resp.json()
            assert stats["max_batch"] == 3 and stats["stats"]["finished"] == 1

    asyncio.run(scenario())


def test_the_token_budget_chunks_prefills_and_changes_live() -> None:
    async def scenario() -> None:
        worker = settings(token_budget=64)
        async with running_worker(worker) as (url, state), aiohttp.ClientSession() as s:
            async with s.get(url + "/admin/token_budget") as resp:
                assert (await resp.json()) == {"token_budget": 64}
            await _stream(s, url + "/v1/completions", {"prompt": [1] * 100, "max_tokens": 2,
                                                       "stream": True})
            assert state.engine.stats.iterations == 2 + 2  # 64 + 36 prompt tokens, 2 decodes
            async with s.post(url + "/admin/token_budget", json={"token_budget": 16},
                              headers=ADMIN) as resp:
                assert (await resp.json()) == {"token_budget": 16}
            for bad in ({"token_budget": 0}, {"token_budget": "16"}, {"max_batch": 16}):
                async with s.post(url + "/admin/token_budget", json=bad, headers=ADMIN) as resp:
                    assert resp.status == 400
            await _stream(s, url + "/v1/completions", {"prompt": [1] * 100, "max_tokens": 2,
                                                       "stream": True})
            assert state.engine.stats.iterations == 4 + 7 + 2  # 6 x 16 + 4 prompt tokens
            async with s.get(url + "/admin/stats") as resp:
                assert (await resp.json())["token_budget"] == 16

    asyncio.run(scenario())


async def _until(condition: object, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.002)):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition not reached in time")


def test_priority_header_orders_the_queue() -> None:
    async def one(s: aiohttp.ClientSession, url: str, cls: str | None, done: list,
                  tokens: int = 3) -> None:
        headers = {"x-service-class": cls} if cls else {}
        async with s.post(url + "/v1/completions", json={"prompt": "x", "max_tokens": tokens},
                          headers=headers) as resp:
            assert resp.status == 200
        done.append(cls)

    async def scenario() -> None:
        async with running_worker(settings(max_batch=1)) as (url, state), \
                aiohttp.ClientSession() as s:
            done: list = []
            first = asyncio.create_task(one(s, url, "bronze", done, tokens=300))
            await _until(lambda: state.engine.running == 1)
            rest = []
            for cls in (None, "bronze", "Premium", "nobody", "premium"):
                rest.append(asyncio.create_task(one(s, url, cls, done)))
                queued = len(rest)
                await _until(lambda: state.engine.waiting == queued)  # noqa: B023
            await asyncio.wait_for(asyncio.gather(first, *rest), 10)
            assert done == ["bronze", "Premium", "premium", "bronze", None, "nobody"]

    asyncio.run(scenario())


def test_queue_bound_answers_429_with_retry_after() -> None:
    async def scenario() -> None:
        async with running_worker(settings(max_batch=1, max_queue=1)) as (url, state), \
                aiohttp.ClientSession() as s:
            body = {"prompt": "x", "max_tokens": 50}
            tasks = [asyncio.create_task(s.post(url + "/v1/completions", json=body))
                     for _ in range(5)]
            responses = await asyncio.wait_for(asyncio.gather(*tasks), 10)
            statuses = sorted(r.status for r in responses)
            assert statuses == [200, 200, 429, 429, 429]
            rejected = [r for r in responses if r.status == 429]
            assert all(int(r.headers["Retry-After"]) >= 1 for r in rejected)
            for r in responses:
                r.release()
            assert state.engine.stats.rejected == 3

    asyncio.run(scenario())


def test_client_disconnect_cancels_the_request() -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (url, state):
            async with aiohttp.ClientSession() as s:
                resp = await s.post(url + "/v1/completions",
                                    json={"prompt": "x", "max_tokens": 10_000, "stream": True})
                await resp.content.readline()
                assert state.engine.running == 1
                resp.close()
            await _until(lambda: state.engine.running == 0)
            assert state.engine.stats.cancelled == 1

    asyncio.run(scenario())


def test_health_reports_a_dead_engine_loop() -> None:
    def broken(now: float) -> None:
        raise RuntimeError("engine bug")

    async def scenario() -> None:
        async with running_worker(settings()) as (url, state), aiohttp.ClientSession() as s:
            state.engine.next_iteration = broken
            async with asyncio.timeout(5):
                async with s.post(url + "/v1/completions", json={"prompt": "x"}) as resp:
                    assert resp.status == 500
                async with s.get(url + "/health") as resp:
                    assert resp.status == 503

    asyncio.run(scenario())
