"""Fakes implementing the controller's protocols: an in-memory actuator and metrics source."""

from __future__ import annotations

import threading
from collections.abc import Callable

from actuator.base import (
    ActuationResult,
    ActuatorUnavailable,
    FleetState,
    VariantChange,
    VariantState,
    variant_name,
)
from collector.snapshot import Figure, FleetSnapshot, ServerSnapshot, SourceStatus
from specs.documents import FleetSpec
from specs.plan import Plan

RateFn = Callable[[str, float], float]


class FakeActuator:
    """Keeps the fleet in a dict; records every apply call."""

    def __init__(self, spec: FleetSpec, initial: dict[tuple[str, str], int] | None = None,
                 ) -> None:
        self.models = {s.name: s.model for s in spec.servers}
        self.fleet: dict[tuple[str, str], int] = dict(initial or {})
        self.calls: list[tuple[Plan, str, str]] = []
        self.unavailable = False
        self.block: threading.Event | None = None
        self.entered = threading.Event()

    def observe(self) -> FleetState:
        if self.unavailable:
            raise ActuatorUnavailable("api server down")
        return FleetState(tuple(
            VariantState(variant_name(s, a), s, self.models[s], a, n, n, max_batch=64)
            for (s, a), n in sorted(self.fleet.items()) if n > 0))

    def apply(self, plan: Plan, *, plan_id: str, reason: str) -> ActuationResult:
        self.entered.set()
        if self.block is not None:
            self.block.wait(10)
        self.calls.append((plan, plan_id, reason))
        wanted = {(a.server, v.accelerator): v.replicas for a in plan.allocations
                  for v in a.variants}
        changes = []
        for key in sorted(set(wanted) | set(self.fleet)):
            have, want = self.fleet.get(key, 0), wanted.get(key, 0)
            if have != want:
                changes.append(VariantChange(variant_name(*key), key[0], "scale",
                                             f"replicas {have} -> {want}"))
                self.fleet[key] = want
        return ActuationResult("apply", plan_id, tuple(changes))


class FakeMetrics:
    """Snapshots from a rate function; `down` makes it raise, `unavailable` answer so."""

    def __init__(self, spec: FleetSpec, rate: RateFn) -> None:
        self.spec = spec
        self.rate = rate
        self.down = False
        self.unavailable = False
        self.age_s = 0.0
        self.silent: set[str] = set()
        """Servers the source reports nothing about (e.g. no replica to measure)."""

    def collect(self, now: float, fleet: FleetState) -> FleetSnapshot:
        if self.down:
            raise ConnectionError("prometheus: connection refused")
        if self.unavailable:
            return FleetSnapshot(time_s=now, source="fake", status=SourceStatus.UNAVAILABLE,
                                 error="down")
        servers = tuple(ServerSnapshot(
            name=s.name, variants=(),
            arrival_rate_rps=Figure.ok(self.rate(s.name, now), age_s=self.age_s),
            in_tokens=Figure.ok(s.load.in_tokens), out_tokens=Figure.ok(s.load.out_tokens))
            for s in self.spec.servers if s.name not in self.silent)
        return FleetSnapshot(time_s=now - self.age_s, source="fake", status=SourceStatus.OK,
                             servers=servers)
