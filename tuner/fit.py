"""Least-squares fits of the log parameters: the warm-up refit and the initial fit.

`map_fit(prior, observations, ...)` finds the maximum a-posteriori log parameters given a
Gaussian prior and a few observations: it minimises the whitened prior residual plus the
whitened measurement residuals with scipy's bounded trust-region least squares, and
returns the estimate with its Laplace covariance (J'J)^-1. During warm-up the tuner refits
this way after every observation instead of updating recursively, so the first few
observations are not absorbed through a linearisation at a bad starting point.

`initial_fit(observations, ...)` is the same fit for a pair with no profile: a weak prior
(a factor of 20 either way) around a generic start, tried from a few starts spread over
orders of magnitude; the best cost wins.

Warm-up has no innovation gate, so these fits take a robust loss from the configuration
(`TunerConfig.fit_loss`, soft_l1 by default): a residual beyond `fit_loss_scale`
standard deviations pulls linearly, not quadratically, so one wild window cannot drag
the estimate.

To extend: another start or loss goes here; keep `map_fit`'s inputs and outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.optimize import least_squares

from queue_models.base import FloatArray
from tuner.ekf import Belief, Bounds
from tuner.observation import Observation
from tuner.observe import ObservationModel, PredictionError

GENERIC_START = np.log(np.array([10.0, 0.03, 5e-5]))
"""A generic (alpha, beta, gamma) in log ms: a mid-size model on a current GPU."""
START_SCALES = (1.0, 0.2, 5.0)
"""Initial-fit starts: the generic start times each factor."""
FIT_BOUNDS = Bounds(np.log(np.array([1e-3, 1e-7, 1e-10])), np.log(np.array([1e4, 10.0, 1.0])))
"""Absolute bounds of any fit (alpha, beta, gamma in ms)."""
WEAK_PRIOR_STD = float(np.log(20.0))
_PENALTY = 1e3
Loss = Literal["linear", "soft_l1", "huber", "cauchy"]


class _Problem:
    """Whitened residuals (prior, then each observation) and their Jacobian."""

    def __init__(self, model: ObservationModel, observations: Sequence[Observation],
                 noise_std: Sequence[FloatArray], prior: Belief) -> None:
        self.model, self.observations, self.noise_std = model, observations, noise_std
        self.prior = prior
        self.whiten = np.linalg.cholesky(np.linalg.inv(prior.cov)).T

    def residuals(self, theta: FloatArray) -> FloatArray:
        parts = [self.whiten @ (theta - self.prior.mean)]
        for obs, std in zip(self.observations, self.noise_std, strict=True):
            try:
                parts.append((self.model.measured(obs) - self.model.predict(theta, obs)) / std)
            except PredictionError:
                parts.append(np.full(self.model.dim(obs), _PENALTY))
        return np.concatenate(parts)

    def jacobian(self, theta: FloatArray) -> FloatArray:
        parts = [self.whiten]
        for obs, std in zip(self.observations, self.noise_std, strict=True):
            try:
                parts.append(-self.model.jacobian(theta, obs) / std[:, None])
            except PredictionError:
                parts.append(np.zeros((self.model.dim(obs), len(theta))))
        return np.vstack(parts)


def map_fit(prior: Belief, observations: Sequence[Observation], model: ObservationModel,
            noise_std: Sequence[FloatArray], bounds: Bounds,
            start: FloatArray | None = None, loss: Loss = "linear",
            loss_scale: float = 3.0) -> tuple[Belief, float]:
    """MAP estimate and Laplace covariance; returns (belief, final cost). A robust `loss`
    (scipy's soft_l1, huber, cauchy) bounds the pull of residuals beyond `loss_scale`
    standard deviations."""
    problem = _Problem(model, observations, noise_std, prior)
    x0 = bounds.clamp(prior.mean if start is None else start)
    lower, upper = bounds.lower, bounds.upper
    x0 = np.minimum(np.maximum(x0, lower + 1e-9), upper - 1e-9)
    solution = least_squares(problem.residuals, x0, jac=problem.jacobian,
                             bounds=(lower, upper), method="trf", x_scale="jac", max_nfev=100,
                             loss=loss, f_scale=loss_scale)
    J = solution.jac
    cov = np.linalg.pinv(J.T @ J)
    cov = (cov + cov.T) / 2.0
    return Belief(np.asarray(solution.x, dtype=np.float64), cov), float(solution.cost)


def weak_prior() -> Belief:
    """The prior of an initial fit: the generic start, a factor of 20 either way."""
    return Belief(GENERIC_START.copy(), np.eye(3) * WEAK_PRIOR_STD**2)


def initial_fit(observations: Sequence[Observation], model: ObservationModel,
                noise_std: Sequence[FloatArray], loss: Loss = "linear",
                loss_scale: float = 3.0) -> Belief:
    """Fit a pair with no profile from a few starts (see the module docstring)."""
    prior = weak_prior()
    best: tuple[Belief, float] | None = None
    for scale in START_SCALES:
        start = GENERIC_START + np.log(scale)
        found = map_fit(prior, observations, model, noise_std, FIT_BOUNDS, start, loss,
                        loss_scale)
        if best is None or found[1] < best[1]:
            best = found
    assert best is not None
    return best[0]
