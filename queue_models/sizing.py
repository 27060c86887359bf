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

Steps: `size_prepared_steps` and `best_max_batch_steps` are the same algorithms as
generators (`Steps`) that yield an `Ask` whenever they need mean latencies on a queue
with `BoundedMeans` (mean targets), and are sent an answer that leads to the same
decisions. `run` answers them exactly, one at a time (`size_prepared` and
`best_max_batch` are `run` of their steps); `queue_models.lockstep.run_all` runs many
side by side and answers each round's asks at once. Only the bisections' steps are
asked for: the values at the rate a bisection ends on, and every `Performance`, are
evaluated by the sizing itself, so results are the same either way.

To extend: new kinds of targets get a metric function and an entry in `_metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple, TypeVar, cast

import numpy as np

from queue_models.base import (
    BoundedMeans,
    Performance,
    PreparedQueue,
    QueueModel,
    ServiceParams,
    Targets,
)

Binding = Literal["ttft", "itl", "tokens_per_s", "max_rate"]
T = TypeVar("T")

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


class Ask(NamedTuple):
    """What a sizing needs next: the mean (TTFT, ITL) of `queue` at `rate_rps` (what
    `latencies_ms(rate, None, None)` gives), to compare max(value / target) over the
    targets set (`targets`: TTFT, ITL; 0 for none) with 1 and, with `each`, every value
    with its own target. An answer may be any pair that leads to the same comparisons."""

    queue: BoundedMeans
    rate_rps: float
    targets: tuple[float, float]
    each: bool = False


class Bisect(NamedTuple):
    """What a sizing needs next: `bisect_rate`'s halving steps on max(value / target)
    against 1 over [lo, hi] (its end values checked already), value the mean (TTFT,
    ITL) of `queue`, over the targets set (`targets` as in `Ask`), stopping with
    `RateBelow` under `below`. Answered with the rate it ends on, or `RateBelow`
    thrown into the sizing."""

    queue: BoundedMeans
    targets: tuple[float, float]
    lo: float
    hi: float
    below: float | None


Steps = Generator[Ask | Bisect, Any, T]
"""A sizing run as a generator: it yields `Ask`s and `Bisect`s, is sent their answers,
and returns its result. `run` answers exactly, one at a time;
`queue_models.lockstep.run_all` runs many side by side and answers each round's
requests together."""


def done(value: T) -> Steps[T]:
    """`Steps` that ask nothing and return `value`."""
    return value
    yield  # a generator function: the yield makes it one


def worst_ratio(targets: tuple[float, float], values: tuple[float, float]) -> float:
    """max(value / target) over the targets set (TTFT first), as `_joint_rate` takes it."""
    if targets[0] > 0 and targets[1] > 0:
        return max(values[0] / targets[0], values[1] / targets[1])
    return values[0] / targets[0] if targets[0] > 0 else values[1] / targets[1]


def run(steps: Steps[T]) -> T:
    """Run a sizing to its end, answering each request exactly (`latencies_ms`)."""
    try:
        request = next(steps)
        while True:
            queue = cast(PreparedQueue, request.queue)  # `_asked` checked it is both
            if isinstance(request, Ask):
                request = steps.send(queue.latencies_ms(request.rate_rps, None, None))
                continue
            pair = request.targets
            try:
                found = _halving(
                    lambda r, q=queue, t=pair: worst_ratio(t, q.latencies_ms(r, None, None)),
                    1.0, (request.lo, request.hi), request.below,
                )
            except RateBelow as below:
                request = steps.throw(below)
                continue
            request = steps.send(found)
    except StopIteration as finished:
        return finished.value


def _close(value: float, target: float) -> bool:
    return value == target or (target != 0 and abs(value - target) <= REL_TOL * abs(target))


def decision(value: float, target: float) -> int:
    """What a bisection makes of a metric value: 0 close to the target (it stops), 1
    above, -1 below. Monotone in the value: if both ends of an interval get the same
    decision, so does every value in it."""
    if _close(value, target):
        return 0
    return 1 if value > target else -1


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
    decided, rate = _ends(target, bounds, end_values)
    return rate if decided else _halving(metric, target, bounds, below)


def _ends(
    target: float, bounds: tuple[float, float], end_values: tuple[float, float]
) -> tuple[bool, float | None]:
    """(True, answer) when the end values decide the bisection, else (False, None)."""
    lo, hi = bounds
    y_lo, y_hi = end_values
    if _close(y_lo, target):
        return True, lo
    if y_lo > target:
        return True, None
    if _close(y_hi, target) or y_hi <= target:
        return True, hi
    return False, None


def _halving(
    metric: Callable[[float], float], target: float, bounds: tuple[float, float],
    below: float | None,
) -> float:
    """`bisect_rate`'s steps once the end values are checked (`lockstep` mirrors them)."""
    lo, hi = bounds
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


def _asked(prepared: PreparedQueue, targets: Targets,
           metrics: list[tuple[Binding, float, Callable[[float], float], int]]
           ) -> tuple[float, float] | None:
    """The `Ask.targets` of a sizing whose evaluations may be asked for (mean targets
    on a queue with bounded means), else None (it evaluates them itself)."""
    if targets.ttft_quantile is not None or targets.itl_quantile is not None:
        return None
    if not hasattr(prepared, "stack"):  # BoundedMeans (isinstance on a Protocol is slow)
        return None
    pair = [0.0, 0.0]
    for _, target, _, i in metrics:
        pair[i] = target
    return pair[0], pair[1]


def _latencies(
    prepared: PreparedQueue, rate: float, targets: Targets,
    asked: tuple[float, float] | None, each: bool = False,
) -> Steps[tuple[float, float]]:
    """(TTFT, ITL) at a rate: asked for (an answer with the same decisions) when the
    sizing may ask, else evaluated here."""
    if asked is None:
        return prepared.latencies_ms(rate, targets.ttft_quantile, targets.itl_quantile)
    return (yield Ask(cast(BoundedMeans, prepared), rate, asked, each))


def _worst(
    metrics: list[tuple[Binding, float, Callable[[float], float], int]],
) -> Callable[[tuple[float, float]], float]:
    """values -> max(values[i] / target) over the metrics, in their order."""
    if len(metrics) == 1:
        (_, t0, _, i0), = metrics
        return lambda values: values[i0] / t0
    (_, t0, _, i0), (_, t1, _, i1) = metrics
    return lambda values: max(values[i0] / t0, values[i1] / t1)


def _joint_rate(
    prepared: PreparedQueue,
    targets: Targets,
    metrics: list[tuple[Binding, float, Callable[[float], float], int]],
    bounds: tuple[float, float],
    at_lo: tuple[float, float],
    below: float | None = None,
    asked: tuple[float, float] | None = None,
) -> Steps[tuple[float, Binding | None]]:
    """One bisection on max(metric / target): the smallest per-target rate directly.

    Returns the rate and the target binding there (None when all are met at bounds[1]).
    Values that were asked for only decide the bisection's steps; the ones at the rate
    it ends on are evaluated here.
    """
    tq, iq = targets.ttft_quantile, targets.itl_quantile
    seen: dict[float, tuple[float, float]] = {}
    worst = _worst(metrics)
    queue = cast(BoundedMeans, prepared)
    if asked is None:
        at_hi = seen[bounds[1]] = prepared.latencies_ms(bounds[1], tq, iq)
    else:
        at_hi = yield Ask(queue, bounds[1], asked)
    decided, found = _ends(1.0, bounds, (worst(at_lo), worst(at_hi)))
    if not decided and asked is None:

        def joint(rate: float) -> float:
            values = seen[rate] = prepared.latencies_ms(rate, tq, iq)
            return worst(values)

        found = _halving(joint, 1.0, bounds, below)
    elif not decided:
        found = yield Bisect(queue, asked, bounds[0], bounds[1], below)
    rate = bounds[0] if found is None else found  # not None: feasibility checked before
    values = seen.get(rate) or prepared.latencies_ms(rate, tq, iq)
    if rate >= bounds[1] and worst(values) <= 1.0:
        return rate, None
    name = max(metrics, key=lambda m: values[m[3]] / m[1])[0]
    return rate, name


def _solve_rates(
    prepared: PreparedQueue, targets: Targets, exhaustive: bool, below: float | None = None
) -> Steps[tuple[dict[Binding, float | None], Binding | None]]:
    """Per-target rates (0 when missed at the min rate) and the missed target, if any."""
    lo, hi = prepared.min_rate_rps, prepared.max_rate_rps
    cap = hi * (1.0 - STABILITY_SAFETY_FRACTION) if targets.tokens_per_s > 0 else hi
    rates: dict[Binding, float | None] = {"ttft": hi, "itl": hi, "tokens_per_s": cap}
    metrics = _metrics(prepared, targets)
    if not metrics:
        return rates, None
    tq, iq = targets.ttft_quantile, targets.itl_quantile
    asked = _asked(prepared, targets, metrics)
    at_lo = yield from _latencies(prepared, lo, targets, asked, each=True)
    missed = [
        n for n, target, _, i in metrics if at_lo[i] > target and not _close(at_lo[i], target)
    ]
    if missed:
        for name in missed:
            rates[name] = 0.0
        return rates, missed[0]
    if not exhaustive:
        rate, name = yield from _joint_rate(
            prepared, targets, metrics, (lo, cap), at_lo, below, asked
        )
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
    return run(size_prepared_steps(prepared, targets, exhaustive, below))


def size_prepared_steps(
    prepared: PreparedQueue,
    targets: Targets,
    exhaustive: bool = True,
    below: float | None = None,
) -> Steps[RateSizing]:
    """`size_prepared` as `Steps` (to run side by side with others)."""
    rates, missed = yield from _solve_rates(prepared, targets, exhaustive, below)
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


def _onset(probe: Callable[[int], Steps[float]], threshold: float, lo: int, hi: int
           ) -> Steps[int]:
    """Smallest m in [lo, hi] with probe(m) >= threshold, at most 6 probes (inferno)."""
    for _ in range(ONSET_MAX_PROBES):
        if lo >= hi:
            break
        mid = (lo + hi) // 2
        if (yield from probe(mid)) >= threshold:
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

    def __call__(self, m: int, below: float | None = None) -> Steps[float]:
        """f(m), or -1 when `below` is given and f(m) is known to be under it."""
        self.probes.append(m)
        if m not in self.memo and m not in self.short:
            prepared = self.model.prepare(replace(self.params, max_batch=m))
            try:
                sizing = yield from size_prepared_steps(prepared, self.targets, False, below)
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
    return run(best_max_batch_steps(model, params, targets, ceiling))


def best_max_batch_steps(
    model: QueueModel, params: ServiceParams, targets: Targets, ceiling: int | None = None
) -> Steps[BatchChoice]:
    """`best_max_batch` as `Steps` (to run side by side with others)."""
    top = DEFAULT_CEILING if ceiling is None else int(ceiling)
    if top < 1:
        raise ValueError(f"ceiling must be >= 1, got {ceiling}")
    m_itl, m_tpf = batch_brackets(model, params, targets, top)
    probe = _Oracle(model, params, targets)
    anchor = yield from probe(top)
    if anchor <= 0:
        return BatchChoice(1, 0.0, m_itl, m_tpf, tuple(probe.probes), 0, False, None, anchor)
    lo = max(1, min(m_itl, m_tpf))
    hi = max(lo, min(top, max(3 * max(m_itl, m_tpf), lo + 1)))
    threshold = (1.0 - ONSET_EPSILON / 2.0) * anchor
    onset = yield from _onset(lambda m: probe(m, threshold), threshold, lo, hi)
    best = max(1, min(top, onset))
    throughput = yield from probe(best)
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
