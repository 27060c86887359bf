"""Many sizings side by side: each round serves every sizing's next request at once.

A sizing (`queue_models.sizing.size_prepared_steps`, `best_max_batch_steps`) is a
generator of requests on queues with `BoundedMeans`: an `Ask` ("the mean (TTFT, ITL)
of this queue at this rate") or a `Bisect` ("bisect this queue's rate on max(value /
target) against 1"). Run alone (`sizing.run`) every value costs one solve of the chain
over all its N + Q + 1 states. `run_all` runs hundreds of sizings together: per round
it evaluates one rate for every pending ask and every bisection in progress with one
set of numpy operations (`BoundedMeans.stack`: the chains' means in O(N), with error
bounds), so the cost of a numpy call is shared by every row, and steps all the
bisections at once, as arrays.

Answers are exact in effect: a fast value is used only when every value within its
error bound takes the same decision the sizing takes on it (max(value / target)
against 1 as `sizing.decision` reads it, and for an `Ask` with `each`, every value
against its own target); otherwise the queue's `latencies_ms` is evaluated. The
bisections take the steps of `sizing._halving` on the same floats. So a sizing takes
exactly the steps, and returns exactly the result, it would alone (values at the rate
a bisection ends on, and every `Performance`, are always evaluated by the sizing
itself).

To extend: a queue model with a fast way to many mean latencies implements
`BoundedMeans`; sizings on other models never ask (they evaluate themselves).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from queue_models.base import FloatArray, LatencyBounds, LatencyStack, PreparedQueue
from queue_models.sizing import (
    MAX_STEPS,
    REL_TOL,
    Ask,
    Bisect,
    RateBelow,
    Steps,
    decision,
    worst_ratio,
)

T = TypeVar("T")

_SLACK = 1e-14
"""Relative widening of every error interval, so the roundings of value / target and
of the comparisons stay inside it."""
_UNSURE = 2
"""Decision code of a row whose fast value could go either way."""


def run_all(runs: Sequence[Steps[T]]) -> list[T]:
    """Run every sizing to its end, each round's requests served together; results in
    the order of `runs`."""
    results: list[Any] = [None] * len(runs)
    asks: list[tuple[int, Ask]] = []
    halvings: dict[type, _Halvings] = {}

    def advance(k: int, value: Any = None, error: BaseException | None = None) -> None:
        try:
            request = runs[k].throw(error) if error is not None else runs[k].send(value)
        except StopIteration as finished:
            results[k] = finished.value
            return
        if isinstance(request, Ask):
            asks.append((k, request))
        else:
            halvings.setdefault(type(request.queue), _Halvings()).add(k, request)

    for k in range(len(runs)):
        advance(k)
    while asks or any(h.rows for h in halvings.values()):
        pending, asks[:] = asks[:], []
        for (k, _), values in zip(pending, answer([a for _, a in pending]), strict=True):
            advance(k, values)
        for halving in list(halvings.values()):
            for k, rate in halving.step():
                advance(k, error=rate) if isinstance(rate, RateBelow) else advance(k, rate)
    return results


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
        found = queues[0].stack(queues).bounds(np.array([ask.rate_rps for ask in group]))
        targets = np.array([ask.targets for ask in group], dtype=np.float64).reshape(-1, 2)
        each = np.array([ask.each for ask in group], dtype=bool)
        sure = (_decide(found, targets, each) != _UNSURE).tolist()
        pairs = zip(found.ttft_ms.tolist(), found.itl_ms.tolist(), strict=True)
        for k, ok, pair in zip(rows, sure, pairs, strict=True):
            if ok:
                out[k] = pair
    for k, ask in enumerate(asks):
        if out[k] is None:
            out[k] = cast(PreparedQueue, ask.queue).latencies_ms(ask.rate_rps, None, None)
    return out  # type: ignore[return-value]


def _decisions(values: FloatArray, targets: FloatArray) -> npt.NDArray[np.int64]:
    """`sizing.decision` of each value against its target (the same float operations)."""
    close = (values == targets) | (np.abs(values - targets) <= REL_TOL * np.abs(targets))
    return np.where(close, 0, np.where(values > targets, 1, -1))


def _decide(found: LatencyBounds, targets: FloatArray, each: npt.NDArray[np.bool_]
            ) -> npt.NDArray[np.int64]:
    """Per row: the decision of max(value / target) against 1 that every value within
    the bounds takes (and, where `each`, that each value takes against its target), or
    `_UNSURE`. `targets` holds (TTFT, ITL) targets per row, 0 for none."""
    with np.errstate(invalid="ignore"):  # inf - inf where a row has no bound
        present = targets.T > 0
        values = np.stack((found.ttft_ms, found.itl_ms))
        margin = np.stack((found.ttft_error_ms, found.itl_error_ms)) * (1.0 + 1e-9)
        margin += _SLACK * np.abs(values)
        low, high = values - margin, values + margin
        safe = np.where(present, targets.T, 1.0)
        worst_low = np.where(present, low / safe, -np.inf).max(axis=0)
        worst_high = np.where(present, high / safe, -np.inf).max(axis=0)
        ones = np.ones(worst_low.size)
        at_low = _decisions(worst_low, ones)
        sure = at_low == _decisions(worst_high, ones)
        sure &= np.isfinite(worst_low) & np.isfinite(worst_high) & present.any(axis=0)
        if each.any():
            own = (_decisions(low, safe) == _decisions(high, safe)) | ~present
            sure &= ~each | own.all(axis=0)
    return np.where(sure, at_low, _UNSURE)


class _Halvings:
    """Bisections in progress on queues of one kind, one row each, stepped together as
    `sizing._halving` steps one: mid = (lo + hi) / 2, stop when close, else move the
    bound, `RateBelow` once hi < below, at most `MAX_STEPS`."""

    def __init__(self) -> None:
        self.rows = 0
        self.owners: list[int] = []
        self.requests: list[Bisect] = []
        self.stack: LatencyStack | None = None
        self.lo = self.hi = self.below = np.empty(0)
        self.targets = np.empty((0, 2))
        self.steps = np.empty(0, dtype=np.int64)
        self.joining: list[tuple[int, Bisect]] = []

    def add(self, owner: int, request: Bisect) -> None:
        """Start a bisection (it takes its first step with the next round)."""
        self.joining.append((owner, request))
        self.rows += 1

    def _join(self) -> None:
        owners, new = zip(*self.joining, strict=True)
        self.joining = []
        queues = [r.queue for r in new]
        stack = queues[0].stack(queues)
        self.stack = stack if self.stack is None else self.stack.extend(stack)
        self.owners += owners
        self.requests += new
        below = [np.nan if r.below is None else r.below for r in new]
        self.lo = np.concatenate((self.lo, [r.lo for r in new]))
        self.hi = np.concatenate((self.hi, [r.hi for r in new]))
        self.below = np.concatenate((self.below, below))
        self.targets = np.concatenate((self.targets, [r.targets for r in new]))
        self.steps = np.concatenate((self.steps, np.zeros(len(new), dtype=np.int64)))

    def step(self) -> list[tuple[int, float | RateBelow]]:
        """One step of every bisection; (owner, rate or RateBelow) of those that end."""
        if self.joining:
            self._join()
        if not self.owners:
            return []
        assert self.stack is not None
        mid = 0.5 * (self.lo + self.hi)
        decided = _decide(self.stack.bounds(mid), self.targets, np.zeros(mid.size, dtype=bool))
        for row in np.flatnonzero(decided == _UNSURE).tolist():
            request = self.requests[row]
            queue = cast(PreparedQueue, request.queue)
            values = queue.latencies_ms(float(mid[row]), None, None)
            decided[row] = decision(worst_ratio(request.targets, values), 1.0)
        up, down = decided == 1, decided == -1
        self.hi = np.where(up, mid, self.hi)
        self.lo = np.where(down, mid, self.lo)
        self.steps += 1
        short = up & (self.hi < self.below)  # nan (no `below`) compares False
        ended = short | (decided == 0) | (self.steps >= MAX_STEPS)
        if not ended.any():
            return []
        out: list[tuple[int, float | RateBelow]] = [
            (self.owners[row], RateBelow() if short[row] else float(mid[row]))
            for row in np.flatnonzero(ended).tolist()
        ]
        self._keep(np.flatnonzero(~ended))
        return out

    def _keep(self, rows: npt.NDArray[np.intp]) -> None:
        assert self.stack is not None
        kept = rows.tolist()
        self.owners = [self.owners[r] for r in kept]
        self.requests = [self.requests[r] for r in kept]
        self.stack = self.stack.take(rows)
        self.lo, self.hi, self.below = self.lo[rows], self.hi[rows], self.below[rows]
        self.targets, self.steps = self.targets[rows], self.steps[rows]
        self.rows = len(kept) + len(self.joining)
