"""Two emulated workers and the load generator as real processes on 127.0.0.1.

- A 60 s window of the Azure conversation trace (output capped) is replayed across two
  workers; the mean ITL measured at the client must match the profile's prediction at
  the batch sizes the workers saw within 10%, and /metrics (parsed by prometheus_client)
  must agree with the load generator's counts.
- Overload: a bounded queue answers 429 quickly and nothing hangs; max batch changed live
  moves the running batch; disconnecting clients empties the worker.
- Bad input exits with code 2 and says where.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import shared_path
from tests.integration.processes import (
    ADMIN,
    EXAMPLE_SPEC,
    REPO_ROOT,
    WorkerProcess,
    cli,
    started_workers,
    stop,
)

MODEL, ACCELERATOR = "llama_3_1_8b", "H100"
WORKER_ARGS = ["--model", MODEL, "--accelerator", ACCELERATOR, "--spec", str(EXAMPLE_SPEC)]


def counters(worker: WorkerProcess) -> dict[str, float]:
    """/metrics parsed by prometheus_client: {sample name: value summed over labels}."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(worker.get("/metrics").decode()):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def predicted_itl_ms(stats: list[dict]) -> tuple[float, float]:
    """The profile's mean ITL over the ITL samples the workers produced, and their batch."""
    n = sum(s["stats"]["itl_tokens"] for s in stats)
    work = sum(s["beta_ms"] * s["stats"]["itl_tokens_sum"]
               + s["gamma_ms"] * s["stats"]["itl_context_sum"] for s in stats)
    batch = sum(s["stats"]["itl_batch_sum"] for s in stats) / n
    return stats[0]["alpha_ms"] + work / n, batch


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_trace_replay_on_two_workers(tmp_path: Path) -> None:
    trace = shared_path("azure2023", "AzureLLMInferenceTrace_conv.csv")
    report_path = tmp_path / "report.json"
    with started_workers(tmp_path, [WORKER_ARGS, WORKER_ARGS]) as workers:
        loadgen = subprocess.run(
            cli("loadgen", *[a for w in workers for a in ("--target", w.url)],
                "--trace", str(trace), "--trace-window", "60", "--max-prompt-tokens", "4096",
                "--max-output-tokens", "512", "--class-mix", "Premium=1,Bronze=1",
                "--spec", str(EXAMPLE_SPEC), "--model", MODEL, "--json", str(report_path),
                "--no-progress", "--drain-timeout", "30"),
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=150,
        )
        assert loadgen.returncode == 0, loadgen.stderr
        stats = [w.get_json("/admin/stats") for w in workers]
        metrics = [counters(w) for w in workers]
        processes = [w.process for w in workers]
    assert all(p.returncode is not None for p in processes), "workers must be stopped"
    report = json.loads(report_path.read_text())
    overall = report["overall"]
    assert overall["requests"] > 150 and overall["errors"] == 0, overall["errors_by_kind"]
    assert all(s["stats"]["finished"] > 50 for s in stats), "round-robin reaches both"
    assert all(s["lag_resyncs"] == 0 for s in stats)

    def total(name: str) -> float:
        return sum(m[name] for m in metrics)

    assert total("vllm:request_success_total") == overall["ok"]
    assert total("vllm:generation_tokens_total") == overall["output_tokens"]
    assert total("vllm:prompt_tokens_total") == overall["prompt_tokens"]
    assert total("vllm:time_to_first_token_seconds_count") == overall["ttft_ms"]["count"]
    assert total("vllm:inter_token_latency_seconds_count") == overall["itl_ms"]["count"]
    assert total("vllm:num_requests_running") == total("vllm:num_requests_waiting") == 0

    predicted, batch = predicted_itl_ms(stats)
    measured = overall["itl_ms"]["mean"]
    print(f"mean ITL measured {measured:.3f} ms, profile {predicted:.3f} ms at mean batch "
          f"{batch:.2f}")
    assert batch > 1.5, "the replay should batch requests"
    assert measured == pytest.approx(predicted, rel=0.10)
    premium = next(c for c in report["classes"] if c["service_class"] == "Premium")
    assert premium["slo"]["ttft_target_ms"] == 1000 and premium["slo"]["itl_target_ms"] == 30


async def _post(session: aiohttp.ClientSession, url: str, tokens: int) -> tuple[int, float, str]:
    start = time.perf_counter()
    async with session.post(url + "/v1/completions",
                            json={"prompt": [1] * 100, "max_tokens": tokens, "stream": True}) as r:
        await r.read()
        return r.status, time.perf_counter() - start, r.headers.get("Retry-After", "")


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_bounded_queue_rejects_quickly(tmp_path: Path) -> None:
    args = [*WORKER_ARGS, "--max-batch", "4", "--max-queue", "4"]

    async def scenario(url: str) -> list[tuple[int, float, str]]:
        async with aiohttp.ClientSession() as session:
            tasks = [_post(session, url, 100) for _ in range(40)]
            return await asyncio.wait_for(asyncio.gather(*tasks), 30)

    with started_workers(tmp_path, [args]) as (worker,):
        results = asyncio.run(scenario(worker.url))
        metrics = counters(worker)
    accepted = [r for r in results if r[0] == 200]
    rejected = [r for r in results if r[0] == 429]
    assert len(accepted) + len(rejected) == 40
    assert len(accepted) >= 8 and len(rejected) >= 24
    assert max(r[1] for r in rejected) < 1.0, "429 must come at once"
    assert all(int(r[2]) >= 1 for r in rejected)
    assert metrics["vllm:request_success_total"] == len(accepted)


async def _gauges(session: aiohttp.ClientSession, url: str) -> tuple[int, int]:
    async with session.get(url + "/metrics") as response:
        text = await response.text()
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    return int(values["vllm:num_requests_running"]), int(values["vllm:num_requests_waiting"])


async def _until(session: aiohttp.ClientSession, url: str, condition: object,
                 timeout_s: float = 15.0) -> list[tuple[int, int]]:
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen.append(await _gauges(session, url))
        if condition(*seen[-1]):
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"gauges never satisfied the condition; last {seen[-5:]}")


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_max_batch_changes_live(tmp_path: Path) -> None:
    async def scenario(worker: WorkerProcess) -> None:
        url = worker.url
        async with aiohttp.ClientSession(headers=ADMIN) as admin:
            clients = aiohttp.ClientSession()
            tasks = [asyncio.create_task(_post(clients, url, 60 + 60 * i)) for i in range(12)]
            await _until(admin, url, lambda r, w: (r, w) == (4, 8))
            async with admin.post(url + "/admin/max_batch", json={"max_batch": 10}) as resp:
                assert (await resp.json()) == {"max_batch": 10}
            await _until(admin, url, lambda r, w: (r, w) == (10, 2), timeout_s=2)
            async with admin.post(url + "/admin/max_batch", json={"max_batch": 3}):
                pass
            seen = await _until(admin, url, lambda r, w: r <= 3)
            assert all(r <= 10 for r, _ in seen)
            later = await _until(admin, url, lambda r, w: w == 0, timeout_s=20)
            assert all(r <= 3 for r, _ in later), "no admissions above the new max batch"
            for task in tasks:
                task.cancel()
            await clients.close()  # clients go away: the worker drops their requests
            await _until(admin, url, lambda r, w: (r, w) == (0, 0), timeout_s=5)

    with started_workers(tmp_path, [[*WORKER_ARGS, "--max-batch", "4"]]) as (worker,):
        asyncio.run(scenario(worker))
        process = worker.process
    assert process.returncode == 0, "SIGTERM stops the worker cleanly"


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_bad_input_exits_2(tmp_path: Path) -> None:
    bad_trace = tmp_path / "bad.csv"
    bad_trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                         "2023-11-16 18:00:00.1,12,3\n2023-11-16 18:00:01.1,12,many\n")
    cases = [
        (cli("worker", "--model", MODEL, "--accelerator", "A100", "--spec", str(EXAMPLE_SPEC)),
         ["h100-vllm.json", "no profile", "profiles on: H100"]),
        (cli("loadgen", "--target", "http://127.0.0.1:9", "--trace", str(tmp_path / "x.csv")),
         ["x.csv", "no such trace file"]),
        (cli("loadgen", "--target", "http://127.0.0.1:9", "--trace", str(bad_trace)),
         ["bad.csv", "line 3", "GeneratedTokens"]),
    ]
    for command, words in cases:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            _, err = process.communicate(timeout=30)
        finally:
            stop(process)
        assert process.returncode == 2, err
        assert all(word in err for word in words), err
