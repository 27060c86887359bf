"""`capacity-table`: a queue model measured by replaying the workload, sized for per-request
tails.

The analytic models (`batch-queue`) predict means well but a 99th percentile poorly: their
TTFT tail is the waiting-time quantile plus the mean prefill, and their ITL is a
token-level figure at mean sizes, while a service class counts each request's own TTFT
and mean ITL with the workload's real, heavy-tailed sizes and bursty arrivals. This model
measures instead, as Dynamo's profiler and Melange/AIBrix do: for a replica
configuration it replays a sample of the server's requests (`ServiceParams.workload`,
else a synthetic sample around the mean sizes) through the batching engine timed by the
hardware's iteration-cost law (`ServiceParams.law`, e.g. a measured timing table, else
the profile's alpha, beta, gamma, each rounded to a 2% grid so that nearby profiles share
tables) and records per-request latencies against the rate
(`queue_models.capacity_table`).

Sizing (`size_candidate`, which the optimizer's candidate generator calls instead of its
generic search) chooses max batch and token budget and measures how much load a replica
carries alone and in pools (`queue_models.capacity_sizing`). Tables are kept in a
`CapacityCache` (optionally on disk), so sizing a configuration measured before is a
lookup; sizings are also memoised per (parameters, targets).

The `QueueModel` methods answer from the tables of one replica alone (pool of 1):
predicted TTFT/ITL at a rate interpolate between the probes nearest to it (a new probe is
run only when the table is empty). `max_queue` is not modelled: replays queue without
bound (a request that waits too long misses its TTFT target anyway).

To extend: options are `CalibrationOptions` fields; the registry builds the model with
defaults and an in-memory cache; wiring that knows a cache folder or measured laws builds
its own instance and hands it to the candidate generator.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from queue_models.base import FloatArray, IntArray, Performance, ServiceParams, Targets
from queue_models.capacity_cache import CapacityCache
from queue_models.capacity_sizing import (
    CalibrationOptions,
    CapacitySizing,
    Config,
    configs,
    pool_curve,
    search_config,
)
from queue_models.capacity_table import (
    CapacityTable,
    Criteria,
    Probe,
    TableKey,
    largest_rate,
    quantile_ms,
)
from queue_models.iteration_cost import IterationCost, LinearCost
from queue_models.replay import ReplaySetup, replay
from queue_models.workload_sample import WorkloadSample

NAME = "capacity-table"
CEILING_GUESSES = 4.0
"""No rate above this many `capacity_guess`es is probed (twice the rate that keeps a
full batch busy): loose targets would otherwise pass at any rate a short sample allows."""


def law_digest(law: IterationCost) -> str:
    """A stable digest of a law (its repr: frozen dataclasses of numbers)."""
    return hashlib.sha1(repr(law).encode()).hexdigest()[:16]


PROFILE_GRID = 1.02
"""Profile parameters are rounded to a geometric grid of this ratio before replaying, so
profiles within about 1% of each other (a tuner's small steps) share tables."""


def on_grid(value: float) -> float:
    """`value` rounded to the nearest point of the `PROFILE_GRID` geometric grid."""
    if value <= 0:
        return 0.0
    step = math.log(PROFILE_GRID)
    return float(f"{math.exp(round(math.log(value) / step) * step):.6g}")


def law_of(params: ServiceParams) -> IterationCost:
    """The law replays use: the params' measured law, else the profile's (on the grid)."""
    if params.law is not None:
        return params.law
    return LinearCost(on_grid(params.alpha_ms), on_grid(params.beta_ms),
                      on_grid(params.gamma_ms))


def capacity_guess(law: IterationCost, params: ServiceParams) -> float:
    """A rough per-replica rate (req/s) to start searching from: half the rate at which a
    full batch and its prefills would keep the replica busy."""
    batch, budget = params.max_batch, max(params.token_budget, 1)
    context = int(batch * (params.in_tokens + params.out_tokens / 2))
    decode_s = law.duration_ms(batch, context, 0, 0) / 1000.0
    chunk_s = law.duration_ms(0, 0, budget, budget) / 1000.0
    per_request_s = params.out_tokens * decode_s / batch + params.in_tokens / budget * chunk_s
    return 0.5 / per_request_s if per_request_s > 0 else 1.0


@dataclass
class CapacityTableModel:
    """See the module docstring."""

    options: CalibrationOptions = CalibrationOptions()
    cache: CapacityCache | None = None
    name: ClassVar[str] = NAME

    def __post_init__(self) -> None:
        self.cache = self.cache or CapacityCache()
        self._sizings: dict[tuple[ServiceParams, Targets, bool], CapacitySizing] = {}
        self.replays = 0

    # -- measuring ----------------------------------------------------------------------

    def sample_of(self, params: ServiceParams) -> WorkloadSample:
        """The workload replayed for `params` (cut to `options.requests`)."""
        sample = params.workload
        if sample is None:
            return _synthetic(params.in_tokens, params.out_tokens, self.options)
        if sample.requests > self.options.requests:
            return _cut(sample, self.options.requests)
        return sample

    def table(self, params: ServiceParams, config: Config, replicas: int) -> CapacityTable:
        """The table of one configuration and pool size for `params`' law and workload."""
        assert self.cache is not None
        key = TableKey(law_digest(law_of(params)), config.max_batch, config.token_budget,
                       replicas, self.sample_of(params).digest, self.options.noise_cv,
                       self.options.seed)
        return self.cache.table(key)

    def probe(self, params: ServiceParams, config: Config, replicas: int,
              rate: float) -> Probe:
        """Replay once at a per-replica rate."""
        setup = ReplaySetup(law_of(params), config.max_batch, config.token_budget, replicas,
                            self.options.noise_cv, self.options.seed)
        self.replays += 1
        result = replay(setup, self.sample_of(params), rate)
        return Probe(rate, result.ttft_s.astype(np.float32), result.itl_s.astype(np.float32),
                     result.overloaded)

    def largest_rate(self, params: ServiceParams, criteria: Criteria, config: Config,
                     replicas: int, guess: float, *, coarse: bool = False,
                     growth: float = 2.0) -> float:
        """Largest per-replica rate of a configuration in a pool, within `criteria`
        (to three times the tolerance when `coarse`)."""
        assert self.cache is not None
        table = self.table(params, config, replicas)
        before = len(table.probes)
        tolerance = self.options.tolerance * (3.0 if coarse else 1.0)
        ceiling = CEILING_GUESSES * capacity_guess(law_of(params), replace(
            params, max_batch=config.max_batch, token_budget=config.token_budget))
        rate = largest_rate(table, criteria,
                            lambda r: self.probe(params, config, replicas, r), guess,
                            tolerance, growth=growth, ceiling=ceiling)
        if len(table.probes) != before:
            self.cache.save(table)
        return rate

    # -- sizing -------------------------------------------------------------------------

    def size_candidate(self, params: ServiceParams, targets: Targets,
                       fixed_batch: bool = False) -> CapacitySizing:
        """Best configuration up to `params.max_batch` (the ceiling; exactly it with
        `fixed_batch`), and its pool curve."""
        key = (params, targets, fixed_batch)
        found = self._sizings.get(key)
        if found is None:
            found = self._sizings[key] = self._size(params, targets, fixed_batch)
        return found

    def _size(self, params: ServiceParams, targets: Targets,
              fixed_batch: bool) -> CapacitySizing:
        """Measured on the unscaled law: a replica `s` times slower at rate r is the
        measured one at rate r s with latencies times s, so the search runs on the base
        tables with the targets divided by s, and the rates found are divided by s. A
        scaled sizing keeps the configuration of the unscaled one (when it is feasible at
        all), so a new scale costs a few refining replays, not a new search."""
        scale = params.time_scale
        base = replace(params, time_scale=1.0)
        criteria = Criteria.of(targets, self.options.headroom).scaled(1.0 / scale)

        def search(config: Config, replicas: int, guess: float, *, coarse: bool = False,
                   growth: float = 2.0) -> float:
            return self.largest_rate(base, criteria, config, replicas, guess, coarse=coarse,
                                     growth=growth)

        tried = configs(params.max_batch, params.token_budget, self.options, fixed_batch)
        config, rate = None, 0.0
        if scale != 1.0:
            unscaled = self.size_candidate(base, targets, fixed_batch)
            if unscaled.config is not None:
                config = unscaled.config
                rate = search(config, 1, unscaled.rate_at(1), growth=1.25)
                if rate <= 0:
                    return CapacitySizing(None, (), _infeasible(targets, [config]))
        if config is None:
            config, rate = search_config(tried, search, capacity_guess(law_of(base), base))
        if config is None:
            return CapacitySizing(None, (), _infeasible(targets, tried))
        curve = pool_curve(config, rate, search, self.options.pool_sizes)
        return CapacitySizing(config, tuple((n, r / scale) for n, r in curve))

    def configured(self, params: ServiceParams, sizing: CapacitySizing) -> ServiceParams:
        """`params` with the sizing's max batch and token budget."""
        if sizing.config is None:
            return params
        return replace(params, max_batch=sizing.config.max_batch,
                       token_budget=sizing.config.token_budget)

    # -- the QueueModel protocol (one replica alone) -------------------------------------

    def prepare(self, params: ServiceParams) -> PreparedCapacity:
        """The model bound to one configuration."""
        return PreparedCapacity(self, params)

    def evaluate(self, params: ServiceParams, arrival_rate_rps: float) -> Performance:
        """Means at a rate, from the tables."""
        return self.prepare(params).evaluate(arrival_rate_rps)

    def max_rate_rps(self, params: ServiceParams) -> float:
        """Highest rate probed without overload (the rough capacity before any probe)."""
        return self.prepare(params).max_rate_rps

    def min_rate_rps(self, params: ServiceParams) -> float:
        """A thousandth of the highest rate."""
        return self.prepare(params).min_rate_rps

    def ttft_quantile_ms(self, params: ServiceParams, arrival_rate_rps: float, q: float) -> float:
        """q-quantile of per-request TTFT at a rate."""
        return self.prepare(params).ttft_ms(arrival_rate_rps, q)

    def itl_quantile_ms(self, params: ServiceParams, arrival_rate_rps: float, q: float) -> float:
        """q-quantile of per-request mean ITL at a rate."""
        return self.prepare(params).itl_ms(arrival_rate_rps, q)

    def prefill_at_batch_ms(self, params: ServiceParams, batch: IntArray) -> FloatArray:
        """Prefill of a mean prompt alone, whatever the batch (the law has no batch axis
        for prefill chunks)."""
        law = law_of(params)
        tokens = int(round(params.in_tokens))
        one = law.duration_ms(0, 0, tokens, tokens) if tokens else 0.0
        return np.full(np.asarray(batch).shape, one, dtype=np.float64)

    def itl_at_batch_ms(self, params: ServiceParams, batch: IntArray) -> FloatArray:
        """Decode step of b requests of mean context."""
        law = law_of(params)
        context = params.in_tokens + params.out_tokens / 2
        return np.array([law.duration_ms(int(b), int(b * context), 0, 0)
                         for b in np.asarray(batch).tolist()], dtype=np.float64)

    def effective_max_batch(self, ceiling: int, at_tokens: int | None, out_tokens: float) -> int:
        """The profile's ceiling (the search tries fractions of it)."""
        del at_tokens, out_tokens
        return ceiling

    def default_max_queue(self, max_batch: int) -> int:
        """Not modelled; reported as ten batches."""
        return 10 * max_batch


@dataclass
class PreparedCapacity:
    """One configuration's pool-of-one table, answering at any rate by interpolation."""

    model: CapacityTableModel
    params: ServiceParams

    def _table(self) -> CapacityTable:
        config = Config(self.params.max_batch, self.params.token_budget)
        return self.model.table(self.params, config, 1)

    @property
    def scale(self) -> float:
        """The params' time scale (tables are of the unscaled law)."""
        return self.params.time_scale

    @property
    def max_rate_rps(self) -> float:
        """Highest rate probed without overload (the rough capacity before any probe)."""
        fine = [r for r, p in self._table().probes.items() if not p.overloaded]
        top = max(fine) if fine else capacity_guess(law_of(self.params), self.params) * 2
        return top / self.scale

    @property
    def min_rate_rps(self) -> float:
        """A thousandth of the highest rate."""
        return self.max_rate_rps / 1000.0

    def _around(self, rate: float) -> list[tuple[float, Probe]]:
        table = self._table()
        if not table.probes:
            config = Config(self.params.max_batch, self.params.token_budget)
            table.add(self.model.probe(self.params, config, 1, max(rate, 1e-6)))
        rates = table.rates()
        below = [r for r in rates if r <= rate]
        above = [r for r in rates if r >= rate]
        picks = sorted({below[-1] if below else rates[0], above[0] if above else rates[-1]})
        return [(r, table.probes[r]) for r in picks]

    def _metric(self, rate: float, field: str, q: float | None) -> float:
        """The metric at `rate` of a replica `scale` times slower: scale x the measured
        one at rate x scale."""
        return self.scale * self._base_metric(rate * self.scale, field, q)

    def _base_metric(self, rate: float, field: str, q: float | None) -> float:
        points = [(r, quantile_ms(getattr(p, field), q)) for r, p in self._around(rate)]
        if len(points) == 1 or not all(math.isfinite(v) for _, v in points):
            return points[-1][1] if rate >= points[-1][0] else points[0][1]
        (r0, v0), (r1, v1) = points
        return v0 + (v1 - v0) * (rate - r0) / (r1 - r0)

    def ttft_ms(self, arrival_rate_rps: float, q: float | None = None) -> float:
        """Mean (q None) or q-quantile of per-request TTFT, ms."""
        return self._metric(arrival_rate_rps, "ttft_s", q)

    def itl_ms(self, arrival_rate_rps: float, q: float | None = None) -> float:
        """Mean (q None) or q-quantile of per-request mean ITL, ms."""
        return self._metric(arrival_rate_rps, "itl_s", q)

    def latencies_ms(self, arrival_rate_rps: float, ttft_q: float | None,
                     itl_q: float | None) -> tuple[float, float]:
        """(TTFT, ITL), each the mean or the given quantile."""
        return self.ttft_ms(arrival_rate_rps, ttft_q), self.itl_ms(arrival_rate_rps, itl_q)

    def evaluate(self, arrival_rate_rps: float) -> Performance:
        """Means at a rate (throughput is the rate below the highest probed one)."""
        ttft = self.ttft_ms(arrival_rate_rps)
        itl = self.itl_ms(arrival_rate_rps)
        top = self.max_rate_rps
        throughput = min(arrival_rate_rps, top)
        resp = ttft + itl * max(self.params.out_tokens - 1, 0)
        return Performance(arrival_rate_rps=arrival_rate_rps, throughput_rps=throughput,
                           avg_resp_ms=resp, avg_wait_ms=0.0,
                           avg_num_in_serv=throughput * resp / 1000.0, avg_ttft_ms=ttft,
                           avg_itl_ms=itl, max_rps=top,
                           utilization=min(arrival_rate_rps / top, 1.0) if top else 0.0)


@functools.lru_cache(maxsize=256)
def _synthetic(in_tokens: float, out_tokens: float,
               options: CalibrationOptions) -> WorkloadSample:
    return WorkloadSample.synthetic(in_tokens, max(out_tokens, 1.0), requests=options.requests,
                                    size_cv=options.size_cv, seed=options.seed)


def _cut(sample: WorkloadSample, requests: int) -> WorkloadSample:
    """The first `requests` requests of a sample (recorded samples are already spread
    over their source by `WorkloadSample.from_arrivals`)."""
    return WorkloadSample.of(f"{sample.name}[:{requests}]", sample.offsets[:requests],
                             sample.prompt_tokens[:requests], sample.output_tokens[:requests])


def _infeasible(targets: Targets, tried: list[Config]) -> str:
    what = []
    if targets.ttft_ms:
        what.append(f"TTFT {targets.ttft_ms:g} ms")
    if targets.itl_ms:
        what.append(f"ITL {targets.itl_ms:g} ms")
    batches = sorted({c.max_batch for c in tried})
    budgets = sorted({c.token_budget for c in tried})
    return (f"{' and '.join(what) or 'targets'} not met by any measured configuration "
            f"(max batch {batches}, token budget {budgets}) even at a low rate")
