"""Sizing a replica for targets, generic over any `QueueModel` (inferno's Size and
OptimalConcurrency, with percentile targets added).

`max_rate_for_targets`: the largest arrival rate one replica takes while meeting the
targets. TTFT and ITL (each the mean, or a quantile when the target names a percentile)
are each solved for separately by bisection on [min rate, max rate], assuming the
metric does not decrease with the rate: infeasible when the target is missed at the
min rate, the max rate when it is met there, otherwise bisection until the metric is
within 1e-6 (relative) of the target or 100 steps. A tokens/s target caps the rate at
0.9 x max rate (inferno's stability margin). The answer is the smallest of these rates,
evaluated there.

`best_max_batch`: inferno's "optimal concurrency" search. f(m) is the throughput at
the sized rate with max batch m (0 when infeasible). Closed-form brackets M_ITL and
M_TPF are the largest batches whose no-queueing ITL and prefill meet the targets.
The anchor f* = f(ceiling) sets the threshold 0.99 f*; bisection on
[max(1, min(M_ITL, M_TPF)), min(ceiling, max(3 max(M_ITL, M_TPF), lo + 1))] with at
most 6 probes finds the smallest m reaching it, and a confirmatory probe at that m
gives the reported throughput. `oracle_calls` counts feasible probes (anchor and
confirmation included), as inferno's `oracleCalls`. A bisection probe only has to say
whether f(m) reaches the threshold: its rate bisection stops as soon as its bracket
lies under the threshold (the throughput never exceeds the rate), which decides "no"
after a few steps instead of about twenty and changes no answer.

Differences from inferno's Go code, all deliberate: the metric is assumed
non-decreasing instead of inferring its direction from the two end points (the Go
code calls a flat metric infeasible); the tolerance test is the intended relative one
(queue-analysis's `WithinTolerance` has an operator-precedence slip, |x - 1| instead of
|x - v| / v, so its bisection always runs the 100 steps); a missing target (0) gives a
bracket at the ceiling instead of 1 (the Go code would search only [1, 3] without
targets); probes are memoised, so the confirmatory probe costs nothing.

Speed: the end points of both bisections share two solves. With `exhaustive=False`
(what `best_max_batch` and the optimizer use) a single bisection runs on
max(TTFT / TTFT target, ITL / ITL target) over [min rate, cap], which lands on the
smallest per-target rate directly (same tolerance on the binding metric), and the
per-target rates of the other targets are not computed.

To extend: new kinds of targets get a metric function and an entry in `_metrics`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from queue_models.base import Performance, PreparedQueue, QueueModel, ServiceParams, Targets

Binding = Literal["ttft", "itl", "tokens_per_s", "max_rate"]

REL_TOL = 1e-6
MAX_STEPS = 100
STABILITY_SAFETY_FRACTION = 0.1
ONSET_EPSILON = 0.02  # inferno's DefaultOnsetEpsilon; the threshold is (1 - eps / 2) f*
ONSET_MAX_PROBES = 6
DEFAULT_CEILING = 256


@dataclass(frozen=True, slots=True)
class RateSizing:
    """Largest rate meeting the targets, and why it is not larger.

    rate_rps is 0 when infeasible; binding then names the target missed at the min rate
    and performance is the evaluation at the min rate. Per-target rates are the max
    rate for an absent target, 0 for one missed at the min rate, and None when the fast
    path (exhaustive=False) did not compute them (they are then >= rate_rps).
    """

    rate_rps: float
    feasible: bool
    binding: Binding
    performance: Performance
    max_rate_rps: float
    min_rate_rps: float
    ttft_rate_rps: float | None
    itl_rate_rps: float | None
    tokens_rate_rps: float | None


@dataclass(frozen=True, slots=True)
class BatchChoice:
    """Smallest max batch reaching 99% of the throughput reachable under the targets."""

    max_batch: int
    throughput_rps: float
    m_itl: int
    m_tpf: int
    probes: tuple[int, ...]
    oracle_calls: int
    feasible: bool
    performance: Performance | None
    anchor_throughput_rps: float


def _close(value: float, target: float) -> bool:
    return value == target or (target != 0 and abs(value - target) <= REL_TOL * abs(target))


class RateBelow(Exception):
    """A bisection stopped early: the rate it would return is below the `below` given."""


def bisect_rate(
    metric: Callable[[float], float],
    target: float,
    bounds: tuple[float, float],
    end_values: tuple[float, float],
    below: float | None = None,
) -> float | None:
    """Largest rate in bounds with metric <= target (within 1e-6); None when infeasible.

    end_values are the metric at the two bounds (callers share those solves). With
    `below`, raises `RateBelow` as soon as the bracket lies under it (the answer would
    too); otherwise the steps and the answer do not depend on `below`.
    """
    lo, hi = bounds
    y_lo, y_hi = end_values
    if _close(y_lo, target):
        return lo
    if y_lo > target:
        return None
    if _close(y_hi, target) or y_hi <= target:
        return hi
    mid = lo
    for _ in range(MAX_STEPS):
        mid = 0.5 * (lo + hi)
        value = metric(mid)
        if _close(value, target):
            break
        if value > target:
            hi = mid
            if below is not None and hi < below:
                raise RateBelow
        else:
            lo = mid
    return mid


def _metrics(
    prepared: PreparedQueue, targets: Targets
) -> list[tuple[Binding, float, Callable[[float], float], int]]:
    """(name, target, metric, index into latencies_ms) for each latency target set."""
    tq, iq = targets.ttft_quantile, targets.itl_quantile
    found: list[tuple[Binding, float, Callable[[float], float], int]] = []
    if targets.ttft_ms > 0:
        found.append(("ttft", targets.ttft_ms, lambda r: prepared.ttft_ms(r, tq), 0))
    if targets.itl_ms > 0:
        found.append(("itl", targets.itl_ms, lambda r: prepared.itl_ms(r, iq), 1))
    return found


def _joint_rate(
    prepared: PreparedQueue,
    targets: Targets,
    metrics: list[tuple[Binding, float, Callable[[float], float], int]],
    bounds: tuple[float, float],
    at_lo: tuple[float, float],
    below: float | None = None,
) -> tuple[float, Binding | None]:
    """One bisection on max(metric / target): the smallest per-target rate directly.

    Returns the rate and the target binding there (None when all are met at bounds[1]).
    """
    tq, iq = targets.ttft_quantile, targets.itl_quantile
    seen: dict[float, tuple[float, float]] = {}

    def worst(values: tuple[float, float]) -> float:
        return max(values[i] / target for _, target, _, i in metrics)

    def joint(rate: float) -> float:
        seen[rate] = prepared.latencies_ms(rate, tq, iq)
        return worst(seen[rate])

    rate = bisect_rate(joint, 1.0, bounds, (worst(at_lo), joint(bounds[1])), below)
    rate = bounds[0] if rate is None else rate  # not reached: feasibility checked before
    values = seen.get(rate) or prepared.latencies_ms(rate, tq, iq)
    if rate >= bounds[1] and worst(values) <= 1.0:
        return rate, None
    name = max(metrics, key=lambda m: values[m[3]] / m[1])[0]
    return rate, name


def _solve_rates(
    prepared: PreparedQueue, targets: Targets, exhaustive: bool, below: float | None = None
) -> tuple[dict[Binding, float | None], Binding | None]:
    """Per-target rates (0 when missed at the min rate) and the missed target, if any."""
    lo, hi = prepared.min_rate_rps, prepared.max_rate_rps
    cap = hi * (1.0 - STABILITY_SAFETY_FRACTION) if targets.tokens_per_s > 0 else hi
    rates: dict[Binding, float | None] = {"ttft": hi, "itl": hi, "tokens_per_s": cap}
    metrics = _metrics(prepared, targets)
    if not metrics:
        return rates, None
    tq, iq = targets.ttft_quantile, targets.itl_quantile
    at_lo = prepared.latencies_ms(lo, tq, iq)
    missed = [
        n for n, target, _, i in metrics if at_lo[i] > target and not _close(at_lo[i], target)
    ]
    if missed:
        for name in missed:
            rates[name] = 0.0
        return rates, missed[0]
    if not exhaustive:
        rate, name = _joint_rate(prepared, targets, metrics, (lo, cap), at_lo, below)
        for other, *_ in metrics:
            rates[other] = None
        if name is not None:
            rates[name] = rate
        return rates, None
    at_hi = prepared.latencies_ms(hi, tq, iq)
    for name, target, metric, i in metrics:
        rates[name] = bisect_rate(metric, target, (lo, hi), (at_lo[i], at_hi[i]))
    return rates, None


def _binding(rates: dict[Binding, float | None], max_rate: float) -> tuple[float, Binding]:
    known = {name: rate for name, rate in rates.items() if rate is not None}
    rate = min(known.values())
    if rate >= max_rate:
        return max_rate, "max_rate"
    for name in ("ttft", "itl", "tokens_per_s"):
        if known.get(name) == rate:
            return rate, name
    return rate, "max_rate"  # unreachable: rate is one of the known values


def size_prepared(
    prepared: PreparedQueue,
    targets: Targets,
    exhaustive: bool = True,
    below: float | None = None,
) -> RateSizing:
    """`max_rate_for_targets` on an already prepared queue (the optimizer's fast path).

    With `below` (fast path only), raises `RateBelow` once the rate is known to be
    under it: then so is the throughput there, which never exceeds the rate.
    """
    rates, missed = _solve_rates(prepared, targets, exhaustive, below)
    lo, hi = prepared.min_rate_rps, prepared.max_rate_rps
    if missed is not None:
        rate, feasible, binding, at = 0.0, False, missed, lo
    else:
        rate, binding = _binding(rates, hi)
        feasible, at = True, rate
    return RateSizing(
        rate_rps=rate,
        feasible=feasible,
        binding=binding,
        performance=prepared.evaluate(at),
        max_rate_rps=hi,
        min_rate_rps=lo,
        ttft_rate_rps=rates["ttft"],
        itl_rate_rps=rates["itl"],
        tokens_rate_rps=rates["tokens_per_s"],
    )


def max_rate_for_targets(model: QueueModel, params: ServiceParams, targets: Targets) -> RateSizing:
    """Largest arrival rate (rps) one replica takes while meeting every target."""
    return size_prepared(model.prepare(params), targets, exhaustive=True)


def _largest_within(values: np.ndarray, target: float) -> int:
    """Largest batch (1-based) with value <= target; 1 if none; the last without target."""
    if target <= 0:
        return int(values.size)
    ok = np.flatnonzero(values <= target)
    return int(ok[-1]) + 1 if ok.size else 1


def batch_brackets(
    model: QueueModel, params: ServiceParams, targets: Targets, ceiling: int
) -> tuple[int, int]:
    """(M_ITL, M_TPF): largest batches whose no-queueing ITL / prefill meet the targets."""
    batch = np.arange(1, ceiling + 1, dtype=np.int64)
    m_itl = _largest_within(model.itl_at_batch_ms(params, batch), targets.itl_ms)
    m_tpf = _largest_within(model.prefill_at_batch_ms(params, batch), targets.ttft_ms)
    return m_itl, m_tpf


def _onset(probe: Callable[[int], float], threshold: float, lo: int, hi: int) -> int:
    """Smallest m in [lo, hi] with probe(m) >= threshold, at most 6 probes (inferno)."""
    for _ in range(ONSET_MAX_PROBES):
        if lo >= hi:
            break
        mid = (lo + hi) // 2
        if probe(mid) >= threshold:
            hi = mid
        else:
            lo = mid + 1
    return hi


@dataclass
class _Oracle:
    """f(m), memoised; probes that only need "is f(m) >= below" may stop early."""

    model: QueueModel
    params: ServiceParams
    targets: Targets
    memo: dict[int, tuple[float, Performance | None]] = field(default_factory=dict)
    short: set[int] = field(default_factory=set)
    """Batches known to fall short of the threshold (feasible, rate below it)."""
    probes: list[int] = field(default_factory=list)

    def __call__(self, m: int, below: float | None = None) -> float:
        """f(m), or -1 when `below` is given and f(m) is known to be under it."""
        self.probes.append(m)
        if m not in self.memo and m not in self.short:
            prepared = self.model.prepare(replace(self.params, max_batch=m))
            try:
                sizing = size_prepared(prepared, self.targets, False, below)
            except RateBelow:
                self.short.add(m)
                return -1.0
            perf = sizing.performance if sizing.feasible else None
            self.memo[m] = (perf.throughput_rps if perf is not None else 0.0, perf)
        return self.memo[m][0] if m in self.memo else -1.0


def best_max_batch(
    model: QueueModel, params: ServiceParams, targets: Targets, ceiling: int | None = None
) -> BatchChoice:
    """inferno's optimal-concurrency search over max batch 1..ceiling (256 if None).

    The queue length stays params.max_queue for every probed batch, as in inferno. The
    closed-form brackets compare the no-queueing ITL and prefill with the target values
    whether the targets are on the mean or on a percentile; the oracle honours the
    percentiles.
    """
    top = DEFAULT_CEILING if ceiling is None else int(ceiling)
    if top < 1:
        raise ValueError(f"ceiling must be >= 1, got {ceiling}")
    m_itl, m_tpf = batch_brackets(model, params, targets, top)
    probe = _Oracle(model, params, targets)
    anchor = probe(top)
    if anchor <= 0:
        return BatchChoice(1, 0.0, m_itl, m_tpf, tuple(probe.probes), 0, False, None, anchor)
    lo = max(1, min(m_itl, m_tpf))
    hi = max(lo, min(top, max(3 * max(m_itl, m_tpf), lo + 1)))
    threshold = (1.0 - ONSET_EPSILON / 2.0) * anchor
    best = max(1, min(top, _onset(lambda m: probe(m, threshold), threshold, lo, hi)))
    throughput = probe(best)
    calls = sum(1 for m in probe.probes if m in probe.short or probe.memo[m][0] > 0)
    return BatchChoice(
        max_batch=best,
        throughput_rps=throughput,
        m_itl=m_itl,
        m_tpf=m_tpf,
        probes=tuple(probe.probes),
        oracle_calls=calls,
        feasible=throughput > 0,
        performance=probe.memo[best][1],
        anchor_throughput_rps=anchor,
    )
