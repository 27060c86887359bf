"""Online correction: the policy (bounded, slow, dead band) and the loop feeding it."""

from __future__ import annotations

from pathlib import Path

import pytest

from actuator.base import FleetState, VariantState
from collector.snapshot import Figure, FleetSnapshot, SourceStatus, VariantSnapshot
from controller.config import LoopOptions
from controller.correction import (
    CorrectionOptions,
    CorrectionState,
    Observed,
    correct,
    observations,
    with_corrections,
)
from controller.loop import ControlLoop, LoopParts
from optimizer.api import optimize
from specs.clock import FakeClock
from specs.documents import FleetSpec
from specs.loading import load_fleet
from specs.plan import Plan
from tests.controller.fakes import FakeActuator, FakeMetrics

EXAMPLE = Path(__file__).resolve().parents[2] / "specs" / "examples" / "heterogeneous-fleet.json"
OPTIONS = CorrectionOptions()
LIVE = ["chat"]  # the spec's servers


def _seen(measured: float, predicted: float = 20.0, tokens: float = 1e4) -> Observed:
    return Observed("chat", "H100", measured, predicted, tokens)


def test_a_slow_variant_is_corrected_fast_and_within_bounds():
    state = CorrectionState()
    factors = []
    for _ in range(40):  # the variant runs 1.5x slower than the tables say
        predicted = 20.0 * state.factor("chat", "H100")
        state = correct(state, [_seen(30.0, predicted)], LIVE, OPTIONS)
        factors.append(state.factor("chat", "H100"))
    steps = [b / a for a, b in zip([1.0, *factors], factors, strict=False)]
    assert all(s <= 1 + OPTIONS.max_rise + 0.02 for s in steps)  # 2% grid rounding
    assert factors == sorted(factors)
    assert factors[-1] == pytest.approx(1.5, rel=OPTIONS.dead_band + 0.02)


@pytest.mark.parametrize("lower", [1.0, 0.67])
def test_a_fast_variant_moves_down_to_the_lower_bound_at_most(lower):
    options = CorrectionOptions(lower=lower)
    state = CorrectionState(factors={"chat/H100": 1.5})
    factors = [1.5]
    for _ in range(100):
        predicted = 20.0 * state.factor("chat", "H100")
        state = correct(state, [_seen(2.0, predicted)], LIVE, options)
        factors.append(state.factor("chat", "H100"))
    assert lower <= factors[-1] <= lower * 1.02
    falls = [b / a for a, b in zip(factors, factors[1:], strict=False)]
    assert min(falls) >= 1 - options.max_fall - 0.02  # slow down, 2% grid rounding


def test_the_upper_bound_holds():
    state = CorrectionState()
    for _ in range(200):
        state = correct(state, [_seen(500.0)], LIVE, OPTIONS)
    assert OPTIONS.upper / 1.02 <= state.factor("chat", "H100") <= OPTIONS.upper


@pytest.mark.parametrize("seen", [
    _seen(20.8),                      # within the dead band
    _seen(40.0, tokens=10),           # too few tokens to count
    _seen(float("nan")),              # nothing measured
    _seen(40.0, predicted=0.0),       # nothing predicted
])
def test_noise_and_thin_windows_change_nothing(seen):
    assert correct(CorrectionState(), [seen], LIVE, OPTIONS).factors == {}


def test_variants_keep_their_factor_when_absent_or_gone_until_their_server_goes():
    state = CorrectionState(factors={"chat/H100": 1.3, "chat/A100": 1.2, "code/L4": 1.5})
    kept = correct(state, [], ["chat", "code"], OPTIONS)
    assert kept.factors == state.factors  # measured slowness outlives the variant
    gone = correct(state, [], ["chat"], OPTIONS)
    assert gone.factors == {"chat/A100": 1.2, "chat/H100": 1.3}


def _variant(name: str, server: str, itl: float | None, rate: float = 4.0) -> VariantSnapshot:
    return VariantSnapshot(
        name=name, server=server, model="m", accelerator="H100", window_s=60.0,
        arrival_rate_rps=Figure.ok(rate), completion_rate_rps=Figure.ok(rate),
        out_tokens=Figure.ok(101.0),
        itl_mean_ms=Figure.nan() if itl is None else Figure.ok(itl))


def test_observations_compare_at_the_measured_per_replica_rate():
    snapshot = FleetSnapshot(time_s=0, source="t", status=SourceStatus.OK, variants=(
        _variant("a-h100", "a", 30.0), _variant("b-h100", "b", 30.0),
        _variant("c-h100", "c", None)))
    fleet = FleetState((VariantState("a-h100", "a", "m", "H100", 2, 2, max_batch=32),
                        VariantState("b-h100", "b", "m", "H100", 1, 0, max_batch=32),
                        VariantState("c-h100", "c", "m", "H100", 1, 1, max_batch=32)))
    asked = []

    def predict(*args):
        asked.append(args)
        return 20.0

    seen = observations(snapshot, fleet, predict)
    assert asked == [("a", "H100", 32, None, 2.0)]  # b has no ready replica, c no ITL
    assert seen == [Observed("a", "H100", 30.0, 20.0, 4.0 * 60.0 * 100.0)]


def test_corrections_become_the_servers_time_scale():
    spec = load_fleet(EXAMPLE).spec
    name = spec.servers[0].name
    corrected = with_corrections(spec, CorrectionState(factors={f"{name}/H100": 1.2}))
    assert corrected.servers[0].time_scale == {"H100": 1.2}
    assert all(s.time_scale == {} for s in corrected.servers[1:])


class SlowFleetMetrics(FakeMetrics):
    """Every running variant reports 1.5x the ITL the fake optimizer predicts at factor 1."""

    def collect(self, now: float, fleet: FleetState) -> FleetSnapshot:
        base = super().collect(now, fleet)
        variants = tuple(_variant(v.variant, v.server, 30.0) for v in fleet.variants)
        return base.model_copy(update={"variants": variants})


class PredictingOptimizer:
    """The analytic optimizer, predicting 20 ms x the spec's time scale; keeps the specs."""

    def __init__(self) -> None:
        self.specs: list[FleetSpec] = []

    def __call__(self, spec: FleetSpec, solver: str | None) -> Plan:
        self.specs.append(spec)
        return optimize(spec, solver=solver, timer=None)

    def predict_itl(self, spec, server, accelerator, max_batch, token_budget, rate):
        found = next(s for s in spec.servers if s.name == server)
        return 20.0 * found.time_scale.get(accelerator, 1.0)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_loop_learns_a_slow_variant_and_sizes_with_it(enabled):
    spec = load_fleet(EXAMPLE).spec
    optimizer = PredictingOptimizer()
    parts = LoopParts(spec=spec, metrics=SlowFleetMetrics(spec, lambda s, t: 1.0),
                      actuator=FakeActuator(spec), clock=FakeClock(1000.0), optimize=optimizer)
    loop = ControlLoop(parts, LoopOptions(correct=enabled))
    for _ in range(4):
        loop.tick()
        parts.clock.advance(60.0)
    factors = loop.state.correction.factors
    if not enabled:
        assert factors == {}
        return
    assert factors and all(1.0 < f <= 1.5 * 1.02 for f in factors.values())
    last = optimizer.specs[-1]
    assert {f"{s.name}/{a}": f for s in last.servers for a, f in s.time_scale.items()} == factors
