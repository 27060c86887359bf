"""`weighted`: the plan's weights across variants, then least-outstanding inside a variant.

A variant's weight is the `weight` its backends carry (the optimizer's router weight for
that variant; backends of one variant carry the same weight, which the backends document
checks). A backend without a variant is its own variant; a missing weight counts as 1.
Only variants with a candidate take part, so when a variant has no healthy replica its
share goes to the others in proportion to their weights; if every weight is 0, the
variants share equally.

Variants are picked by smooth weighted round-robin (nginx's rule): every pick adds each
variant's weight to its credit and takes the variant with the most credit (ties by name),
which then pays the total. Over any run of picks the shares follow the weights exactly
(within one pick per variant), with the picks interleaved rather than in bursts, where a
random draw would be off by a few percent over a few thousand requests.

To extend: a different variant rule replaces `_pick_variant`.
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


def variant_weight(backend: Backend) -> float:
    """The weight a backend's variant carries (1 when none is given)."""
    return 1.0 if backend.weight is None else backend.weight


class Weighted:
    """Smooth weighted round-robin over variants, least-outstanding within one."""

    def __init__(self, options: PolicyOptions, rng: random.Random) -> None:
        self._credit: dict[str, float] = {}
        self._turn = 0

    def choose(self, request: RouteRequest, candidates: Sequence[Backend], now: float,
               ) -> Backend:
        """Pick a variant by weight, then its least loaded replica."""
        groups: dict[str, list[Backend]] = {}
        for backend in candidates:
            groups.setdefault(backend.variant, []).append(backend)
        variant = self._pick_variant({v: variant_weight(g[0]) for v, g in groups.items()})
        self._turn += 1
        return least_outstanding(groups[variant], self._turn)

    def _pick_variant(self, weights: dict[str, float]) -> str:
        if len(weights) == 1:
            return next(iter(weights))
        total = sum(weights.values())
        if total <= 0:
            weights = dict.fromkeys(weights, 1.0)
            total = float(len(weights))
        credit = self._credit
        best, best_credit = "", float("-inf")
        for variant in sorted(weights):
            value = credit.get(variant, 0.0) + weights[variant]
            credit[variant] = value
            if value > best_credit:
                best, best_credit = variant, value
        credit[best] -= total
        return best


POLICIES.register("weighted", Weighted)
