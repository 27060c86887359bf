"""Candidate generation: for every server and accelerator, what serving it would take.

For each server and each accelerator with a profile for its model (only the current one
with `keep_accelerator`), a `Candidate` says: the max batch size (the server's override,
else chosen by the batch policy below), the max queue (the server's, else the queue
model's default), the largest per-replica rate meeting the class targets, the replicas
the load needs (at least `min_replicas`; more than `max_replicas` rejects the
accelerator), the cost, and the predicted TTFT/ITL at the resulting per-replica load
(the targets' percentile when the class asks for one, else the mean). An accelerator
that cannot meet the targets is recorded in `ServerCandidates.rejected` with the reason.
A server with zero load and `min_replicas` 0 scales to zero.

Batch policies ("how was the max batch chosen"):

- `scaled`: the queue model's `effective_max_batch` as is. For `batch-queue-v06` this is
  inferno's N = max(floor(maxBatchSize x atTokens / outTokens), 1), which is how
  inferno's 2026-03 optimizer produced the sample solutions (`maxBatch` there is 38 for
  granite_13b on G2 with maxBatchSize 76, atTokens 512 and 1,024 output tokens);
- `search`: inferno's optimal-concurrency search (`queue_models.sizing.best_max_batch`)
  up to that ceiling: the smallest batch within 1% of the best SLO-feasible throughput.

`auto` picks `scaled` for `batch-queue-v06` and `search` for every other model.

Sizing depends on the replica configuration and the targets, never on the arrival rate,
so it is cached (least recently used, bounded) under (profile parameters, tokens,
targets, batch override, queue override); the batch policy is fixed per generator.
Identical servers cost one lookup. The cache lives in the `CandidateGenerator`; reuse a
generator across ticks to keep it warm. Before building a problem's candidates, the
generator sizes every configuration the cache lacks side by side
(`queue_models.lockstep.run_all`: one set of numpy operations per bisection step for
all of them, and the same sizings as one at a time), split across the cores for large
fleets (`optimizer.fork_map`, `jobs`). As inferno, replicas are sized with the
throughput at the sized rate (the rate less what the finite queue blocks), and a
tokens/s target raises the rate to size for to tokens_per_s / out_tokens. Predicted
latencies can be skipped (`predict=False`; `optimizer.api` predicts only the chosen
variants).

To extend: a new batch policy is a generator function `(model, params at the ceiling,
targets, ceiling) -> Steps[batch or None]` (it `yield from`s the sizing steps it uses,
e.g. `queue_models.sizing.best_max_batch_steps`, or returns at once through
`queue_models.sizing.done`) registered in `BATCH_POLICIES`; anything new a candidate
needs is a field on `optimizer.problem.Candidate`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from optimizer.fork_map import default_jobs, fork_map
from optimizer.problem import Candidate, Problem, ServerCandidates
from optimizer.transition import transition_value
from queue_models.base import PreparedQueue, QueueModel, ServiceParams, Targets
from queue_models.capacity_model import on_grid
from queue_models.capacity_sizing import CapacitySizing
from queue_models.iteration_cost import IterationCost, LinearCost, time_scale
from queue_models.lockstep import run_all
from queue_models.sizing import (
    RateSizing,
    Steps,
    best_max_batch_steps,
    done,
    run,
    size_prepared_steps,
)
from queue_models.workload_sample import WorkloadSample
from specs.documents import Accelerator, FleetSpec, ModelTarget, Profile, Server
from specs.registry import Registry

SCALED_BATCH_MODELS = frozenset({"batch-queue-v06"})
"""Queue models whose sample solutions used the token-scaled batch without a search."""

_EPS = 1e-9
SCALE_REFERENCE_TOKENS = (1024.0, 256.0)
"""Prompt and output tokens at which a tuned profile's time scale against the profiled
one is measured (fixed, so the scale does not move with each window's mean sizes)."""


@dataclass(frozen=True, slots=True)
class Sizing:
    """One replica configuration sized for one set of targets."""

    params: ServiceParams | None
    max_rate_rps: float
    feasible: bool
    reason: str = ""
    pool: CapacitySizing | None = None
    """Per-replica rate by pool size, from a model that measures pools (capacity-table)."""

    def replicas_for(self, demand: float) -> tuple[int, float]:
        """Replicas the demand needs and the per-replica rate at that many."""
        if self.pool is not None:
            n = self.pool.replicas_for(demand)
            return n, self.pool.rate_at(n)
        return math.ceil(demand / self.max_rate_rps - _EPS), self.max_rate_rps


@runtime_checkable
class CandidateSizer(Protocol):
    """A queue model that sizes a replica itself (max batch, token budget, pools) instead
    of the generic search (`queue_models.capacity_model.CapacityTableModel`)."""

    def size_candidate(self, params: ServiceParams, targets: Targets,
                       fixed_batch: bool = False) -> CapacitySizing:
        """Configuration up to `params.max_batch` and the rate per pool size."""
        ...

    def configured(self, params: ServiceParams, sizing: CapacitySizing) -> ServiceParams:
        """`params` with the sizing's configuration."""
        ...


BatchPolicy = Callable[[QueueModel, ServiceParams, Targets, int], Steps[int | None]]


def _scaled(
    model: QueueModel, params: ServiceParams, targets: Targets, ceiling: int
) -> Steps[int | None]:
    del model, params, targets
    return (yield from done(ceiling))


def _search(
    model: QueueModel, params: ServiceParams, targets: Targets, ceiling: int
) -> Steps[int | None]:
    choice = yield from best_max_batch_steps(model, params, targets, ceiling)
    return choice.max_batch if choice.feasible else None


BATCH_POLICIES = Registry[BatchPolicy]("batch policy")
BATCH_POLICIES.register("scaled", _scaled)
BATCH_POLICIES.register("search", _search)


def resolve_batch_policy(policy: str, queue_model: str) -> str:
    """`auto` -> `scaled` for the models in `SCALED_BATCH_MODELS`, else `search`."""
    if policy == "auto":
        return "scaled" if queue_model in SCALED_BATCH_MODELS else "search"
    BATCH_POLICIES.get(policy)
    return policy


def to_targets(target: ModelTarget) -> Targets:
    """The queue models' `Targets` of a class's model target (percentiles included)."""
    return Targets(
        ttft_ms=target.ttft_ms,
        itl_ms=target.itl_ms,
        tokens_per_s=target.tokens_per_s,
        ttft_percentile=ModelTarget.percentile(target.ttft_statistic),
        itl_percentile=ModelTarget.percentile(target.itl_statistic),
    )


class _Lru:
    """A bounded least-recently-used dictionary."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        """The cached value of `key`, made (and cached) on a miss."""
        if key in self.data:
            self.data.move_to_end(key)
            return self.data[key]
        value = self.data[key] = make()
        if len(self.data) > self.size:
            self.data.popitem(last=False)
        return value


@dataclass(frozen=True, slots=True)
class _Index:
    """Look-ups into a spec, built once per problem, and that problem's memos: targets
    per (class, model), and sizings by the identity of the profile and targets objects
    (alive while the problem is built), so 100,000 candidates hash no `Targets` and
    touch the generator's LRU cache once per distinct sizing."""

    accelerators: dict[str, Accelerator]
    profiles: dict[str, list[Profile]]
    priorities: dict[str, int]
    targets: dict[tuple[str, str], Targets] = field(default_factory=dict)
    sizings: dict[tuple[Any, ...], Sizing] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: FleetSpec) -> _Index:
        """Index a spec."""
        profiles: dict[str, list[Profile]] = {}
        for p in spec.profiles:
            profiles.setdefault(p.model, []).append(p)
        return cls(
            {a.name: a for a in spec.accelerators},
            profiles,
            {c.name: c.priority for c in spec.service_classes},
        )

    def profile(self, model: str, accelerator: str) -> Profile | None:
        """The profile of a model on an accelerator, if any."""
        return next((p for p in self.profiles.get(model, []) if p.accelerator == accelerator), None)

    def targets_for(self, spec: FleetSpec, server: Server) -> Targets:
        """The server's `Targets` (one object per class and model)."""
        key = (server.service_class, server.model)
        if key not in self.targets:
            self.targets[key] = to_targets(spec.targets_for(server))
        return self.targets[key]


class CandidateGenerator:
    """Builds a `Problem` from a spec with one queue model; caches sizing across calls."""

    def __init__(
        self,
        model: QueueModel,
        *,
        batch_policy: str = "auto",
        cache_size: int = 65536,
        laws: Mapping[tuple[str, str], IterationCost] | None = None,
        workloads: Mapping[str, WorkloadSample] | None = None,
        profiled: Mapping[tuple[str, str], Profile] | None = None,
        jobs: int | None = None,
    ) -> None:
        self.model = model
        self.jobs = default_jobs() if jobs is None else jobs
        """Processes that size side by side (`optimizer.fork_map`; default: the cores)."""
        self.laws = dict(laws or {})
        """Measured iteration-cost law by (model, accelerator), for models that replay."""
        self.workloads = dict(workloads or {})
        """A sample of each server's requests (by server name), for models that replay."""
        self.profiled = dict(profiled or {})
        """Profiles as first configured, by (model, accelerator): where no law was
        measured, models that replay use this profile's law and apply a tuned profile as
        a time scale against it (so tuning never re-measures)."""
        self.batch_policy = resolve_batch_policy(batch_policy, model.name)
        self._sizes_itself = isinstance(model, CandidateSizer)
        self._sizing = _Lru(cache_size)
        self._prepared = _Lru(cache_size)
        self.lookups = 0

    @property
    def distinct_sizings(self) -> int:
        """Sizings held in the cache (each computed once)."""
        return len(self._sizing.data)

    def problem(self, spec: FleetSpec, *, predict: bool = True) -> Problem:
        """Candidates of every server (sorted by name) and the capacity per card type."""
        index = _Index.of(spec)
        factor = spec.optimizer.transition_factor
        self._size_all(spec, index, factor)
        servers = tuple(
            self.server_candidates(spec, index, s, factor, predict=predict)
            for s in sorted(spec.servers, key=lambda s: s.name)
        )
        return Problem(servers, dict(sorted(spec.capacity.items())), factor)

    def prepared(self, params: ServiceParams) -> PreparedQueue:
        """The queue model bound to `params` (cached)."""
        return self._prepared.get(params, lambda: self.model.prepare(params))

    def predict(
        self, params: ServiceParams, rate_rps: float, targets: Targets
    ) -> tuple[float, float]:
        """(TTFT, ITL) of one replica at a rate, each the targets' statistic.

        Above the sizing range (a best-effort replica) the finite queue blocks arrivals,
        so the numbers stay finite and show the saturated latencies.
        """
        queue = self.prepared(params)
        ttft, itl = queue.latencies_ms(
            max(rate_rps, 0.0), targets.ttft_quantile, targets.itl_quantile
        )
        return float(ttft), float(itl)

    def size(self, profile: Profile, server: Server, targets: Targets, out_tokens: float) -> Sizing:
        """Batch, queue and max rate of one replica of `profile` for `server` (cached)."""
        key = self._key(profile, server, targets, out_tokens)
        self.lookups += 1
        return self._sizing.get(key, lambda: self._size(profile, server, targets, out_tokens))

    def _size_all(self, spec: FleetSpec, index: _Index, factor: float) -> None:
        """Size every configuration the spec's candidates need and the cache lacks, all
        side by side (`queue_models.lockstep`: the same sizings as one by one, faster)."""
        if self._sizes_itself:
            return
        wanted: dict[tuple[Any, ...], tuple[Profile, Server, Targets, float]] = {}
        for server in spec.servers:
            need = _Need.of(spec, index, server, factor, False)
            for profile in self._sized_profiles(index, need):
                out_tokens = max(server.load.out_tokens, 1.0)
                key = self._key(profile, server, need.targets, out_tokens)
                if key not in self._sizing.data:
                    wanted.setdefault(key, (profile, server, need.targets, out_tokens))
        found = fork_map(self._size_batch, list(wanted.values()), self.jobs)
        for key, sizing in zip(wanted, found, strict=True):
            self._sizing.get(key, lambda sizing=sizing: sizing)

    def _size_batch(self, wanted: Sequence[tuple[Profile, Server, Targets, float]]
                    ) -> list[Sizing]:
        """Sizings of many configurations, side by side (`queue_models.lockstep`)."""
        return run_all([self._size_steps(*args) for args in wanted])

    def _key(self, profile: Profile, server: Server, targets: Targets, out_tokens: float
             ) -> tuple[Any, ...]:
        """What a sizing depends on (the cache key)."""
        return (
            profile.alpha_ms,
            profile.beta_ms,
            profile.gamma_ms,
            profile.token_budget,
            profile.max_batch,
            profile.at_tokens,
            server.load.in_tokens,
            out_tokens,
            targets,
            server.max_batch,
            server.max_queue,
            self.laws.get((profile.model, profile.accelerator)),
            self.workloads.get(server.name),
            server.time_scale.get(profile.accelerator, 1.0),
        )

    def _params(
        self, profile: Profile, server: Server, out_tokens: float, batch: int
    ) -> ServiceParams:
        queue = (
            server.max_queue
            if server.max_queue is not None
            else self.model.default_max_queue(batch)
        )
        workload = self.workloads.get(server.name) if self._sizes_itself else None
        in_tokens = server.load.in_tokens
        if workload is not None:  # the sample is replayed, not the window's means
            in_tokens, out_tokens = workload.mean_in_tokens, workload.mean_out_tokens
        return ServiceParams(
            alpha_ms=profile.alpha_ms,
            beta_ms=profile.beta_ms,
            gamma_ms=profile.gamma_ms,
            in_tokens=in_tokens,
            out_tokens=out_tokens,
            max_batch=batch,
            max_queue=queue,
            token_budget=profile.token_budget,
            workload=workload,
            **self._law(profile, server.time_scale.get(profile.accelerator, 1.0)),
        )

    def params_for(self, profile: Profile, server: Server, max_batch: int,
                   token_budget: int | None = None) -> ServiceParams:
        """One replica configuration of `profile` for `server`, as candidates build it."""
        params = self._params(profile, server, max(server.load.out_tokens, 1.0), max_batch)
        return replace(params, token_budget=token_budget) if token_budget else params

    @property
    def sizes_itself(self) -> bool:
        """True when the model sizes candidates itself (a measured model)."""
        return self._sizes_itself

    def _law(self, profile: Profile, correction: float) -> dict[str, Any]:
        """The measured law of the profile's pair, else the profiled reference's law with
        the tuned profile as a time scale, else the profile's own; times the server's
        online correction for the accelerator (scales on the 2% grid)."""
        key = (profile.model, profile.accelerator)
        if not self._sizes_itself:
            return {}
        if key in self.laws:
            return {"law": self.laws[key], "time_scale": on_grid(correction)}
        reference = self.profiled.get(key)
        if reference is None:
            return {"time_scale": on_grid(correction)}
        base = LinearCost(reference.alpha_ms, reference.beta_ms, reference.gamma_ms)
        scale = time_scale(LinearCost(profile.alpha_ms, profile.beta_ms, profile.gamma_ms),
                           base, *SCALE_REFERENCE_TOKENS)
        return {"law": base, "time_scale": on_grid(scale * correction)}

    def _size(
        self, profile: Profile, server: Server, targets: Targets, out_tokens: float
    ) -> Sizing:
        if self._sizes_itself:
            assert isinstance(self.model, CandidateSizer)
            ceiling = self.model.effective_max_batch(
                profile.max_batch, profile.at_tokens, out_tokens
            )
            return self._size_measured(self.model, profile, server, targets, out_tokens, ceiling)
        return run(self._size_steps(profile, server, targets, out_tokens))

    def _size_steps(
        self, profile: Profile, server: Server, targets: Targets, out_tokens: float
    ) -> Steps[Sizing]:
        """`_size` for the analytic models, as `Steps` (to run side by side)."""
        ceiling = self.model.effective_max_batch(profile.max_batch, profile.at_tokens, out_tokens)
        batch: int | None = server.max_batch
        if batch is None:
            search_params = self._params(profile, server, out_tokens, ceiling)
            batch = yield from BATCH_POLICIES.get(self.batch_policy)(
                self.model, search_params, targets, ceiling
            )
            if batch is None:
                at_one = yield from size_prepared_steps(
                    self.prepared(self._params(profile, server, out_tokens, 1)), targets
                )
                return Sizing(None, 0.0, False, _infeasible_reason(at_one, ceiling, searched=True))
        params = self._params(profile, server, out_tokens, batch)
        sizing = yield from size_prepared_steps(self.prepared(params), targets, exhaustive=False)
        if not sizing.feasible:
            return Sizing(params, 0.0, False, _infeasible_reason(sizing, batch))
        # inferno sizes replicas with the throughput at the sized rate (blocking removed)
        rate = sizing.performance.throughput_rps
        return Sizing(params, float(rate), rate > 0, "" if rate > 0 else "zero max rate")

    def _size_measured(self, model: CandidateSizer, profile: Profile, server: Server,
                       targets: Targets, out_tokens: float, ceiling: int) -> Sizing:
        """Sizing by a model that chooses the configuration and measures pools."""
        batch = server.max_batch or ceiling
        params = self._params(profile, server, out_tokens, batch)
        found = model.size_candidate(params, targets, fixed_batch=server.max_batch is not None)
        if not found.feasible:
            return Sizing(None, 0.0, False, found.reason)
        return Sizing(model.configured(params, found), found.rate_at(1), True, pool=found)

    def server_candidates(
        self, spec: FleetSpec, index: _Index, server: Server, factor: float, *, predict: bool = True
    ) -> ServerCandidates:
        """One server's candidates (sorted by value, then name) and rejected accelerators."""
        need = _Need.of(spec, index, server, factor, predict)
        base = need.fields(index)
        if need.demand <= 0 and server.min_replicas == 0:
            return ServerCandidates(candidates=(), scale_to_zero=True, **base)
        current = server.current
        profiles = self._profiles(index, server)
        if server.keep_accelerator and current is not None and not profiles:
            reason = "keep_accelerator: no profile for the model"
            return ServerCandidates(
                candidates=(), rejected=((current.accelerator, reason),), **base
            )
        found: list[Candidate] = []
        rejected: list[tuple[str, str]] = []
        for profile in profiles:
            made = self._candidate(index, need, profile)
            if isinstance(made, str):
                rejected.append((profile.accelerator, made))
            else:
                found.append(made)
        found.sort(key=lambda c: c.order_key)
        return ServerCandidates(candidates=tuple(found), rejected=tuple(sorted(rejected)), **base)

    @staticmethod
    def _profiles(index: _Index, server: Server) -> list[Profile]:
        """The profiles a server's candidates come from (only the current accelerator's
        with `keep_accelerator`)."""
        profiles = index.profiles.get(server.model, [])
        current = server.current
        if server.keep_accelerator and current is not None:
            return [p for p in profiles if p.accelerator == current.accelerator]
        return profiles

    def _sized_profiles(self, index: _Index, need: _Need) -> list[Profile]:
        """The profiles `_candidate` sizes for a server (none when it scales to zero)."""
        server = need.server
        if need.demand <= 0 and server.min_replicas == 0:
            return []
        if not (need.demand > 0 or server.load.out_tokens >= 1):
            return []
        return self._profiles(index, server)

    def _sized(self, index: _Index, need: _Need, profile: Profile) -> Sizing:
        """`size` through the problem's memo (a lookup either way)."""
        server = need.server
        key = (
            id(profile),
            id(need.targets),
            server.load.in_tokens,
            server.load.out_tokens,
            server.max_batch,
            server.max_queue,
            id(self.workloads.get(server.name)),
            server.time_scale.get(profile.accelerator, 1.0),
        )
        found = index.sizings.get(key)
        if found is None:
            out_tokens = max(server.load.out_tokens, 1.0)
            found = index.sizings[key] = self.size(profile, server, need.targets, out_tokens)
        else:
            self.lookups += 1
        return found

    def _candidate(self, index: _Index, need: _Need, profile: Profile) -> Candidate | str:
        """The candidate of one accelerator, or why there is none."""
        server = need.server
        out_tokens = server.load.out_tokens
        sizing = Sizing(None, 0.0, True)
        if need.demand > 0 or out_tokens >= 1:
            sizing = self._sized(index, need, profile)
            if not sizing.feasible:
                return sizing.reason
        replicas = server.min_replicas
        rate = sizing.max_rate_rps
        if need.demand > 0:
            needed, rate = sizing.replicas_for(need.demand)
            replicas = max(needed, replicas, 1)
        if server.max_replicas is not None and replicas > server.max_replicas:
            return f"needs {replicas} replicas, max_replicas is {server.max_replicas}"
        ttft = itl = 0.0
        if need.predict and sizing.params is not None and replicas > 0:
            ttft, itl = self.predict(sizing.params, need.demand / replicas, need.targets)
        return _make(index, need, profile, sizing, replicas, (ttft, itl), rate)


@dataclass(frozen=True, slots=True)
class _Need:
    """What one server asks for: targets, the rate to size for, and its current cost."""

    server: Server
    priority: int
    targets: Targets
    demand: float
    current_cost: float
    factor: float
    predict: bool

    @classmethod
    def of(
        cls, spec: FleetSpec, index: _Index, server: Server, factor: float, predict: bool
    ) -> _Need:
        targets = index.targets_for(spec, server)
        load = server.load
        demand = load.arrival_rate_rps
        if targets.tokens_per_s > 0 and load.out_tokens >= 1:
            demand = max(demand, targets.tokens_per_s / load.out_tokens)
        priority = index.priorities[server.service_class]
        return cls(server, priority, targets, demand, _current_cost(index, server), factor, predict)

    def fields(self, index: _Index) -> dict[str, Any]:
        """The `ServerCandidates` fields that do not depend on the candidates."""
        server, current = self.server, self.server.current
        return dict(
            server=server.name,
            model=server.model,
            service_class=server.service_class,
            priority=self.priority,
            arrival_rate_rps=server.load.arrival_rate_rps,
            demand_rps=self.demand,
            targets=self.targets,
            min_replicas=server.min_replicas,
            max_replicas=server.max_replicas,
            current_accelerator=current.accelerator if current else None,
            current_replicas=current.replicas if current else 0,
            current_cost=self.current_cost,
        )


def _make(
    index: _Index,
    need: _Need,
    profile: Profile,
    sizing: Sizing,
    replicas: int,
    predicted: tuple[float, float],
    rate: float,
) -> Candidate:
    accelerator = index.accelerators[profile.accelerator]
    server, params = need.server, sizing.params
    per_replica = accelerator.cost_per_hour * profile.units_per_replica
    cost = round(replicas * per_replica, 9)
    current = server.current.accelerator if server.current else None
    return Candidate(
        server=server.name,
        accelerator=accelerator.name,
        card_type=accelerator.card_type,
        replicas=replicas,
        max_batch=params.max_batch if params else server.max_batch or profile.max_batch,
        max_queue=params.max_queue if params else server.max_queue or 0,
        cards_per_replica=profile.units_per_replica * accelerator.multiplicity,
        cost_per_replica=per_replica,
        max_rate_per_replica_rps=rate,
        cost=cost,
        value=transition_value(accelerator.name, cost, current, need.current_cost, need.factor),
        params=params,
        predicted_ttft_ms=predicted[0],
        predicted_itl_ms=predicted[1],
    )


def _current_cost(index: _Index, server: Server) -> float:
    """Cost of what the server runs now (its replicas on its current accelerator)."""
    current = server.current
    if current is None or current.replicas == 0:
        return 0.0
    accelerator = index.accelerators[current.accelerator]
    profile = index.profile(server.model, current.accelerator)
    units = profile.units_per_replica if profile is not None else 1
    return current.replicas * accelerator.cost_per_hour * units


def _infeasible_reason(sizing: RateSizing, batch: int, searched: bool = False) -> str:
    perf = sizing.performance
    at = {"ttft": perf.avg_ttft_ms, "itl": perf.avg_itl_ms}.get(sizing.binding)
    missed = (
        f" (mean {at:.1f} ms at the lowest rate{' and batch 1' if searched else ''})"
        if at is not None
        else ""
    )
    where = f"any max batch up to {batch}" if searched else f"max batch {batch}"
    return f"{sizing.binding.upper()} target unreachable at {where}{missed}"
