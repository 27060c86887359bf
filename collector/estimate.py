"""Pure estimates shared by the collectors: arrivals, ratios, histogram quantiles, status.

- `arrivals(completions, growth, router)`: a saturated server completes less than
  arrives, so arrivals are completions plus the growth of the requests it holds (running +
  waiting, per second) over the window; a router's own count wins when there is one.
  Without a growth figure the completions stand in, marked `partial`. Never negative.
- `ratio(numerator, denominator)`: a mean from two rates (e.g. TTFT sum over count); 0/0
  is `nan`, never 0.
- `bucket_quantile(q, buckets)`: Prometheus' `histogram_quantile` on cumulative bucket
  counts (linear within a bucket; the +Inf bucket gives the last finite bound).
- `worst(...)`: the least trustworthy of several statuses.

To extend: another derived figure is a function of `Figure`s returning a `Figure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from collector.snapshot import KNOWN, Figure, FigureStatus

_ORDER = (FigureStatus.OK, FigureStatus.PARTIAL, FigureStatus.STALE, FigureStatus.NAN,
          FigureStatus.MISSING, FigureStatus.UNAVAILABLE)


def worst(*statuses: FigureStatus) -> FigureStatus:
    """The least trustworthy status (ok < partial < stale < nan < missing < unavailable)."""
    return max(statuses, key=_ORDER.index, default=FigureStatus.OK)


def _age(*figures: Figure) -> float | None:
    ages = [f.age_s for f in figures if f.age_s is not None]
    return max(ages) if ages else None


def combine(value: float, *inputs: Figure) -> Figure:
    """A figure computed from `inputs`, carrying their worst status and oldest age."""
    status = worst(*(f.status for f in inputs))
    if not math.isfinite(value):
        return Figure.nan(_age(*inputs))
    return Figure(value=value, status=status, age_s=_age(*inputs))


def unknown(*inputs: Figure) -> Figure:
    """No value: the worst status of the inputs that have none (missing by default)."""
    statuses = [f.status for f in inputs if not f.known]
    status = worst(*statuses) if statuses else FigureStatus.MISSING
    if status in KNOWN:
        status = FigureStatus.MISSING
    return Figure(status=status, age_s=_age(*inputs))


def ratio(numerator: Figure, denominator: Figure, scale: float = 1.0) -> Figure:
    """numerator / denominator x scale; `nan` when the denominator is 0."""
    if not (numerator.known and denominator.known):
        return unknown(numerator, denominator)
    assert numerator.value is not None and denominator.value is not None
    if denominator.value <= 0:
        return Figure.nan(_age(numerator, denominator))
    return combine(numerator.value / denominator.value * scale, numerator, denominator)


def arrivals(completions: Figure, growth: Figure, router: Figure | None = None) -> Figure:
    """Arrival rate (see the module docstring)."""
    if router is not None and router.known:
        return router
    if not completions.known:
        return unknown(completions)
    assert completions.value is not None
    if not growth.known:
        return combine(max(completions.value, 0.0), completions).with_status(
            worst(completions.status, FigureStatus.PARTIAL))
    assert growth.value is not None
    return combine(max(completions.value + growth.value, 0.0), completions, growth)


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """histogram_quantile(q) over cumulative (upper bound, count) pairs; NaN when empty."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0 or not 0 <= q <= 1:
        return math.nan
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
