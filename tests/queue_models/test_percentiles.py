"""Percentile extension checked against a direct simulation of the same chain.

The simulation is an event-by-event (Gillespie) run of the birth-death chain with
FCFS order: each admitted arrival's wait is the time until it enters service. The
tolerance comes from the run itself: the standard error of the quantile is estimated
from 20 batch means (the waits are autocorrelated), and the analytic value must lie
within 4 standard errors.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest

from queue_models import ServiceParams, get_queue_model
from queue_models.chain import BatchChain, token_batch_quantile, wait_quantile_ms

EVENTS = 2_000_000
WARMUP = 5_000
BATCHES = 20


def _simulate(chain: BatchChain, lam: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(waits of admitted arrivals in FCFS order, time spent in each state)."""
    n_batch, capacity = chain.max_batch, chain.capacity
    mu = [0.0, *np.exp(np.diff(chain.log_cum_rate)).tolist()]
    rng = np.random.default_rng(seed)
    gaps, picks = rng.standard_exponential(EVENTS).tolist(), rng.random(EVENTS).tolist()
    time_in = [0.0] * (capacity + 1)
    now, n, queue, waits = 0.0, 0, deque(), []
    for gap, pick in zip(gaps, picks, strict=True):
        total = lam + mu[n]
        dt = gap / total
        time_in[n] += dt
        now += dt
        if pick * total < lam:
            if n == capacity:
                continue
            if n < n_batch:
                waits.append(0.0)
            else:
                queue.append(now)
            n += 1
        else:
            n -= 1
            if n >= n_batch:
                waits.append(now - queue.popleft())
    return np.array(waits[WARMUP:]), np.array(time_in)


@pytest.fixture(scope="module")
def run():
    model = get_queue_model("batch-queue")
    params = ServiceParams(5.0, 0.05, 0.0005, 64, 32, max_batch=4, max_queue=40)
    prepared = model.prepare(params)
    rate_rps = 0.85 * prepared.chain.saturated_rate_per_ms * 1000.0
    waits, time_in = _simulate(prepared.chain, rate_rps / 1000.0, seed=4)
    return prepared, rate_rps, waits, time_in


def _batch_std_err(waits: np.ndarray, statistic) -> float:
    per_batch = [statistic(part) for part in np.array_split(waits, BATCHES)]
    return float(np.std(per_batch, ddof=1)) / math.sqrt(BATCHES)


def test_simulation_is_in_the_interesting_regime(run):
    prepared, rate_rps, waits, _ = run
    assert waits.size > 500_000
    assert 0.55 < float(np.mean(waits > 0)) < 0.8  # p50 of the wait is not 0
    mean_wait = prepared.evaluate(rate_rps).avg_wait_ms
    assert abs(float(waits.mean()) - mean_wait) <= 4 * _batch_std_err(waits, np.mean)


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_wait_quantiles_match_simulation(run, q):
    prepared, rate_rps, waits, _ = run
    analytic = wait_quantile_ms(prepared.solve(rate_rps), q)
    simulated = float(np.quantile(waits, q))
    std_err = _batch_std_err(waits, lambda part: np.quantile(part, q))
    assert abs(simulated - analytic) <= 4 * std_err, (analytic, simulated, std_err)
    assert std_err < 0.05 * analytic  # the check has teeth


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_ttft_quantile_is_wait_quantile_plus_the_mean_service_part(run, q):
    prepared, rate_rps, _, _ = run
    perf = prepared.evaluate(rate_rps)
    deterministic = perf.avg_ttft_ms - perf.avg_wait_ms
    wait = wait_quantile_ms(prepared.solve(rate_rps), q)
    assert prepared.ttft_ms(rate_rps, q) == pytest.approx(wait + deterministic, rel=1e-12)


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
def test_token_weighted_batch_matches_simulated_occupancy(run, q):
    """Tokens emitted at b / itl(b) per ms in each state: simulated time x rate."""
    prepared, rate_rps, _, time_in = run
    n_batch = prepared.chain.max_batch
    batch = np.minimum(np.arange(time_in.size), n_batch)
    itl = np.concatenate(([np.inf], prepared.itl_by_batch_ms))
    tokens = np.bincount(batch, weights=time_in * batch / itl[batch], minlength=n_batch + 1)
    cum = np.cumsum(tokens[1:]) / tokens.sum()
    simulated = int(np.searchsorted(cum, q)) + 1  # discrete quantile, 1-based batch
    analytic = token_batch_quantile(prepared.solve(rate_rps), prepared.itl_by_batch_ms, q)
    assert abs(analytic - simulated) <= 0.5 + 1e-9, (analytic, simulated)
