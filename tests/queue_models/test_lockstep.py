"""Sizings run side by side: the chains' fast means are within their bounds, and
`run_all` returns exactly what running each sizing alone returns."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import numpy as np
import pytest

from queue_models import ServiceParams, Targets, get_queue_model
from queue_models.chain import make_chain, solve_chain
from queue_models.chain_means import stacked_means
from queue_models.lockstep import answer, run_all
from queue_models.sizing import (
    Ask,
    best_max_batch,
    best_max_batch_steps,
    run,
    size_prepared,
    size_prepared_steps,
)

MODELS = ["batch-queue", "batch-queue-v06"]


def _chains(seed: int) -> list[tuple[object, float]]:
    """(chain, rate per ms) pairs over batch sizes, queues and loads, rates up to mu(N)."""
    rng = random.Random(seed)
    out = []
    for _ in range(60):
        n = rng.choice([1, 2, 7, 48, 256])
        queue = rng.choice([0, 1, 10 * n, 2560])
        base = rng.uniform(0.01, 2.0)
        rates = base * np.arange(1, n + 1) ** rng.uniform(0.3, 1.0)
        chain = make_chain(rates, queue)
        out.append((chain, rates[-1] * rng.choice([1e-6, 0.01, 0.3, 0.9, 0.999, 1.5])))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stacked_means_are_within_their_bounds_of_the_full_solve(seed):
    pairs = _chains(seed)
    means = stacked_means([c for c, _ in pairs], [r for _, r in pairs])
    assert means.valid.sum() >= len(pairs) // 2
    for k, (chain, rate) in enumerate(pairs):
        if not means.valid[k]:
            continue
        state = solve_chain(chain, rate)
        rel, tiny = means.rel_error[k], means.abs_error[k]
        assert rel < 1e-6
        for fast, exact in (
            (means.throughput_per_ms[k], state.throughput_per_ms),
            (means.avg_in_service[k], state.avg_in_service),
            (means.avg_queued[k], state.avg_queued),
        ):
            assert abs(fast - exact) <= rel * abs(exact) + tiny


def test_rates_at_or_above_saturation_have_no_bound():
    chain = make_chain(np.array([0.1, 0.15, 0.18]), 30)
    means = stacked_means([chain, chain, chain], [0.18, 0.5, 0.09])
    assert means.valid.tolist() == [False, False, True]


@pytest.mark.parametrize("name", MODELS)
def test_latency_bounds_hold_against_latencies_ms(name):
    model = get_queue_model(name)
    queues, rates = [], []
    for n, queue, in_tokens, out_tokens in itertools.product(
        [1, 16, 200], [0, 100, 2560], [128, 2048], [32, 512]
    ):
        params = ServiceParams(8.0, 0.03, 6e-5, in_tokens, out_tokens, n, queue)
        prepared = model.prepare(params)
        for share in (0.001, 0.2, 0.7, 0.95, 0.999):
            queues.append(prepared)
            rates.append(share * prepared.max_rate_rps)
    found = queues[0].stack(queues).bounds(np.array(rates))
    bounded = np.isfinite(found.ttft_error_ms) & np.isfinite(found.itl_error_ms)
    assert bounded.mean() > 0.8
    for k in np.flatnonzero(bounded):
        ttft, itl = queues[k].latencies_ms(rates[k], None, None)
        assert abs(found.ttft_ms[k] - ttft) <= found.ttft_error_ms[k]
        assert abs(found.itl_ms[k] - itl) <= found.itl_error_ms[k]


def test_answers_take_the_decisions_of_the_exact_values():
    prepared = get_queue_model("batch-queue").prepare(
        ServiceParams(12.0, 0.05, 0.0005, 128, 512, max_batch=48, max_queue=128)
    )
    exact_ttft, exact_itl = prepared.latencies_ms(0.5 * prepared.max_rate_rps, None, None)
    asks = [
        Ask(prepared, 0.5 * prepared.max_rate_rps, (exact_ttft * f, exact_itl * 10), True)
        for f in (0.5, 1 - 1e-6, 1.0, 1 + 1e-6, 1 + 2e-6, 2.0)
    ]
    for ask, (ttft, _) in zip(asks, answer(asks), strict=True):
        target = ask.targets[0]
        assert (ttft > target) == (exact_ttft > target)
        assert (abs(ttft - target) <= 1e-6 * target) == (abs(exact_ttft - target) <= 1e-6 * target)


def _cases() -> list[tuple[str, ServiceParams, Targets, int]]:
    targets = [
        Targets(ttft_ms=60.0, itl_ms=20.0),
        Targets(ttft_ms=400.0, itl_ms=40.0),
        Targets(ttft_ms=4000.0, itl_ms=150.0),
        Targets(itl_ms=25.0),
        Targets(ttft_ms=300.0, ttft_percentile=95.0),
        Targets(ttft_ms=60.0, itl_ms=20.0, tokens_per_s=2000.0),
        Targets(ttft_ms=60.0, itl_ms=5.0),  # infeasible at any batch
        Targets(),
    ]
    base = ServiceParams(12.0, 0.05, 0.0005, 128, 512, max_batch=64, max_queue=640)
    params = [base, replace(base, in_tokens=2048, out_tokens=128, max_queue=0)]
    return [
        (name, p, t, ceiling)
        for name in MODELS
        for p in params
        for t in targets
        for ceiling in (1, 64)
    ]


def test_run_all_returns_what_each_sizing_returns_alone():
    cases = _cases()
    models = {name: get_queue_model(name) for name in MODELS}
    alone = [best_max_batch(models[n], p, t, c) for n, p, t, c in cases]
    together = run_all([best_max_batch_steps(models[n], p, t, c) for n, p, t, c in cases])
    assert together == alone
    sized = [size_prepared(models[n].prepare(p), t, exhaustive=e)
             for (n, p, t, _), e in itertools.product(cases, (False, True))]
    steps = [size_prepared_steps(models[n].prepare(p), t, exhaustive=e)
             for (n, p, t, _), e in itertools.product(cases, (False, True))]
    assert run_all(steps) == sized


def test_run_answers_exactly_one_at_a_time():
    model = get_queue_model("batch-queue")
    params = ServiceParams(12.0, 0.05, 0.0005, 128, 512, max_batch=48, max_queue=128)
    targets = Targets(ttft_ms=60.0, itl_ms=20.0)
    assert run(size_prepared_steps(model.prepare(params), targets)) == size_prepared(
        model.prepare(params), targets
    )
