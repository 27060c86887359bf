"""What mean TTFT, ITL and running batch can and cannot tell about alpha, beta and gamma.

At ONE operating point (one load, one token mix) the three parameters are not
identifiable, with or without the running batch: in the queue model TTFT + (K - 1) ITL is
the mean response time and running / rate the mean service time, and away from heavy
queueing both are set by the same combination of the parameters. The Jacobian of the
observation has a near-null direction, and a filter fed the same operating point over and
over fits the measurements while the parameters drift along that direction (shown here
for two observations and, alike, for three).

Across operating points that vary from window to window, as loads and request mixes do,
all three are identifiable, and the running batch adds information (the Fisher
information's weakest direction grows).
"""

from __future__ import annotations

import numpy as np
import pytest

from queue_models import get_queue_model
from tests.tuner.helpers import CONFIG, NOISE, TRUTH, errors, profile_of
from tuner import ObservationModel, TunedProfile, Tuner, TunerState, tuned_profiles
from tuner.observation import Observation
from tuner.synthetic import OperatingRange, operating_point, synthetic_observations, with_noise

QUEUE = get_queue_model("batch-queue")
ONE_POINT = OperatingRange(load_range=(0.5, 0.5), in_tokens=(512, 512), out_tokens=(256, 256))
THETA = np.log(TRUTH.params())


def jacobian(obs: Observation, with_running: bool) -> np.ndarray:
    model = ObservationModel(QUEUE, jacobian_step=1e-4, use_running=with_running)
    return model.jacobian(THETA, obs)


def singular_values(rows: np.ndarray) -> np.ndarray:
    return np.linalg.svd(rows, compute_uv=False)


@pytest.mark.parametrize("with_running", [False, True])
def test_one_operating_point_leaves_a_direction_unobserved(with_running: bool) -> None:
    obs = operating_point(TRUTH, QUEUE, np.random.default_rng(0), ONE_POINT)
    values = singular_values(jacobian(obs, with_running))
    if not with_running:
        assert len(values) == 2  # two observations, three parameters: rank 2 at most
    else:
        assert values[-1] < 1e-3 * values[0], values  # running adds (almost) nothing here


def tune(observations: list[Observation], start: tuple[float, float, float]) -> TunedProfile:
    state, _ = Tuner(CONFIG).update(TunerState(), observations, [profile_of(TRUTH.scaled(*start))])
    return tuned_profiles(state)[0]


def params(found: TunedProfile) -> np.ndarray:
    return np.array([found.alpha_ms, found.beta_ms, found.gamma_ms])


@pytest.mark.parametrize("with_running", [False, True])
def test_filter_at_one_operating_point_fits_but_drifts(with_running: bool) -> None:
    """The same operating point 40 times: from two starts (2x and 0.5x) the filter fits the
    measurements both times but ends at different parameters, and says it is unsure."""
    rng = np.random.default_rng(5)
    point = operating_point(TRUTH, QUEUE, rng, ONE_POINT)
    observations = [with_noise(point, rng, NOISE) for _ in range(40)]
    if not with_running:
        observations = [o.model_copy(update={"running": None}) for o in observations]
    model = ObservationModel(QUEUE)
    ends = [tune(observations, start) for start in ((2, 2, 2), (0.5, 0.5, 0.5))]
    for found in ends:
        predicted = model.performance(params(found), point)
        assert predicted.avg_ttft_ms == pytest.approx(point.ttft_ms, rel=0.05)
        assert predicted.avg_itl_ms == pytest.approx(point.itl_ms, rel=0.05)
        assert max(found.alpha_rel_std, found.beta_rel_std, found.gamma_rel_std) > 0.25
    spread = np.abs(params(ends[0]) / params(ends[1]) - 1)
    assert spread.max() > 0.25, spread


def test_varying_operating_points_pin_the_parameters() -> None:
    """The same number of observations at varying operating points: both starts agree."""
    rng = np.random.default_rng(5)
    observations = synthetic_observations(TRUTH, QUEUE, rng, 40, noise=NOISE)
    ends = [tune(observations, start) for start in ((2, 2, 2), (0.5, 0.5, 0.5))]
    for found in ends:
        assert max(errors(found, TRUTH)) < 0.10
        assert max(found.alpha_rel_std, found.beta_rel_std, found.gamma_rel_std) < 0.10
    assert np.abs(params(ends[0]) / params(ends[1]) - 1).max() < 0.02


def test_varying_operating_points_identify_all_three() -> None:
    rng = np.random.default_rng(1)
    points = [operating_point(TRUTH, QUEUE, rng, OperatingRange()) for _ in range(15)]
    for with_running in (False, True):
        stacked = np.vstack([jacobian(p, with_running) for p in points])
        values = singular_values(stacked)
        assert values[-1] > 0.05 * values[0], values
    two = np.vstack([jacobian(p, False) for p in points]) / NOISE
    three = np.vstack([jacobian(p, True) for p in points]) / NOISE
    weakest_two = np.linalg.eigvalsh(two.T @ two)[0]
    weakest_three = np.linalg.eigvalsh(three.T @ three)[0]
    assert weakest_three > 1.1 * weakest_two


def test_running_batch_does_not_hurt_convergence() -> None:
    worst = {}
    for with_running in (False, True):
        results = []
        for seed in range(8):
            rng = np.random.default_rng(seed)
            observations = synthetic_observations(TRUTH, QUEUE, rng, 15, noise=NOISE)
            if not with_running:
                observations = [o.model_copy(update={"running": None}) for o in observations]
            state, _ = Tuner(CONFIG).update(TunerState(), observations,
                                            [profile_of(TRUTH.scaled(2, 0.5, 2))])
            results.append(max(errors(tuned_profiles(state)[0], TRUTH)))
        worst[with_running] = float(np.median(results))
    assert worst[True] <= worst[False] * 1.1, worst
