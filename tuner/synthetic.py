"""Synthetic observations from the queue model itself, for tests, benchmarks and demos.

`synthetic_observations(truth, rng, n, ...)` draws n operating points (a load between
`load_range` of the replica's max rate, input and output token means log-uniform in their
ranges), predicts mean TTFT, ITL and running batch with the queue model at the true
parameters, and multiplies each by (1 + noise x standard normal). Pure: the random
generator is passed in.

To extend: another way of choosing operating points is another function returning
`Observation`s; keep the truth and the noise explicit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from queue_models.base import QueueModel
from tuner.observation import Observation
from tuner.observe import ObservationModel


@dataclass(frozen=True)
class Truth:
    """The parameters observations are generated with."""

    model: str
    accelerator: str
    alpha_ms: float
    beta_ms: float
    gamma_ms: float

    def params(self) -> np.ndarray:
        """(alpha, beta, gamma) as an array."""
        return np.array([self.alpha_ms, self.beta_ms, self.gamma_ms], dtype=np.float64)

    def scaled(self, alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0) -> Truth:
        """The same pair with parameters multiplied by the given factors."""
        return Truth(self.model, self.accelerator, self.alpha_ms * alpha,
                     self.beta_ms * beta, self.gamma_ms * gamma)


@dataclass(frozen=True)
class OperatingRange:
    """Where synthetic operating points are drawn from."""

    load_range: tuple[float, float] = (0.1, 0.9)
    in_tokens: tuple[float, float] = (128.0, 4096.0)
    out_tokens: tuple[float, float] = (32.0, 1024.0)
    max_batch: int = 128


def _draw(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = np.log(bounds[0]), np.log(bounds[1])
    return float(np.exp(rng.uniform(low, high)))


def operating_point(truth: Truth, model: QueueModel, rng: np.random.Generator,
                    where: OperatingRange) -> Observation:
    """A noise-free observation at a random operating point."""
    shape = ObservationModel(model)
    base = Observation(model=truth.model, accelerator=truth.accelerator, arrival_rate_rps=1.0,
                       in_tokens=round(_draw(rng, where.in_tokens)),
                       out_tokens=round(_draw(rng, where.out_tokens)),
                       max_batch=where.max_batch, ttft_ms=1.0, itl_ms=1.0, running=1.0)
    max_rate = model.prepare(shape.service_params(truth.params(), base)).max_rate_rps
    rate = float(rng.uniform(*where.load_range)) * max_rate
    perf = shape.performance(truth.params(), base.model_copy(update={"arrival_rate_rps": rate}))
    return base.model_copy(update={"arrival_rate_rps": rate, "ttft_ms": perf.avg_ttft_ms,
                                   "itl_ms": perf.avg_itl_ms, "running": perf.avg_num_in_serv})


def with_noise(obs: Observation, rng: np.random.Generator, noise: float) -> Observation:
    """The observation with each measured mean multiplied by (1 + noise x N(0, 1))."""
    factors = np.maximum(1.0 + noise * rng.standard_normal(3), 0.05)
    return obs.model_copy(update={
        "ttft_ms": obs.ttft_ms * float(factors[0]), "itl_ms": obs.itl_ms * float(factors[1]),
        "running": (obs.running or 0.0) * float(factors[2]) or None})


def synthetic_observations(truth: Truth, model: QueueModel, rng: np.random.Generator, n: int,
                           noise: float = 0.05, where: OperatingRange | None = None,
                           ) -> list[Observation]:
    """n noisy observations at random operating points (see the module docstring)."""
    where = where or OperatingRange()
    return [with_noise(operating_point(truth, model, rng, where), rng, noise) for _ in range(n)]
