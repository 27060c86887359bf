"""How the simulated router spreads a server's requests: smooth weighted round robin over
variants by router weight, then the least-loaded ready replica of the chosen variant.

Deterministic (no random draws), so a run replays exactly. Pure functions over plain
values; `simulator.cluster` keeps the credit state.

To extend: another policy is a function with the same inputs returning the pick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar


def pick_variant(weights: Mapping[str, float], credit: dict[str, float]) -> str | None:
    """Smooth weighted round robin (nginx): returns the pick and updates `credit` in place.
    Variants with weight <= 0 are never picked; None when no weight is positive."""
    live = {v: w for v, w in weights.items() if w > 0}
    if not live:
        return None
    total = sum(live.values())
    for v, w in live.items():
        credit[v] = credit.get(v, 0.0) + w
    best = max(sorted(live), key=lambda v: credit[v])
    credit[best] -= total
    return best


class _Loaded(Protocol):
    @property
    def load(self) -> int: ...

    @property
    def name(self) -> str: ...


R = TypeVar("R", bound=_Loaded)


def least_loaded(replicas: Sequence[R]) -> R | None:
    """The replica with the fewest running + waiting requests (ties: by name)."""
    if not replicas:
        return None
    return min(replicas, key=lambda r: (r.load, r.name))
