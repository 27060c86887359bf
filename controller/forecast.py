"""Forecasting the arrival rate one pod start-up ahead (a policy: pure, registered by name).

inferno sizes for the load it just measured, so every ramp is served late by one pod
start-up. The loop instead sizes each server for its rate forecast `horizon_s` ahead
(the configured start-up time, default 120 s) and never below the current rate:

    rate_for_sizing = max(current, forecaster.predict(series, horizon_s))

A forecaster is a small pure object with two methods:

- `update(series, t, value) -> Series` folds one measurement (time `t` in seconds from
  the loop's clock, rate in req/s) into the per-server `Series` (a frozen value the loop
  persists; `None` for a server seen for the first time);
- `predict(series, horizon_s) -> float` extrapolates, never below zero.

Registered forecasters (`FORECASTERS`): `holt` (Holt's linear exponential smoothing with
irregular time steps, see `Holt`) and `last_value` (no forecasting: inferno's behaviour).

Why `holt` is cautious: the first samples of a server are not its rate. While the
collector's window fills and the first requests are still in flight, a measured rate
(completions over elapsed time) ramps up to the true rate over about one window, which
looks exactly like a real ramp. So `holt` learns no trend during a warm-up of
`warmup_samples` (the level is the last sample), starts the trend at zero after it,
damps it over the horizon, and bounds the forecast twice: at most `max_growth` x the
current level, and at most `max_lead_changes` x the last observed rise above it (on a
flat series the forecast is the level, whatever the trend says).

To extend: write a class with `update` and `predict` over `Series` (its `extra` dict holds
any further numbers, e.g. seasonal indices) and register it in `FORECASTERS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from specs.registry import Registry


class Series(BaseModel):
    """What a forecaster remembers about one server's rate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: float = Field(description="Smoothed rate, req/s.")
    trend_per_s: float = Field(0.0, description="Smoothed change of the rate, req/s per s.")
    last_t: float = Field(description="Time of the last sample, s (loop clock).")
    last_value: float = Field(description="Last measured rate, req/s.")
    samples: int = Field(1, ge=1, description="Samples folded in.")
    last_change_rps: float = Field(
        0.0, description="Last measured rate minus the one before it, req/s (0 for the "
        "first sample).")
    extra: dict[str, float] = Field(default_factory=dict,
                                    description="Further numbers a forecaster keeps.")


class Forecaster(Protocol):
    """A rate forecaster (see the module docstring)."""

    def update(self, series: Series | None, t: float, value: float) -> Series:
        """`series` with one more sample."""
        ...

    def predict(self, series: Series, horizon_s: float) -> float:
        """The rate `horizon_s` after the last sample (>= 0)."""
        ...


def _first(t: float, value: float) -> Series:
    return Series(level=value, trend_per_s=0.0, last_t=t, last_value=value)


@dataclass(frozen=True)
class LastValue:
    """No forecast: the last measured rate."""

    def update(self, series: Series | None, t: float, value: float) -> Series:
        """Remember the sample."""
        if series is None:
            return _first(t, value)
        return series.model_copy(update={"level": value, "last_t": t, "last_value": value,
                                         "samples": series.samples + 1})

    def predict(self, series: Series, horizon_s: float) -> float:
        """The last value."""
        return max(series.last_value, 0.0)


@dataclass(frozen=True)
class Holt:
    """Holt's linear smoothing over irregular steps, warmed up, damped and bounded.

    `level_half_life_s` and `trend_half_life_s` set how fast the level and trend forget:
    with a step of dt seconds the smoothing weight is 1 - 0.5 ** (dt / half_life).
    For the first `warmup_samples` samples the level is the last sample and the trend
    stays zero (a collector's window filling up is not a trend); after that the trend
    starts from zero. `damping` (0..1) shrinks the trend per level half-life over the
    horizon (1: linear extrapolation). The forecast is at most `max_growth` x the level
    (or last sample, if higher) and at most that plus `max_lead_changes` x the last
    observed rise, so a flat series is forecast flat and one outlier cannot size the
    fleet for an absurd rate.
    """

    level_half_life_s: float = 60.0
    trend_half_life_s: float = 120.0
    damping: float = 0.8
    warmup_samples: int = 3
    max_growth: float = 1.5
    max_lead_changes: float = 2.0

    def update(self, series: Series | None, t: float, value: float) -> Series:
        """Fold one sample into the level and trend."""
        if series is None:
            return _first(t, value)
        dt = t - series.last_t
        if dt <= 0:
            return series.model_copy(update={"last_value": value})
        change = value - series.last_value
        if series.samples < self.warmup_samples:
            return Series(level=max(value, 0.0), trend_per_s=0.0, last_t=t, last_value=value,
                          samples=series.samples + 1, last_change_rps=change,
                          extra=dict(series.extra))
        a = 1.0 - 0.5 ** (dt / self.level_half_life_s)
        b = 1.0 - 0.5 ** (dt / self.trend_half_life_s)
        expected = series.level + series.trend_per_s * dt
        level = a * value + (1.0 - a) * expected
        trend = b * (level - series.level) / dt + (1.0 - b) * series.trend_per_s
        return Series(level=max(level, 0.0), trend_per_s=trend, last_t=t, last_value=value,
                      samples=series.samples + 1, last_change_rps=change,
                      extra=dict(series.extra))

    def predict(self, series: Series, horizon_s: float) -> float:
        """Level plus the damped trend over the horizon, bounded (see the class)."""
        base = max(series.level, series.last_value, 0.0)
        if series.samples <= self.warmup_samples or horizon_s <= 0:
            return base
        steps = horizon_s / self.level_half_life_s
        if self.damping >= 1.0:
            factor = steps
        else:
            factor = self.damping * (1.0 - self.damping ** steps) / (1.0 - self.damping)
        value = series.level + series.trend_per_s * self.level_half_life_s * factor
        if not math.isfinite(value):
            return base
        lead = self.max_lead_changes * max(series.last_change_rps, 0.0)
        ceiling = min(self.max_growth * base, base + lead)
        return min(max(value, 0.0), ceiling)


FORECASTERS: Registry[Forecaster] = Registry("forecaster")
FORECASTERS.register("holt", Holt())
FORECASTERS.register("last_value", LastValue())


def forecaster_names() -> list[str]:
    """Registered forecaster names, sorted."""
    return FORECASTERS.names()


def sizing_rate(forecaster: Forecaster, series: Series, current: float,
                horizon_s: float) -> float:
    """The rate to size for: the forecast `horizon_s` ahead, never below `current`."""
    return max(current, forecaster.predict(series, horizon_s))
