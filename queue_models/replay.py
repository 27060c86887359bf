"""Replaying a workload sample through a pool of batched replicas, in virtual time.

`replay(setup, sample, rate_per_replica_rps)` sends the sample's requests, at the
sample's own arrival pattern scaled to `replicas x rate_per_replica_rps`, to a pool of
`replicas` identical replicas behind a least-loaded router (fewest running + waiting
requests, ties by index), each running `queue_models.fused.FusedEngine` with the setup's
iteration-cost law, max batch and token budget (and, when `noise_cv` > 0, seeded
lognormal noise per iteration). It returns every request's TTFT and its own mean ITL
(decode time over tokens after the first; NaN for one-token requests), in arrival order.

This is what a profiler does on real hardware (Dynamo's, Melange's, AIBrix's): measure a
replica configuration under the workload's real sizes and burstiness. A replay that
falls hopelessly behind (more than `overload_waiting` requests waiting per replica) is
stopped: it is marked `overloaded` and the requests not yet served get an infinite TTFT,
so any latency target counts them as misses; so is one whose queue still holds a tenth of
the sample (and more than a batch per replica) when the last request arrives.

Deterministic: the same setup, sample and rate give the same arrays.

To extend: another routing rule is another `_pick`; anything else per replica (KV
capacity, queue bound) is one more `ReplaySetup` field passed into the `EngineConfig`.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from queue_models.engine_types import EngineConfig, Iteration, RequestState
from queue_models.fused import FusedEngine
from queue_models.iteration_cost import IterationCost, NoisyCost, lognormal_factors
from queue_models.workload_sample import WorkloadSample

OVERLOAD_WAITING = 256
"""Waiting requests per replica beyond which a replay is abandoned as overloaded."""
BACKLOG_SHARE = 0.1
"""A replay whose waiting queue still holds this share of its requests (and more than
a batch per replica) when the last one arrives could not keep up: it is overloaded too.
This catches overload in samples too short to fill `OVERLOAD_WAITING`."""


@dataclass(frozen=True)
class ReplaySetup:
    """One replica configuration and the pool replayed through."""

    law: IterationCost
    max_batch: int
    token_budget: int
    replicas: int = 1
    noise_cv: float = 0.0
    seed: int = 0
    overload_waiting: int = OVERLOAD_WAITING

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.token_budget < 1 or self.replicas < 1:
            raise ValueError("max_batch, token_budget and replicas must be >= 1")
        if self.noise_cv < 0:
            raise ValueError(f"noise_cv must be >= 0, got {self.noise_cv}")


@dataclass(frozen=True)
class ReplayResult:
    """Per-request latencies of one replay (seconds, arrival order)."""

    rate_per_replica_rps: float
    ttft_s: npt.NDArray[np.float64]
    itl_s: npt.NDArray[np.float64]
    overloaded: bool
    busy_fraction: float
    """Mean over replicas of the time spent iterating, over the replay's length."""


def _engines(setup: ReplaySetup) -> list[FusedEngine]:
    engines = []
    for k in range(setup.replicas):
        law: IterationCost = setup.law
        if setup.noise_cv > 0:
            rng = np.random.default_rng([setup.seed, k])
            law = NoisyCost(law, lognormal_factors(setup.noise_cv, rng))
        config = EngineConfig(0.0, 0.0, 0.0, max_batch=setup.max_batch,
                              token_budget=setup.token_budget, law=law)
        engines.append(FusedEngine(config))
    return engines


class _Pool:
    """The replicas, their iterations in flight, and the requests submitted."""

    def __init__(self, setup: ReplaySetup) -> None:
        self.setup = setup
        self.engines = _engines(setup)
        self.inflight: list[Iteration | None] = [None] * setup.replicas
        self.heap: list[tuple[float, int]] = []
        self.requests: list[RequestState] = []

    def submit(self, i: int, prompt: int, output: int, now: float) -> None:
        k = min(range(len(self.engines)),
                key=lambda j: (self.engines[j].running + self.engines[j].waiting, j))
        self.requests.append(self.engines[k].submit(str(i), prompt, output, now))
        self.run(k, now, now)

    def run(self, k: int, now: float, horizon: float) -> None:
        """Let replica k run up to `horizon` if it is idle."""
        if self.inflight[k] is not None:
            return
        _, iteration = self.engines[k].advance(now, horizon)
        self.inflight[k] = iteration
        if iteration is not None:
            heapq.heappush(self.heap, (iteration.end_s, k))

    def complete_until(self, t: float) -> None:
        """Complete every iteration ending at or before `t`, in time order."""
        while self.heap and self.heap[0][0] <= t:
            end, k = heapq.heappop(self.heap)
            iteration = self.inflight[k]
            assert iteration is not None
            self.inflight[k] = None
            self.engines[k].complete(iteration, end)
            self.run(k, end, t)

    def waiting(self) -> int:
        return sum(e.waiting for e in self.engines)


def replay(setup: ReplaySetup, sample: WorkloadSample,
           rate_per_replica_rps: float) -> ReplayResult:
    """Replay `sample` through the pool at `rate_per_replica_rps` per replica."""
    pool = _Pool(setup)
    times = sample.arrival_times(rate_per_replica_rps * setup.replicas)
    prompts, outputs = sample.prompt_tokens.tolist(), sample.output_tokens.tolist()
    limit = setup.overload_waiting * setup.replicas
    overloaded = False
    for i, t in enumerate(times.tolist()):
        pool.complete_until(t)
        pool.submit(i, prompts[i], outputs[i], t)
        if pool.waiting() > limit:
            overloaded = True
            break
    backlog = pool.waiting()
    if not overloaded and backlog > max(BACKLOG_SHARE * sample.requests,
                                        setup.max_batch * setup.replicas):
        overloaded = True
    if not overloaded:
        pool.complete_until(math.inf)
    end = max((r.finished_s or 0.0 for r in pool.requests), default=0.0)
    busy = sum(e.stats.busy_s for e in pool.engines) / max(end * setup.replicas, 1e-9)
    ttft, itl = _latencies(pool.requests, sample.requests)
    return ReplayResult(rate_per_replica_rps, ttft, itl, overloaded, min(busy, 1.0))


def _latencies(requests: list[RequestState], total: int,
               ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """TTFT and per-request mean ITL (s); infinite for requests never served."""
    ttft = np.full(total, math.inf)
    itl = np.full(total, math.inf)
    for i, r in enumerate(requests):
        if r.first_token_s is not None:
            ttft[i] = r.first_token_s - r.arrival_s
        if r.finished_s is not None and r.first_token_s is not None:
            itl[i] = ((r.finished_s - r.first_token_s) / (r.output_tokens - 1)
                      if r.output_tokens > 1 else math.nan)
    return ttft, itl
