"""Admission control: when to answer 429 instead of piling requests onto full replicas.

Pure functions of the router's own accounting:

- `saturated(candidates, max_outstanding)`: every candidate already has
  `max_outstanding` requests in flight from this router (one free candidate is enough
  to admit).
- `over_wait_bound(candidates, max_wait_s)`: every candidate's expected wait for a batch
  slot exceeds the bound (`serving.overload.queue_wait_s` over the router's requests in
  flight at it, its max batch, and its measured departure rate: the mean gap between
  completions while its batch is full, kept by `record_departure`). A replica whose rate
  is not measured yet admits up to two batches (`UNMEASURED_BATCHES`); one without a max
  batch is bounded by `max_outstanding` only. Returns the smallest wait, for Retry-After.
- `over_fair_share(tenant_load, active_tenants, candidates, max_outstanding)`: per-tenant
  fair share, applied only under pressure. When the candidates are more than half full,
  a tenant already holding more than its equal share of the candidates' total room
  (max_outstanding x candidates / tenants with requests in flight) is turned away, so one
  heavy tenant cannot take the room the others need.

`TenantLoad` counts requests in flight per tenant (the router increments it when it
admits a request and decrements it when the request ends).

To extend: a token-based or priority-aware rule is another function of the same inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from serving.overload import EWMA_ALPHA, queue_wait_s
from serving.routing import Backend

PRESSURE = 0.5
"""Fraction of the candidates' room in use above which fair share is enforced."""
UNMEASURED_BATCHES = 2
"""Requests in flight a replica with an unmeasured rate takes, in batches (running + one
waiting)."""


def record_departure(backend: Backend, now: float) -> None:
    """A request completed at `backend`: while its batch is full (this request still
    counted in flight), the gap since the previous completion is one departure interval."""
    full = backend.max_batch is not None and backend.outstanding >= backend.max_batch
    last = backend.last_departure_s
    if full and backend.last_departure_full and last is not None and now >= last:
        gap = now - last
        mean = backend.ewma_departure_gap_s
        backend.ewma_departure_gap_s = gap if mean == 0 else mean + EWMA_ALPHA * (gap - mean)
    backend.last_departure_s, backend.last_departure_full = now, full


def expected_wait_s(backend: Backend) -> float | None:
    """Expected wait for a slot of one more request (None: unknown max batch; inf: the
    rate is not measured and two batches are already in flight)."""
    batch = backend.max_batch
    if batch is None:
        return None
    gap = backend.ewma_departure_gap_s
    if gap <= 0:
        return 0.0 if backend.outstanding < UNMEASURED_BATCHES * batch else math.inf
    return queue_wait_s(backend.outstanding, batch, gap * batch)


def over_wait_bound(candidates: Sequence[Backend], max_wait_s: float | None) -> float | None:
    """The smallest expected wait when every candidate's exceeds the bound, else None."""
    if max_wait_s is None or not candidates:
        return None
    waits = [expected_wait_s(b) for b in candidates]
    if any(w is None or w <= max_wait_s for w in waits):
        return None
    return min(w for w in waits if w is not None)


def saturated(candidates: Sequence[Backend], max_outstanding: int | None) -> bool:
    """True when every candidate has `max_outstanding` or more requests in flight."""
    if max_outstanding is None:
        return False
    return all(b.outstanding >= max_outstanding for b in candidates)


def over_fair_share(tenant_outstanding: int, active_tenants: int,
                    candidates: Sequence[Backend], max_outstanding: int | None) -> bool:
    """True when the tenant should wait: under pressure and above its equal share."""
    if max_outstanding is None or not candidates:
        return False
    room = max_outstanding * len(candidates)
    used = sum(b.outstanding for b in candidates)
    if used < PRESSURE * room:
        return False
    return tenant_outstanding >= room / max(active_tenants, 1)


class TenantLoad:
    """Requests in flight per tenant."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    @property
    def active(self) -> int:
        """Tenants with a request in flight."""
        return len(self._counts)

    def outstanding(self, tenant: str) -> int:
        """Requests in flight for `tenant`."""
        return self._counts.get(tenant, 0)

    def start(self, tenant: str) -> None:
        """A request of `tenant` was admitted."""
        self._counts[tenant] = self._counts.get(tenant, 0) + 1

    def finish(self, tenant: str) -> None:
        """A request of `tenant` ended."""
        left = self._counts.get(tenant, 0) - 1
        if left > 0:
            self._counts[tenant] = left
        else:
            self._counts.pop(tenant, None)
