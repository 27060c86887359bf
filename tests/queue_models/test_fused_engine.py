"""queue_models.fused: `FusedEngine.advance` against `BatchEngine` step by step. The same
first-token and finish times (to 1e-9 s; in practice bit for bit), statistics and gauge
integrals, with the profile law, a stateful noisy law, small budgets, bounded max batch
and KV capacity, and a max-batch change between arrivals."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import pytest

from queue_models.engine import BatchEngine, EngineConfig
from queue_models.fused import FusedEngine
from queue_models.iteration_cost import IterationCost, LinearCost

ALPHA, BETA, GAMMA = 6.49, 0.0219, 4.96e-5


@dataclass
class NoisyLaw:
    """A stateful law: the profile's times a lognormal factor per call."""

    rng: np.random.Generator

    def duration_ms(self, decode_requests: int, decode_context_tokens: int,
                    prefill_tokens: int, prefill_context_tokens: int) -> float:
        base = LinearCost(ALPHA, BETA, GAMMA).duration_ms(
            decode_requests, decode_context_tokens, prefill_tokens, prefill_context_tokens)
        return base * float(self.rng.lognormal(-0.02, 0.2))


def workload(seed: int, n: int, rate: float, max_prompt: int = 3000,
             ) -> list[tuple[float, int, int]]:
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(1.0 / rate, n))
    prompts = rng.integers(1, max_prompt, n)
    outputs = rng.integers(1, 300, n)
    return [(float(t), int(p), int(o)) for t, p, o in zip(times, prompts, outputs, strict=True)]


def drive(engine: BatchEngine, arrivals: list[tuple[float, int, int]], fused: bool,
          batch_change: tuple[float, int] | None = None,
          budget_change: tuple[float, int] | None = None) -> dict[str, tuple]:
    """Arrivals (and optional max-batch and token-budget changes) as outside events;
    iterations either one at a time or fused up to the next outside event. Returns
    per-request times."""
    outside = [(t, "arrival", (f"r{i}", p, o)) for i, (t, p, o) in enumerate(arrivals)]
    if batch_change:
        outside.append((batch_change[0], "batch", batch_change[1]))
    if budget_change:
        outside.append((budget_change[0], "budget", budget_change[1]))
    outside.sort(key=lambda e: e[0])
    states, flight, k = {}, None, 0

    def run(now: float) -> None:
        nonlocal flight
        if flight is not None:
            return
        horizon = outside[k][0] if k < len(outside) else math.inf
        if fused:
            assert isinstance(engine, FusedEngine)
            flight = engine.advance(now, horizon)[1]
        else:
            flight = engine.next_iteration(now)

    while k < len(outside) or flight is not None:
        if flight is not None and (k == len(outside) or flight.end_s < outside[k][0]):
            end, flight_done = flight.end_s, flight
            flight = None
            engine.complete(flight_done, end)
            run(end)
            continue
        t, kind, payload = outside[k]
        k += 1
        if kind == "batch":
            engine.set_max_batch(payload)
        elif kind == "budget":
            engine.set_token_budget(payload)
        else:
            rid, p, o = payload
            try:
                states[rid] = engine.submit(rid, p, o, t)
            except ValueError:
                states[rid] = None
        run(t)
    return {rid: (None,) if s is None else (s.first_token_s, s.finished_s, s.scheduled_s)
            for rid, s in states.items()}


def same_times(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(
        x is None and y is None or x is not None and y is not None and abs(x - y) <= 1e-9
        for x, y in zip(a, b, strict=True))


CASES = {
    "profile": dict(max_batch=64),
    "small batch": dict(max_batch=4),
    "budget": dict(max_batch=64, token_budget=16),
    "budget tiny": dict(max_batch=64, token_budget=6),  # batches as large as the budget
    "kv capacity": dict(max_batch=64, kv_capacity_tokens=6000, max_queue=20),
}


def config(law: IterationCost | None, **overrides: object) -> EngineConfig:
    values: dict = dict(alpha_ms=ALPHA, beta_ms=BETA, gamma_ms=GAMMA, max_batch=64, law=law)
    values.update(overrides)
    return EngineConfig(**values)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("noisy", [False, True])
def test_fused_runs_match_step_by_step(case: str, noisy: bool) -> None:
    small = case.startswith("budget")  # prompts take many iterations: keep them short
    arrivals = workload(3, 400, rate=3.0, max_prompt=200 if small else 3000)
    change = (arrivals[200][0] + 1e-4, 2)
    engines = []
    for cls in (BatchEngine, FusedEngine):
        law = NoisyLaw(np.random.default_rng(11)) if noisy else None
        engines.append(cls(config(law, **CASES[case])))
    step = drive(engines[0], arrivals, fused=False, batch_change=change)
    fused = drive(engines[1], arrivals, fused=True, batch_change=change)
    assert step.keys() == fused.keys()
    for rid in step:
        assert same_times(fused[rid], step[rid]), (rid, fused[rid], step[rid])
    a, b = engines[0].stats, engines[1].stats
    for f in fields(a):
        assert getattr(b, f.name) == pytest.approx(getattr(a, f.name), rel=1e-12), f.name
    end = max(t for times in step.values() for t in times if t is not None)
    occ_a, occ_b = engines[0].occupancy(end), engines[1].occupancy(end)
    assert occ_b.running_s == pytest.approx(occ_a.running_s, rel=1e-9)
    assert occ_b.waiting_s == pytest.approx(occ_a.waiting_s, rel=1e-9)
    assert occ_b.kv_tokens_s == pytest.approx(occ_a.kv_tokens_s, rel=1e-9)


@pytest.mark.parametrize(("before", "after"), [(4096, 6), (6, 4096)])
def test_fused_runs_match_step_by_step_across_a_token_budget_change(before: int, after: int,
                                                                   ) -> None:
    # a budget below the running batch decodes only some requests per iteration: a fused
    # run that kept the initial budget would think every one of them decodes
    arrivals = workload(7, 300, rate=4.0, max_prompt=200)
    change = (arrivals[100][0] + 1e-4, after)
    step_engine = BatchEngine(config(None, token_budget=before))
    fused_engine = FusedEngine(config(None, token_budget=before))
    step = drive(step_engine, arrivals, fused=False, budget_change=change)
    fused = drive(fused_engine, arrivals, fused=True, budget_change=change)
    assert fused == step
    assert fused_engine.token_budget == step_engine.token_budget == after
    assert fused_engine.stats.iterations == step_engine.stats.iterations


def test_fused_runs_are_exact_and_fewer_events() -> None:
    arrivals = workload(5, 200, rate=2.0)
    step_engine, fused_engine = BatchEngine(config(None)), FusedEngine(config(None))
    step = drive(step_engine, arrivals, fused=False)
    fused = drive(fused_engine, arrivals, fused=True)
    assert fused == step  # bit for bit
    assert step_engine.stats.iterations == fused_engine.stats.iterations > 10_000


def test_advance_returns_first_tokens_and_finishes_with_their_times() -> None:
    engine = FusedEngine(config(None))
    engine.submit("a", 100, 3, 0.0)
    engine.submit("b", 100, 1, 0.0)
    events, flight = engine.advance(0.0, math.inf)
    assert flight is None and not engine.has_work
    got = [(e.request.request_id, e.index, e.finished) for e in events]
    assert got == [("a", 0, False), ("b", 0, True), ("a", 2, True)]
    a_first, b_first, a_last = (e.time_s for e in events)
    assert a_first == b_first < a_last
    assert events[2].previous_s is not None and events[2].previous_s < a_last


def test_the_iteration_crossing_the_horizon_is_left_in_flight() -> None:
    engine = FusedEngine(config(None))
    engine.submit("a", 100, 50, 0.0)
    events, flight = engine.advance(0.0, 0.1)
    assert flight is not None and flight.start_s < 0.1 <= flight.end_s
    assert engine.in_flight is flight and [e.index for e in events] == [0]
    with pytest.raises(RuntimeError):
        engine.advance(flight.end_s, 1.0)
    engine.complete(flight, flight.end_s)
    events, flight = engine.advance(flight.end_s, math.inf)
    assert flight is None and events[-1].finished
