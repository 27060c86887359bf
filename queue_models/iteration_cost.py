"""Iteration-cost laws: how long one batched iteration of a replica takes.

`IterationCost` is what `queue_models.engine.BatchEngine` asks for every iteration it
plans, with four counts of the iteration (all in tokens or requests, never times):

- decode_requests: decode slots (requests generating one token each);
- decode_context_tokens: the sum of their context tokens (prompt + tokens generated,
  counting the one being generated);
- prefill_tokens: prompt tokens processed in prefill chunks;
- prefill_context_tokens: the sum over chunks of the prompt tokens done after the chunk
  (the engine's `p`, see `queue_models.engine`).

`LinearCost` is the profile's law (inferno's batch-queue v0.8 model), the engine's
default: alpha + beta (decode_requests + prefill_tokens) + gamma (decode_context_tokens +
prefill_context_tokens), in ms.

A law is called once per iteration, in iteration order, and may keep state (a law that
adds noise draws one factor per call), so a driver that fuses iterations must still call
it once per iteration with the same counts.

`NoisyCost` wraps a law with seeded multiplicative noise (lognormal factors with mean 1,
one per call): the simulator's replicas and the capacity calibration's replays use it to
mimic iteration-time jitter.

To extend: a new law is any object with `duration_ms` of this signature (e.g. a measured
timing table, `simulator.timing.TableLaw`), passed as `EngineConfig.law`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

_BLOCK = 1024


@runtime_checkable
class IterationCost(Protocol):
    """The duration of one iteration from its composition (see the module docstring)."""

    def duration_ms(self, decode_requests: int, decode_context_tokens: int,
                    prefill_tokens: int, prefill_context_tokens: int) -> float:
        """Milliseconds the iteration takes (>= 0)."""
        ...


@dataclass(frozen=True, slots=True)
class LinearCost:
    """The profile law: alpha + beta x tokens + gamma x attention tokens (ms)."""

    alpha_ms: float
    beta_ms: float
    gamma_ms: float

    def duration_ms(self, decode_requests: int, decode_context_tokens: int,
                    prefill_tokens: int, prefill_context_tokens: int) -> float:
        """alpha + beta (decode requests + prefill tokens) + gamma (their contexts)."""
        return (self.alpha_ms + self.beta_ms * (decode_requests + prefill_tokens)
                + self.gamma_ms * (decode_context_tokens + prefill_context_tokens))


def time_scale(law: IterationCost, reference: IterationCost, in_tokens: float,
               out_tokens: float, batch: int = 16) -> float:
    """How many times slower `law` is than `reference` on a typical iteration mix: the
    geometric mean of the ratios of a decode step of `batch` requests (mean context) and
    of a mean prompt's prefill (at least 1 token)."""
    context = int(batch * (in_tokens + out_tokens / 2))
    prompt = max(int(round(in_tokens)), 1)
    ratios = []
    for args in ((batch, context, 0, 0), (0, 0, prompt, prompt)):
        mine, theirs = law.duration_ms(*args), reference.duration_ms(*args)
        if mine > 0 and theirs > 0:
            ratios.append(mine / theirs)
    return math.sqrt(ratios[0] * ratios[1]) if len(ratios) == 2 else (ratios or [1.0])[0]


def lognormal_factors(cv: float, rng: np.random.Generator) -> Iterator[float]:
    """Endless lognormal factors with mean 1 and coefficient of variation `cv`."""
    sigma2 = math.log1p(cv * cv)
    mu, sigma = -sigma2 / 2.0, math.sqrt(sigma2)
    while True:
        yield from rng.lognormal(mu, sigma, _BLOCK).tolist()


class NoisyCost:
    """`base`'s duration times the next factor (one factor per call)."""

    def __init__(self, base: IterationCost, factors: Iterator[float]) -> None:
        self.base = base
        self._next = factors.__next__

    def duration_ms(self, decode_requests: int, decode_context_tokens: int,
                    prefill_tokens: int, prefill_context_tokens: int) -> float:
        """The base law's duration times one lognormal factor."""
        return self.base.duration_ms(decode_requests, decode_context_tokens, prefill_tokens,
                                     prefill_context_tokens) * self._next()
