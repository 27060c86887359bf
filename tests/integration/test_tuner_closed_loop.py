"""Closed-loop learning: the tuner learns a profile it is not told from real measurements.

An emulated worker runs with a hidden profile (alpha 12 ms, beta 0.03 ms, gamma 1e-4 ms,
max batch 32). Six cycles of Poisson load at different levels (3-8 requests/s, 10-30% of
the max rate; 256 prompt and 64 output tokens) are measured by the embedded `ScrapeCollector` (the
worker's /metrics, gauges sampled every 0.25 s, the first second of each level discarded)
and fed to the tuner, which has no profile: it fits after five observations and warms up
with the sixth. At a new level (about 6 requests/s) the tuned profile must predict the measured mean
TTFT and ITL within 10%.

The tuned parameters are not the hidden ones, and the request mix is kept fixed, because
the queue model is not the worker: requests join the batch only between iterations and an
arrival more often lands in a long (prefill) iteration, so the worker's TTFT exceeds the
model's at the true profile by 10-40%, more for long prompts and short outputs; near
saturation the model's queueing delay is too long instead (it assumes exponential
service): with max batch 16, one 4 s window whose Poisson count happened to reach 63% of
the max rate pulled the whole fit 15% off. A fit absorbs the mismatch for one mix and a
moderate load range; across mixes, or near saturation, it cannot. In virtual time (the
same engine, no HTTP) this protocol passes for 24 of 24 seeds, TTFT error -2% +- 3%. The test checks predictions,
which is what the optimizer uses. About 40 s of load.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from collector import CollectorConfig, ScrapeCollector, VariantConfig, observations_of
from queue_models import ServiceParams, get_queue_model
from tests.collector.live import ACCELERATOR, MODEL, run_load, worker_args, write_spec
from tests.integration.processes import started_workers
from tuner import Observation, Tuner, TunerState, tuned_profiles
from workloads.arrivals import Arrival

HIDDEN = (12.0, 0.03, 1e-4)
MAX_BATCH = 32
TRAINING = [(0.2, 256, 64), (0.5, 256, 64), (0.3, 256, 64), (0.45, 256, 64),
            (0.25, 256, 64), (0.4, 256, 64)]
"""(fraction of the max rate, prompt tokens, output tokens) of each learning cycle."""
NEW_LEVEL = (0.35, 256, 64)
CYCLE_S, FINAL_S, SETTLE_S, SAMPLE_S = 5.0, 9.0, 1.0, 0.25


def rate_for(fraction: float, prompt: int, output: int) -> float:
    """`fraction` of the max rate at max batch 16 (3-8 requests/s here)."""
    model = get_queue_model("batch-queue")
    params = ServiceParams(*HIDDEN, prompt, output, 16, 160)
    return fraction * model.prepare(params).max_rate_rps


def schedule(rng: np.random.Generator) -> tuple[list[Arrival], list[tuple[float, float]]]:
    """Arrivals of every level back to back, and each level's (start, end) in seconds."""
    arrivals, spans, start = [], [], 0.0
    for i, level in enumerate([*TRAINING, NEW_LEVEL]):
        end = start + (FINAL_S if i == len(TRAINING) else CYCLE_S)
        rate = rate_for(*level)
        t = start + rng.exponential(1.0 / rate)
        while t < end:
            arrivals.append(Arrival(float(t), level[1], level[2]))
            t += rng.exponential(1.0 / rate)
        spans.append((start, end))
        start = end
    return arrivals, spans


def measure(collector: ScrapeCollector, t0: float, span: tuple[float, float]) -> Observation:
    """Baseline after the settling time, gauge samples, then the cycle's observation."""
    start, end = span
    time.sleep(max(t0 + start + SETTLE_S - time.monotonic(), 0.0))
    collector.snapshot(time.monotonic())
    while time.monotonic() < t0 + end - SAMPLE_S:
        time.sleep(SAMPLE_S)
        collector.sample(time.monotonic())
    time.sleep(max(t0 + end - time.monotonic(), 0.0))
    observations, skipped = observations_of(collector.snapshot(time.monotonic()), min_completed=5)
    assert observations, skipped
    return observations[0]


@pytest.mark.integration
@pytest.mark.timeout(150)
def test_tuner_learns_a_hidden_profile(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "hidden.json", *HIDDEN, max_batch=MAX_BATCH)
    arrivals, spans = schedule(np.random.default_rng(7))
    with started_workers(tmp_path, [worker_args(spec)]) as (worker,):
        config = CollectorConfig(variants=(VariantConfig(
            name="w", model=MODEL, accelerator=ACCELERATOR, urls=(worker.url,)),))
        collector = ScrapeCollector(config)
        results: list = []
        load = threading.Thread(target=lambda: results.extend(
            run_load([worker.url], arrivals, spans[-1][1])[0]), daemon=True)
        t0 = time.monotonic()
        load.start()
        try:
            measured = [measure(collector, t0, span) for span in spans]
        finally:
            load.join(timeout=60)
        stats = worker.get_json("/admin/stats")
    assert not load.is_alive() and all(r.ok for r in results)
    tuner, state = Tuner(), TunerState()
    outcomes = []
    for obs in measured[:-1]:  # one tick per cycle, as the loop does
        state, reports = tuner.update(state, [obs])
        outcomes += [r.outcome for r in reports]
    assert outcomes == ["pending"] * 4 + ["fit", "warmup"], outcomes
    (found,) = tuned_profiles(state)
    new = measured[-1]
    predicted = tuner.observation_model.performance(
        np.array([found.alpha_ms, found.beta_ms, found.gamma_ms]), new)
    print(f"hidden {HIDDEN}, tuned ({found.alpha_ms:.3f}, {found.beta_ms:.4f}, "
          f"{found.gamma_ms:.2e}); new level: rate {new.arrival_rate_rps:.2f}/s, "
          f"TTFT measured {new.ttft_ms:.2f} predicted {predicted.avg_ttft_ms:.2f} ms, "
          f"ITL measured {new.itl_ms:.2f} predicted {predicted.avg_itl_ms:.2f} ms, "
          f"running {new.running} predicted {predicted.avg_num_in_serv:.2f}; "
          f"worker lag resyncs {stats['lag_resyncs']}")
    assert predicted.avg_ttft_ms == pytest.approx(new.ttft_ms, rel=0.10)
    assert predicted.avg_itl_ms == pytest.approx(new.itl_ms, rel=0.10)
