"""`session_affinity`: consistent hashing of a session key, with bounded load.

Each candidate owns `PolicyOptions.affinity_vnodes` points on a 64-bit hash ring (BLAKE2b
of `url#i`); a request's session key (the router takes it from the session header, or
the body's `user`) hashes to a point and goes to the first replica clockwise. So a
session stays on one replica while that replica is a candidate, and when a replica
leaves (ejected, removed) only its sessions move.

Spill-over ("consistent hashing with bounded loads", Mirrokni et al. 2018): a replica is
overloaded when its outstanding requests reach max(`affinity_min_load`,
ceil(`affinity_load_factor` x (outstanding of all candidates + 1) / candidates)); the
request then walks on clockwise to the next replica that is not. If all are, it goes to
the least loaded. Requests without a session key go to the least loaded candidate.

Rings are cached per candidate set (a few sets are live at once: the healthy replicas,
and the same minus a replica being retried around).

To extend: a different hash or spill rule changes `_ring` or `_spill_bound`.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections import OrderedDict
from collections.abc import Sequence

from serving.routing.base import (
    POLICIES,
    Backend,
    PolicyOptions,
    RouteRequest,
    least_outstanding,
)

_RING_CACHE_SIZE = 8


def hash64(text: str) -> int:
    """A stable 64-bit hash (the same in every process and run)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class SessionAffinity:
    """Consistent hashing on the session key with bounded-load spill-over."""

    def __init__(self, options: PolicyOptions, rng: random.Random) -> None:
        self._options = options
        self._rings: OrderedDict[tuple[str, ...], tuple[list[int], list[str]]] = OrderedDict()
        self._turn = 0

    def choose(self, request: RouteRequest, candidates: Sequence[Backend], now: float,
               ) -> Backend:
        """The session's home replica, or the next one that is not overloaded."""
        if request.session_key is None or len(candidates) == 1:
            self._turn += 1
            return least_outstanding(candidates, self._turn)
        by_url = {b.url: b for b in candidates}
        points, owners = self._ring(tuple(by_url))
        bound = self._spill_bound(candidates)
        start = bisect.bisect(points, hash64(request.session_key))
        seen: set[str] = set()
        for i in range(len(points)):
            url = owners[(start + i) % len(points)]
            if url in seen:
                continue
            backend = by_url[url]
            if backend.outstanding < bound:
                return backend
            seen.add(url)
            if len(seen) == len(by_url):
                break
        return least_outstanding(candidates, 0)

    def _spill_bound(self, candidates: Sequence[Backend]) -> int:
        total = sum(b.outstanding for b in candidates)
        fair = math.ceil(self._options.affinity_load_factor * (total + 1) / len(candidates))
        return max(self._options.affinity_min_load, fair)

    def _ring(self, urls: tuple[str, ...]) -> tuple[list[int], list[str]]:
        ring = self._rings.get(urls)
        if ring is not None:
            self._rings.move_to_end(urls)
            return ring
        pairs = sorted((hash64(f"{url}#{i}"), url)
                       for url in urls for i in range(self._options.affinity_vnodes))
        ring = ([p for p, _ in pairs], [u for _, u in pairs])
        self._rings[urls] = ring
        if len(self._rings) > _RING_CACHE_SIZE:
            self._rings.popitem(last=False)
        return ring


POLICIES.register("session_affinity", SessionAffinity)
