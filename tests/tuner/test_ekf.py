"""The filter step on problems with known answers: a linear observation reproduces the
Kalman filter's closed form, the gate rejects by the chi-square quantile, bounds hold."""

from __future__ import annotations

import numpy as np
import pytest

from tuner.config import MeasurementNoise, ParameterNoise, TunerConfig
from tuner.ekf import Belief, Bounds, predict, update

A = np.array([[1.0, 2.0, 0.5], [0.0, 1.0, 3.0]])
WIDE = Bounds(np.full(3, -100.0), np.full(3, 100.0))


def linear(x: np.ndarray) -> np.ndarray:
    return A @ x


def test_predict_adds_process_noise() -> None:
    belief = Belief(np.array([1.0, 2.0, 3.0]), np.eye(3))
    out = predict(belief, np.eye(3) * 0.25)
    assert np.allclose(out.mean, belief.mean) and np.allclose(out.cov, np.eye(3) * 1.25)


@pytest.mark.parametrize("iterations", [1, 5])
def test_linear_update_is_the_kalman_filter(iterations: int) -> None:
    prior = Belief(np.array([0.5, -1.0, 2.0]), np.diag([1.0, 2.0, 0.5]))
    R = np.diag([0.1, 0.2])
    z = np.array([1.0, 4.0])
    result = update(prior, z, linear, lambda _x: A, R, WIDE, iterations=iterations)
    S = A @ prior.cov @ A.T + R
    K = prior.cov @ A.T @ np.linalg.inv(S)
    y = z - A @ prior.mean
    assert result.accepted
    assert np.allclose(result.belief.mean, prior.mean + K @ y)
    assert np.allclose(result.belief.cov, (np.eye(3) - K @ A) @ prior.cov)
    assert result.nis == pytest.approx(float(y @ np.linalg.solve(S, y)))


def test_gate_rejects_and_keeps_the_prior() -> None:
    prior = Belief(np.zeros(3), np.eye(3) * 0.01)
    R = np.eye(2) * 0.01
    far = update(prior, np.array([5.0, 5.0]), linear, lambda _x: A, R, WIDE, gate=9.21)
    assert not far.accepted and far.nis > 9.21 and far.belief is prior
    near = update(prior, np.array([0.05, 0.05]), linear, lambda _x: A, R, WIDE, gate=9.21)
    assert near.accepted


def test_update_clamps_to_bounds() -> None:
    prior = Belief(np.zeros(3), np.eye(3))
    bounds = Bounds(np.full(3, -0.1), np.full(3, 0.1))
    result = update(prior, np.array([50.0, 50.0]), linear, lambda _x: A, np.eye(2) * 0.01,
                    bounds, iterations=3)
    assert np.all(result.belief.mean <= 0.1 + 1e-12) and np.all(result.belief.mean >= -0.1)


def test_nonlinear_iterations_get_closer_than_one_step() -> None:
    def h(x: np.ndarray) -> np.ndarray:
        return np.exp(x[:2]) + x[2]

    def jac(x: np.ndarray) -> np.ndarray:
        return np.array([[np.exp(x[0]), 0.0, 1.0], [0.0, np.exp(x[1]), 1.0]])

    truth = np.array([1.0, 0.5, 0.0])
    prior = Belief(np.array([0.0, 0.0, 0.0]), np.diag([4.0, 4.0, 1e-6]))
    R = np.eye(2) * 1e-6
    plain = update(prior, h(truth), h, jac, R, WIDE, iterations=1)
    iterated = update(prior, h(truth), h, jac, R, WIDE, iterations=10)
    assert np.abs(iterated.belief.mean - truth).max() < 1e-3
    assert np.abs(plain.belief.mean - truth).max() > 0.1


def test_config_noise_and_gate() -> None:
    config = TunerConfig(measurement_noise=MeasurementNoise(ttft=0.1, itl=0.05, running=0.2),
                         process_noise=ParameterNoise.uniform(0.02))
    assert config.gate_threshold(2) == pytest.approx(9.2103, rel=1e-4)  # chi2 99%, 2 dof
    assert config.gate_threshold(3) == pytest.approx(11.3449, rel=1e-4)
    assert np.allclose(config.measurement_noise.stds(True), np.log1p([0.1, 0.05, 0.2]))
    assert np.allclose(config.process_noise.variances(), np.log1p(0.02) ** 2)
