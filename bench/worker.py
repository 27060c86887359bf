"""Benchmark of the emulated worker: its own CPU cost per generated token, and the largest
concurrency at which its real timing stays within 5% of the profile.

    .venv/bin/python bench/worker.py [--concurrency 64,128,200,256,384,512] [--measure 8]

One worker process (`fleetplan worker`, pinned to CPU 0) serves a closed loop of C
streaming clients (this process, pinned to CPU 1 when there are two CPUs): each client
sends a request (prompt `--prompt-tokens`, `--output-tokens` generated) and sends the next
as soon as it ends, so the batch stays at C. Max batch is set to C through the admin
endpoint. Over a measurement window after a warm-up, the bench compares:

- emulated ITL: the mean gap between consecutive tokens of a stream, at the client;
- profile ITL: the mean duration the profile gives the iterations that produced those
  tokens (the worker's `/admin/stats`, which includes the prefill chunks of new requests
  that share iterations with decodes);

fidelity = emulated / profile - 1. CPU per token is the worker's CPU seconds over tokens
generated in the window. A last row runs C = 200 clients against max batch 64 (136 waiting).
Also printed: the pure engine's CPU per token (BatchEngine in virtual time, no HTTP).

The profile is llama_3_1_8b on H100 (`specs/examples/h100-vllm.json`). With it the token
rate of one worker saturates near 1 / (beta + gamma x context), about 18k tokens/s, so the
worker's CPU cannot be the limit; `--speedup F` divides alpha, beta and gamma by F (a
hypothetical F times faster accelerator, written to a temporary spec) to find where it is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from queue_models.engine import BatchEngine, EngineConfig, step  # noqa: E402
from specs.clock import FakeClock  # noqa: E402

SPEC = ROOT / "specs" / "examples" / "h100-vllm.json"
MODEL, ACCELERATOR = "llama_3_1_8b", "H100"


@dataclass
class Window:
    """Client-side ITL samples whose both ends fall in [start, end]."""

    start: float = float("inf")
    end: float = float("inf")
    gaps: float = 0.0
    count: int = 0


def scaled_spec(speedup: float, folder: Path) -> Path:
    """The example spec with every profile's alpha, beta, gamma divided by `speedup`."""
    document = json.loads(SPEC.read_text())
    for profile in document["profiles"]:
        for key in ("alpha_ms", "beta_ms", "gamma_ms"):
            profile[key] /= speedup
    path = folder / f"spec-x{speedup:g}.json"
    path.write_text(json.dumps(document))
    return path


def start_worker(spec: Path) -> tuple[subprocess.Popen, str]:
    """Start the worker on a free port, pinned to CPU 0; returns (process, URL)."""
    pin = (lambda: os.sched_setaffinity(0, {0})) if os.cpu_count() and os.cpu_count() > 1 else None
    process = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "worker", "--model", MODEL, "--accelerator",
         ACCELERATOR, "--spec", str(spec), "--port", "0", "--kv-capacity-tokens", "100000000",
         "--insecure-no-auth"],  # loopback only: the sweep changes max batch live
        cwd=ROOT, stdout=subprocess.PIPE, text=True, preexec_fn=pin,
    )
    line = process.stdout.readline()
    if not line.startswith("fleetplan worker: listening on "):
        process.kill()
        raise SystemExit(f"worker did not start: {line!r}")
    return process, line.split()[4]


class Stream(asyncio.Protocol):
    """One streaming request over a raw connection; counts `data: {` events per read.

    Far cheaper than a full HTTP client, so the bench can read faster than the worker
    writes: gaps are timed per TCP read (n tokens in a read add one gap and n samples,
    which keeps the mean exact)."""

    def __init__(self, request: bytes, window: Window, done: asyncio.Future) -> None:
        self.request, self.window, self.done = request, window, done
        self.tail = b""
        self.last: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the request."""
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        """Count the token events in this read."""
        now = time.perf_counter()
        text = self.tail + data
        self.tail = text[-8:]
        tokens = text.count(b"data: {") - self.tail.count(b"data: {")
        w = self.window
        if tokens and self.last is not None and w.start <= self.last and now <= w.end:
            w.gaps += now - self.last
            w.count += tokens
        if tokens:
            self.last = now
        if b"data: [DONE]" in text and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        """The server closed the connection."""
        if not self.done.done():
            self.done.set_result(None)


async def client(host: str, port: int, request: bytes, window: Window) -> None:
    """Closed loop: one streaming request after another, a connection each."""
    loop = asyncio.get_running_loop()
    while True:
        done = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda d=done: Stream(request, window, d), host, port)
        try:
            await done
        finally:
            transport.close()


async def stats(session: aiohttp.ClientSession, url: str) -> dict:
    """The worker's /admin/stats."""
    async with session.get(url + "/admin/stats") as response:
        return await response.json()


async def measure(url: str, concurrency: int, max_batch: int, args: argparse.Namespace) -> dict:
    """One point of the sweep."""
    body = json.dumps({"prompt": [100] * args.prompt_tokens, "max_tokens": args.output_tokens,
                       "stream": True, "ignore_eos": True}).encode()
    host, port = url.removeprefix("http://").split(":")
    request = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: "
               f"application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
               ).encode() + body
    window = Window()
    async with aiohttp.ClientSession() as admin:
        async with admin.post(url + "/admin/max_batch", json={"max_batch": max_batch}):
            pass
        tasks = [asyncio.create_task(client(host, int(port), request, window))
                 for _ in range(concurrency)]
        await asyncio.sleep(args.warmup)
        before, t0 = await stats(admin, url), time.perf_counter()
        window.start, window.end = t0, t0 + args.measure
        await asyncio.sleep(args.measure)
        after, t1 = await stats(admin, url), time.perf_counter()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.5)  # let the worker drop the cancelled requests
    return summarize(before, after, t1 - t0, window, concurrency, max_batch)


def summarize(before: dict, after: dict, wall: float, window: Window, concurrency: int,
              max_batch: int) -> dict:
    """Deltas of the worker's counters over the window."""
    delta = {k: after["stats"][k] - before["stats"][k] for k in after["stats"]}
    if not delta["itl_tokens"] or not window.count:
        raise SystemExit(f"no tokens in the window at C={concurrency}: measure longer")
    profile_itl = delta["itl_duration_s"] / delta["itl_tokens"] * 1000
    emulated_itl = window.gaps / window.count * 1000
    tokens = delta["decode_tokens"]
    cpu = after["cpu_seconds"] - before["cpu_seconds"]
    return {
        "concurrency": concurrency, "max_batch": max_batch,
        "batch": delta["itl_batch_sum"] / delta["itl_tokens"],
        "profile_itl_ms": profile_itl, "emulated_itl_ms": emulated_itl,
        "fidelity": emulated_itl / profile_itl - 1, "tokens_per_s": tokens / wall,
        "cpu_us_per_token": cpu / tokens * 1e6, "cpu_share": cpu / wall,
        "resyncs": after["lag_resyncs"] - before["lag_resyncs"],
    }


def engine_cost_us(batch: int, prompt: int, output: int, requests: int = 1000) -> float:
    """CPU per generated token of the pure engine (virtual time, no HTTP), microseconds."""
    engine = BatchEngine(EngineConfig(alpha_ms=6.49, beta_ms=0.0219, gamma_ms=4.96e-5,
                                      max_batch=batch))
    clock = FakeClock()
    for i in range(requests):
        engine.submit(str(i), prompt, output, 0.0)
    start = time.process_time()
    while engine.has_work:
        step(engine, clock)
    return (time.process_time() - start) / (requests * output) * 1e6


async def sweep(url: str, args: argparse.Namespace) -> list[dict]:
    """Every point, then 200 clients against max batch 64."""
    points = [(c, c) for c in args.concurrency] + [(200, 64)]
    rows = []
    for concurrency, max_batch in points:
        row = await measure(url, concurrency, max_batch, args)
        print(f"C={concurrency:4d} max_batch={max_batch:4d} batch={row['batch']:6.1f} "
              f"profile {row['profile_itl_ms']:6.2f} ms emulated {row['emulated_itl_ms']:6.2f} "
              f"ms fidelity {row['fidelity']:+6.1%} {row['tokens_per_s']:7.0f} tok/s "
              f"{row['cpu_us_per_token']:5.1f} us/token cpu {row['cpu_share']:4.0%} "
              f"resyncs {row['resyncs']}", flush=True)
        rows.append(row)
    return rows


def markdown(rows: list[dict], args: argparse.Namespace, engine_us: float) -> str:
    """The results as a markdown table."""
    lines = ["| clients | max batch | mean batch | profile ITL ms | emulated ITL ms | fidelity "
             "| tokens/s | worker CPU us/token | worker CPU |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['concurrency']} | {r['max_batch']} | {r['batch']:.1f} | "
                     f"{r['profile_itl_ms']:.2f} | {r['emulated_itl_ms']:.2f} | "
                     f"{r['fidelity']:+.1%} | {r['tokens_per_s']:.0f} | "
                     f"{r['cpu_us_per_token']:.1f} | {r['cpu_share']:.0%} |")
    ok = [r["concurrency"] for r in rows if r["max_batch"] == r["concurrency"]
          and abs(r["fidelity"]) <= 0.05]
    lines.append("")
    lines.append(f"Profile speed-up {args.speedup:g}; prompt {args.prompt_tokens}, output "
                 f"{args.output_tokens} tokens. Largest concurrency measured within 5%: "
                 f"{max(ok) if ok else 'none'}. Pure engine: {engine_us:.1f} us CPU per "
                 "generated token.")
    return "\n".join(lines)


def main() -> int:
    """Run the sweep and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="16,64,128,200,256,384,512",
                        type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--output-tokens", type=int, default=256)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--measure", type=float, default=8.0)
    parser.add_argument("--speedup", type=float, default=1.0,
                        help="divide the profile's alpha, beta, gamma by this (default 1)")
    args = parser.parse_args()
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    engine_us = engine_cost_us(64, args.prompt_tokens, args.output_tokens)
    with tempfile.TemporaryDirectory() as folder:
        spec = SPEC if args.speedup == 1 else scaled_spec(args.speedup, Path(folder))
        process, url = start_worker(spec)
        try:
            rows = asyncio.run(sweep(url, args))
        finally:
            process.terminate()
            process.wait(timeout=10)
    print()
    print(markdown(rows, args, engine_us))
    return 0


if __name__ == "__main__":
    sys.exit(main())
