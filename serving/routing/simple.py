"""The load-only policies: `round_robin`, `least_outstanding` and `power_of_two`.

- `round_robin`: the next candidate in turn.
- `least_outstanding`: the candidate with the fewest requests in flight from this router
  (ties rotate, so an idle fleet is still used evenly).
- `power_of_two`: two distinct candidates drawn at random, the better one by outstanding
  requests (`PolicyOptions.p2c_metric = "outstanding"`) or by the EWMA of time to first
  byte (`"latency"`; ties fall back to outstanding requests).

They are grouped in one module because each is a few lines; a longer policy gets its own.
To extend: see `serving/routing/base.py`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from serving.routing.base import (
    POLICIES,
    Backend,
    PolicyOptions,
    RouteRequest,
    least_outstanding,
)


class RoundRobin:
    """Each candidate in turn."""

    def __init__(self, options: PolicyOptions, rng: random.Random) -> None:
        self._turn = 0

    def choose(self, request: RouteRequest, candidates: Sequence[Backend], now: float,
               ) -> Backend:
        """The next candidate in turn."""
        backend = candidates[self._turn % len(candidates)]
        self._turn += 1
        return backend


class LeastOutstanding:
    """Fewest requests in flight; ties rotate."""

    def __init__(self, options: PolicyOptions, rng: random.Random) -> None:
        self._turn = 0

    def choose(self, request: RouteRequest, candidates: Sequence[Backend], now: float,
               ) -> Backend:
        """The least loaded candidate."""
        self._turn += 1
        return least_outstanding(candidates, self._turn)


class PowerOfTwo:
    """The better of two random candidates."""

    def __init__(self, options: PolicyOptions, rng: random.Random) -> None:
        self._rng = rng
        self._latency = options.p2c_metric == "latency"

    def choose(self, request: RouteRequest, candidates: Sequence[Backend], now: float,
               ) -> Backend:
        """Two distinct random candidates; the one with the lower metric."""
        n = len(candidates)
        if n == 1:
            return candidates[0]
        i = self._rng.randrange(n)
        j = self._rng.randrange(n - 1)
        j += j >= i
        a, b = candidates[i], candidates[j]
        if self._latency and a.ewma_ttfb_s != b.ewma_ttfb_s:
            return a if a.ewma_ttfb_s < b.ewma_ttfb_s else b
        return a if a.outstanding <= b.outstanding else b


POLICIES.register("round_robin", RoundRobin)
POLICIES.register("least_outstanding", LeastOutstanding)
POLICIES.register("power_of_two", PowerOfTwo)
