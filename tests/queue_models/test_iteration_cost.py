"""The engine's iteration-cost hook (queue_models.iteration_cost): the default is the
profile's law with today's numbers, a custom law gets the iteration's four counts, and
the engine's gauge integrals (`occupancy`)."""

from __future__ import annotations

import pytest

from queue_models.engine import BatchEngine, EngineConfig, step
from queue_models.iteration_cost import IterationCost, LinearCost
from specs.clock import FakeClock
from specs.documents import Profile

ALPHA, BETA, GAMMA = 6.49, 0.0219, 4.96e-5


class Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int, int]] = []

    def duration_ms(self, decode_requests: int, decode_context_tokens: int,
                    prefill_tokens: int, prefill_context_tokens: int) -> float:
        self.calls.append((decode_requests, decode_context_tokens, prefill_tokens,
                           prefill_context_tokens))
        return 5.0


def test_linear_cost_is_the_profile_law():
    law = LinearCost(ALPHA, BETA, GAMMA)
    assert isinstance(law, IterationCost)
    assert law.duration_ms(3, 300, 100, 400) == ALPHA + BETA * 103 + GAMMA * 700
    config = EngineConfig(ALPHA, BETA, GAMMA, max_batch=8)
    assert config.cost == law and config.law is None


def test_a_custom_law_gets_decode_and_prefill_counts():
    law = Recording()
    engine = BatchEngine(EngineConfig(ALPHA, BETA, GAMMA, max_batch=8, token_budget=100,
                                      law=law))
    clock = FakeClock()
    engine.submit("a", 10, 5, 0.0)
    step(engine, clock)  # a's prefill: one chunk of 10, context 10
    engine.submit("b", 250, 5, clock.now())
    iteration = engine.next_iteration(clock.now())
    # a decodes (context 10 + 1), b gets the 99 tokens left of the budget (context 99)
    assert law.calls == [(0, 0, 10, 10), (1, 11, 99, 99)]
    assert iteration.duration_s == pytest.approx(0.005)
    assert (iteration.tokens, iteration.attention_tokens) == (100, 110)


def test_from_profile_takes_a_law():
    profile = Profile(model="m", accelerator="A", alpha_ms=ALPHA, beta_ms=BETA, gamma_ms=GAMMA,
                      max_batch=16)
    law = Recording()
    assert EngineConfig.from_profile(profile, law=law).cost is law
    assert EngineConfig.from_profile(profile).cost == LinearCost(ALPHA, BETA, GAMMA)


def test_occupancy_integrates_running_waiting_and_kv():
    engine = BatchEngine(EngineConfig(10.0, 0.0, 0.0, max_batch=1, kv_capacity_tokens=1000))
    clock = FakeClock()
    engine.submit("a", 4, 2, 0.0)
    engine.submit("b", 4, 1, 0.0)
    assert engine.occupancy(0.0).running_s == 0.0
    while engine.has_work:
        step(engine, clock)
    # a: prefill 0-10 ms, tokens at 20 and 30 ms; b waits until 30 ms, then 30-50 ms
    occupancy = engine.occupancy(0.1)
    assert occupancy.running_s == pytest.approx(0.050)
    assert occupancy.waiting_s == pytest.approx(0.030)
    # KV: a holds 4 tokens 10-20 ms, 5 tokens 20-30 ms; b holds 4 tokens 40-50 ms
    assert occupancy.kv_tokens_s == pytest.approx(4 * 0.01 + 5 * 0.01 + 4 * 0.01)
    assert engine.updated_s == pytest.approx(0.05)
