"""The router and emulated workers as real processes on 127.0.0.1.

- Streaming is passed through unbuffered: through the router, the first token arrives
  within a few ms of when it arrives straight from the worker, and tokens keep the
  worker's spacing.
- Killing one worker mid-run loses no request that had not started streaming.
- A plan's backends (served by a fake controller endpoint) are routed least-loaded across
  variants by default; with the `weighted` policy the weights are honoured within 5% over
  2,000 requests.
- Session affinity keeps each session on one replica while it is healthy.

Every process is stopped in `finally`; every load loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import selectors
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.integration.processes import (
    EXAMPLE_SPEC,
    REPO_ROOT,
    WorkerProcess,
    cli,
    started_workers,
    stop,
)

MODEL = "llama_3_1_8b"
WORKER_ARGS = ["--model", MODEL, "--accelerator", "H100", "--spec", str(EXAMPLE_SPEC)]
ROUTER_READY = "fleetplan router: listening on "
BACKEND_HEADER = "x-fleetplan-backend"


def _ready_url(process: subprocess.Popen, timeout_s: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if selector.select(timeout=0.1):
                line = process.stdout.readline()
                if line.startswith(ROUTER_READY):
                    return line[len(ROUTER_READY):].split()[0]
    finally:
        selector.close()
    raise RuntimeError(f"router did not start (exit code {process.poll()})")


@contextlib.contextmanager
def started_router(tmp_path: Path, *args: str) -> Iterator[str]:
    """Start `fleetplan router ARGS` on a free port; always stopped on exit."""
    log = tmp_path / "router.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            cli("router", "--host", "127.0.0.1", "--port", "0", *args), cwd=REPO_ROOT,
            stdout=subprocess.PIPE, stderr=handle, text=True, env=os.environ.copy())
    try:
        try:
            url = _ready_url(process, 30)
        except RuntimeError:
            raise RuntimeError(f"router failed to start; log:\n{log.read_text()}") from None
        yield url
    finally:
        stop(process)


def backends_file(tmp_path: Path, workers: list[WorkerProcess], **fields: object) -> Path:
    path = tmp_path / "backends.json"
    path.write_text(json.dumps({"backends": [
        {"url": w.url, "model": MODEL, **fields} for w in workers]}))
    return path


def slow_spec(tmp_path: Path, alpha_ms: float) -> Path:
    """The example spec with a slow iteration, so tokens are far apart."""
    document = json.loads(EXAMPLE_SPEC.read_text())
    for profile in document["profiles"]:
        profile["alpha_ms"] = alpha_ms
    path = tmp_path / "slow-spec.json"
    path.write_text(json.dumps(document))
    return path


async def _token_times(session: aiohttp.ClientSession, url: str, tokens: int) -> list[float]:
    body = {"model": MODEL, "prompt": [1] * 64, "max_tokens": tokens, "stream": True}
    start = time.perf_counter()
    arrivals = []
    async with session.post(url + "/v1/completions", json=body) as response:
        assert response.status == 200
        async for line in response.content:
            if line.startswith(b"data: {"):
                arrivals.append(time.perf_counter() - start)
    return arrivals


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_streaming_is_passed_through_unbuffered(tmp_path: Path) -> None:
    spec = slow_spec(tmp_path, alpha_ms=40.0)
    args = ["--model", MODEL, "--accelerator", "H100", "--spec", str(spec)]

    async def measure(worker_url: str, router_url: str) -> tuple[list[float], list[list[float]]]:
        direct, routed = [], []
        async with aiohttp.ClientSession() as session:
            for _ in range(8):  # interleaved, so machine noise hits both alike
                direct.append((await _token_times(session, worker_url, 6))[0])
                routed.append(await _token_times(session, router_url, 6))
        return direct, routed

    with started_workers(tmp_path, [args]) as (worker,), started_router(
            tmp_path, "--backends", str(backends_file(tmp_path, [worker]))) as router:
        direct, routed = asyncio.run(asyncio.wait_for(measure(worker.url, router), 60))
    first_direct = sorted(direct)[len(direct) // 2]
    first_routed = sorted(r[0] for r in routed)[len(routed) // 2]
    gaps = sorted(b - a for r in routed for a, b in zip(r, r[1:], strict=False))
    print(f"median TTFT direct {first_direct * 1000:.1f} ms, through the router "
          f"{first_routed * 1000:.1f} ms; median gap {gaps[len(gaps) // 2] * 1000:.1f} ms")
    # Buffered, the first token would come with the last, 5 gaps x 40 ms later; the
    # margin leaves room for a loaded 2-core machine (the router adds ~1 ms idle).
    assert first_routed - first_direct < 0.025, "first token well before the last one"
    assert gaps[len(gaps) // 10] > 0.030, "tokens keep the worker's ~40 ms spacing"


@dataclass
class Outcome:
    stream: bool
    status: int = 0
    tokens: int = 0
    complete: bool = False
    error: str | None = None


async def _request(session: aiohttp.ClientSession, url: str, stream: bool, tokens: int,
                   ) -> Outcome:
    outcome = Outcome(stream)
    body = {"model": MODEL, "prompt": [1] * 256, "max_tokens": tokens, "stream": stream}
    try:
        async with session.post(url + "/v1/completions", json=body) as response:
            outcome.status = response.status
            if not stream:
                answer = await response.json()
                outcome.complete = answer.get("usage", {}).get("completion_tokens") == tokens
                return outcome
            async for line in response.content:
                outcome.tokens += line.startswith(b'data: {"id"')
                outcome.complete |= line.startswith(b"data: [DONE]")
    except (aiohttp.ClientError, ValueError) as exc:
        outcome.error = type(exc).__name__
    return outcome


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_killing_a_worker_loses_no_request_that_had_not_started_streaming(
        tmp_path: Path) -> None:
    async def load(url: str, victim: subprocess.Popen) -> list[Outcome]:
        async with aiohttp.ClientSession() as session:
            tasks = []
            for i in range(240):  # 40 req/s for 6 s; the victim dies at 2 s
                tasks.append(asyncio.create_task(_request(session, url, i % 2 == 0, 60)))
                if i == 80:
                    victim.send_signal(signal.SIGKILL)
                await asyncio.sleep(0.025)
            return await asyncio.wait_for(asyncio.gather(*tasks), 60)

    with started_workers(tmp_path, [WORKER_ARGS] * 3) as workers, started_router(
            tmp_path, "--backends", str(backends_file(tmp_path, workers)),
            "--policy", "least_outstanding", "--health-interval", "0.5") as router:
        outcomes = asyncio.run(load(router, workers[0].process))
        with aiohttp_get(router + "/metrics") as text:
            metrics = text
    lost = [o for o in outcomes if not o.complete and not (o.stream and o.tokens > 0)]
    cut = [o for o in outcomes if o.stream and not o.complete and o.tokens > 0]
    print(f"{len(outcomes)} requests: {len(cut)} streams cut by the kill, {len(lost)} lost")
    assert not lost, lost[:5]
    assert len(cut) <= 30, "only streams in flight on the victim may be cut"
    assert 'reason="connection"' in metrics, "the dead worker was ejected"
    retries = sum(float(line.split()[-1]) for line in metrics.splitlines()
                  if line.startswith("fleetplan_router_retries_total"))
    assert retries >= 1, "requests caught by the kill were retried elsewhere"


@contextlib.contextmanager
def aiohttp_get(url: str) -> Iterator[str]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        yield response.read().decode()


def _plan_routing(tmp_path: Path, plan_of: object) -> tuple[Counter[str], list[str]]:
    """2,000 requests (24 at a time) through a router following a plan served by a fake
    controller endpoint; `plan_of(urls)` is the document. Answers per worker URL."""
    async def scenario(workers: list[WorkerProcess]) -> Counter[str]:
        plan = plan_of([w.url for w in workers])

        async def serve_plan(request: web.Request) -> web.Response:
            return web.json_response(plan)

        app = web.Application()
        app.router.add_get("/plan", serve_plan)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            with started_router_async(tmp_path, "--plan", f"http://{host}:{port}/plan") as get:
                router = await get()
                return await _count_backends(router, 2000, concurrency=24)
        finally:
            await runner.cleanup()

    with started_workers(tmp_path, [WORKER_ARGS] * 3) as workers:
        counts = asyncio.run(asyncio.wait_for(scenario(workers), 90))
        return counts, [w.url for w in workers]


def _two_variants(urls: list[str], h100: float, a100: float, **more: object) -> dict:
    return {"plan": {"allocations": ["ignored by the router"]}, "backends": [
        {"url": urls[0], "model": MODEL, "variant": "llama-h100", "weight": h100, **more},
        {"url": urls[1], "model": MODEL, "variant": "llama-h100", "weight": h100, **more},
        {"url": urls[2], "model": MODEL, "variant": "llama-a100", "weight": a100, **more}]}


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_weights_from_a_plan_are_honoured_within_5_percent(tmp_path: Path) -> None:
    def plan_of(urls: list[str]) -> dict:
        return {**_two_variants(urls, 0.7, 0.3), "policies": {MODEL: "weighted"}}

    counts, urls = _plan_routing(tmp_path, plan_of)
    h100 = counts[urls[0]] + counts[urls[1]]
    a100 = counts[urls[2]]
    print(f"h100 {h100} ({counts[urls[0]]} + {counts[urls[1]]}), a100 {a100}")
    assert h100 + a100 == 2000
    assert h100 / 2000 == pytest.approx(0.7, rel=0.05)
    assert a100 / 2000 == pytest.approx(0.3, rel=0.05)
    assert min(counts[urls[0]], counts[urls[1]]) > 400, "least-outstanding inside a variant"


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_plan_is_routed_least_loaded_across_variants_by_default(tmp_path: Path) -> None:
    # weights 0.9 / 0.1 against three equal replicas: the plan's shares are off, and the
    # default (least_loaded) spreads by load instead of following them
    counts, urls = _plan_routing(tmp_path, lambda urls: _two_variants(urls, 0.9, 0.1,
                                                                       max_batch=128))
    print("requests per replica", [counts[u] for u in urls])
    assert sum(counts.values()) == 2000
    assert all(counts[u] > 2000 * 0.2 for u in urls), "each replica near a third"


@contextlib.contextmanager
def started_router_async(tmp_path: Path, *args: str) -> Iterator[object]:
    """Like `started_router`, for a test whose event loop serves something the router
    needs at start-up: yields a coroutine function that waits for the URL in a thread."""
    log = tmp_path / "router.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            cli("router", "--host", "127.0.0.1", "--port", "0", *args), cwd=REPO_ROOT,
            stdout=subprocess.PIPE, stderr=handle, text=True, env=os.environ.copy())
    try:
        yield lambda: asyncio.to_thread(_ready_url, process, 30)
    finally:
        stop(process)


async def _count_backends(router: str, total: int, concurrency: int,
                          session_of: object = None) -> Counter[str]:
    counts: Counter[str] = Counter()
    queue = iter(range(total))

    async def client(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            body = {"model": MODEL, "prompt": [1] * 16, "max_tokens": 1}
            async with session.post(router + "/v1/completions", json=body) as response:
                assert response.status == 200, await response.text()
                counts[response.headers[BACKEND_HEADER]] += 1
                await response.read()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return counts


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_session_affinity_keeps_a_session_on_one_replica_while_it_is_healthy(
        tmp_path: Path) -> None:
    sessions = [f"user-{i}" for i in range(24)]

    async def round_of(router: str) -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {s: set() for s in sessions}
        gate = asyncio.Semaphore(6)  # light load: no replica reaches the spill-over bound

        async def one(session: aiohttp.ClientSession, key: str) -> None:
            async with gate:
                await requests_of(session, key)

        async def requests_of(session: aiohttp.ClientSession, key: str) -> None:
            for _ in range(6):
                body = {"model": MODEL, "prompt": [1] * 32, "max_tokens": 4, "stream": True}
                async with session.post(router + "/v1/completions", json=body,
                                        headers={"x-session-id": key}) as response:
                    assert response.status == 200
                    seen[key].add(response.headers[BACKEND_HEADER])
                    await response.read()

        async with aiohttp.ClientSession() as session:
            await asyncio.wait_for(asyncio.gather(*(one(session, k) for k in sessions)), 60)
        return seen

    with started_workers(tmp_path, [WORKER_ARGS] * 3) as workers, started_router(
            tmp_path, "--backends", str(backends_file(tmp_path, workers)),
            "--policy", "session_affinity", "--health-interval", "0.3") as router:
        before = asyncio.run(round_of(router))
        assert all(len(v) == 1 for v in before.values()), before
        homes = {k: next(iter(v)) for k, v in before.items()}
        assert len(set(homes.values())) == 3, "sessions spread over the replicas"
        victim = workers[0]
        stop(victim.process)
        time.sleep(1.0)  # the health checks eject it
        after = asyncio.run(round_of(router))
    assert all(len(v) == 1 for v in after.values()), after
    for key, home in homes.items():
        if home != victim.url:
            assert after[key] == {home}, "sessions of healthy replicas do not move"
        else:
            assert after[key] != {victim.url}
