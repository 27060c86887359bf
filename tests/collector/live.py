"""Live load for integration tests: a worker spec, arrivals, and the load generator's own
figures over a time window (what the collector must agree with).

The load generator runs in this process (`serving.loadgen.LoadGenerator`) so the test knows
the wall-clock time of its origin and can compare any window with Prometheus.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.loadclient import RequestResult
from serving.loadgen import LoadGenerator, LoadOptions
from workloads.arrivals import Arrival

MODEL = "llama_3_1_8b"
ACCELERATOR = "H100"


def write_spec(path: Path, alpha_ms: float, beta_ms: float, gamma_ms: float,
               max_batch: int = 32) -> Path:
    """A one-profile fleet spec for emulated workers."""
    path.write_text(json.dumps({
        "accelerators": [{"name": ACCELERATOR, "card_type": ACCELERATOR, "cost_per_hour": 1.0}],
        "capacity": {ACCELERATOR: 4},
        "profiles": [{"model": MODEL, "accelerator": ACCELERATOR, "alpha_ms": alpha_ms,
                      "beta_ms": beta_ms, "gamma_ms": gamma_ms, "max_batch": max_batch}],
    }))
    return path


def worker_args(spec: Path, max_batch: int | None = None) -> list[str]:
    args = ["--model", MODEL, "--accelerator", ACCELERATOR, "--spec", str(spec)]
    return args + (["--max-batch", str(max_batch)] if max_batch else [])


def poisson(rng: np.random.Generator, rate_rps: float, start_s: float, end_s: float,
            prompt: tuple[int, int], output: tuple[int, int]) -> list[Arrival]:
    """Poisson arrivals in [start, end) with uniform prompt and output sizes."""
    out, t = [], start_s + rng.exponential(1.0 / rate_rps)
    while t < end_s:
        out.append(Arrival(float(t), int(rng.integers(prompt[0], prompt[1] + 1)),
                           int(rng.integers(output[0], output[1] + 1))))
        t += rng.exponential(1.0 / rate_rps)
    return out


def run_load(targets: Sequence[str], arrivals: Sequence[Arrival], duration_s: float,
             ) -> tuple[list[RequestResult], float]:
    """Send the arrivals; returns results and the wall-clock time of the run's origin."""
    options = LoadOptions(targets=tuple(targets), duration_s=duration_s, drain_timeout_s=20.0)
    origin = time.time()
    results, _ = asyncio.run(LoadGenerator(options).run(arrivals))
    return results, origin


@dataclass(frozen=True)
class WindowFigures:
    """The load generator's own figures over [start, end) (seconds from its origin)."""

    arrival_rate_rps: float
    completed: int
    in_tokens: float
    out_tokens: float
    itl_ms: float
    ttft_ms: float


def window_figures(results: Sequence[RequestResult], start_s: float, end_s: float,
                   ) -> WindowFigures:
    """Arrivals sent in the window; sizes and latencies of requests completed in it."""
    sent = [r for r in results if start_s <= r.sent_s < end_s]
    done = [r for r in results if r.ok and r.e2e_s is not None
            and start_s <= r.sent_s + r.e2e_s < end_s]
    gaps = [g for r in done for g in r.itl_s]
    return WindowFigures(
        arrival_rate_rps=len(sent) / (end_s - start_s), completed=len(done),
        in_tokens=float(np.mean([r.prompt_tokens for r in done])),
        out_tokens=float(np.mean([r.output_tokens for r in done])),
        itl_ms=1000.0 * float(np.mean(gaps)),
        ttft_ms=1000.0 * float(np.mean([r.ttft_s for r in done if r.ttft_s is not None])),
    )
