"""Means of many batch chains' stationary solutions at once in O(N), with error bounds.

`queue_models.chain.solve_chain` computes one chain's stationary distribution over all
K + 1 = N + Q + 1 states. Sizing's bisections only need three means of it (throughput,
mean number in service, mean number queued) to decide whether a rate meets the targets,
and over the queue states the distribution is geometric: p(N + j) = p(N) rho^j with
rho = lambda / mu(N). So `stacked_means` sums the N + 1 batch states explicitly and the
Q queue states in closed form,

    S1 = sum_{j=1..Q} rho^j = rho (1 - rho^Q) / (1 - rho)
    S2 = sum_{j=1..Q} j rho^j = rho (1 - (Q + 1) rho^Q + Q rho^(Q+1)) / (1 - rho)^2

which makes a rate cost O(N) instead of O(N + Q) (Q is 10 N by default, and 2,560 while
`best_max_batch` probes batches under a 256 ceiling), and does so for many (chain,
rate) pairs in one set of numpy operations: one row per pair, the batch states padded
to the widest chain. Many sizings run side by side (`queue_models.lockstep`) ask for
one rate each per round, so the cost of a numpy call is shared by hundreds of rows.

The means differ from `solve_chain`'s in the last bits: the chain's cumulative log
rates over the queue are a running sum whose rounding grows with Q
(`BatchChain.tail_log_error`), and sums are taken in another order. `rel_error` bounds
the relative difference between each mean here and the one `solve_chain` computes (the
rounding of both, with a factor 2 to spare; measured differences stay under 1% of it),
and `abs_error` the absolute difference that states below exp(-700) can make. Callers
that must take exactly the decisions `solve_chain` leads to (sizing's bisections) use
these means only where every value within the bounds leads to the same decision, and
solve the chain otherwise.

A row is `valid` only for a rate strictly between 0 and the saturated service rate
(rho < 1) with less than half the arrivals blocked (so that 1 - blocking does not
cancel).

To extend: another statistic is one more sum over the batch states plus its closed form
over the queue, with its error added to the bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from queue_models.base import FloatArray
from queue_models.chain import BatchChain

_U = 2.0**-53
"""Unit roundoff of float64."""
_LOG_FLOOR = -700.0
"""Log-weights (relative to the largest, 0) are raised to this before exponentiating,
padding included: an exp that underflows (or of -inf) is several times slower, and
weights of exp(-700) = 1e-304 against a sum >= 1 are far below the relative error bound
(`abs_error` covers means that small)."""


@dataclass(frozen=True, slots=True)
class StackedMeans:
    """Means of several chains' stationary solutions, one row per (chain, rate)."""

    throughput_per_ms: FloatArray
    avg_in_service: FloatArray
    avg_queued: FloatArray
    rel_error: FloatArray
    """Bound on the relative difference of each mean from `solve_chain`'s."""
    abs_error: FloatArray
    """Bound on the absolute difference of the mean numbers in service and queued that
    states of probability below exp(-700) can make (a mean that is itself that small
    has no useful relative bound)."""
    valid: npt.NDArray[np.bool_]
    """Rows the closed form covers (others: solve the chain)."""


@dataclass(frozen=True, slots=True)
class ChainStack:
    """What `stacked_means` needs of several chains, one row each: log C(n) over the
    batch states n = 0..N (+inf beyond N, up to the widest chain), and N, Q,
    log mu(N), the tail's drift bound and C(N). Rows can be taken and appended, so a
    set of chains stepped together (`queue_models.lockstep`) is gathered only once."""

    log_cum: FloatArray
    info: FloatArray

    @classmethod
    def of(cls, chains: Sequence[BatchChain]) -> ChainStack:
        """The rows of these chains."""
        width = max(c.max_batch for c in chains) + 1
        log_cum = np.full((len(chains), width), np.inf)
        for row, chain in enumerate(chains):
            log_cum[row, : chain.max_batch + 1] = chain.log_cum_rate[: chain.max_batch + 1]
        info = np.array(
            [
                (c.max_batch, c.max_queue, c.log_saturated_rate, c.tail_log_error,
                 c.log_cum_rate[c.max_batch])
                for c in chains
            ],
            dtype=np.float64,
        ).reshape(len(chains), 5)
        return cls(log_cum, info)

    def take(self, rows: npt.NDArray[np.intp]) -> ChainStack:
        """These rows, in this order."""
        return ChainStack(self.log_cum[rows], self.info[rows])

    def extend(self, other: ChainStack) -> ChainStack:
        """These rows, then the other's."""
        width = max(self.log_cum.shape[1], other.log_cum.shape[1])
        return ChainStack(
            np.concatenate((_widen(self.log_cum, width), _widen(other.log_cum, width))),
            np.concatenate((self.info, other.info)),
        )

    def means(self, rates_per_ms: FloatArray) -> StackedMeans:
        """Throughput, mean in service and mean queued of each row's chain at its rate."""
        with np.errstate(all="ignore"):  # rows outside the closed form's range: not valid
            return _means(self, np.asarray(rates_per_ms, dtype=np.float64))


def _widen(matrix: FloatArray, width: int) -> FloatArray:
    """The matrix padded with +inf columns to `width`."""
    extra = width - matrix.shape[1]
    if extra <= 0:
        return matrix
    return np.concatenate((matrix, np.full((matrix.shape[0], extra), np.inf)), axis=1)


def stacked_means(chains: Sequence[BatchChain], rates_per_ms: Sequence[float]) -> StackedMeans:
    """Throughput, mean in service and mean queued of each chain at its rate (> 0)."""
    return ChainStack.of(chains).means(np.asarray(rates_per_ms, dtype=np.float64))


def _batch_sums(stack: ChainStack, log_lam: FloatArray, n_batch: FloatArray
                ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(sum w(n), sum n w(n), w(N)) over n = 0..N per row, the largest w scaled to 1."""
    rows, width = stack.log_cum.shape
    states = np.arange(width, dtype=np.float64)
    log_p = np.multiply.outer(log_lam, states)
    log_p -= stack.log_cum
    log_p -= log_p.max(axis=1, keepdims=True)
    weights = np.exp(np.maximum(log_p, _LOG_FLOOR, out=log_p), out=log_p)
    top = weights[np.arange(rows), n_batch.astype(np.intp)]
    return weights.sum(axis=1), weights @ states, top


def _means(stack: ChainStack, lam: FloatArray) -> StackedMeans:
    n_batch, queue, log_mu, tail_error, log_cum_top = stack.info.T
    log_lam = np.log(lam)
    weight, served, top = _batch_sums(stack, log_lam, n_batch)
    width = float(stack.log_cum.shape[1])
    log_rho = np.minimum(log_lam - log_mu, -1e-300)  # invalid rows (rho >= 1) stay finite
    rho = np.exp(log_rho)
    one_minus = -np.expm1(log_rho)
    rho_q = np.exp(queue * log_rho)
    s1 = rho * -np.expm1(queue * log_rho) / one_minus
    big = (queue + 1.0) * rho_q
    numerator = 1.0 - big + queue * rho_q * rho
    s2 = rho * numerator / (one_minus * one_minus)
    has_queue = queue > 0
    tail = top * s1
    total = weight + tail
    blocked = np.where(has_queue, top * rho_q, top)
    valid = (log_lam - log_mu < 0) & (blocked <= 0.5 * total) & (~has_queue | (numerator > 0))
    # relative errors: S2's cancellation, the queue's log-weights (the running sum's drift
    # and the rounding of n log(lambda) - log_cum_rate(n) - max in both computations),
    # sums of K positive terms in either order, and a few roundings per formula
    safe = np.where(numerator > 0, numerator, 1.0)
    s2_error = np.where(has_queue, 4.0 * _U * (1.0 + 2.0 * big) / safe + 16.0 * _U, 0.0)
    capacity = n_batch + queue
    largest = np.abs(log_cum_top) + queue * np.abs(log_mu)
    drift = tail_error + 8.0 * _U * (capacity * np.abs(log_lam) + largest + 1000.0)
    per_sum = np.expm1(drift) + 2.0 * capacity * _U + s2_error + 32.0 * _U
    return StackedMeans(
        throughput_per_ms=lam * (total - blocked) / total,
        avg_in_service=(served + n_batch * tail) / total,
        avg_queued=top * s2 / total,
        rel_error=2.0 * (3.0 * per_sum + 8.0 * _U),
        abs_error=2.0 * (capacity * capacity + width * width) * np.exp(_LOG_FLOOR),
        valid=valid & np.isfinite(per_sum),
    )
