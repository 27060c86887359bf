"""The tuner's state survives a restart, pairs without a profile get an initial fit, and
tuned profiles reach the spec the optimizer sees (or not, with the keep flag)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from queue_models import get_queue_model
from specs.documents import FleetSpec
from tests.tuner.helpers import CONFIG, NOISE, TRUTH, errors, profile_of
from tuner import ProfileKey, Tuner, TunerConfig, TunerState, merge_profiles, tuned_profiles
from tuner.synthetic import Truth, synthetic_observations

QUEUE = get_queue_model("batch-queue")


def spec_with(*profiles: dict) -> FleetSpec:
    return FleetSpec.model_validate({
        "accelerators": [{"name": "H100", "card_type": "H100", "cost_per_hour": 1.0},
                         {"name": "A100", "card_type": "A100", "cost_per_hour": 0.5}],
        "capacity": {"H100": 4, "A100": 4},
        "profiles": list(profiles),
    })


def test_state_round_trips_and_continues_identically() -> None:
    rng = np.random.default_rng(0)
    observations = synthetic_observations(TRUTH, QUEUE, rng, 12, noise=NOISE)
    tuner = Tuner(CONFIG)
    profiles = [profile_of(TRUTH.scaled(2, 0.5, 2))]
    state, _ = tuner.update(TunerState(), observations[:3], profiles)  # mid warm-up
    restored = TunerState.from_json(state.to_json())
    assert restored == state
    direct, _ = tuner.update(state, observations[3:], profiles)
    resumed, _ = Tuner(CONFIG).update(restored, observations[3:], profiles)
    assert direct.to_json() == resumed.to_json()
    assert json.loads(direct.to_json())["filters"][0]["phase"] == "tracking"


def test_pair_without_profile_is_fitted_then_tracked() -> None:
    rng = np.random.default_rng(4)
    truth = Truth("qwen_2_5_14b", "A100", 10.6, 0.0418, 5.77e-5)
    observations = synthetic_observations(truth, QUEUE, rng, 20, noise=NOISE)
    tuner = Tuner(CONFIG)
    state, reports = tuner.update(TunerState(), observations)
    outcomes = [r.outcome for r in reports]
    assert outcomes[:4] == ["pending"] * 4 and outcomes[4] == "fit"
    assert state.pending == ()
    (found,) = tuned_profiles(state)
    assert found.origin == "fit" and found.updates == 20
    assert max(errors(found, truth)) < 0.10, errors(found, truth)


def test_pending_observations_persist() -> None:
    rng = np.random.default_rng(4)
    truth = Truth("m", "A100", 10.0, 0.04, 6e-5)
    observations = synthetic_observations(truth, QUEUE, rng, 5, noise=NOISE)
    state, _ = Tuner(CONFIG).update(TunerState(), observations[:2])
    state = TunerState.from_json(state.to_json())
    assert len(state.pending) == 2
    state, reports = Tuner(CONFIG).update(state, observations[2:])
    assert reports[-1].outcome == "fit" and state.filters[0].updates == 5


def test_unknown_queue_model_lists_known_names() -> None:
    with pytest.raises(KeyError, match="batch-queue"):
        Tuner(TunerConfig(queue_model="no-such-model"))


def tracked_state() -> TunerState:
    """Three pairs past their warm-up, one observation of each per update (loop tick)."""
    rng = np.random.default_rng(2)
    other = Truth("qwen_2_5_14b", "A100", 10.6, 0.0418, 5.77e-5)
    unknown = Truth("qwen_2_5_14b", "TPU", 10.6, 0.0418, 5.77e-5)
    series = [synthetic_observations(truth, QUEUE, rng, 11, noise=NOISE)
              for truth in (TRUTH, other, unknown)]
    tuner, state = Tuner(CONFIG), TunerState()
    for tick in zip(*series, strict=True):
        state, _ = tuner.update(state, tick, [profile_of(TRUTH.scaled(2, 0.5, 2), max_batch=64)])
    assert {f.phase for f in state.filters} == {"tracking"}
    return state


def test_merge_replaces_configured_and_adds_fitted_profiles() -> None:
    state = tracked_state()
    configured = profile_of(TRUTH.scaled(2, 0.5, 2), max_batch=64).model_dump()
    spec = spec_with(configured)
    merged = merge_profiles(spec, state)
    h100 = merged.profile(TRUTH.model, "H100")
    served = state.filter(ProfileKey(TRUTH.model, "H100")).served_ms
    assert h100 is not None and h100.max_batch == 64
    assert (h100.alpha_ms, h100.beta_ms, h100.gamma_ms) == served
    added = merged.profile("qwen_2_5_14b", "A100")
    assert added is not None and added.max_batch == 128
    assert merged.profile("qwen_2_5_14b", "TPU") is None  # the spec has no such accelerator
    assert spec.profile(TRUTH.model, "H100").alpha_ms == pytest.approx(2 * TRUTH.alpha_ms)
    offline = merge_profiles(spec, state, estimates=True).profile(TRUTH.model, "H100")
    tuned = {(p.model, p.accelerator): p for p in tuned_profiles(state)}
    assert offline.alpha_ms == tuned[(TRUTH.model, "H100")].alpha_ms


def test_keep_configured_profiles_fixed() -> None:
    state = tracked_state()
    configured = profile_of(TRUTH.scaled(2, 0.5, 2), max_batch=64)
    merged = merge_profiles(spec_with(configured.model_dump()), state, keep_configured=True)
    assert merged.profile(TRUTH.model, "H100") == configured
    assert merged.profile("qwen_2_5_14b", "A100") is not None


def test_filters_in_warmup_are_not_merged() -> None:
    rng = np.random.default_rng(2)
    observations = synthetic_observations(TRUTH, QUEUE, rng, 2, noise=NOISE)
    configured = profile_of(TRUTH.scaled(2, 0.5, 2))
    state, _ = Tuner(CONFIG).update(TunerState(), observations, [configured])
    assert state.filters[0].phase == "warmup"
    assert merge_profiles(spec_with(configured.model_dump()), state).profiles == [configured]
