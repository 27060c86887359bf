"""The batching engine (queue_models.engine) in virtual time: batching, chunked prefill,
priorities, live max batch, bounded queue, KV capacity, and iteration times that match
inferno's batch-queue v0.8 formulas."""

from __future__ import annotations

import math

import pytest

from queue_models.engine import (
    LOWEST_PRIORITY,
    BatchEngine,
    EngineConfig,
    QueueFullError,
    RequestTooLargeError,
    step,
)
from specs.clock import FakeClock

ALPHA, BETA, GAMMA = 6.49, 0.0219, 4.96e-5  # llama_3_1_8b on H100 (inferno vllm-gpu)


def engine(**overrides) -> BatchEngine:
    values = dict(alpha_ms=ALPHA, beta_ms=BETA, gamma_ms=GAMMA, max_batch=64)
    values.update(overrides)
    return BatchEngine(EngineConfig(**values))


def run_all(e: BatchEngine, clock: FakeClock, limit: int = 100_000) -> list:
    events = []
    for _ in range(limit):
        if not e.has_work:
            return events
        events.extend(step(e, clock))
    raise AssertionError("engine did not drain")


def test_decode_itl_matches_model_formula() -> None:
    L, K, B = 300, 40, 16
    e, clock = engine(), FakeClock()
    for i in range(B):
        e.submit(f"r{i}", L, K, clock.now())
    first = e.next_iteration(clock.now())
    assert first is not None and first.batch_size == B and first.decode_slots == 0
    clock.set(first.end_s)
    assert e.complete(first, first.end_s) == []
    durations = []
    while e.has_work:
        it = e.next_iteration(clock.now())
        assert it.batch_size == B and it.decode_slots == B
        durations.append(it.duration_s * 1000)
        clock.set(it.end_s)
        e.complete(it, it.end_s)
    assert len(durations) == K
    # per-iteration: alpha + sum of decode costs beta + gamma * (L + k)
    for k, d in enumerate(durations, start=1):
        assert d == pytest.approx(ALPHA + B * (BETA + GAMMA * (L + k)))
    # averaged over a request's decode steps: the model's alpha + B (beta + gamma (L + (K+1)/2))
    assert sum(durations) / K == pytest.approx(ALPHA + B * (BETA + GAMMA * (L + (K + 1) / 2)))


def test_single_request_time_is_model_tau() -> None:
    L, K = 1000, 50
    e, clock = engine(), FakeClock()
    r = e.submit("a", L, K, 0.0)
    events = run_all(e, clock)
    w_pre = (BETA + GAMMA) * L  # nc = 1
    w_dec = BETA * K + GAMMA * K * (L + (K + 1) / 2)
    tau_ms = (1 + K) * ALPHA + w_pre + w_dec
    assert r.finished_s * 1000 == pytest.approx(tau_ms)
    # TTFT = prefill(1) + first decode step (the model's prefill + ITL convention)
    assert r.first_token_s * 1000 == pytest.approx(2 * ALPHA + w_pre + BETA + GAMMA * (L + 1))
    assert [ev.index for ev in events] == list(range(K))
    assert events[0].first and events[0].previous_s is None
    assert events[-1].finished and not any(ev.finished for ev in events[:-1])


def test_chunked_prefill_under_budget() -> None:
    e, clock = engine(token_budget=4096), FakeClock()
    e.submit("long", 3 * 4096, 2, 0.0)
    chunks = []
    while True:
        it = e.next_iteration(clock.now())
        if it.decode_slots:
            break
        chunks.append([s.prefill_tokens for s in it.slots])
        assert it.tokens <= 4096
        clock.set(it.end_s)
        e.complete(it, it.end_s)
    assert chunks == [[4096], [4096], [4096]]
    # the whole prefill costs (beta + gamma (nc+1)/2) L plus nc alphas, as in the model
    nc, L = 3, 3 * 4096
    assert clock.now() * 1000 == pytest.approx(nc * ALPHA + (BETA + GAMMA * (nc + 1) / 2) * L)


def test_decodes_first_then_prefill_shares_budget() -> None:
    e, clock = engine(token_budget=100), FakeClock()
    e.submit("a", 10, 5, 0.0)
    step(e, clock)  # a prefilled
    e.submit("b", 250, 5, clock.now())
    e.submit("c", 50, 5, clock.now())
    it = e.next_iteration(clock.now())
    assert [(s.request.request_id, s.prefill_tokens) for s in it.slots] == [("a", 0), ("b", 99)]
    clock.set(it.end_s)
    e.complete(it, it.end_s)
    it = e.next_iteration(clock.now())
    ids = [(s.request.request_id, s.prefill_tokens) for s in it.slots]
    assert ids == [("a", 0), ("b", 99)]  # c still waits: no budget left
    assert e.waiting == 1


def test_priority_then_fcfs() -> None:
    e, clock = engine(max_batch=1), FakeClock()
    e.submit("running", 10, 3, 0.0)
    step(e, clock)
    e.submit("low", 10, 1, clock.now(), priority=LOWEST_PRIORITY)
    e.submit("bronze-1", 10, 1, clock.now(), priority=2)
    e.submit("premium-1", 10, 1, clock.now(), priority=1)
    e.submit("bronze-2", 10, 1, clock.now(), priority=2)
    e.submit("premium-2", 10, 1, clock.now(), priority=1)
    order = [ev.request.request_id for ev in run_all(e, clock) if ev.finished]
    assert order == ["running", "premium-1", "premium-2", "bronze-1", "bronze-2", "low"]


def test_max_batch_change_live() -> None:
    e, clock = engine(max_batch=2), FakeClock()
    for i in range(10):
        e.submit(f"r{i}", 10, 20, 0.0)
    step(e, clock)
    assert (e.running, e.waiting) == (2, 8)
    e.set_max_batch(6)
    it = e.next_iteration(clock.now())
    assert it.batch_size == 6 and e.running == 6
    clock.set(it.end_s)
    e.complete(it, it.end_s)
    e.set_max_batch(3)  # drains: no preemption, no admissions until below 3
    sizes = []
    while e.has_work:
        it = e.next_iteration(clock.now())
        sizes.append(it.batch_size)
        clock.set(it.end_s)
        e.complete(it, it.end_s)
    assert sizes[0] == 6 and max(sizes[sizes.index(3):]) == 3
    with pytest.raises(ValueError):
        e.set_max_batch(0)


def test_token_budget_change_live() -> None:
    e, clock = engine(token_budget=4096), FakeClock()
    e.submit("long", 3 * 4096, 2, 0.0)
    step(e, clock)  # the first chunk under the initial budget
    e.set_token_budget(1024)
    assert (e.token_budget, e.config.token_budget) == (1024, 4096)
    chunks = []
    while True:
        it = e.next_iteration(clock.now())
        if it.decode_slots:
            break
        chunks.append(it.tokens)
        clock.set(it.end_s)
        e.complete(it, it.end_s)
    assert chunks == [1024] * 8  # the prefill under way goes on in chunks of the new budget
    clock.set(it.end_s)
    e.complete(it, it.end_s)
    e.set_token_budget(8192)
    e.submit("next", 8000, 1, clock.now())
    it = e.next_iteration(clock.now())
    assert [s.prefill_tokens for s in it.slots] == [0, 8000]  # one decode, one whole prompt
    with pytest.raises(ValueError):
        e.set_token_budget(0)


def test_bounded_queue_rejects_and_recovers() -> None:
    e, clock = engine(max_batch=2, max_queue=3), FakeClock()
    for i in range(5):  # 2 batch slots + 3 queued
        e.submit(f"r{i}", 10, 2, 0.0)
    with pytest.raises(QueueFullError):
        e.submit("r5", 10, 2, 0.0)
    assert e.stats.rejected == 1
    run_all(e, clock)
    e.submit("r6", 10, 2, clock.now())
    assert e.stats.submitted == 6


def test_kv_capacity_limits_admission_and_reports_usage() -> None:
    e, clock = engine(kv_capacity_tokens=1000), FakeClock()
    with pytest.raises(RequestTooLargeError):
        e.submit("huge", 900, 101, 0.0)
    e.submit("a", 400, 100, 0.0)
    e.submit("b", 400, 100, 0.0)
    e.submit("c", 400, 100, 0.0)  # does not fit while a and b run
    step(e, clock)
    assert (e.running, e.waiting) == (2, 1)
    assert e.kv_usage == pytest.approx(800 / 1000)
    step(e, clock)
    assert e.kv_usage == pytest.approx(802 / 1000)
    run_all(e, clock)
    assert e.kv_usage == 0 and e.kv_used_tokens == 0


def test_cancel_waiting_and_running() -> None:
    e = engine(max_batch=1)
    e.submit("a", 10, 5, 0.0)
    e.submit("b", 10, 5, 0.0)
    it = e.next_iteration(0.0)
    assert e.cancel("a")  # while in flight: no events, KV released
    assert e.cancel("b")
    assert not e.cancel("b")
    assert e.complete(it, it.end_s) == []
    assert not e.has_work and e.kv_used_tokens == 0 and e.stats.cancelled == 2


def test_itl_statistics_reproduce_durations() -> None:
    e, clock = engine(max_batch=8, token_budget=512), FakeClock()
    for i in range(20):
        e.submit(f"r{i}", 100 + 37 * i, 5 + i, i * 0.01)
    events = run_all(e, clock)
    s = e.stats
    itl = [ev.time_s - ev.previous_s for ev in events if ev.previous_s is not None]
    assert s.itl_tokens == len(itl) == sum(5 + i - 1 for i in range(20))
    assert s.itl_duration_s == pytest.approx(sum(itl))
    predicted_ms = ALPHA * s.itl_tokens + BETA * s.itl_tokens_sum + GAMMA * s.itl_context_sum
    assert predicted_ms / 1000 == pytest.approx(s.itl_duration_s)
    assert s.finished == 20 and s.decode_tokens == sum(5 + i for i in range(20))


def test_protocol_errors() -> None:
    e = engine()
    e.submit("a", 10, 1, 0.0)
    with pytest.raises(ValueError, match="duplicate"):
        e.submit("a", 10, 1, 0.0)
    it = e.next_iteration(0.0)
    with pytest.raises(RuntimeError):
        e.next_iteration(0.0)
    e.complete(it, it.end_s)
    with pytest.raises(RuntimeError):
        e.complete(it, it.end_s)
    assert math.isclose(e.next_iteration(it.end_s).start_s, it.end_s)


def model_itl_ms(batch: int, L: int, K: int, budget: int = 8192) -> float:
    """inferno batch-queue v0.8 itl(B) (INFERNO.md), written out for the test."""
    nc = 1
    while batch > math.floor((nc + K) * (budget - L / nc) / (L + K)):
        nc += 1
    w_pre = (BETA + GAMMA * (nc + 1) / 2) * L
    w_dec = BETA * K + GAMMA * K * (L + (K + 1) / 2)
    delta = (w_pre + w_dec) / (nc + K)
    return max(ALPHA + (batch - 1) * delta, 0) + BETA + GAMMA * (L + (K + 1) / 2)


@pytest.mark.parametrize(("B", "L", "K"), [(8, 1000, 63), (16, 2000, 127), (32, 512, 255)])
def test_steady_state_itl_matches_model_itl(B: int, L: int, K: int) -> None:
    """B requests in a closed loop with staggered phases: prefill chunks of new requests
    share iterations with the others' decodes, as the model's delta assumes."""
    e, clock = engine(max_batch=B), FakeClock()
    cycle, ids, itl = 1 + K, iter(range(10**6)), []
    for iteration in range(40 * cycle):
        if iteration < B * (cycle // B) and iteration % (cycle // B) == 0:
            e.submit(str(next(ids)), L, K, clock.now())
        for event in step(e, clock):
            if event.finished:
                r = event.request
                if iteration > 10 * cycle:
                    itl.append((r.finished_s - r.first_token_s) / (K - 1) * 1000)
                e.submit(str(next(ids)), L, K, clock.now())
    assert len(itl) > 10 * B
    assert sum(itl) / len(itl) == pytest.approx(model_itl_ms(B, L, K), rel=0.02)
