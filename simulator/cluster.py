"""`SimCluster`: a discrete-event twin of a fleet that the real control loop can drive.

Each replica runs its own `queue_models.fused.FusedEngine` in virtual time; an
event heap orders request arrivals, replica iteration ends, replicas becoming ready and
the gauge sampling grid. There is no second batching implementation: the engine decides
batches and iteration times (with the iteration-cost law, noise, KV capacity and queue
bound of `SimConfig`, see `simulator.hardware`).

Fused runs: a replica's engine runs every iteration that ends before its horizon in one
call (`FusedEngine.advance`), the horizon being the next event that could touch it: the
next arrival for its server, the next replica becoming ready, the next gauge sample, or
the time `advance_to` was asked for (ticks act after it). Only the iteration crossing the
horizon goes on the heap. Records get the same times as with one event per iteration
(`SimConfig.fuse=False`, tests/simulator/test_fused_cluster.py).

The cluster is both an `actuator.base.Actuator` (`observe`, `apply`) and a
`controller.sources.MetricsSource` (`collect(now, fleet)`), so `controller.loop.ControlLoop`
runs against it unchanged. The driver owns time: `advance_to(t)` before each tick (collect
also advances to its `now`); `apply` acts at the cluster's current time.

- Scale-up adds replicas that become ready after `SimConfig.startup_s` (pod start-up).
- Scale-down first cancels replicas still starting, then drains ready ones (fewest
  requests first): a draining replica takes no new requests and leaves when empty
  (then it is in `retired`, with `left_s`).
- A new max batch or token budget is set live on the variant's replicas (the engine never
  preempts; a prefill under way goes on in chunks of the new budget), as the emulated
  worker does, and reported as a "reconfigure" change; replicas started later get them.
  A plan without a token budget leaves the variant's as it is (new variants: the
  profile's).
- Routing (`simulator.routing`, chosen by `SimConfig.routing`): by default the ready
  replica of any of the server's variants with the fewest requests per max-batch slot;
  `weighted` follows the plan's router weights across variants (replica counts before
  any plan), then the least-loaded ready replica. Requests arriving when no replica is
  ready wait at the router until one is. A request the replica refuses (queue full, too
  large for its KV cache) is `rejected`.
- `records` holds one `RequestRecord` per request for evaluation; `collect` reads the
  per-variant logs of `simulator.window` instead, pruned to the window.

To extend: a new event kind is one more `_on_<kind>` method in `_handlers` (and, if it
can touch replicas, one more term of `_horizon`); routing policies live in
`simulator.routing`.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from actuator.base import (
    ActuationResult,
    FleetState,
    VariantChange,
    VariantState,
    variant_name,
)
from collector.aggregate import servers_of
from collector.snapshot import FleetSnapshot, SourceStatus
from queue_models.engine import LOWEST_PRIORITY, EngineError, TokenEvent
from simulator.config import SimConfig
from simulator.hardware import replica_config
from simulator.records import RequestRecord, SimRequest
from simulator.replica import SimReplica
from simulator.routing import ROUTING
from simulator.window import RouterLog, VariantLog, router_only, router_shares, variant_window
from specs.documents import FleetSpec
from specs.plan import Plan

__all__ = ["SimCluster", "SimConfig"]


class SimCluster:
    """See the module docstring."""

    def __init__(self, spec: FleetSpec, config: SimConfig | None = None,
                 initial: Mapping[tuple[str, str], int] | None = None,
                 start_s: float = 0.0) -> None:
        self.spec = spec
        self.config = config or SimConfig()
        self._policy = ROUTING.get(self.config.routing)
        self.now = self.start_s = self._limit = start_s
        self.records: list[RequestRecord] = []
        self.replicas: dict[str, SimReplica] = {}
        self.retired: list[SimReplica] = []
        """Replicas that drained and left, in leaving order."""
        self._servers = {s.name: s for s in spec.servers}
        self._priority = {c.name: c.priority for c in spec.service_classes}
        self._profiles = {(p.model, p.accelerator): p for p in spec.profiles}
        self._variants: dict[str, tuple[str, str]] = {}
        self._max_batch: dict[str, int] = {}
        self._token_budget: dict[str, int] = {}
        self._weights: dict[str, dict[str, float]] = {}
        self._credit: dict[str, dict[str, float]] = {}
        self._pending: dict[str, deque[RequestRecord]] = {}
        self._by_id: dict[str, RequestRecord] = {}
        self._logs: dict[str, VariantLog] = {}
        self._router: dict[str, RouterLog] = {s: RouterLog() for s in self._servers}
        self._events: list[tuple[float, int, str, Any]] = []
        self._arrival_times: dict[str, list[float]] = {s: [] for s in self._servers}
        self._ready_times: list[float] = []
        self._next_sample_s = start_s + self.config.sample_s
        self._seq = itertools.count()
        self._ids = itertools.count()
        self._serials = itertools.count()
        self._handlers = {"arrival": self._on_arrival, "ready": self._on_ready,
                          "iteration": self._on_iteration, "sample": self._on_sample}
        self._push(self._next_sample_s, "sample", None)
        for (server, accelerator), n in sorted((initial or {}).items()):
            self._add_replicas(server, accelerator, n, ready=True)

    # -- workload -----------------------------------------------------------------------

    def submit(self, requests: Iterable[SimRequest]) -> int:
        """Schedule requests (not earlier than now); returns how many."""
        n = 0
        for request in requests:
            if request.server not in self._servers:
                raise ValueError(f"unknown server {request.server!r}")
            when = max(request.time_s, self.now)
            self._push(when, "arrival", request)
            heapq.heappush(self._arrival_times[request.server], when)
            n += 1
        return n

    # -- virtual time -------------------------------------------------------------------

    def advance_to(self, t: float) -> None:
        """Run every event up to and including virtual time `t`."""
        if t < self.now:
            raise ValueError(f"cannot go back from {self.now} to {t}")
        self._limit = t
        events, handlers = self._events, self._handlers
        while events and events[0][0] <= t:
            when, _, kind, payload = heapq.heappop(events)
            self.now = when
            handlers[kind](payload)
        self.now = t

    def _push(self, when: float, kind: str, payload: object) -> None:
        heapq.heappush(self._events, (when, next(self._seq), kind, payload))

    def _horizon(self, server: str) -> float:
        """The earliest time anything outside could touch a replica of `server`."""
        horizon = min(self._limit, self._next_sample_s)
        arrivals = self._arrival_times[server]
        if arrivals and arrivals[0] < horizon:
            horizon = arrivals[0]
        if self._ready_times and self._ready_times[0] < horizon:
            horizon = self._ready_times[0]
        return horizon

    def _on_arrival(self, request: SimRequest) -> None:
        heapq.heappop(self._arrival_times[request.server])
        record = RequestRecord(f"r{next(self._ids)}", request.server, request.service_class,
                               self.now, request.prompt_tokens, request.output_tokens)
        self.records.append(record)
        self._router[request.server].arrivals.append((self.now, request.prompt_tokens))
        self._pending.setdefault(request.server, deque()).append(record)
        self._dispatch(request.server)

    def _on_ready(self, replica: SimReplica) -> None:
        heapq.heappop(self._ready_times)
        if replica.name in self.replicas and replica.phase == "starting":
            replica.phase = "ready"
            self._sample(replica)
            self._dispatch(replica.server)

    def _on_iteration(self, replica: SimReplica) -> None:
        iteration, replica.in_flight = replica.in_flight, None
        assert iteration is not None
        self._log(replica, replica.engine.complete(iteration, self.now))
        self._run(replica)

    def _on_sample(self, _: None) -> None:
        for replica in self.replicas.values():
            if replica.phase != "starting":
                self._sample(replica)
        for log in (*self._logs.values(), *self._router.values()):
            log.prune(self.now - self.config.window_s)
        self._next_sample_s = self.now + self.config.sample_s
        self._push(self._next_sample_s, "sample", None)

    def _sample(self, replica: SimReplica) -> None:
        replica.gauges.add(replica.engine.occupancy(self.now), self.now - self.config.window_s)

    def _log(self, replica: SimReplica, events: Sequence[TokenEvent]) -> None:
        log = self._logs[replica.variant]
        for event in events:
            if event.index and not event.finished:
                continue
            record = self._by_id[event.request.request_id]
            if event.index == 0:
                record.first_token_s = event.time_s
                log.first_token(record, event.time_s)
            if event.finished:
                record.finish_s = event.time_s
                log.finish(record, event.time_s)
                del self._by_id[record.request_id]

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
        chosen = self._policy(ready, lambda: self._server_weights(server),
                              self._credit.setdefault(server, {}))
        return cast(SimReplica | None, chosen)

    def _send(self, record: RequestRecord, replica: SimReplica) -> None:
        record.variant, record.replica, record.routed_s = replica.variant, replica.name, self.now
        self._logs[replica.variant].arrivals.append(record.arrival_s)
        cls = record.service_class or self._servers[record.server].service_class
        try:
            replica.engine.submit(record.request_id, record.prompt_tokens,
                                  record.output_tokens, self.now,
                                  self._priority.get(cls, LOWEST_PRIORITY))
        except EngineError:
            record.rejected = True
            return
        self._by_id[record.request_id] = record
        self._run(replica)

    def _run(self, replica: SimReplica) -> None:
        """Run the replica up to its horizon if it is idle; retire it once drained."""
        if replica.in_flight is None and replica.phase != "starting":
            if self.config.fuse:
                events, iteration = replica.engine.advance(self.now,
                                                           self._horizon(replica.server))
                self._log(replica, events)
            else:
                iteration = replica.engine.next_iteration(self.now)
            replica.in_flight = iteration
            if iteration is not None:
                self._push(iteration.end_s, "iteration", replica)
        if replica.gone and replica.left_s is None:
            self._retire(replica)

    def _retire(self, replica: SimReplica) -> None:
        self.replicas.pop(replica.name, None)
        replica.left_s = max(self.now, replica.engine.updated_s or self.now)
        self.retired.append(replica)
        self._logs[replica.variant].retired.append(replica)

    def _server_weights(self, server: str) -> dict[str, float]:
        planned = self._weights.get(server)
        if planned and any(w > 0 for w in planned.values()):
            return planned
        counts: dict[str, float] = {}
        for r in self.replicas.values():
            if r.server == server and r.accepts:
                counts[r.variant] = counts.get(r.variant, 0.0) + 1.0
        return counts

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
                service_class=self._servers[server].service_class,
                token_budget=self._token_budget.get(variant)))
        return FleetState(tuple(out), observed_at=self.now)

    def apply(self, plan: Plan, *, plan_id: str, reason: str) -> ActuationResult:
        """Move the simulated fleet to `plan` at the cluster's current time."""
        wanted: dict[str, tuple[str, str, int, int, int | None, float]] = {}
        for alloc in plan.allocations:
            for v in alloc.variants:
                name = variant_name(alloc.server, v.accelerator)
                wanted[name] = (alloc.server, v.accelerator, v.replicas, v.max_batch,
                                v.token_budget, v.router_weight)
        self._weights = {}
        for name, (server, *_, weight) in wanted.items():
            self._weights.setdefault(server, {})[name] = weight
        changes = []
        for name in sorted(set(wanted) | set(self._variants)):
            server, accelerator, n, batch, budget, _ = (
                wanted[name] if name in wanted else (*self._variants[name], 0, 0, None, 0.0))
            changes.extend(self._reconcile(name, server, accelerator, n, batch, budget))
        for server in self._servers:
            self._dispatch(server)
        return ActuationResult("apply", plan_id, tuple(changes))

    def _reconcile(self, name: str, server: str, accelerator: str, n: int, batch: int,
                   budget: int | None) -> list[VariantChange]:
        changes = []
        have = len(self._live(name))
        if batch and self._max_batch.get(name, batch) != batch and have:
            changes.append(VariantChange(name, server, "reconfigure",
                                         f"max batch {self._max_batch[name]} -> {batch}"))
            for r in self._live(name):
                r.engine.set_max_batch(batch)
        if batch:
            self._max_batch[name] = batch
        if budget and self._token_budget.get(name, budget) != budget and have:
            changes.append(VariantChange(name, server, "reconfigure",
                                         f"token budget {self._token_budget[name]} -> {budget}"))
            for r in self._live(name):
                r.engine.set_token_budget(budget)
        if budget:
            self._token_budget[name] = budget
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
        self._logs.setdefault(name, VariantLog())
        batch = self._max_batch.setdefault(name, profile.max_batch)
        budget = self._token_budget.setdefault(name, profile.token_budget)
        for _ in range(n):
            config = replica_config(self.config, profile, batch, next(self._serials), budget)
            replica = SimReplica(f"{name}-{next(self._ids)}", name, server, accelerator, config,
                                 self.now if ready else self.now + self.config.startup_s,
                                 phase="ready" if ready else "starting")
            self.replicas[replica.name] = replica
            if ready:
                self._sample(replica)
            else:
                self._push(replica.ready_at_s, "ready", replica)
                heapq.heappush(self._ready_times, replica.ready_at_s)

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
        """Figures of every variant with replicas over the last window, at `now`. Requests
        waiting at the router count as arrivals of the server's variants (`_router_shares`);
        a server with no variant at all but arrivals in the window appears as a server
        snapshot without variants (`simulator.window.router_only`); one with neither is
        left out, as before (the loop sizes it for its last known load)."""
        self.advance_to(now)
        window = min(self.config.window_s, now - self.start_s)
        if window <= 0:
            return FleetSnapshot(time_s=now, source="simulator",
                                 status=SourceStatus.UNAVAILABLE, error="no time simulated yet")
        start = now - window
        present: dict[str, list[str]] = {}
        for name, (server, _) in sorted(self._variants.items()):
            if any(r.variant == name for r in self.replicas.values()):
                present.setdefault(server, []).append(name)
        shares = self._router_shares(present, start, now)
        variants = []
        for server, names in present.items():
            for name in names:
                replicas = [r for r in self.replicas.values() if r.variant == name]
                variants.append(variant_window(
                    name, server, self._servers[server].model, self._variants[name][1],
                    self._logs[name], replicas, now, window, shares.get(name, 0.0)))
        variants.sort(key=lambda v: v.name)
        servers = list(servers_of(variants))
        for server in sorted(set(self._servers) - set(present)):
            prompts = self._router[server].prompts_in(start, now)
            if prompts:
                servers.append(router_only(server, prompts, window))
        return FleetSnapshot(time_s=now, source="simulator", status=SourceStatus.OK,
                             variants=tuple(variants),
                             servers=tuple(sorted(servers, key=lambda s: s.name)))

    def _router_shares(self, present: Mapping[str, list[str]], start: float, now: float,
                       ) -> dict[str, float]:
        """Arrivals in the window not routed to a variant present, per variant."""
        out: dict[str, float] = {}
        for server, names in present.items():
            out.update(router_shares(
                len(self._router[server].prompts_in(start, now)),
                {n: self._logs[n].routed_in(start, now) for n in names},
                self._weights.get(server, {}), {n: float(len(self._live(n))) for n in names}))
        return out
