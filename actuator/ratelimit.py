"""The pod-restart rate limiter: a pure token bucket that takes `now`.

A change that restarts pods (a new node selector, GPU count or max batch in a
Deployment's pod template rolls every replica of that variant) costs one token. The
bucket holds at most `burst` tokens and earns `per_hour / 3600` tokens a second, so at
most `burst` restarts happen at once and `per_hour` an hour on average. A change that
finds the bucket empty is deferred by the actuator and tried again at the next apply.

`TokenBucket` is an immutable value: `take(now)` returns whether the change may go
ahead and the bucket after it, so a dry run can ask without spending, and the actuator
keeps the bucket it returns (state that survives a tick, DESIGN rule 7).

To extend: another policy (e.g. a per-variant cool-down) is another frozen value with
`take(now, key) -> (allowed, new_value)`, held by the actuator in place of this one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class TokenBucket:
    """At most `burst` pod-restarting changes at once, `per_hour` an hour on average."""

    burst: int = 2
    per_hour: float = 12.0
    tokens: float | None = None
    """Tokens now; None means a full bucket (a fresh limiter)."""
    updated_at: float | None = None
    """When `tokens` was last computed (the caller's clock, seconds)."""

    def __post_init__(self) -> None:
        if self.burst < 0 or self.per_hour < 0:
            raise ValueError("burst and per_hour must be >= 0")

    def available(self, now: float) -> float:
        """Tokens available at `now` (never more than `burst`)."""
        if self.tokens is None or self.updated_at is None:
            return float(self.burst)
        elapsed = max(0.0, now - self.updated_at)
        return min(float(self.burst), self.tokens + elapsed * self.per_hour / 3600.0)

    def take(self, now: float, cost: float = 1.0) -> tuple[bool, TokenBucket]:
        """Spend `cost` tokens if there are enough: (allowed, the bucket afterwards)."""
        have = self.available(now)
        if have + 1e-9 < cost:
            return False, replace(self, tokens=have, updated_at=now)
        return True, replace(self, tokens=have - cost, updated_at=now)

    def seconds_until(self, now: float, cost: float = 1.0) -> float | None:
        """Seconds until `cost` tokens are available (None: never, the rate is zero)."""
        missing = cost - self.available(now)
        if missing <= 0:
            return 0.0
        if self.per_hour <= 0 or cost > self.burst:
            return None
        return missing * 3600.0 / self.per_hour


UNLIMITED = TokenBucket(burst=1_000_000, per_hour=1e12)
"""A limiter that never defers (for tests and for fleets that do not want one)."""
