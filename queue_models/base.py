"""Value types and Protocols shared by every queue model.

A queue model predicts how one batched inference replica performs: given the profile
(alpha, beta, gamma), the request sizes, the max batch and the max queue, it says what
throughput, TTFT and ITL a Poisson arrival rate produces, and the range of rates it can
be asked about. fleetplan's optimizer and tuner only see the `QueueModel` Protocol, so
any model that implements it can be registered (see `queue_models.registry`).

Units: times in milliseconds (`_ms`), rates in requests per second (`_rps`).

To extend: write a class that satisfies `QueueModel` (most models reuse
`queue_models.chain_model.ChainQueueModel`, which only needs the service-time, prefill
and ITL formulas) and add one entry to the registry. Add fields to `Performance` only
with a default, so existing models and callers keep working.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from queue_models.iteration_cost import IterationCost
from queue_models.workload_sample import WorkloadSample

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_TOKEN_BUDGET = 8192
"""Tokens per engine iteration (vLLM's max_num_batched_tokens), as inferno's default."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True, slots=True)
class ServiceParams:
    """Profile and configuration of one replica (inferno's problem data, minus the rate).

    alpha_ms, beta_ms, gamma_ms: iteration time = alpha + beta x compute tokens +
    gamma x memory tokens (ms, ms per token, ms per token^2).
    in_tokens, out_tokens: mean input and output tokens per request.
    max_batch: requests served at once (N); max_queue: requests waiting (Q); the chain
    holds at most N + Q requests and blocks arrivals beyond that.
    token_budget: tokens per iteration, used by the chunked-prefill model only.
    law, workload: what the measured model (`capacity-table`) replays: the iteration-cost
    law of the hardware (None: the profile's alpha, beta, gamma) and a sample of the
    server's real requests (None: synthetic ones around the mean sizes). The analytic
    models ignore both.
    time_scale: iteration times are this multiple of the law's (a correction learned
    online, e.g. the tuner's estimate against the profiled reference); the measured model
    reads its tables at rate x scale with latencies x scale. The analytic models ignore it
    (their alpha, beta, gamma are the tuned ones already).
    """

    alpha_ms: float
    beta_ms: float
    gamma_ms: float
    in_tokens: float
    out_tokens: float
    max_batch: int
    max_queue: int
    token_budget: int = DEFAULT_TOKEN_BUDGET
    law: IterationCost | None = None
    workload: WorkloadSample | None = None
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("alpha_ms", "beta_ms", "gamma_ms", "in_tokens"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value >= 0, f"{name} must be >= 0, got {value}")
        _require(
            math.isfinite(self.out_tokens) and self.out_tokens >= 1,
            f"out_tokens must be >= 1, got {self.out_tokens}",
        )
        _require(self.max_batch >= 1, f"max_batch must be >= 1, got {self.max_batch}")
        _require(self.max_queue >= 0, f"max_queue must be >= 0, got {self.max_queue}")
        _require(self.token_budget >= 1, f"token_budget must be >= 1, got {self.token_budget}")
        _require(math.isfinite(self.time_scale) and self.time_scale > 0,
                 f"time_scale must be > 0, got {self.time_scale}")

    @property
    def capacity(self) -> int:
        """Most requests the replica holds (in service plus queued): K = N + Q."""
        return self.max_batch + self.max_queue


@dataclass(frozen=True, slots=True)
class Targets:
    """Service-level targets of one server; 0 means "no target".

    A percentile of None puts the target on the mean (inferno's only choice); 95.0
    puts it on the 95th percentile.
    """

    ttft_ms: float = 0.0
    itl_ms: float = 0.0
    tokens_per_s: float = 0.0
    ttft_percentile: float | None = None
    itl_percentile: float | None = None

    def __post_init__(self) -> None:
        for name in ("ttft_ms", "itl_ms", "tokens_per_s"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value >= 0, f"{name} must be >= 0, got {value}")
        for name in ("ttft_percentile", "itl_percentile"):
            value = getattr(self, name)
            _require(
                value is None or 0 < value < 100,
                f"{name} must be None or in (0, 100), got {value}",
            )

    @property
    def ttft_quantile(self) -> float | None:
        """The TTFT percentile as a probability in (0, 1), None for the mean."""
        return None if self.ttft_percentile is None else self.ttft_percentile / 100.0

    @property
    def itl_quantile(self) -> float | None:
        """The ITL percentile as a probability in (0, 1), None for the mean."""
        return None if self.itl_percentile is None else self.itl_percentile / 100.0


@dataclass(frozen=True, slots=True)
class Performance:
    """Predicted steady state of one replica at one arrival rate (means, ms and rps)."""

    arrival_rate_rps: float
    throughput_rps: float
    avg_resp_ms: float
    avg_wait_ms: float
    avg_num_in_serv: float
    avg_ttft_ms: float
    avg_itl_ms: float
    max_rps: float
    avg_num_in_system: float = 0.0
    avg_serv_ms: float = 0.0
    avg_prefill_ms: float = 0.0
    blocking_prob: float = 0.0
    utilization: float = 0.0


@runtime_checkable
class PreparedQueue(Protocol):
    """A queue model bound to one `ServiceParams`: the fast path for repeated calls.

    Sizing evaluates the same replica at dozens of rates; a prepared queue computes
    the per-batch service rates once. Quantiles take q in (0, 1); a q of None means
    the mean.
    """

    params: ServiceParams
    max_rate_rps: float
    min_rate_rps: float

    def evaluate(self, arrival_rate_rps: float) -> Performance:
        """Steady-state performance at a Poisson arrival rate (rps, >= 0)."""
        ...

    def ttft_ms(self, arrival_rate_rps: float, q: float | None = None) -> float:
        """Mean TTFT (q None) or its q-quantile."""
        ...

    def itl_ms(self, arrival_rate_rps: float, q: float | None = None) -> float:
        """Mean ITL (q None) or its q-quantile."""
        ...

    def latencies_ms(
        self, arrival_rate_rps: float, ttft_q: float | None, itl_q: float | None
    ) -> tuple[float, float]:
        """(TTFT, ITL) from one solve, each the mean or the given quantile."""
        ...


@dataclass(frozen=True, slots=True)
class LatencyBounds:
    """Mean TTFT and ITL at several (queue, rate) pairs, each within its error of what
    the queue's `latencies_ms(rate, None, None)` gives; an infinite error: no bound."""

    ttft_ms: FloatArray
    itl_ms: FloatArray
    ttft_error_ms: FloatArray
    itl_error_ms: FloatArray


class LatencyStack(Protocol):
    """Prepared queues of one kind, one row each, whose mean latencies are evaluated
    for all rows at once (one rate per row)."""

    def bounds(self, rates_rps: FloatArray) -> LatencyBounds:
        """Mean TTFT and ITL of each row at its rate, with error bounds."""
        ...

    def take(self, rows: npt.NDArray[np.intp]) -> LatencyStack:
        """These rows, in this order."""
        ...

    def extend(self, other: LatencyStack) -> LatencyStack:
        """These rows, then the other's (of the same kind)."""
        ...


@runtime_checkable
class BoundedMeans(Protocol):
    """A prepared queue whose mean latencies can also be had fast for many queues of
    its kind at once, with error bounds: sizings run side by side
    (`queue_models.lockstep`) decide on them where the bound cannot change a decision,
    and call `latencies_ms` elsewhere."""

    def stack(self, queues: Sequence[BoundedMeans]) -> LatencyStack:
        """Rows of these queues (all of this one's kind)."""
        ...


@runtime_checkable
class QueueModel(Protocol):
    """Performance model of one batched replica, registered under `name`."""

    name: str

    def prepare(self, params: ServiceParams) -> PreparedQueue:
        """Bind the model to one replica configuration (the fast path)."""
        ...

    def evaluate(self, params: ServiceParams, arrival_rate_rps: float) -> Performance:
        """Steady-state performance at a Poisson arrival rate (rps, >= 0)."""
        ...

    def max_rate_rps(self, params: ServiceParams) -> float:
        """Highest rate sizing considers (inferno: 0.999 x saturated service rate)."""
        ...

    def min_rate_rps(self, params: ServiceParams) -> float:
        """Lowest rate sizing considers (inferno: 0.001 x single-request service rate)."""
        ...

    def ttft_quantile_ms(self, params: ServiceParams, arrival_rate_rps: float, q: float) -> float:
        """q-quantile (q in (0, 1)) of the time to first token of admitted requests."""
        ...

    def itl_quantile_ms(self, params: ServiceParams, arrival_rate_rps: float, q: float) -> float:
        """q-quantile (q in (0, 1)) of the inter-token latency over generated tokens."""
        ...

    def prefill_at_batch_ms(self, params: ServiceParams, batch: IntArray) -> FloatArray:
        """Closed-form prefill time of one request at each batch size (no queueing)."""
        ...

    def itl_at_batch_ms(self, params: ServiceParams, batch: IntArray) -> FloatArray:
        """Closed-form inter-token latency at each batch size (no queueing)."""
        ...

    def effective_max_batch(self, ceiling: int, at_tokens: int | None, out_tokens: float) -> int:
        """Max batch to run with, from a profile's ceiling and the load's output tokens."""
        ...

    def default_max_queue(self, max_batch: int) -> int:
        """Queue length to assume when a server does not give one."""
        ...
