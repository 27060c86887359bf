"""Admission control: when to answer 429 instead of piling requests onto full replicas.

Pure functions of the router's own accounting:

- `saturated(candidates, max_outstanding)`: every candidate already has
  `max_outstanding` requests in flight from this router (one free candidate is enough
  to admit).
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

from collections.abc import Sequence

from serving.routing import Backend

PRESSURE = 0.5
"""Fraction of the candidates' room in use above which fair share is enforced."""


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
