"""The observation function of the tuner: what the queue model says a replica should show.

`ObservationModel.predict(theta, obs)` evaluates the queue model with parameters
exp(theta) = (alpha, beta, gamma) at the observation's operating point (per-replica
arrival rate, token means, max batch, max queue) and returns the logarithms of the mean
TTFT, mean ITL and, when the observation has it, the mean running batch (the chain's mean
number in service). `measured(obs)` gives the same vector from the measurement, and
`jacobian` the derivative of `predict` by central finite differences in theta.

Working in logarithms on both sides makes every noise level relative, keeps parameters
positive without constraints, and conditions the problem (alpha is ~10 ms, gamma ~1e-4 ms
per token^2: five orders of magnitude apart in linear space).

What the observations can identify: at one operating point, mean TTFT, ITL and running
batch are nearly dependent in this model (TTFT + (K - 1) ITL is the mean response time and
running / rate the mean service time, both set by the same (alpha, beta + gamma-work)
combination), so one load level fixes only two combinations of the three parameters;
loads and token mixes that vary from window to window identify all three (see
tests/tuner/test_identifiability.py).

To extend: another observed figure is one more entry in `OBSERVED`, read in `measured`
and `_predict_linear`, and a noise level in `tuner.config.MeasurementNoise`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from queue_models.base import (
    DEFAULT_TOKEN_BUDGET,
    FloatArray,
    Performance,
    QueueModel,
    ServiceParams,
)
from tuner.observation import Observation

OBSERVED = ("ttft_ms", "itl_ms", "running")
"""Observed figures, in the order of the observation vector."""
_FLOOR = 1e-12


class PredictionError(ValueError):
    """The queue model cannot evaluate this observation with these parameters."""


@dataclass(frozen=True)
class ObservationModel:
    """Predicts log [TTFT, ITL, (running)] from log [alpha, beta, gamma]."""

    queue_model: QueueModel
    jacobian_step: float = 0.01
    use_running: bool = True

    def with_running(self, obs: Observation) -> bool:
        """True when the running batch is part of this observation's vector."""
        return self.use_running and obs.running is not None

    def dim(self, obs: Observation) -> int:
        """Length of the observation vector."""
        return 3 if self.with_running(obs) else 2

    def measured(self, obs: Observation) -> FloatArray:
        """log of the measured [TTFT, ITL, (running)]."""
        values = [obs.ttft_ms, obs.itl_ms]
        if self.with_running(obs):
            values.append(float(obs.running or 0.0))
        return np.log(np.maximum(np.array(values, dtype=np.float64), _FLOOR))

    def service_params(self, params: FloatArray, obs: Observation) -> ServiceParams:
        """The queue model's configuration of the observed replica with linear parameters."""
        alpha, beta, gamma = (float(v) for v in params)
        max_queue = obs.max_queue
        if max_queue is None:
            max_queue = self.queue_model.default_max_queue(obs.max_batch)
        return ServiceParams(
            alpha, beta, gamma, obs.in_tokens, obs.out_tokens, obs.max_batch, max_queue,
            obs.token_budget or DEFAULT_TOKEN_BUDGET,
        )

    def performance(self, params: FloatArray, obs: Observation) -> Performance:
        """Predicted steady state at the observation's rate with linear parameters."""
        try:
            queue = self.queue_model.prepare(self.service_params(params, obs))
            return queue.evaluate(obs.arrival_rate_rps)
        except (ValueError, ZeroDivisionError, OverflowError) as exc:
            raise PredictionError(f"cannot evaluate {obs.key}: {exc}") from exc

    def _predict_linear(self, params: FloatArray, obs: Observation) -> list[float]:
        perf = self.performance(params, obs)
        values = [perf.avg_ttft_ms, perf.avg_itl_ms]
        if self.with_running(obs):
            values.append(perf.avg_num_in_serv)
        if not all(math.isfinite(v) for v in values):
            raise PredictionError(f"non-finite prediction for {obs.key}: {values}")
        return values

    def predict(self, theta: FloatArray, obs: Observation) -> FloatArray:
        """log of the predicted [TTFT, ITL, (running)] at log parameters `theta`."""
        values = self._predict_linear(np.exp(theta), obs)
        return np.log(np.maximum(np.array(values, dtype=np.float64), _FLOOR))

    def jacobian(self, theta: FloatArray, obs: Observation) -> FloatArray:
        """d predict / d theta by central differences (rows: observed, columns: parameters)."""
        step = self.jacobian_step
        columns = []
        for i in range(len(theta)):
            delta = np.zeros_like(theta)
            delta[i] = step
            columns.append((self.predict(theta + delta, obs) - self.predict(theta - delta, obs))
                           / (2.0 * step))
        return np.column_stack(columns)
