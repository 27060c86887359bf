"""Forecasters and stabilisers: pure policies."""

from __future__ import annotations

import pytest

from controller.config import LoopOptions
from controller.forecast import (
    FORECASTERS,
    Holt,
    LastValue,
    sizing_rate,
    upper_rate,
    with_half_life,
)
from controller.stabilize import (
    STABILIZERS,
    StabilizeInput,
    StabilizerOptions,
    StabilizerState,
    hysteresis,
)
from specs.documents import Load
from specs.loading import load_fleet
from specs.plan import Plan, ServerAllocation, VariantAllocation
from tests.controller.test_loop import EXAMPLE


def feed(forecaster, points):
    series = None
    for t, v in points:
        series = forecaster.update(series, t, v)
    return series


def test_holt_follows_a_ramp_ahead():
    series = feed(Holt(), [(60.0 * i, 1.0 + 0.5 * i) for i in range(10)])
    ahead = Holt().predict(series, 120.0)
    assert ahead > 5.5  # current 5.5, rising 0.5/min
    assert ahead < 5.5 + 0.5 * 2 * 1.5


def test_holt_is_flat_on_a_flat_series_and_bounded():
    series = feed(Holt(), [(60.0 * i, 3.0) for i in range(10)])
    assert Holt().predict(series, 120.0) == pytest.approx(3.0)
    spike = feed(Holt(), [(0, 1.0), (1, 1000.0)])
    assert Holt().predict(spike, 120.0) <= 4 * 1000.0


def window_filling(rate: float, window_s: float, latency_s: float, period_s: float,
                   ticks: int, start_s: float = 0.0) -> list[tuple[float, float]]:
    """What a collector measures from start-up at a flat true `rate`: the requests completed
    in its window (each finishes `latency_s` after arriving) over the window's elapsed time,
    so the measured rate ramps up to `rate` over about one window."""
    points = []
    for k in range(1, ticks + 1):
        t = period_s * k
        elapsed = min(t, window_s)
        points.append((start_s + t, rate * max(0.0, min(elapsed, t - latency_s)) / elapsed))
    return points


@pytest.mark.parametrize(("window_s", "latency_s", "period_s"),
                         [(60, 10, 30), (60, 20, 30), (60, 40, 30), (60, 20, 60)])
def test_holt_does_not_extrapolate_a_filling_window(window_s, latency_s, period_s):
    points = window_filling(10.0, window_s, latency_s, period_s, ticks=20)
    assert points[0][1] < 7.0  # the measurement does ramp up
    series, worst = None, 0.0
    for t, value in points:
        series = Holt().update(series, t, value)
        worst = max(worst, Holt().predict(series, 120.0))
    assert worst <= 10.0 * 1.03, worst


def test_holt_leads_a_real_ramp_after_start_up():
    """Start-up at 5 req/s (window filling), a plateau, then +1 req/s per minute."""
    points = window_filling(5.0, 60.0, 20.0, 30.0, ticks=10)
    ramp = [(300.0 + 30.0 * k, 5.0 + 0.5 * k) for k in range(1, 21)]
    series, leads = None, []
    for t, value in points + ramp:
        series = Holt().update(series, t, value)
        ahead = Holt().predict(series, 120.0)
        true_ahead = 5.0 if t <= 300.0 else value + 2.0  # the rate 120 s later
        assert ahead <= true_ahead * 1.03, (t, value, ahead)
        if t > 300.0:
            leads.append(ahead - value)
    assert all(lead > 0 for lead in leads[6:]), leads  # ahead from 3 minutes into the ramp
    assert leads[-1] > 0.5, leads  # well ahead once the ramp is established


def test_sizing_never_below_current():
    series = feed(Holt(), [(60.0 * i, 10.0 - i) for i in range(8)])
    assert sizing_rate(Holt(), series, 3.0, 120.0) >= 3.0
    assert sizing_rate(LastValue(), series, 3.0, 120.0) == 3.0


def test_registries_and_config_names_agree():
    assert FORECASTERS.names() == ["holt", "last_value"]
    assert STABILIZERS.names() == ["hysteresis", "none"]
    with pytest.raises(ValueError, match="known: holt, last_value"):
        LoopOptions(forecaster="prophet")


def _variant(acc: str, replicas: int, cost: float = 1.0, rate: float = 1.0,
             **extra: object) -> VariantAllocation:
    return VariantAllocation(accelerator=acc, card_type=acc, replicas=replicas, max_batch=8,
                             cards=replicas, cost_per_hour=cost * replicas,
                             arrival_rate_rps=rate * replicas, router_weight=1.0,
                             max_rate_per_replica_rps=rate, **extra)


def _plan(*variants: VariantAllocation, rate: float = 2.0) -> Plan:
    alloc = ServerAllocation(server="premium-llama", model="llama_3_1_8b",
                             service_class="premium", priority=1,
                             load=Load(arrival_rate_rps=rate, in_tokens=100, out_tokens=10),
                             variants=list(variants),
                             cost_per_hour=sum(v.cost_per_hour for v in variants))
    return Plan(allocations=[alloc], total_cost_per_hour=alloc.cost_per_hour)


@pytest.fixture(scope="module")
def spec():
    return load_fleet(EXAMPLE).spec


def test_hysteresis_scales_up_at_once_and_down_after_delay(spec):
    options = StabilizerOptions(scale_down_delay_s=100)
    current = {("premium-llama", "H100"): 2}
    up = hysteresis(StabilizerState(), StabilizeInput(spec, _plan(_variant("H100", 5)),
                                                      current, None, 0.0), options)
    assert up.plan.allocations[0].variants[0].replicas == 5 and not up.held
    state = StabilizerState()
    for now, expect in ((0, 2), (50, 2), (100, 1)):
        result = hysteresis(state, StabilizeInput(spec, _plan(_variant("H100", 1)), current,
                                                  None, float(now)), options)
        state = result.state
        assert result.plan.allocations[0].variants[0].replicas == expect
    assert [p.replicas for p in state.history["premium-llama/H100"]] == [1]


def test_hysteresis_bounds_steps_and_holds_small_switch(spec):
    options = StabilizerOptions(max_step_up=2, min_switch_saving=0.2)
    current = {("premium-llama", "H100"): 2}
    r = hysteresis(StabilizerState(), StabilizeInput(spec, _plan(_variant("H100", 9)), current,
                                                     None, 0.0), options)
    assert r.plan.allocations[0].variants[0].replicas == 4 and r.held[0].kind == "step-up"
    previous = _plan(_variant("H100", 2, cost=1.0))
    cheaper = _plan(_variant("A100", 2, cost=0.9))
    r = hysteresis(StabilizerState(), StabilizeInput(spec, cheaper, current, previous, 0.0),
                   options)
    assert [v.accelerator for v in r.plan.allocations[0].variants] == ["H100"]
    assert r.held[0].kind == "switch" and "saves" in r.held[0].reason
    much = _plan(_variant("A100", 2, cost=0.5))
    r = hysteresis(StabilizerState(), StabilizeInput(spec, much, current, previous, 0.0),
                   StabilizerOptions(min_switch_saving=0.2, scale_down_delay_s=0))
    assert [v.accelerator for v in r.plan.allocations[0].variants] == ["A100"]


def test_none_stabilizer_passes_the_plan(spec):
    plan = _plan(_variant("H100", 1))
    result = STABILIZERS.get("none")(StabilizerState(), StabilizeInput(
        spec, plan, {("premium-llama", "H100"): 4}, None, 0.0), StabilizerOptions())
    assert result.plan is plan


def test_held_variants_keep_their_token_budget(spec):
    options = StabilizerOptions(scale_down_delay_s=100, min_switch_saving=0.0)
    current = {("premium-llama", "H100"): 2}
    previous = _plan(_variant("H100", 2, token_budget=1024))
    proposed = _plan(_variant("A100", 2, cost=0.5, token_budget=4096))
    r = hysteresis(StabilizerState(), StabilizeInput(spec, proposed, current, previous, 0.0),
                   options)
    budgets = {v.accelerator: v.token_budget for v in r.plan.allocations[0].variants}
    assert budgets == {"A100": 4096, "H100": 1024}  # H100 held for its scale-down delay
    # without a previous plan the running budget is unknown: not set (left as it runs)
    r = hysteresis(StabilizerState(), StabilizeInput(spec, proposed, current, None, 0.0),
                   options)
    budgets = {v.accelerator: v.token_budget for v in r.plan.allocations[0].variants}
    assert budgets == {"A100": 4096, "H100": None}


@pytest.mark.parametrize(("load", "expected"), [(9.0, {"H100": 4, "A100": 1}),
                                                (13.5, {"H100": 6, "A100": 2}),
                                                (4.0, {"H100": 2, "A100": 1})])
def test_held_switch_resizes_running_variants_by_their_capacity(spec, load, expected):
    """4 H100 replicas (2 req/s each) and 1 A100 replica (1 req/s) carry 9 req/s; a switch
    to L4 saving less than 10% is held, and the running variants are scaled by the same
    factor (load / current capacity), not each sized for the whole load."""
    current = {("premium-llama", "H100"): 4, ("premium-llama", "A100"): 1}
    previous = _plan(_variant("H100", 4, cost=2.0, rate=2.0),
                     _variant("A100", 1, cost=1.0, rate=1.0), rate=9.0)
    stay_cost = sum(n * c for n, c in zip(expected.values(), (2.0, 1.0), strict=True))
    l4 = _variant("L4", 10, cost=0.95 * stay_cost / 10, rate=load / 10)
    r = hysteresis(StabilizerState(), StabilizeInput(spec, _plan(l4, rate=load), current,
                                                     previous, 0.0),
                   StabilizerOptions(min_switch_saving=0.1, scale_down_delay_s=0))
    assert [h.kind for h in r.held] == ["switch"]
    final = {v.accelerator: v.replicas for v in r.plan.allocations[0].variants}
    assert final == expected
    capacity = final["H100"] * 2.0 + final["A100"] * 1.0
    assert capacity >= load


def run_window(spec, running: int, proposals: list[int], options: StabilizerOptions,
               state: StabilizerState | None = None, period_s: float = 30.0) -> list[int]:
    """Feed one proposal per tick (from t = 0) for premium-llama on H100, the fleet
    following the final plan, and return the final counts."""
    state, finals = state or StabilizerState(), []
    for i, want in enumerate(proposals):
        result = hysteresis(state, StabilizeInput(
            spec, _plan(_variant("H100", want)), {("premium-llama", "H100"): running},
            None, period_s * i), options)
        state = result.state
        variants = result.plan.allocations[0].variants
        running = variants[0].replicas if variants else 0
        finals.append(running)
    return finals


def test_scale_down_window_flapping_then_steady(spec):
    """5 running, the proposal flaps 3/5 (kept at 5, the window's highest), then stays at 3:
    down to 3 once the last 5 is `scale_down_delay_s` old, not a delay after the next 3."""
    options = StabilizerOptions(scale_down_delay_s=120)
    proposals = [3, 5, 3, 5, 3, 3, 3, 3, 3, 3]  # every 30 s; the last 5 at t = 90 s
    finals = run_window(spec, 5, proposals, options)
    assert finals == [5, 5, 5, 5, 5, 5, 5, 3, 3, 3], finals  # t = 210 s: down to 3


@pytest.mark.parametrize(("step", "expected"), [
    (None, [6, 6, 6, 6, 4, 4, 4, 4, 4]),
    (1, [6, 6, 6, 6, 5, 4, 4, 4, 4]),
])
def test_scale_down_goes_to_the_highest_proposal_in_the_window(spec, step, expected):
    """6 running, 5 proposed once, then 3 and 4 in turn: once the 6 and the 5 have left the
    120 s window the variant goes to 4 (the window's highest), at most `step` per tick."""
    options = StabilizerOptions(scale_down_delay_s=120, max_step_down=step)
    finals = run_window(spec, 6, [5, 3, 4, 3, 4, 3, 4, 3, 4], options)
    assert finals == expected, finals


def test_scale_down_hold_is_reported(spec):
    options = StabilizerOptions(scale_down_delay_s=120)
    state = StabilizerState()
    current = {("premium-llama", "H100"): 5}
    for now in (0.0, 30.0):
        result = hysteresis(state, StabilizeInput(spec, _plan(_variant("H100", 3)), current,
                                                  None, now), options)
        state = result.state
    (held,) = result.held
    assert (held.kind, held.proposed, held.kept) == ("scale-down", 3, 5)
    assert held.reason == "5 proposed within the last 120 s; 3 in 90 s if the lower plan holds"
    assert [(p.time_s, p.replicas) for p in state.history["premium-llama/H100"]] == [
        (0.0, 5), (30.0, 3)]


def test_state_from_before_the_window_loads_and_waits_a_full_delay(spec):
    """A state written with the old `pending` scale-downs (a lower count first proposed at
    -300 s) loads; the variant counts its running replicas as proposed at the next tick."""
    old = {"pending": {"premium-llama/H100": {"since": -300.0, "floor": 3}}}
    state = StabilizerState.model_validate(old)
    assert state.history == {}
    finals = run_window(spec, 5, [3, 3, 3, 3, 3], StabilizerOptions(scale_down_delay_s=120),
                        state)
    assert finals == [5, 5, 5, 5, 3]


def test_upper_rate_adds_counting_noise_for_short_windows_only():
    assert upper_rate(3.0, 10.0, 0.0) == 3.0
    assert upper_rate(3.0, 10.0, 1.5) == pytest.approx(3.0 + 1.5 * (0.3 ** 0.5))
    assert upper_rate(3.0, 600.0, 1.5) < 3.0 * 1.06
    assert upper_rate(0.0, 10.0, 1.5) == 0.0


def test_a_shorter_half_life_follows_a_fall_sooner():
    points = [(t, 6.0) for t in range(0, 100, 10)] + [(t, 1.0) for t in range(100, 160, 10)]
    slow, fast = Holt(), with_half_life(Holt(), 10.0)
    assert fast.level_half_life_s == 10.0 and fast.trend_half_life_s == 20.0
    assert with_half_life(LastValue(), 10.0) == LastValue()
    assert fast.predict(feed(fast, points), 20.0) < 1.5 < slow.predict(feed(slow, points), 20.0)


def test_a_finished_switch_drops_the_old_accelerator_at_once(spec):
    """Proposed H100 x2 only: while H100 runs fewer than 2 the A100 replica stays (held by
    the scale-down window); once H100 runs 2 the A100 goes, window or not."""
    options = StabilizerOptions(scale_down_delay_s=600)
    proposed = _plan(_variant("H100", 2))
    previous = _plan(_variant("H100", 2), _variant("A100", 1))
    midway = {("premium-llama", "H100"): 1, ("premium-llama", "A100"): 1}
    r = hysteresis(StabilizerState(), StabilizeInput(spec, proposed, midway, previous, 0.0),
                   options)
    assert {v.accelerator for v in r.plan.allocations[0].variants} == {"H100", "A100"}
    done = {("premium-llama", "H100"): 2, ("premium-llama", "A100"): 1}
    r = hysteresis(r.state, StabilizeInput(spec, proposed, done, previous, 30.0), options)
    assert {v.accelerator: v.replicas for v in r.plan.allocations[0].variants} == {"H100": 2}
    assert r.held == () and "premium-llama/A100" not in r.state.history


def test_a_switch_away_from_an_accelerator_that_can_no_longer_serve_is_not_held(spec):
    """The running A100 was sized with rates since found too high: held against the
    plan's old rate the switch saves too little; with the current rates (the A100 cannot
    serve at all, or only at a tenth of the rate) it goes ahead."""
    options = StabilizerOptions(min_switch_saving=0.2, scale_down_delay_s=0)
    current = {("premium-llama", "A100"): 2}
    previous = _plan(_variant("A100", 2, cost=1.0))
    proposed = _plan(_variant("H100", 2, cost=0.9))
    held = hysteresis(StabilizerState(), StabilizeInput(spec, proposed, current, previous,
                                                        0.0), options)
    assert [v.accelerator for v in held.plan.allocations[0].variants] == ["A100"]
    for rate in (None, 0.1):
        r = hysteresis(StabilizerState(), StabilizeInput(
            spec, proposed, current, previous, 0.0,
            rates=lambda server, acc, rate=rate: rate if acc == "A100" else 1.0), options)
        assert [v.accelerator for v in r.plan.allocations[0].variants] == ["H100"], rate
        assert not [h for h in r.held if h.kind == "switch"]
