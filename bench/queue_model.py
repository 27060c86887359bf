"""Benchmark of the queue models (a script, not a test).

Prints, for both registered models:
- evaluations per second at capacity K = N + Q of 64, 512 and 4,096 (N = 48), on a
  prepared queue (the sizing hot path) and through `model.evaluate` (prepares each call),
  with the median latency of one `model.evaluate` call;
- p99 TTFT and ITL quantile calls per second at the same capacities;
- `max_rate_for_targets` and `best_max_batch` calls per second on inferno's
  queue-analysis problem (alpha 12, beta 0.05, gamma 0.0005, 128 -> 512 tokens,
  Q 128, targets TTFT 60 ms and ITL 20 ms), with mean and percentile targets.

Run from the repository root:  .venv/bin/python bench/queue_model.py
To extend: add a row function and call it from `main`.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import scipy  # noqa: E402

from queue_models import (  # noqa: E402
    ServiceParams,
    Targets,
    best_max_batch,
    get_queue_model,
    max_rate_for_targets,
    queue_model_names,
)

MIN_SECONDS = 0.5
PROBLEM = ServiceParams(12.0, 0.05, 0.0005, 128, 512, max_batch=48, max_queue=128)
MEAN_TARGETS = Targets(ttft_ms=60.0, itl_ms=20.0)
P95_TARGETS = Targets(ttft_ms=300.0, itl_ms=21.0, ttft_percentile=95.0, itl_percentile=95.0)


def calls_per_second(call: Callable[[], object]) -> float:
    """Repeat call for at least MIN_SECONDS; return calls per second."""
    call()
    count, start = 0, time.perf_counter()
    while True:
        call()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= MIN_SECONDS:
            return count / elapsed


def median_latency_us(call: Callable[[], object], repeats: int = 200) -> float:
    """Median wall time of one call, in microseconds."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def evaluation_rows(name: str) -> None:
    model = get_queue_model(name)
    for capacity in (64, 512, 4096):
        params = replace(PROBLEM, max_queue=capacity - PROBLEM.max_batch)
        prepared = model.prepare(params)
        rate = 0.9 * prepared.max_rate_rps
        hot = calls_per_second(lambda p=prepared, r=rate: p.evaluate(r))
        cold = calls_per_second(lambda p=params, r=rate: model.evaluate(p, r))
        latency = median_latency_us(lambda p=params, r=rate: model.evaluate(p, r))
        ttft = calls_per_second(lambda p=prepared, r=rate: p.ttft_ms(r, 0.99))
        itl = calls_per_second(lambda p=prepared, r=rate: p.itl_ms(r, 0.99))
        print(
            f"| {name} | {capacity:>5} | {hot:>9,.0f} | {cold:>9,.0f} | {latency:>7.1f} "
            f"| {ttft:>8,.0f} | {itl:>8,.0f} |"
        )


def sizing_rows(name: str) -> None:
    model = get_queue_model(name)
    for label, targets in (("mean", MEAN_TARGETS), ("p95", P95_TARGETS)):
        size = calls_per_second(lambda t=targets: max_rate_for_targets(model, PROBLEM, t))
        best48 = calls_per_second(lambda t=targets: best_max_batch(model, PROBLEM, t, 48))
        best256 = calls_per_second(lambda t=targets: best_max_batch(model, PROBLEM, t, 256))
        print(f"| {name} | {label} | {size:>8,.0f} | {best48:>8,.0f} | {best256:>8,.0f} |")


def main() -> None:
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    print("\nEvaluations per second (N = 48, rate = 0.9 x max rate)\n")
    print(
        "| model | K | prepared eval/s | model.evaluate/s | one call (us) | p99 TTFT/s | p99 ITL/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in queue_model_names():
        evaluation_rows(name)
    print("\nSizing calls per second (queue-analysis problem, Q = 128)\n")
    print(
        "| model | targets | max_rate_for_targets/s | best_max_batch/s (ceiling 48) | (ceiling 256) |"
    )
    print("|---|---|---:|---:|---:|")
    for name in queue_model_names():
        sizing_rows(name)


if __name__ == "__main__":
    main()
