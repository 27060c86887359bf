"""What the optimizer sees of the tuner is bounded: only filters that track are merged,
the merged parameters move at most `max_merged_step` (5%) per update and stay within
`bounds_factor` (10x) of the configured profile, and a burst of outliers cannot move them
faster. The loop's start in the evaluation is modelled: profiles configured 30% faster
than the hardware."""

from __future__ import annotations

import math

import numpy as np
import pytest

from queue_models import get_queue_model
from specs.documents import FleetSpec
from tests.tuner.helpers import CONFIG, NOISE, TRUTH, profile_of
from tuner import Observation, ProfileKey, Tuner, TunerConfig, TunerState, merge_profiles
from tuner.ekf import Bounds
from tuner.served import bounded_step
from tuner.synthetic import Truth, synthetic_observations

QUEUE = get_queue_model("batch-queue")
SLOWER = TRUTH.scaled(1.3, 1.3, 1.3)
"""The hardware: 30% slower than the configured profile (TRUTH) on every parameter."""
STEP = math.log(1.05) + 1e-9


def spec_with(*profiles: dict) -> FleetSpec:
    return FleetSpec.model_validate({
        "accelerators": [{"name": "H100", "card_type": "H100", "cost_per_hour": 1.0},
                         {"name": "A100", "card_type": "A100", "cost_per_hour": 0.5}],
        "capacity": {"H100": 4, "A100": 4},
        "profiles": list(profiles),
    })


def merged(spec: FleetSpec, state: TunerState, model: str, accelerator: str) -> np.ndarray:
    profile = merge_profiles(spec, state).profile(model, accelerator)
    assert profile is not None
    return np.array([profile.alpha_ms, profile.beta_ms, profile.gamma_ms])


def ticks(tuner: Tuner, state: TunerState, batches: list[list[Observation]], spec: FleetSpec,
          ) -> tuple[TunerState, list[np.ndarray], list[str]]:
    """One `update` per batch (a loop tick); the merged H100 parameters after each."""
    seen, outcomes = [], []
    for batch in batches:
        state, reports = tuner.update(state, batch, spec.profiles)
        outcomes += [r.outcome for r in reports]
        seen.append(merged(spec, state, TRUTH.model, "H100"))
    return state, seen, outcomes


def steps(path: list[np.ndarray]) -> np.ndarray:
    """|log change| of each parameter from one tick to the next."""
    return np.abs(np.diff(np.log(np.array(path)), axis=0))


def test_converges_to_a_slower_profile_at_most_5_percent_per_update() -> None:
    configured = profile_of(TRUTH)
    spec = spec_with(configured.model_dump())
    rng = np.random.default_rng(7)
    observations = synthetic_observations(SLOWER, QUEUE, rng, 50, noise=NOISE)
    batches = [observations[i:i + 2] for i in range(0, 50, 2)]  # two replicas per tick
    state, path, _ = ticks(Tuner(CONFIG), TunerState(), batches, spec)
    start = np.array([configured.alpha_ms, configured.beta_ms, configured.gamma_ms])
    path = [start, *path]
    assert steps(path).max() <= STEP, steps(path).max(axis=1)
    assert state.filters[0].phase == "tracking"
    error = np.abs(path[-1] / SLOWER.params() - 1)
    assert error.max() < 0.08, error
    first = next(i for i, p in enumerate(path) if np.any(p != start))
    assert first >= 3  # nothing merged during the 5-observation warm-up (ticks 1-2)


def test_warmup_filters_are_never_merged() -> None:
    """A pair without a profile is fitted after 5 observations and warms up for 5 more: it
    reaches the spec only once it tracks, and then at its estimate (nothing better)."""
    rng = np.random.default_rng(4)
    truth = Truth(TRUTH.model, "A100", 10.6, 0.0418, 5.77e-5)
    spec = spec_with(profile_of(TRUTH).model_dump())
    tuner, state = Tuner(CONFIG), TunerState()
    for i, obs in enumerate(synthetic_observations(truth, QUEUE, rng, 11, noise=NOISE)):
        state, _ = tuner.update(state, [obs], spec.profiles)
        found = merge_profiles(spec, state).profile(truth.model, "A100")
        phase = state.filters[0].phase if state.filters else "pending"
        assert (found is None) == (phase != "tracking"), (i, phase)
    found = merge_profiles(spec, state).profile(truth.model, "A100")
    assert found is not None
    assert (found.alpha_ms, found.beta_ms, found.gamma_ms) == pytest.approx(
        state.filter(ProfileKey(truth.model, "A100")).params_ms)


def outlier(obs: Observation) -> Observation:
    return obs.model_copy(update={"ttft_ms": obs.ttft_ms * 6.0, "itl_ms": obs.itl_ms * 2.5})


def test_a_burst_of_outliers_moves_the_merged_profile_at_most_one_step_per_update() -> None:
    configured = profile_of(TRUTH)
    spec = spec_with(configured.model_dump())
    rng = np.random.default_rng(11)
    clean = synthetic_observations(SLOWER, QUEUE, rng, 40, noise=NOISE)
    tuner = Tuner(CONFIG)
    state, before, _ = ticks(tuner, TunerState(), [[o] for o in clean[:25]], spec)
    assert np.abs(before[-1] / SLOWER.params() - 1).max() < 0.1
    burst = [[outlier(o)] for o in clean[25:30]] + [[o] for o in clean[30:]]
    state, after, outcomes = ticks(tuner, state, burst, spec)
    assert "reset" in outcomes[:5]  # the burst was taken for a change: warm-up again
    path = [before[-1], *after]
    assert steps(path).max() <= STEP, steps(path).max(axis=1)


def test_merged_parameters_stay_within_10x_of_the_configured_profile() -> None:
    """The hardware is 20x slower than configured; even with a 100% step the merged
    profile stops at 10x."""
    config = CONFIG.model_copy(update={"max_merged_step": 1.0})
    configured = profile_of(TRUTH)
    spec = spec_with(configured.model_dump())
    rng = np.random.default_rng(3)
    observations = synthetic_observations(TRUTH.scaled(20, 20, 20), QUEUE, rng, 14,
                                          noise=NOISE)
    _, path, _ = ticks(Tuner(config), TunerState(), [[o] for o in observations], spec)
    ratio = path[-1] / TRUTH.params()
    assert np.all(ratio <= 10.0 * (1 + 1e-9)) and np.all(ratio >= 0.1 * (1 - 1e-9)), ratio
    assert ratio.max() > 5.0  # it did move toward the slow hardware


def test_bounded_step() -> None:
    box = Bounds(np.log([0.1, 0.1, 0.1]), np.log([10.0, 10.0, 10.0]))
    served = np.zeros(3)
    moved = bounded_step(served, np.log([2.0, 1.01, 100.0]), 0.05, box)
    assert np.exp(moved) == pytest.approx([1.05, 1.01, 1.05])
    near = bounded_step(np.log([9.9, 1.0, 1.0]), np.log([100.0, 0.5, 1.0]), 0.05, box)
    assert np.exp(near) == pytest.approx([10.0, 1 / 1.05, 1.0])


def test_step_is_a_described_config_field() -> None:
    field = TunerConfig.model_fields["max_merged_step"]
    assert TunerConfig().max_merged_step == 0.05 and "5%" in (field.description or "")
