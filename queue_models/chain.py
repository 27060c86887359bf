"""Birth-death chain of a batched server: state-dependent M/M/1/K with batch service.

State n = 0..K (K = N + Q) is the number of requests held; up to N of them are in
service and the rest wait FCFS. Arrivals are Poisson(lambda) and blocked at n = K;
departures happen at rate mu(min(n, N)), where mu(b) = b / tau(b) comes from a model's
service-time formula. Then p(n) is proportional to lambda^n / prod_{k<=n} mu(min(k, N)).

Numerics: log p(n) = n log(lambda) - C(n) with C the cumulative sum of log mu,
shifted by its maximum before exponentiating, so no state overflows or underflows to
NaN for any K (tested to K = 5,000) or rate; everything is one numpy expression per
quantity, with no Python loop over states.

Waiting-time distribution (beyond inferno, which only has means). By PASTA an
arrival sees the stationary distribution; conditioned on admission (n < K) it sees
pa(n) = p(n) / (1 - p(K)). Finding n < N it enters service at once. Finding n >= N it
waits until n - N + 1 requests have left; all N servers stay busy meanwhile, so
departures occur at the saturated rate mu(N) and the wait is Erlang(n - N + 1, mu(N)),
exactly, for this chain. The wait is therefore a mixture of Erlangs with a common rate,
whose survival function is sum_j Poisson(j; mu t) G(j), with G(j) the admitted
probability of needing more than j departures. Quantiles come from a safeguarded
Newton iteration (bisection whenever a step leaves the bracket) on that survival
function, whose derivative is the Erlang-mixture density. Each evaluation sums only
the Poisson terms within 12 (sqrt(mu t) + 1) of the mean and the phases whose tail
G(j) is above 1e-18 P(wait > 0), so it costs O(sqrt(mu t)), not O(K). The mixture's
mean equals the mean wait from Little's law (a test checks it).

In-service count seen by tokens (for ITL quantiles): in state n each of the
b = min(n, N) requests in service emits one token per itl(b) ms, so a generated token
sees b with probability proportional to p-mass(b) x b / itl(b). `token_batch_quantile`
returns the q-quantile of that distribution, made continuous by spreading each atom b
uniformly over [b - 1/2, b + 1/2] (so a quantile moves smoothly with the rate).

To extend: keep this module model-free (it only knows service rates); a new model
supplies mu(b) through `make_chain` and maps a `ChainState` to its latencies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from queue_models.base import FloatArray

TAIL_CUTOFF = 1e-18
"""Phase-tail terms below this fraction of P(wait > 0) are dropped (invisible in any
quantile with q < 1 - 1e-15)."""
POISSON_WIDTH = 12.0
"""Poisson terms further than 12 sqrt(x) + 12 from the mean x are dropped (< 1e-30)."""
QUANTILE_RTOL = 1e-10
_UNIT_ROUNDOFF = 2.0**-53
MAX_NEWTON_STEPS = 200


@dataclass(frozen=True, slots=True)
class BatchChain:
    """Rate-independent arrays of one chain, built once by `make_chain`."""

    max_batch: int
    max_queue: int
    lone_rate_per_ms: float
    saturated_rate_per_ms: float
    states: FloatArray
    in_service: FloatArray
    queued: FloatArray
    log_cum_rate: FloatArray
    log_saturated_rate: float = 0.0
    """log mu(N) (per ms), the log rate of every queue state."""
    tail_log_error: float = 0.0
    """Bound on |log_cum_rate[N + j] - (log_cum_rate[N] + j log mu(N))| over the queue
    states: the running sum's rounding, which `queue_models.chain_means` accounts for."""

    @property
    def capacity(self) -> int:
        """K = N + Q, the largest state."""
        return self.max_batch + self.max_queue


@dataclass(frozen=True, slots=True)
class ChainState:
    """The stationary solution of a chain at one arrival rate (per ms)."""

    chain: BatchChain
    rate_per_ms: float
    probs: FloatArray
    throughput_per_ms: float
    avg_in_service: float
    avg_queued: float
    blocking_prob: float

    @property
    def avg_in_system(self) -> float:
        """L: mean number held (in service plus waiting)."""
        return self.avg_in_service + self.avg_queued

    @property
    def avg_serv_ms(self) -> float:
        """S = ns / X (Little on the servers); 1 / mu(1) in the zero-rate limit."""
        if self.throughput_per_ms <= 0:
            return 1.0 / self.chain.lone_rate_per_ms
        return self.avg_in_service / self.throughput_per_ms

    @property
    def avg_wait_ms(self) -> float:
        """W = Lq / X, which equals max(T - S, 0) without the cancellation."""
        if self.throughput_per_ms <= 0:
            return 0.0
        return self.avg_queued / self.throughput_per_ms

    @property
    def avg_resp_ms(self) -> float:
        """T = W + S."""
        return self.avg_wait_ms + self.avg_serv_ms


def make_chain(service_rates_per_ms: FloatArray, max_queue: int) -> BatchChain:
    """Build a chain from mu(1..N) (per ms, positive) and the queue length Q."""
    rates = np.asarray(service_rates_per_ms, dtype=np.float64)
    if rates.ndim != 1 or rates.size == 0 or not np.all(np.isfinite(rates) & (rates > 0)):
        raise ValueError("service rates must be a non-empty vector of positive numbers")
    if max_queue < 0:
        raise ValueError(f"max_queue must be >= 0, got {max_queue}")
    n_batch = rates.size
    log_saturated = math.log(rates[-1])
    log_rates = np.concatenate((np.log(rates), np.full(max_queue, log_saturated)))
    states = np.arange(n_batch + max_queue + 1, dtype=np.float64)
    log_cum_rate = np.empty(states.size)
    log_cum_rate[0] = 0.0
    np.cumsum(log_rates, out=log_cum_rate[1:])
    # cumsum adds sequentially: step j rounds by at most u |log_cum_rate[N + j]|
    largest = abs(float(log_cum_rate[n_batch])) + max_queue * abs(log_saturated)
    tail_error = 1.01 * max_queue * _UNIT_ROUNDOFF * largest
    return BatchChain(
        max_batch=n_batch,
        max_queue=max_queue,
        lone_rate_per_ms=float(rates[0]),
        saturated_rate_per_ms=float(rates[-1]),
        states=states,
        in_service=np.minimum(states, n_batch),
        queued=np.maximum(states - n_batch, 0.0),
        log_cum_rate=log_cum_rate,
        log_saturated_rate=log_saturated,
        tail_log_error=tail_error,
    )


def solve_chain(chain: BatchChain, rate_per_ms: float) -> ChainState:
    """Stationary distribution and mean statistics at an arrival rate (per ms, >= 0)."""
    if not (math.isfinite(rate_per_ms) and rate_per_ms >= 0):
        raise ValueError(f"arrival rate must be finite and >= 0, got {rate_per_ms}")
    if rate_per_ms == 0:
        probs = np.zeros_like(chain.states)
        probs[0] = 1.0
        return ChainState(chain, 0.0, probs, 0.0, 0.0, 0.0, 0.0)
    log_p = chain.states * math.log(rate_per_ms) - chain.log_cum_rate
    log_p -= log_p.max()
    probs = np.exp(log_p, out=log_p)
    probs /= probs.sum()
    blocked = float(probs[-1])
    return ChainState(
        chain=chain,
        rate_per_ms=rate_per_ms,
        probs=probs,
        throughput_per_ms=rate_per_ms * float(probs[:-1].sum()),
        avg_in_service=float(probs @ chain.in_service),
        avg_queued=float(probs @ chain.queued),
        blocking_prob=blocked,
    )


def _wait_phases(state: ChainState) -> tuple[FloatArray, FloatArray]:
    """(w, G): w[j] = P(admitted arrival waits for j + 1 departures) and
    G[j] = sum_{i > j} w[i], both cut where G falls below TAIL_CUTOFF x G[0]."""
    chain = state.chain
    admitted = 1.0 - state.blocking_prob
    weights = state.probs[chain.max_batch : chain.capacity] / admitted
    tail = np.cumsum(weights[::-1])[::-1]
    if tail.size == 0 or tail[0] <= 0:
        return weights[:0], tail[:0]
    keep = max(int(np.searchsorted(-tail, -TAIL_CUTOFF * tail[0], side="right")), 1)
    return weights[:keep], tail[:keep]


def _poisson_window(size: int, x: float) -> tuple[int, FloatArray]:
    """(first j, Poisson(j; x) for j in the window where its mass lives, j < size)."""
    spread = POISSON_WIDTH * (math.sqrt(x) + 1.0)
    first = max(int(x - spread), 0)
    last = min(int(x + spread) + 1, size)
    from scipy.special import gammaln  # here: importing scipy.special takes ~0.3 s

    j = np.arange(first, max(last, first), dtype=np.float64)
    return first, np.exp(j * math.log(x) - x - gammaln(j + 1.0))


def _survival_and_density(
    weights: FloatArray, tail: FloatArray, mu: float, t_ms: float
) -> tuple[float, float]:
    """(P(W > t), density of W at t) for t > 0: sums of Poisson(j; mu t) G(j) and
    mu Poisson(j; mu t) w(j)."""
    first, pmf = _poisson_window(tail.size, mu * t_ms)
    stop = first + pmf.size
    return float(pmf @ tail[first:stop]), mu * float(pmf @ weights[first:stop])


def wait_survival(state: ChainState, t_ms: float) -> float:
    """P(W > t) for an admitted arrival (FCFS)."""
    weights, tail = _wait_phases(state)
    if tail.size == 0:
        return 0.0
    if t_ms <= 0:
        return float(tail[0])
    return _survival_and_density(weights, tail, state.chain.saturated_rate_per_ms, t_ms)[0]


def wait_quantile_ms(state: ChainState, q: float) -> float:
    """q-quantile (q in (0, 1)) of the waiting time of an admitted arrival (FCFS).

    Safeguarded Newton on the survival function inside a bracket [0, hi] that always
    holds the root; a step leaving the bracket is replaced by bisection.
    """
    if not 0 < q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    weights, tail = _wait_phases(state)
    exceed = 1.0 - q
    if tail.size == 0 or tail[0] <= exceed:
        return 0.0
    mu = state.chain.saturated_rate_per_ms
    mean_wait = float(tail.sum()) / mu  # E[W] = sum_j G(j) / mu
    erlang_bound = (tail.size + 10.0 * math.sqrt(tail.size) + 10.0) / mu
    lo, hi = 0.0, min(mean_wait / exceed, erlang_bound)  # Markov and Erlang bounds
    t = min(mean_wait / tail[0] * math.log(tail[0] / exceed), hi)  # exponential guess
    for _ in range(MAX_NEWTON_STEPS):
        if t <= lo or t >= hi:
            t = 0.5 * (lo + hi)
        survival, density = _survival_and_density(weights, tail, mu, t)
        excess = survival - exceed
        if excess > 0:
            lo = t
        else:
            hi = t
        step = excess / density if density > 0 else math.inf
        if abs(step) <= QUANTILE_RTOL * t or hi - lo <= QUANTILE_RTOL * hi:
            return t + step if lo <= t + step <= hi else t
        t += step
    return 0.5 * (lo + hi)


def token_batch_quantile(state: ChainState, itl_by_batch_ms: FloatArray, q: float) -> float:
    """Continuous q-quantile of the in-service count seen by a generated token.

    itl_by_batch_ms[b - 1] is the inter-token time with b requests in service.
    Returns a batch size in [1, N]; 1 when nothing is in service (zero rate).
    """
    if not 0 < q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    chain = state.chain
    n_batch = chain.max_batch
    mass = state.probs[1 : n_batch + 1].copy()
    mass[-1] = state.probs[n_batch:].sum()
    weight = mass * np.arange(1, n_batch + 1) / itl_by_batch_ms
    total = float(weight.sum())
    if total <= 0:
        return 1.0
    cum = np.cumsum(weight) / total
    idx = min(int(np.searchsorted(cum, q, side="left")), n_batch - 1)
    below = float(cum[idx - 1]) if idx > 0 else 0.0
    step = float(cum[idx]) - below
    frac = (q - below) / step if step > 0 else 0.5
    return min(max(idx + 0.5 + frac, 1.0), float(n_batch))
