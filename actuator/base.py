"""The actuator contract: read the fleet as it runs, and enact a plan on it.

An `Actuator` turns a `Plan` (specs.plan) into running variants: one variant per
(server, accelerator) pair, named by `variant_name`. `observe()` reports what runs now
(`FleetState`); `apply(plan, ...)` changes the fleet towards the plan and returns an
`ActuationResult` saying what changed, what was held back, and what failed and why: a
partial failure is reported, never hidden. Actuators decide nothing: they never solve,
forecast or stabilise; the controller hands them a final plan.

Modes (`ActuationMode`): `apply` changes the fleet; `dry-run` computes and reports the
same changes without making them; `metrics` exports desired replicas (for an HPA or
KEDA) instead of changing anything.

To extend: implement `Actuator` in a module of its own (one third-party client per
module), return the same result types, and register it where the controller wires
actuators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Protocol

from specs.plan import Plan

ActuationMode = Literal["apply", "dry-run", "metrics"]
ChangeKind = Literal["create", "scale", "reconfigure", "delete"]

_DNS_UNSAFE = re.compile(r"[^a-z0-9-]+")


def variant_name(server: str, accelerator: str) -> str:
    """The variant (Deployment) name of a server on an accelerator: DNS-1123 safe, <= 63."""
    raw = f"{server}-{accelerator}".lower()
    name = _DNS_UNSAFE.sub("-", raw).strip("-")
    return name[:63].rstrip("-") or "variant"


@dataclass(frozen=True)
class VariantState:
    """One running variant as observed."""

    variant: str
    server: str
    model: str
    accelerator: str
    replicas: int
    """Desired replicas as configured on the fleet (Deployment spec, local target)."""
    ready_replicas: int
    """Replicas ready to serve."""
    max_batch: int | None = None
    endpoints: tuple[str, ...] = ()
    """Base URLs of ready replicas, where the actuator knows them (local workers)."""
    service_class: str | None = None
    token_budget: int | None = None
    """Tokens per iteration as configured (None: not set, or not known)."""


@dataclass(frozen=True)
class FleetState:
    """All managed variants, as observed at `observed_at` (seconds, the caller's clock)."""

    variants: tuple[VariantState, ...] = ()
    observed_at: float = 0.0

    def for_server(self, server: str) -> tuple[VariantState, ...]:
        """The variants serving `server`."""
        return tuple(v for v in self.variants if v.server == server)


@dataclass(frozen=True)
class VariantChange:
    """One change made (or, in dry-run, that would be made) to a variant."""

    variant: str
    server: str
    kind: ChangeKind
    detail: str
    """Human-readable: e.g. 'replicas 2 -> 4', 'max batch 64 -> 96', 'token budget 8192 -> 2048'."""
    restarts_pods: bool = False


@dataclass(frozen=True)
class ActuationFailure:
    """A change that could not be made, and why."""

    variant: str
    server: str
    reason: str


@dataclass(frozen=True)
class ActuationResult:
    """What `apply` did."""

    mode: ActuationMode
    plan_id: str
    changes: tuple[VariantChange, ...] = ()
    failures: tuple[ActuationFailure, ...] = ()
    deferred: tuple[VariantChange, ...] = field(default_factory=tuple)
    """Changes held back (e.g. pod-restart rate limit); they are retried next time."""

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failures


class Actuator(Protocol):
    """Reads and changes the fleet; see the module docstring."""

    def observe(self) -> FleetState:
        """What runs now. Raises `ActuatorUnavailable` when the fleet cannot be read."""
        ...

    def apply(self, plan: Plan, *, plan_id: str, reason: str) -> ActuationResult:
        """Move the fleet towards `plan`; never raises for a per-variant failure."""
        ...


class ActuatorUnavailable(Exception):
    """The fleet could not be read or changed at all (API server down, ...): transient."""
