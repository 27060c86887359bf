"""`SimCluster`: a discrete-event twin of a fleet that the real control loop can drive.

Each replica runs its own `queue_models.engine.BatchEngine` in virtual time; an event heap
orders request arrivals, replica iteration ends and replicas becoming ready. There is no
second batching implementation: the engine decides batches and iteration times.

The cluster is both an `actuator.base.Actuator` (`observe`, `apply`) and a
`controller.sources.MetricsSource` (`collect(now, fleet)`), so `controller.loop.ControlLoop`
runs against it unchanged. The driver owns time: `advance_to(t)` before each tick (collect
also advances to its `now`); `apply` acts at the cluster's current time.

- Scale-up adds replicas that become ready after `SimConfig.startup_s` (pod start-up).
- Scale-down first cancels replicas still starting, then drains ready ones (fewest
  requests first): a draining replica takes no new requests and leaves when empty.
- A new max batch is set live on the variant's replicas (the engine never preempts).
- Routing: smooth weighted round robin over the server's variants by the plan's router
  weights (replica counts before any plan), then the least-loaded ready replica; requests
  arriving when no replica is ready wait at the router until one is.
- `records` holds one `RequestRecord` per request for evaluation.

To extend: a new event kind is one more `_on_<kind>` method dispatched in `advance_to`;
routing policies live in `simulator.routing`.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from actuator.base import (
    ActuationResult,
    FleetState,
    VariantChange,
    VariantState,
    variant_name,
)
from collector.aggregate import servers_of
from collector.snapshot import FleetSnapshot, SourceStatus
from queue_models.engine import LOWEST_PRIORITY, EngineConfig
from simulator.records import RequestRecord, SimRequest
from simulator.replica import SimReplica
from simulator.routing import least_loaded, pick_variant
from simulator.window import variant_window
from specs.documents import FleetSpec
from specs.plan import Plan


@dataclass(frozen=True)
class SimConfig:
    """How the twin behaves (seconds)."""

    startup_s: float = 120.0
    """Pod start-up: time from scale-up to a new replica being ready."""
    window_s: float = 60.0
    """Window of the figures `collect` reports."""


class SimCluster:
    """See the module docstring."""

    def __init__(self, spec: FleetSpec, config: SimConfig | None = None,
                 initial: Mapping[tuple[str, str], int] | None = None,
                 start_s: float = 0.0) -> None:
        self.spec = spec
        self.config = config or SimConfig()
        self.now = start_s
        self.start_s = start_s
        self.records: list[RequestRecord] = []
        self.replicas: dict[str, SimReplica] = {}
        self._servers = {s.name: s for s in spec.servers}
        self._priority = {c.name: c.priority for c in spec.service_classes}
        self._profiles = {(p.model, p.accelerator): p for p in spec.profiles}
        self._variants: dict[str, tuple[str, str]] = {}
        self._max_batch: dict[str, int] = {}
        self._weights: dict[str, dict[str, float]] = {}
        self._credit: dict[str, dict[str, float]] = {}
        self._pending: dict[str, deque[RequestRecord]] = {}
        self._by_id: dict[str, RequestRecord] = {}
        self._events: list[tuple[float, int, str, Any]] = []
        self._seq = itertools.count()
        self._ids = itertools.count()
        for (server, accelerator), n in sorted((initial or {}).items()):
            self._add_replicas(server, accelerator, n, ready=True)

    # -- workload -----------------------------------------------------------------------

    def submit(self, requests: Iterable[SimRequest]) -> int:
        """Schedule requests (not earlier than now); returns how many."""
        n = 0
        for request in requests:
            if request.server not in self._servers:
                raise ValueError(f"unknown server {request.server!r}")
            self._push(max(request.time_s, self.now), "arrival", request)
            n += 1
        return n

    # -- virtual time -------------------------------------------------------------------

    def advance_to(self, t: float) -> None:
        """Run every event up to and including virtual time `t`."""
        if t < self.now:
            raise ValueError(f"cannot go back from {self.now} to {t}")
        while self._events and self._events[0][0] <= t:
            when, _, kind, payload = heapq.heappop(self._events)
            self.now = when
            getattr(self, f"_on_{kind}")(payload)
        self.now = t

    def _push(self, when: float, kind: str, payload: object) -> None:
        heapq.heappush(self._events, (when, next(self._seq), kind, payload))

    def _on_arrival(self, request: SimRequest) -> None:
        record = RequestRecord(f"r{next(self._ids)}", request.server, request.service_class,
                               self.now, request.prompt_tokens, request.output_tokens)
        self.records.append(record)
        self._pending.setdefault(request.server, deque()).append(record)
        self._dispatch(request.server)

    def _on_ready(self, replica: SimReplica) -> None:
        if replica.name in self.replicas and replica.phase == "starting":
            replica.phase = "ready"
            self._dispatch(replica.server)

    def _on_iteration(self, replica: SimReplica) -> None:
        iteration, replica.in_flight = replica.in_flight, None
        assert iteration is not None
        for event in replica.engine.complete(iteration, self.now):
            record = self._by_id[event.request.request_id]
            if event.first:
                record.first_token_s = self.now
            if event.finished:
                record.finish_s = self.now
                del self._by_id[record.request_id]
        self._run(replica)

    # -- routing and running ------------------------------------------------------------

    def _dispatch(self, server: str) -> None:
        queue = self._pending.get(server)
        while queue:
            replica = self._route(server)
            if replica is None:
                return
            self._send(queue.popleft(), replica)

    def _route(self, server: str) -> SimReplica | None:
        ready = [r for r in self.replicas.values() if r.server == server and r.accepts]
        if not ready:
            return None
        weights = {v: w for v, w in self._server_weights(server).items()
                   if any(r.variant == v for r in ready)}
        variant = pick_variant(weights, self._credit.setdefault(server, {}))
        chosen = [r for r in ready if r.variant == variant] or ready
        return least_loaded(chosen)

    def _server_weights(self, server: str) -> dict[str, float]:
        planned = self._weights.get(server)
        if planned and any(w > 0 for w in planned.values()):
            return planned
        counts: dict[str, float] = {}
        for r in self.replicas.values():
            if r.server == server and r.accepts:
                counts[r.variant] = counts.get(r.variant, 0.0) + 1.0
        return counts

    def _send(self, record: RequestRecord, replica: SimReplica) -> None:
        record.variant, record.replica, record.routed_s = replica.variant, replica.name, self.now
        cls = record.service_class or self._servers[record.server].service_class
        replica.engine.submit(record.request_id, record.prompt_tokens, record.output_tokens,
                              self.now, self._priority.get(cls, LOWEST_PRIORITY))
        self._by_id[record.request_id] = record
        self._run(replica)

    def _run(self, replica: SimReplica) -> None:
        """Start the replica's next iteration if it is idle; retire it once drained."""
        if replica.in_flight is None and replica.phase != "starting":
            replica.in_flight = replica.engine.next_iteration(self.now)
            if replica.in_flight is not None:
                self._push(replica.in_flight.end_s, "iteration", replica)
        if replica.gone:
            self.replicas.pop(replica.name, None)

    # -- Actuator -----------------------------------------------------------------------

    def observe(self) -> FleetState:
        """Variants with replicas not draining (desired) and ready ones, at `now`."""
        out = []
        for variant, (server, accelerator) in sorted(self._variants.items()):
            live = self._live(variant)
            if not live:
                continue
            out.append(VariantState(
                variant, server, self._servers[server].model, accelerator, len(live),
                sum(1 for r in live if r.phase == "ready"), max_batch=self._max_batch[variant],
                service_class=self._servers[server].service_class))
        return FleetState(tuple(out), observed_at=self.now)

    def apply(self, plan: Plan, *, plan_id: str, reason: str) -> ActuationResult:
        """Move the simulated fleet to `plan` at the cluster's current time."""
        wanted: dict[str, tuple[str, str, int, int, float]] = {}
        for alloc in plan.allocations:
            for v in alloc.variants:
                name = variant_name(alloc.server, v.accelerator)
                wanted[name] = (alloc.server, v.accelerator, v.replicas, v.max_batch,
                                v.router_weight)
        self._weights = {}
        for name, (server, _, _, _, weight) in wanted.items():
            self._weights.setdefault(server, {})[name] = weight
        changes = []
        for name in sorted(set(wanted) | set(self._variants)):
            server, accelerator, n, batch, _ = wanted.get(name, (*self._variants[name], 0, 0, 0))
            changes.extend(self._reconcile(name, server, accelerator, n, batch))
        for server in self._servers:
            self._dispatch(server)
        return ActuationResult("apply", plan_id, tuple(changes))

    def _reconcile(self, name: str, server: str, accelerator: str, n: int, batch: int,
                   ) -> list[VariantChange]:
        changes = []
        have = len(self._live(name))
        if batch and self._max_batch.get(name, batch) != batch and have:
            changes.append(VariantChange(name, server, "reconfigure",
                                         f"max batch {self._max_batch[name]} -> {batch}"))
            for r in self._live(name):
                r.engine.set_max_batch(batch)
        if batch:
            self._max_batch[name] = batch
        if n > have:
            self._add_replicas(server, accelerator, n - have, ready=False)
        elif n < have:
            self._remove_replicas(name, have - n)
        if n != have:
            kind = "create" if have == 0 else "delete" if n == 0 else "scale"
            changes.append(VariantChange(name, server, kind, f"replicas {have} -> {n}"))
        return changes

    def _live(self, variant: str) -> list[SimReplica]:
        return [r for r in self.replicas.values()
                if r.variant == variant and r.phase != "draining"]

    def _add_replicas(self, server: str, accelerator: str, n: int, *, ready: bool) -> None:
        name = variant_name(server, accelerator)
        profile = self._profiles.get((self._servers[server].model, accelerator))
        if profile is None:
            raise ValueError(f"no profile for {server} on {accelerator}")
        self._variants[name] = (server, accelerator)
        batch = self._max_batch.setdefault(name, profile.max_batch)
        config = EngineConfig.from_profile(profile, max_batch=batch)
        for _ in range(n):
            replica = SimReplica(f"{name}-{next(self._ids)}", name, server, accelerator, config,
                                 self.now if ready else self.now + self.config.startup_s,
                                 phase="ready" if ready else "starting")
            self.replicas[replica.name] = replica
            if not ready:
                self._push(replica.ready_at_s, "ready", replica)

    def _remove_replicas(self, variant: str, n: int) -> None:
        live = sorted(self._live(variant),
                      key=lambda r: (r.phase != "starting", r.load, r.name))
        for replica in live[:n]:
            if replica.phase == "starting":
                del self.replicas[replica.name]
            else:
                replica.phase = "draining"
                self._run(replica)

    # -- MetricsSource ------------------------------------------------------------------

    def collect(self, now: float, fleet: FleetState) -> FleetSnapshot:
        """Figures of every variant with replicas over the last window, at `now`."""
        self.advance_to(now)
        window = min(self.config.window_s, now - self.start_s)
        if window <= 0:
            return FleetSnapshot(time_s=now, source="simulator",
                                 status=SourceStatus.UNAVAILABLE, error="no time simulated yet")
        variants = []
        for name, (server, accelerator) in sorted(self._variants.items()):
            replicas = [r for r in self.replicas.values() if r.variant == name]
            if not replicas:
                continue
            variants.append(variant_window(name, server, self._servers[server].model,
                                           accelerator, self.records, replicas, now, window))
        return FleetSnapshot(time_s=now, source="simulator", status=SourceStatus.OK,
                             variants=tuple(variants), servers=servers_of(variants))
