"""`least_loaded`: the candidate with the fewest requests in flight per max-batch slot,
across all of a model's variants (the default when backends come from a plan).

A backend's load is its outstanding requests (from this router) divided by its max batch
(`Backend.max_batch`: the plan's max batch for its variant, or what a backends document
or a registering worker says). Unlike `weighted`, it does not follow the plan's shares:
when the planned rates are off, the variant the plan under-weighted still takes requests
while it has free slots, instead of one variant queueing while another idles. Ties go to
fewer outstanding requests, then to the first found scanning from a rotating start (as
`least_outstanding`, so an idle fleet is used evenly). Loads are compared exactly
(cross-multiplied integers), so equal ratios are ties.

When any candidate's max batch is unknown, a ratio against a guessed capacity could
flood or starve it, so the choice falls back to outstanding requests alone
(`least_outstanding`).

To extend: another capacity measure (e.g. KV cache tokens) replaces `_lighter`.
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


def _lighter(a: Backend, b: Backend) -> bool:
    """True when `a` has fewer requests per max-batch slot than `b` (then fewer requests).
    Both max batches must be known."""
    left = a.outstanding * (b.max_batch or 1)
    right = b.outstanding * (a.max_batch or 1)
    return left < right or (left == right and a.outstanding < b.outstanding)


def least_relative_load(candidates: Sequence[Backend], start: int) -> Backend:
    """The candidate with the lowest outstanding / max batch (every max batch known);
    ties (same ratio and outstanding) go to the first found scanning from `start`."""
    n = len(candidates)
    best = candidates[start % n]
    for i in range(1, n):
        backend = candidates[(start + i) % n]
        if _lighter(backend, best):
            best = backend
    return best


class LeastLoaded:
    """Fewest requests per max-batch slot across variants; ties rotate."""

    def __init__(self, options: PolicyOptions, rng: random.Random) -> None:
        self._turn = 0

    def choose(self, request: RouteRequest, candidates: Sequence[Backend], now: float,
               ) -> Backend:
        """The least loaded candidate relative to its max batch (see the docstring)."""
        self._turn += 1
        if any(b.max_batch is None for b in candidates):
            return least_outstanding(candidates, self._turn)
        return least_relative_load(candidates, self._turn)


POLICIES.register("least_loaded", LeastLoaded)
