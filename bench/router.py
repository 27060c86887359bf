"""Benchmark of the router (a benchmark, not a timed test).

    .venv/bin/python bench/router.py [--part proxy|policies|both] [--duration 30]

Part 1, `proxy`: one router process (`fleetplan router`, pinned to CPU 0) in front of a
fast stub upstream (a raw asyncio HTTP server answering a fixed 200 JSON, two ports, in
its own process pinned to CPU 1), driven by a raw asyncio HTTP/1.1 keep-alive client
(this process, CPU 1). Non-streaming requests (~100-byte JSON body).

- throughput: C closed-loop clients (C = 100, 500), requests/s through the router and
  the router's CPU time per request;
- added latency: the same C connections paced to a fixed total rate (`--rate`, default
  1,000 and 2,000 req/s), latency percentiles straight to the stub, then through the
  router; added = routed - direct, per percentile.

Part 2, `policies`: three emulated workers (`fleetplan worker`, llama_3_1_8b on H100 from
specs/examples/h100-vllm.json, max batch 64) behind one router per policy, replaying the
same window of the Azure conversation trace (prompts capped at 4,096 and outputs at 512
tokens) with `serving.loadgen` at `--load` (default 0.8) of the fleet's capacity, where
capacity is the queue model's saturation rate of a replica (`batch-queue`) at the
window's mean token counts, times three. Mean and p99 of E2E latency and TTFT per policy.

The machine has 2 cores shared by everything here (and by whatever else runs), so the
numbers are noisy; the load average is printed with each part.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from queue_models import ServiceParams, get_queue_model  # noqa: E402
from serving.loadclient import ClientOptions  # noqa: E402
from serving.loadgen import LoadGenerator, LoadOptions  # noqa: E402
from serving.report import build_report  # noqa: E402
from workloads.arrivals import TraceArrivals  # noqa: E402
from workloads.traces import read_trace  # noqa: E402

SPEC = ROOT / "specs" / "examples" / "h100-vllm.json"
TRACE = ROOT.parent / "shared" / "data" / "azure2023" / "AzureLLMInferenceTrace_conv.csv"
MODEL = "llama_3_1_8b"
POLICIES = ("round_robin", "least_outstanding", "least_loaded", "power_of_two",
            "session_affinity", "weighted", "workload_aware")
STUB_BODY = json.dumps({"id": "cmpl-1", "object": "text_completion", "model": MODEL,
                        "choices": [{"index": 0, "text": " ok", "finish_reason": "length"}],
                        "usage": {"prompt_tokens": 8, "completion_tokens": 1,
                                  "total_tokens": 9}}).encode()
TWO_CPUS = (os.cpu_count() or 1) > 1
MAX_PROMPT, MAX_OUTPUT = 4096, 512


# -- the stub upstream (run as `bench/router.py --serve-stub N`) ------------------------------

class StubServer(asyncio.Protocol):
    """HTTP/1.1 keep-alive: every request gets the same 200 JSON."""

    RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(STUB_BODY)).encode() + b"\r\n\r\n" + STUB_BODY)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport."""
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        """Answer every complete request in the buffer."""
        self.buffer += data
        while (head_end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:head_end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:].split(b"\r\n", 1)[0]) if at >= 0 else 0
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            self.transport.write(self.RESPONSE)  # type: ignore[attr-defined]


async def serve_stub(count: int) -> None:
    """Listen on `count` free ports; print them; serve forever."""
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(StubServer, "127.0.0.1", 0, backlog=4096)
               for _ in range(count)]
    print(" ".join(str(s.sockets[0].getsockname()[1]) for s in servers), flush=True)
    await asyncio.Event().wait()


# -- the raw client ---------------------------------------------------------------------------

class ClientConnection(asyncio.Protocol):
    """One keep-alive connection; `ask()` sends the request and waits for the answer."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.buffer = b""
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport."""
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Complete the waiter when a whole response is in."""
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        at = self.buffer.find(b"Content-Length: ", 0, head_end)
        length = int(self.buffer[at + 16:self.buffer.find(b"\r\n", at)])
        if len(self.buffer) < head_end + 4 + length:
            return
        status = int(self.buffer[9:12])
        self.buffer = self.buffer[head_end + 4 + length:]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail a pending request."""
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(0)

    async def ask(self) -> int:
        """Send the request; the answer's status."""
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(self.request)  # type: ignore[attr-defined]
        return await self.waiter


def http_request(port: int) -> bytes:
    body = json.dumps({"model": MODEL, "prompt": "Say something short, please.",
                       "max_tokens": 1}).encode()
    return (f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
            f"application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


@dataclass
class Window:
    """Latencies and counts inside the measurement window."""

    start: float = float("inf")
    end: float = float("inf")
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_s: float = 0.0


async def client_loop(conn: ClientConnection, window: Window, gap_s: float | None,
                      stop: asyncio.Event) -> None:
    """Closed loop (gap None) or paced at one request per `gap_s` (with random phase)."""
    next_at = time.perf_counter() + (random.random() * gap_s if gap_s else 0.0)
    while not stop.is_set():
        if gap_s:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += gap_s
        start = time.perf_counter()
        status = await conn.ask()
        end = time.perf_counter()
        if window.start <= start and end <= window.end:
            if status == 200:
                window.latencies.append(end - start)
            else:
                window.errors += 1


async def measure(port: int, clients: int, rate: float | None, warmup: float,
                  seconds: float, pid: int | None = None) -> Window:
    """One point: `clients` connections, closed loop or paced to `rate` in total."""
    loop = asyncio.get_running_loop()
    request = http_request(port)
    conns = []
    for _ in range(clients):
        _, conn = await loop.create_connection(lambda: ClientConnection(request),
                                               "127.0.0.1", port)
        conns.append(conn)
    window, stop = Window(), asyncio.Event()
    gap = clients / rate if rate else None
    tasks = [asyncio.create_task(client_loop(c, window, gap, stop)) for c in conns]
    await asyncio.sleep(warmup)
    cpu = cpu_seconds(pid) if pid else 0.0
    window.start = time.perf_counter()
    window.end = window.start + seconds
    await asyncio.sleep(seconds)
    window.cpu_s = cpu_seconds(pid) - cpu if pid else 0.0
    stop.set()
    await asyncio.wait(tasks, timeout=10)
    for conn in conns:
        conn.transport.close()
    return window


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pinned(cpu: int) -> object:
    return (lambda: os.sched_setaffinity(0, {cpu})) if TWO_CPUS else None


def start_process(args: list[str], cpu: int, prefix: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               preexec_fn=pinned(cpu))
    line = process.stdout.readline()
    if not line.startswith(prefix):
        process.kill()
        raise SystemExit(f"did not start: {args[:4]} said {line!r}")
    return process, line[len(prefix):].strip()


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_router(folder: Path, backends: list[dict], *extra: str) -> tuple[subprocess.Popen, int]:
    path = folder / f"backends-{len(backends)}-{time.monotonic_ns()}.json"
    path.write_text(json.dumps({"backends": backends}))
    process, rest = start_process(
        [sys.executable, "-m", "controller.cli", "router", "--port", "0", "--backends",
         str(path), *extra], 0, "fleetplan router: listening on ")
    return process, int(rest.split()[0].rsplit(":", 1)[1])


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


async def proxy_part(args: argparse.Namespace, folder: Path) -> list[str]:
    stub, ports_text = start_process([sys.executable, __file__, "--serve-stub", "2"], 1, "")
    ports = [int(p) for p in ports_text.split()]
    backends = [{"url": f"http://127.0.0.1:{p}", "model": MODEL} for p in ports]
    lines = []
    try:
        for loop_name in args.loops:
            router, port = start_router(folder, backends, "--max-outstanding", "0",
                                        "--loop", loop_name)
            try:
                lines += await proxy_points(args, router.pid, port, ports[0], loop_name)
            finally:
                stop(router)
    finally:
        stop(stub)
    return lines


async def proxy_points(args: argparse.Namespace, router_pid: int, port: int, stub_port: int,
                       loop_name: str) -> list[str]:
    lines = []
    for clients in (100, 500):
        w = await measure(port, clients, None, 1.0, args.seconds, router_pid)
        cpu, n = w.cpu_s, len(w.latencies)
        lines.append(f"| {loop_name} | {clients} | closed loop | {n / args.seconds:,.0f} | "
                     f"{cpu / max(n, 1) * 1e6:.0f} | {pct(w.latencies, 50):.2f} | "
                     f"{pct(w.latencies, 99):.2f} | - | - | {w.errors} |")
        print(lines[-1], flush=True)
    for clients, rate in ((c, r) for r in args.rate for c in (100, 500)):
        direct = await measure(stub_port, clients, rate, 1.0, args.seconds)
        routed = await measure(port, clients, rate, 1.0, args.seconds, router_pid)
        d50, d99 = pct(direct.latencies, 50), pct(direct.latencies, 99)
        r50, r99 = pct(routed.latencies, 50), pct(routed.latencies, 99)
        n = len(routed.latencies)
        lines.append(f"| {loop_name} | {clients} | {rate:,.0f} req/s paced | "
                     f"{n / args.seconds:,.0f} | {routed.cpu_s / max(n, 1) * 1e6:.0f} | "
                     f"{r50:.2f} | {r99:.2f} | "
                     f"{r50 - d50:+.2f} | {r99 - d99:+.2f} | {routed.errors} |")
        print(lines[-1], f"(direct p50 {d50:.2f} p99 {d99:.2f})", flush=True)
    return lines


# -- part 2: policies against emulated workers --------------------------------------------------

def fleet_capacity_rps(records: list, replicas: int, max_batch: int) -> float:
    prompt = float(np.mean([min(r.prompt_tokens, MAX_PROMPT) for r in records]))
    output = float(np.mean([min(r.output_tokens, MAX_OUTPUT) for r in records]))
    params = ServiceParams(alpha_ms=6.49, beta_ms=0.0219, gamma_ms=4.96e-5, in_tokens=prompt,
                           out_tokens=output, max_batch=max_batch, max_queue=1000)
    return replicas * get_queue_model("batch-queue").max_rate_rps(params)


async def replay(router_port: int, arrivals: list, duration: float) -> dict:
    options = LoadOptions(targets=(f"http://127.0.0.1:{router_port}",), drain_timeout_s=60,
                          duration_s=duration + 1, client=ClientOptions(model=MODEL))
    results, elapsed = await LoadGenerator(options).run(arrivals)
    return build_report(results, options.targets, elapsed).overall.model_dump()


def policies_part(args: argparse.Namespace, folder: Path) -> list[str]:
    records = [r for r in read_trace(args.trace) if r.time_s < args.trace_window]
    capacity = fleet_capacity_rps(records, 3, args.max_batch)
    target = args.load * capacity
    scale = args.duration / args.trace_window
    multiplier = target * args.duration / len(records)
    arrivals_source = TraceArrivals(records, time_scale=scale, rate_multiplier=multiplier,
                                    max_prompt_tokens=MAX_PROMPT, max_output_tokens=MAX_OUTPUT)
    arrivals = list(arrivals_source.arrivals(np.random.default_rng(0)))
    print(f"capacity {capacity:.1f} req/s (3 replicas, max batch {args.max_batch}); target "
          f"{target:.1f} req/s; {len(arrivals)} requests over {args.duration:.0f} s", flush=True)
    workers = [start_process([sys.executable, "-m", "controller.cli", "worker", "--model", MODEL,
                              "--accelerator", "H100", "--spec", str(SPEC), "--port", "0",
                              "--max-batch", str(args.max_batch)], i % 2,
                             "fleetplan worker: listening on ") for i in range(3)]
    backends = [{"url": rest.split()[0], "model": MODEL, "max_batch": args.max_batch}
                for _, rest in workers]
    lines = []
    try:
        for policy in args.policies:
            load0 = os.getloadavg()[0]
            router, port = start_router(folder, backends, "--policy", policy, "--seed", "1")
            try:
                overall = asyncio.run(replay(port, arrivals, args.duration))
            finally:
                stop(router)
            e2e, ttft = overall["e2e_ms"], overall["ttft_ms"]
            lines.append(f"| {policy} | {overall['requests']} | {overall['errors']} | "
                         f"{e2e['mean']:.0f} | {e2e['p99']:.0f} | {ttft['mean']:.0f} | "
                         f"{ttft['p99']:.0f} | {overall['itl_ms']['mean']:.1f} | {load0:.1f} |")
            print(lines[-1], flush=True)
            time.sleep(2)
    finally:
        for process, _ in workers:
            stop(process)
    return lines


def main() -> int:
    """Run the benchmark parts and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("proxy", "policies", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=4.0, help="proxy: window per point")
    parser.add_argument("--rate", type=lambda s: [float(x) for x in s.split(",")],
                        default=[1000.0, 2000.0], help="proxy: paced total rates, req/s")
    parser.add_argument("--loops", type=lambda s: s.split(","), default=["uvloop"],
                        help="proxy: router event loops to compare (uvloop,asyncio)")
    parser.add_argument("--duration", type=float, default=30.0, help="policies: s per policy")
    parser.add_argument("--load", type=float, default=0.8, help="policies: fraction of capacity")
    parser.add_argument("--trace-window", type=float, default=300.0,
                        help="policies: seconds of trace replayed (compressed to --duration)")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--trace", type=Path, default=TRACE, help="policies: trace to replay")
    parser.add_argument("--policies", type=lambda s: s.split(","), default=list(POLICIES))
    parser.add_argument("--serve-stub", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_stub:
        asyncio.run(serve_stub(args.serve_stub))
        return 0
    if TWO_CPUS:
        os.sched_setaffinity(0, {1})
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("proxy", "both"):
            print("| loop | clients | load | req/s | router CPU us/req | p50 ms | p99 ms | "
                  "added p50 ms | added p99 ms | errors |\n|---|---:|---|---:|---:|---:|---:|"
                  "---:|---:|---:|", flush=True)
            asyncio.run(proxy_part(args, Path(tmp)))
        if args.part in ("policies", "both"):
            if not args.trace.exists():
                print(f"skipping policies: {args.trace} not found")
                return 0
            print("| policy | requests | errors | E2E mean ms | E2E p99 ms | TTFT mean ms | "
                  "TTFT p99 ms | ITL mean ms | load avg |\n|---|---:|---:|---:|---:|---:|---:|"
                  "---:|---:|", flush=True)
            policies_part(args, Path(tmp))
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
