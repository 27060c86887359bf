"""Many sizings side by side: each round answers every sizing's next `Ask` at once.

A sizing (`queue_models.sizing.size_prepared_steps`, `best_max_batch_steps`) is a
generator of `Ask`s: "the mean (TTFT, ITL) of this queue at this rate, to compare with
the targets". Run alone (`sizing.run`) each ask costs one solve of the chain over all
its N + Q + 1 states. `run_all` runs hundreds of sizings together: per round it
collects one ask from every sizing still running and answers them all with one set of
numpy operations (`BoundedMeans.stacked_latency_bounds`: the chains' means in O(N),
with error bounds), so the cost of a numpy call is shared by every row.

Answers are exact in effect: an ask gets the fast values only when every value within
their error bounds leads to the same decisions the sizing takes on them (max(value /
target) against 1, and with `Ask.each` every value against its target, as
`sizing.decision` reads them), and the queue's `latencies_ms` otherwise. A sizing
therefore takes exactly the steps, and returns exactly the result, it would alone
(values at the rate a bisection ends on, and every `Performance`, are always the
exact ones: the sizing evaluates them itself).

To extend: a queue model with a fast way to many mean latencies implements
`BoundedMeans`; the others are answered one by one here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar, cast

import numpy as np

from queue_models.base import FloatArray, LatencyBounds, PreparedQueue
from queue_models.sizing import REL_TOL, Ask, Steps

T = TypeVar("T")

_SLACK = 1e-14
"""Relative widening of every error interval, so the roundings of value / target and
of the comparisons stay inside it."""


def run_all(runs: Sequence[Steps[T]]) -> list[T]:
    """Run every sizing to its end, all rounds' asks answered together; results in order."""
    results: list[T | None] = [None] * len(runs)
    pending: list[tuple[int, Ask]] = []
    for k, steps in enumerate(runs):
        try:
            pending.append((k, next(steps)))
        except StopIteration as done:
            results[k] = done.value
    while pending:
        answers = answer([ask for _, ask in pending])
        waiting = []
        for (k, _), values in zip(pending, answers, strict=True):
            try:
                waiting.append((k, runs[k].send(values)))
            except StopIteration as done:
                results[k] = done.value
        pending = waiting
    return results  # type: ignore[return-value]


def answer(asks: list[Ask]) -> list[tuple[float, float]]:
    """An answer to every ask: fast values where they cannot change a decision, else
    the queue's own `latencies_ms`."""
    out: list[tuple[float, float] | None] = [None] * len(asks)
    groups: dict[type, list[int]] = {}
    for k, ask in enumerate(asks):
        groups.setdefault(type(ask.queue), []).append(k)
    for rows in groups.values():
        group = [asks[k] for k in rows] if len(rows) < len(asks) else asks
        queues = [ask.queue for ask in group]
        found = queues[0].stacked_latency_bounds(queues, [ask.rate_rps for ask in group])
        with np.errstate(invalid="ignore"):  # inf - inf where a row has no bound
            sure = _certain(group, found)
        pairs = zip(found.ttft_ms.tolist(), found.itl_ms.tolist(), strict=True)
        for k, ok, pair in zip(rows, sure, pairs, strict=True):
            if ok:
                out[k] = pair
    for k, ask in enumerate(asks):
        if out[k] is None:
            out[k] = cast(PreparedQueue, ask.queue).latencies_ms(ask.rate_rps, None, None)
    return out  # type: ignore[return-value]


def _decisions(values: FloatArray, targets: FloatArray) -> FloatArray:
    """`sizing.decision` of each value against its target (the same float operations)."""
    close = (values == targets) | (np.abs(values - targets) <= REL_TOL * np.abs(targets))
    return np.where(close, 0, np.where(values > targets, 1, -1))


def _certain(asks: list[Ask], found: LatencyBounds) -> list[bool]:
    """Per ask: do all values within the bounds take the same decisions?"""
    rows = len(asks)
    targets = np.array([ask.targets for ask in asks], dtype=np.float64).reshape(rows, 2).T
    each = np.array([ask.each for ask in asks], dtype=bool)
    present = targets > 0
    values = np.stack((found.ttft_ms, found.itl_ms))
    margin = np.stack((found.ttft_error_ms, found.itl_error_ms)) * (1.0 + 1e-9)
    margin += _SLACK * np.abs(values)
    low, high = values - margin, values + margin
    safe = np.where(present, targets, 1.0)
    worst_low = np.where(present, low / safe, -np.inf).max(axis=0)
    worst_high = np.where(present, high / safe, -np.inf).max(axis=0)
    ones = np.ones(rows)
    sure = _decisions(worst_low, ones) == _decisions(worst_high, ones)
    sure &= np.isfinite(worst_low) & np.isfinite(worst_high) & present.any(axis=0)
    own = (_decisions(low, safe) == _decisions(high, safe)) | ~present
    sure &= ~each | own.all(axis=0)
    return sure.tolist()
