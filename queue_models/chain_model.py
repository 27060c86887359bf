"""Template for queue models built on the batch birth-death chain (`queue_models.chain`).

inferno's models differ only in three formulas of the batch size b: the service time
tau(b) of one request when b requests share the engine, the prefill time prefill(b)
and the inter-token latency itl(b). Everything else is shared and lives here:

- the chain uses mu(b) = b / tau(b) for b = 1..N;
- mean metrics at a rate follow inferno: ns = mean number in service, S = ns / X,
  prefill = prefill(ns), ITL = (S - prefill) / out_tokens, TTFT = W + prefill + ITL;
- the rate range is [0.001 mu(1), 0.999 mu(N)] (x 1000 for per-second rates);
- TTFT quantile = wait quantile (exact for the chain, see `queue_models.chain`) plus the
  same deterministic part as the mean (prefill(ns) + ITL), i.e. the service-side part
  is taken at its mean;
- ITL quantile = itl(b_q), b_q the q-quantile of the in-service count seen by tokens.
  An approximation: it ignores the spread of a request's ITL within one batch size and
  treats each token as if the batch stayed at b for its whole gap.

Formulas are given as `BatchTerms`: per integer batch b, coefficients with
f(x) = max(offset + slope x, 0) + constant for a batch x that rounds to b. Both of
inferno's generations have that shape (affine in the batch once the number of prefill
chunks is fixed), and it lets a fractional mean batch be evaluated with float
arithmetic, which keeps one evaluation at a few tens of microseconds.

To extend: subclass `ChainQueueModel`, set `name`, implement `batch_formulas`
(vectorised over an integer batch array), and register the class in
`queue_models.registry`.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, cast

import numpy as np
import numpy.typing as npt

from queue_models.base import (
    BoundedMeans,
    FloatArray,
    IntArray,
    LatencyBounds,
    LatencyStack,
    Performance,
    ServiceParams,
)
from queue_models.chain import (
    BatchChain,
    ChainState,
    make_chain,
    solve_chain,
    token_batch_quantile,
    wait_quantile_ms,
)
from queue_models.chain_means import ChainStack, StackedMeans

RATE_EPSILON = 0.001
"""inferno's Epsilon: sizing runs on [eps x mu(1), (1 - eps) x mu(N)]."""


@dataclass(frozen=True, slots=True)
class BatchTerms:
    """f(x) = max(offset[b] + slope[b] x, 0) + constant[b] for x that rounds to b."""

    offset: FloatArray
    slope: FloatArray
    constant: FloatArray

    def at_batches(self, batch: IntArray) -> FloatArray:
        """f at the integer batches the terms were computed for (vectorised)."""
        x = np.asarray(batch, dtype=np.float64)
        return np.maximum(self.offset + self.slope * x, 0.0) + self.constant


@dataclass(frozen=True, slots=True)
class _FloatTerms:
    """`BatchTerms` of b = 1..N as Python lists, for scalar evaluation at fractional x."""

    offset: list[float]
    slope: list[float]
    constant: list[float]

    terms: BatchTerms
    """The same terms as arrays (for `QueueStack`)."""

    @classmethod
    def of(cls, terms: BatchTerms) -> _FloatTerms:
        return cls(terms.offset.tolist(), terms.slope.tolist(), terms.constant.tolist(), terms)

    def at(self, x: float) -> float:
        i = min(max(int(x + 0.5), 1), len(self.offset)) - 1
        return max(self.offset[i] + self.slope[i] * x, 0.0) + self.constant[i]


@dataclass(frozen=True)
class PreparedChainQueue:
    """A chain model bound to one `ServiceParams` (implements `PreparedQueue` and
    `BoundedMeans`)."""

    params: ServiceParams
    chain: BatchChain
    max_rate_rps: float
    min_rate_rps: float
    prefill: _FloatTerms
    itl_terms: BatchTerms
    last: list[ChainState] = field(default_factory=list, compare=False, repr=False)
    """The last solution (sizing asks for the rate it ends on twice)."""

    @functools.cached_property
    def itl(self) -> _FloatTerms:
        """The ITL terms for scalar evaluation (made when an ITL quantile is asked for)."""
        return _FloatTerms.of(self.itl_terms)

    @functools.cached_property
    def itl_by_batch_ms(self) -> FloatArray:
        """itl(b) for b = 1..N (made when an ITL quantile is asked for)."""
        return self.itl_terms.at_batches(np.arange(1, self.params.max_batch + 1))

    def solve(self, arrival_rate_rps: float) -> ChainState:
        """The chain's stationary solution at a rate (rps)."""
        rate = arrival_rate_rps / 1000.0
        if self.last and self.last[0].rate_per_ms == rate:
            return self.last[0]
        state = solve_chain(self.chain, rate)
        self.last[:] = [state]
        return state

    def stack(self, queues: Sequence[BoundedMeans]) -> QueueStack:
        """Rows of these queues (all `PreparedChainQueue`s) for `QueueStack.bounds`."""
        chained = cast(list[PreparedChainQueue], queues)
        if any(type(q) is not PreparedChainQueue for q in chained):
            raise TypeError("stack: every queue must be a PreparedChainQueue")
        return QueueStack.of(chained)

    def _mean_latencies(self, state: ChainState) -> tuple[float, float, float]:
        """(prefill, ITL, TTFT) means, inferno's mean-field formulas."""
        prefill = self.prefill.at(state.avg_in_service)
        itl = (state.avg_serv_ms - prefill) / self.params.out_tokens
        return prefill, itl, state.avg_wait_ms + prefill + itl

    def _ttft(self, state: ChainState, q: float | None) -> float:
        prefill, itl, ttft = self._mean_latencies(state)
        if q is None:
            return ttft
        return wait_quantile_ms(state, q) + prefill + itl

    def _itl(self, state: ChainState, q: float | None) -> float:
        if q is None:
            return self._mean_latencies(state)[1]
        return self.itl.at(token_batch_quantile(state, self.itl_by_batch_ms, q))

    def evaluate(self, arrival_rate_rps: float) -> Performance:
        """Steady-state means at a rate (rps, >= 0; 0 gives the zero-load limit)."""
        state = self.solve(arrival_rate_rps)
        prefill, itl, ttft = self._mean_latencies(state)
        return Performance(
            arrival_rate_rps=arrival_rate_rps,
            throughput_rps=state.throughput_per_ms * 1000.0,
            avg_resp_ms=state.avg_resp_ms,
            avg_wait_ms=state.avg_wait_ms,
            avg_num_in_serv=state.avg_in_service,
            avg_ttft_ms=ttft,
            avg_itl_ms=itl,
            max_rps=self.max_rate_rps,
            avg_num_in_system=state.avg_in_system,
            avg_serv_ms=state.avg_serv_ms,
            avg_prefill_ms=prefill,
            blocking_prob=state.blocking_prob,
            utilization=min(max(state.avg_in_service / self.params.max_batch, 0.0), 1.0),
        )

    def ttft_ms(self, arrival_rate_rps: float, q: float | None = None) -> float:
        """Mean TTFT (q None) or its q-quantile at a rate."""
        return self._ttft(self.solve(arrival_rate_rps), q)

    def itl_ms(self, arrival_rate_rps: float, q: float | None = None) -> float:
        """Mean ITL (q None) or its q-quantile at a rate."""
        return self._itl(self.solve(arrival_rate_rps), q)

    def latencies_ms(
        self, arrival_rate_rps: float, ttft_q: float | None, itl_q: float | None
    ) -> tuple[float, float]:
        """(TTFT, ITL), each mean or quantile, from one solve of the chain."""
        state = self.solve(arrival_rate_rps)
        return self._ttft(state, ttft_q), self._itl(state, itl_q)


@dataclass(frozen=True, slots=True)
class QueueStack:
    """Several prepared chain queues, one row each (implements `LatencyStack`): their
    chains (`ChainStack`), prefill terms per batch (offset, slope, constant; +inf
    beyond N), max batch and output tokens."""

    chains: ChainStack
    prefill: FloatArray
    info: FloatArray

    @classmethod
    def of(cls, queues: Sequence[PreparedChainQueue]) -> QueueStack:
        """The rows of these queues."""
        width = max(q.params.max_batch for q in queues)
        prefill = np.full((len(queues), width, 3), np.inf)
        for row, q in enumerate(queues):
            terms, n = q.prefill.terms, q.params.max_batch
            prefill[row, :n, 0], prefill[row, :n, 1] = terms.offset, terms.slope
            prefill[row, :n, 2] = terms.constant
        info = np.array([(q.params.max_batch, q.params.out_tokens) for q in queues],
                        dtype=np.float64).reshape(len(queues), 2)
        return cls(ChainStack.of([q.chain for q in queues]), prefill, info)

    def take(self, rows: npt.NDArray[np.intp]) -> QueueStack:
        """These rows, in this order."""
        return QueueStack(self.chains.take(rows), self.prefill[rows], self.info[rows])

    def extend(self, other: LatencyStack) -> QueueStack:
        """These rows, then the other's."""
        assert isinstance(other, QueueStack)
        width = max(self.prefill.shape[1], other.prefill.shape[1])
        return QueueStack(
            self.chains.extend(other.chains),
            np.concatenate((_widen3(self.prefill, width), _widen3(other.prefill, width))),
            np.concatenate((self.info, other.info)),
        )

    def bounds(self, rates_rps: FloatArray) -> LatencyBounds:
        """Mean TTFT and ITL of each row at its rate, from the chains' means in O(N)
        (`queue_models.chain_means`), with bounds on the distance from `latencies_ms`."""
        means = self.chains.means(np.asarray(rates_rps, dtype=np.float64) / 1000.0)
        with np.errstate(all="ignore"):  # rows without valid means get no bound anyway
            return _bounds(self, means)


def _widen3(table: FloatArray, width: int) -> FloatArray:
    extra = width - table.shape[1]
    if extra <= 0:
        return table
    pad = np.full((table.shape[0], extra, 3), np.inf)
    return np.concatenate((table, pad), axis=1)


def _bounds(stack: QueueStack, means: StackedMeans) -> LatencyBounds:
    """inferno's mean-field TTFT and ITL (as `_mean_latencies`) from stacked means, with
    error bounds: the means' own, carried through the formulas, plus both computations'
    rounding; infinite where a mean is not covered or the prefill chunk count (read at
    the rounded mean batch) is in doubt."""
    ns, nq, x = means.avg_in_service, means.avg_queued, means.throughput_per_ms
    rel, tiny = means.rel_error + 64.0 * 2.0**-53, means.abs_error
    spread = ns * rel + tiny
    top, out_tokens = stack.info.T
    index = np.minimum(np.maximum(np.floor(ns + 0.5), 1.0), top)  # _FloatTerms.at's batch
    sure = index == np.minimum(np.maximum(np.floor(ns - spread + 0.5), 1.0), top)
    sure &= index == np.minimum(np.maximum(np.floor(ns + spread + 0.5), 1.0), top)
    at = np.where(np.isfinite(index), index, 1.0).astype(np.intp) - 1  # NaN: no bound
    offset, slope, constant = stack.prefill[np.arange(ns.size), at].T
    linear = slope * ns
    pre = np.maximum(offset + linear, 0.0) + constant
    pre_err = np.abs(slope) * spread + rel * (np.abs(offset) + np.abs(linear) + np.abs(constant))
    serv, wait = ns / x, nq / x
    itl = (serv - pre) / out_tokens
    ttft = wait + pre + itl
    serv_err = 3.0 * rel * serv + tiny / x
    itl_err = (serv_err + pre_err + rel * (serv + np.abs(pre))) / out_tokens + rel * np.abs(itl)
    ttft_err = 3.0 * rel * wait + tiny / x + pre_err + itl_err + rel * (
        wait + np.abs(pre) + np.abs(itl)
    )
    bad = ~(means.valid & sure)
    return LatencyBounds(
        ttft, itl, np.where(bad, np.inf, 2.0 * ttft_err), np.where(bad, np.inf, 2.0 * itl_err)
    )


@dataclass(frozen=True, slots=True)
class BatchFormulas:
    """A model's three formulas evaluated at integer batch sizes."""

    service_time_ms: FloatArray
    prefill: BatchTerms
    itl: BatchTerms


class ChainQueueModel(ABC):
    """Base of the batch-chain models; subclasses supply the three batch formulas."""

    name: ClassVar[str]
    queue_per_batch: ClassVar[int] = 10

    @abstractmethod
    def batch_formulas(self, params: ServiceParams, batch: IntArray) -> BatchFormulas:
        """tau(b) (time in service when b requests share the engine), prefill(b) and
        itl(b) at each integer batch size b, vectorised."""

    def service_time_ms(self, params: ServiceParams, batch: IntArray) -> FloatArray:
        """tau(b) at each batch size."""
        return self.batch_formulas(params, batch).service_time_ms

    def prepare(self, params: ServiceParams) -> PreparedChainQueue:
        """Compute mu(1..N) and the formula tables once for this configuration."""
        batch = np.arange(1, params.max_batch + 1, dtype=np.int64)
        formulas = self.batch_formulas(params, batch)
        tau = formulas.service_time_ms
        if not np.all(np.isfinite(tau) & (tau > 0)):
            raise ValueError(f"{self.name}: service time must be positive for {params}")
        rates = batch / tau
        return PreparedChainQueue(
            params=params,
            chain=make_chain(rates, params.max_queue),
            max_rate_rps=float(rates[-1]) * (1.0 - RATE_EPSILON) * 1000.0,
            min_rate_rps=float(rates[0]) * RATE_EPSILON * 1000.0,
            prefill=_FloatTerms.of(formulas.prefill),
            itl_terms=formulas.itl,
        )

    def evaluate(self, params: ServiceParams, arrival_rate_rps: float) -> Performance:
        """Steady-state performance at a Poisson arrival rate (rps, >= 0)."""
        return self.prepare(params).evaluate(arrival_rate_rps)

    def max_rate_rps(self, params: ServiceParams) -> float:
        """0.999 x mu(N), in rps."""
        return self.prepare(params).max_rate_rps

    def min_rate_rps(self, params: ServiceParams) -> float:
        """0.001 x mu(1), in rps."""
        return self.prepare(params).min_rate_rps

    def ttft_quantile_ms(self, params: ServiceParams, arrival_rate_rps: float, q: float) -> float:
        """q-quantile of TTFT of admitted requests (q in (0, 1))."""
        return self.prepare(params).ttft_ms(arrival_rate_rps, q)

    def itl_quantile_ms(self, params: ServiceParams, arrival_rate_rps: float, q: float) -> float:
        """q-quantile of ITL over generated tokens (q in (0, 1))."""
        return self.prepare(params).itl_ms(arrival_rate_rps, q)

    def prefill_at_batch_ms(self, params: ServiceParams, batch: IntArray) -> FloatArray:
        """Closed-form prefill time at each batch size."""
        return self.batch_formulas(params, batch).prefill.at_batches(batch)

    def itl_at_batch_ms(self, params: ServiceParams, batch: IntArray) -> FloatArray:
        """Closed-form inter-token latency at each batch size."""
        return self.batch_formulas(params, batch).itl.at_batches(batch)

    def effective_max_batch(self, ceiling: int, at_tokens: int | None, out_tokens: float) -> int:
        """The ceiling itself (overridden by models that scale it with the tokens)."""
        return max(int(ceiling), 1)

    def default_max_queue(self, max_batch: int) -> int:
        """`queue_per_batch` x max batch (10 x, as inferno's optimizer)."""
        return self.queue_per_batch * max(int(max_batch), 1)


def tokens_scaled_batch(ceiling: int, at_tokens: int | None, out_tokens: float) -> int:
    """inferno's N = max(floor(ceiling x atTokens / outTokens), 1); the ceiling without atTokens."""
    if not at_tokens or at_tokens <= 0 or out_tokens <= 0:
        return max(int(ceiling), 1)
    return max(math.floor(ceiling * at_tokens / out_tokens + 1e-9), 1)
