"""The birth-death chain solver against closed forms, and its numerical robustness."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from queue_models.chain import (
    make_chain,
    solve_chain,
    token_batch_quantile,
    wait_quantile_ms,
    wait_survival,
)


@pytest.mark.parametrize("rho", [0.3, 1.0, 2.5])
def test_single_server_matches_mm1k_closed_form(rho):
    mu, queue = 0.02, 9
    capacity = queue + 1
    state = solve_chain(make_chain(np.array([mu]), queue), rho * mu)
    n = np.arange(capacity + 1)
    expected = np.full(capacity + 1, 1.0 / (capacity + 1)) if rho == 1.0 else rho**n
    expected = expected / expected.sum()
    np.testing.assert_allclose(state.probs, expected, rtol=1e-12)
    assert state.throughput_per_ms == pytest.approx(rho * mu * (1 - expected[-1]), rel=1e-12)
    assert state.avg_in_system == pytest.approx(float(n @ expected), rel=1e-12)
    assert state.avg_serv_ms == pytest.approx(1 / mu, rel=1e-12)
    assert state.avg_resp_ms == pytest.approx(float(n @ expected) / state.throughput_per_ms)


def test_multi_server_matches_product_form():
    rates = np.array([0.01, 0.018, 0.024, 0.028])  # mu(b) for b = 1..4
    chain = make_chain(rates, 6)
    lam = 0.025
    weights = [1.0]
    for k in range(1, chain.capacity + 1):
        weights.append(weights[-1] * lam / rates[min(k, 4) - 1])
    expected = np.array(weights) / sum(weights)
    state = solve_chain(chain, lam)
    np.testing.assert_allclose(state.probs, expected, rtol=1e-12)
    in_service = np.minimum(np.arange(chain.capacity + 1), 4)
    assert state.avg_in_service == pytest.approx(float(in_service @ expected), rel=1e-12)


@pytest.mark.parametrize("rate", [1e-12, 1e-4, 0.05, 10.0, 1e6])
def test_large_capacity_has_no_overflow(rate):
    rates = np.arange(1, 65) / (1000.0 + 5.0 * np.arange(1, 65))
    state = solve_chain(make_chain(rates, 5_000 - 64), rate)
    assert np.all(np.isfinite(state.probs))
    assert state.probs.sum() == pytest.approx(1.0, rel=1e-12)
    for value in (state.throughput_per_ms, state.avg_in_system, state.avg_wait_ms):
        assert math.isfinite(value) and value >= 0
    assert state.throughput_per_ms <= min(rate, rates[-1]) * (1 + 1e-9)
    if rate >= 10.0:
        assert state.blocking_prob > 0.99
        assert state.throughput_per_ms == pytest.approx(rates[-1], rel=1e-6)


def test_zero_rate_is_the_empty_limit():
    chain = make_chain(np.array([0.01, 0.015]), 4)
    state = solve_chain(chain, 0.0)
    assert state.throughput_per_ms == 0 and state.avg_wait_ms == 0
    assert state.avg_serv_ms == pytest.approx(100.0)
    assert wait_quantile_ms(state, 0.99) == 0.0
    assert token_batch_quantile(state, np.array([10.0, 12.0]), 0.5) == 1.0


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_invalid_rate_is_rejected(bad):
    with pytest.raises(ValueError):
        solve_chain(make_chain(np.array([0.01]), 2), bad)


def test_invalid_service_rates_are_rejected():
    with pytest.raises(ValueError):
        make_chain(np.array([0.01, 0.0]), 2)
    with pytest.raises(ValueError):
        make_chain(np.array([0.01]), -1)


def test_wait_distribution_is_consistent_with_littles_law():
    rates = np.array([0.004, 0.007, 0.009, 0.01])
    state = solve_chain(make_chain(rates, 60), 0.0095)
    admitted_busy = state.probs[4:-1].sum() / (1 - state.blocking_prob)
    assert wait_survival(state, 0.0) == pytest.approx(admitted_busy, rel=1e-12)
    mean, _ = quad(lambda t: wait_survival(state, t), 0, np.inf, limit=200)
    assert mean == pytest.approx(state.avg_wait_ms, rel=1e-6)
    for q in (0.3, 0.5, 0.9, 0.99, 0.999):
        t = wait_quantile_ms(state, q)
        assert wait_survival(state, t) == pytest.approx(1 - q, abs=1e-9)


def test_wait_is_zero_without_a_queue_or_below_the_busy_probability():
    no_queue = solve_chain(make_chain(np.array([0.01, 0.02]), 0), 0.05)
    assert wait_quantile_ms(no_queue, 0.99) == 0.0
    light = solve_chain(make_chain(np.array([0.01, 0.02]), 10), 1e-4)
    assert wait_survival(light, 0.0) < 0.01
    assert wait_quantile_ms(light, 0.95) == 0.0


def test_wait_quantile_at_large_capacity_is_finite():
    rates = np.arange(1, 33) / (500.0 + 2.0 * np.arange(1, 33))
    state = solve_chain(make_chain(rates, 4_968), rates[-1] * 1.5)
    t99 = wait_quantile_ms(state, 0.99)
    assert math.isfinite(t99) and t99 > 0
    assert wait_survival(state, t99) == pytest.approx(0.01, abs=1e-9)


@pytest.mark.parametrize("q", [0.0, 1.0, -0.5, 1.5])
def test_quantile_outside_open_unit_interval_is_rejected(q):
    state = solve_chain(make_chain(np.array([0.01]), 2), 0.005)
    with pytest.raises(ValueError):
        wait_quantile_ms(state, q)
    with pytest.raises(ValueError):
        token_batch_quantile(state, np.array([10.0]), q)
