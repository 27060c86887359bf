"""How the simulated router picks a replica for a server's request, by `SimConfig.routing`:

- `least_loaded` (default): the ready replica, over all of the server's variants, with
  the lowest load relative to its capacity: requests running + waiting divided by its max
  batch (ties: fewer requests, then name). A variant the plan under-weighted still gets
  requests while it has room, so wrong planned rates cannot leave one variant queueing
  while another idles.
- `weighted`: smooth weighted round robin over the server's variants by the plan's router
  weights (planned capacity), then the least-loaded ready replica of the chosen variant
  (fewest requests running + waiting, ties by name): the router following the plan's
  shares, kept to compare runs with.

Deterministic (no random draws), so a run replays exactly. Pure functions over plain
values; `simulator.cluster` keeps the credit state and calls the policy registered under
the configured name in `ROUTING`.

To extend: another policy is a function with `RoutePolicy`'s signature, registered in
`ROUTING` under its name, which is also added to `ROUTING_NAMES` (a test checks they
agree).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Protocol

from specs.registry import Registry

RoutingName = Literal["least_loaded", "weighted"]
ROUTING_NAMES: tuple[str, ...] = ("least_loaded", "weighted")
"""The names `SimConfig.routing` accepts, sorted."""


class Routable(Protocol):
    """What routing reads of a replica (`simulator.replica.SimReplica`)."""

    @property
    def name(self) -> str: ...

    @property
    def variant(self) -> str: ...

    @property
    def load(self) -> int: ...

    @property
    def max_batch(self) -> int: ...


RoutePolicy = Callable[
    [Sequence[Routable], Callable[[], Mapping[str, float]], dict[str, float]], Routable | None
]
"""(ready replicas of one server, its variant weights (asked for only when needed), the
server's round-robin credit, updated in place) -> the replica to send to, None if none."""


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


def least_loaded(replicas: Sequence[Routable]) -> Routable | None:
    """The replica with the fewest running + waiting requests (ties: by name)."""
    if not replicas:
        return None
    return min(replicas, key=lambda r: (r.load, r.name))


def relative_load(replica: Routable) -> float:
    """Requests running + waiting per max-batch slot. Exact for ordering: a quotient of
    small integers is correctly rounded, so equal ratios give equal floats and unequal
    ones differ."""
    return replica.load / replica.max_batch


def least_relative_load(replicas: Sequence[Routable]) -> Routable | None:
    """The replica with the lowest load relative to its max batch (ties: fewer
    requests, then name)."""
    if not replicas:
        return None
    return min(replicas, key=lambda r: (relative_load(r), r.load, r.name))


def route_least_loaded(ready: Sequence[Routable], weights: Callable[[], Mapping[str, float]],
                       credit: dict[str, float]) -> Routable | None:
    """`least_loaded`: across every variant, relative to each replica's max batch."""
    return least_relative_load(ready)


def route_weighted(ready: Sequence[Routable], weights: Callable[[], Mapping[str, float]],
                   credit: dict[str, float]) -> Routable | None:
    """`weighted`: a variant by smooth weighted round robin over the variants with a
    ready replica, then its least-loaded replica (any ready one if no weight is
    positive)."""
    present = {r.variant for r in ready}
    live = {v: w for v, w in weights().items() if v in present}
    variant = pick_variant(live, credit)
    chosen = [r for r in ready if r.variant == variant] or ready
    return least_loaded(chosen)


ROUTING: Registry[RoutePolicy] = Registry("simulator routing policy")
ROUTING.register("least_loaded", route_least_loaded)
ROUTING.register("weighted", route_weighted)
