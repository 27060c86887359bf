"""The extended Kalman filter step, the only module that uses filterpy.

`predict(belief, process_cov)` is the random-walk prediction (F = I, P += Q).
`update(prior, z, h, jacobian, R, bounds, gate)` is one measurement update:

1. linearise at the prior mean and compute the innovation y = z - h(x), its covariance
   S = H P H' + R and the normalised innovation squared NIS = y' S^-1 y;
2. if a gate is given and NIS exceeds it, reject: the posterior is the prior;
3. otherwise iterate the linearisation point Gauss-Newton style (the iterated EKF; with
   `iterations=1` it is the plain EKF), then let filterpy's `ExtendedKalmanFilter.update`
   apply the final linearisation (Joseph-form covariance), and clamp the mean to bounds.

The iterated form matters here: the observation function is strongly nonlinear far from
the truth (a profile 2x off predicts a saturated replica), and one linearisation at a bad
prior overshoots.

The state is a plain `Belief` (mean vector, covariance matrix); callers keep their own
typed state (`tuner.state`) and convert. To extend (e.g. an unscented filter), add a
function with the same inputs and outputs and select it in `tuner.tuner`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from filterpy.kalman import ExtendedKalmanFilter

from queue_models.base import FloatArray

Function = Callable[[FloatArray], FloatArray]
_CONVERGED = 1e-5


@dataclass(frozen=True)
class Belief:
    """A Gaussian belief over the (log) parameters."""

    mean: FloatArray
    cov: FloatArray


@dataclass(frozen=True)
class Bounds:
    """Box bounds on the state (log parameters)."""

    lower: FloatArray
    upper: FloatArray

    def clamp(self, x: FloatArray) -> FloatArray:
        """x clipped into the box."""
        return np.clip(x, self.lower, self.upper)


@dataclass(frozen=True)
class UpdateResult:
    """The outcome of one measurement update."""

    belief: Belief
    accepted: bool
    nis: float
    innovation: FloatArray


def _filter(belief: Belief, dim_z: int) -> ExtendedKalmanFilter:
    ekf = ExtendedKalmanFilter(dim_x=len(belief.mean), dim_z=dim_z)
    ekf.x = np.array(belief.mean, dtype=np.float64)
    ekf.P = np.array(belief.cov, dtype=np.float64)
    return ekf


def predict(belief: Belief, process_cov: FloatArray) -> Belief:
    """Random-walk prediction: the mean stays, the covariance grows by Q."""
    ekf = _filter(belief, 1)
    ekf.Q = np.asarray(process_cov, dtype=np.float64)
    ekf.predict()
    return Belief(ekf.x.copy(), ekf.P.copy())


def innovation(prior: Belief, z: FloatArray, h: Function, jacobian: Function,
               noise_cov: FloatArray) -> tuple[FloatArray, float, FloatArray, FloatArray]:
    """(y, NIS, H, h(x)) linearised at the prior mean."""
    H = jacobian(prior.mean)
    hx = h(prior.mean)
    y = z - hx
    S = H @ prior.cov @ H.T + noise_cov
    nis = float(y @ np.linalg.solve(S, y))
    return y, nis, H, hx


def _iterate(prior: Belief, z: FloatArray, h: Function, jacobian: Function,
             noise_cov: FloatArray, H: FloatArray, hx: FloatArray, bounds: Bounds,
             iterations: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Iterated-EKF linearisation point; returns (x_i, H(x_i), h(x_i))."""
    x, P = prior.mean, prior.cov
    xi = x
    for i in range(iterations - 1):
        if i:
            H, hx = jacobian(xi), h(xi)
        gain = P @ H.T @ np.linalg.inv(H @ P @ H.T + noise_cov)
        nxt = bounds.clamp(x + gain @ (z - hx - H @ (x - xi)))
        step = float(np.max(np.abs(nxt - xi)))
        xi = nxt
        if step < _CONVERGED:
            break
    if iterations > 1:
        H, hx = jacobian(xi), h(xi)
    return xi, H, hx


def update(prior: Belief, z: FloatArray, h: Function, jacobian: Function,
           noise_cov: FloatArray, bounds: Bounds, gate: float | None = None,
           iterations: int = 1) -> UpdateResult:
    """One measurement update (see the module docstring); never raises on a rejection."""
    y, nis, H, hx = innovation(prior, z, h, jacobian, noise_cov)
    if gate is not None and nis > gate:
        return UpdateResult(prior, False, nis, y)
    xi, Hi, hxi = _iterate(prior, z, h, jacobian, noise_cov, H, hx, bounds, iterations)
    x0 = prior.mean
    ekf = _filter(prior, len(z))
    ekf.R = np.asarray(noise_cov, dtype=np.float64)
    # filterpy computes x + K (z - Hx(x)); the linearisation at xi evaluated at x gives
    # the iterated-EKF update x + K (z - h(xi) - H (x - xi)).
    ekf.update(np.asarray(z, dtype=np.float64), lambda _x: Hi,
               lambda _x: hxi + Hi @ (x0 - xi))
    mean = bounds.clamp(np.asarray(ekf.x, dtype=np.float64).reshape(-1))
    cov = np.asarray(ekf.P, dtype=np.float64)
    cov = (cov + cov.T) / 2.0
    return UpdateResult(Belief(mean, cov), True, nis, y)
