"""Arrival processes of the load generator: when requests come and how big they are.

Pure: each process yields `Arrival`s in time order from a seeded `numpy` Generator, with
no I/O and no clock, so the same seed gives the same schedule (and a simulator can use
the same processes in virtual time).

- `PoissonArrivals`: a constant rate for a duration.
- `ScheduledArrivals` over a `RateSchedule`: a piecewise-linear rate (ramps; a step is
  two points at the same time), e.g. `RateSchedule.parse("0:1,60:10,120:10")`, or a
  diurnal shape `RateSchedule.diurnal(min, max, period, duration)`. A non-homogeneous
  Poisson process by thinning.
- `TraceArrivals`: replay of trace records (`workloads.traces`) from a window of the trace,
  with a time-scale factor (0.5 replays twice as fast) and a rate multiplier (0.5 keeps
  each request with probability 1/2; 2.5 sends each request 2 or 3 times, the extra
  copies spread uniformly over the gap to the next request so no burst is created).
- `assign_classes`: tag arrivals with service classes drawn from a weighted mix.

To extend: a new process is a frozen dataclass with `arrivals(rng) -> Iterator[Arrival]`
yielding in non-decreasing time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from workloads.traces import TraceRecord


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request to send: when (s from the start), sizes, and its service class."""

    time_s: float
    prompt_tokens: int
    output_tokens: int
    service_class: str | None = None


class ArrivalProcess(Protocol):
    """Anything that yields arrivals in time order."""

    def arrivals(self, rng: np.random.Generator) -> Iterator[Arrival]:
        """Arrivals in non-decreasing time."""
        ...


@dataclass(frozen=True, slots=True)
class TokenSizes:
    """Fixed request sizes for synthetic processes."""

    prompt_tokens: int = 512
    output_tokens: int = 128

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1 or self.output_tokens < 1:
            raise ValueError("prompt_tokens and output_tokens must be >= 1")


@dataclass(frozen=True, slots=True)
class PoissonArrivals:
    """A Poisson process of `rate_rps` for `duration_s` seconds."""

    rate_rps: float
    duration_s: float
    sizes: TokenSizes = TokenSizes()

    def arrivals(self, rng: np.random.Generator) -> Iterator[Arrival]:
        """Exponential gaps until the duration ends."""
        if self.rate_rps <= 0:
            return
        t = rng.exponential(1.0 / self.rate_rps)
        while t < self.duration_s:
            yield Arrival(float(t), self.sizes.prompt_tokens, self.sizes.output_tokens)
            t += rng.exponential(1.0 / self.rate_rps)


@dataclass(frozen=True, slots=True)
class RateSchedule:
    """A piecewise-linear rate: (time s, rate req/s) points; the schedule ends at the last."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("a rate schedule needs at least one point")
        times = [t for t, _ in self.points]
        if times[0] < 0 or any(b < a for a, b in zip(times, times[1:], strict=False)):
            raise ValueError("schedule times must be >= 0 and non-decreasing")
        if any(r < 0 or not math.isfinite(r) for _, r in self.points):
            raise ValueError("schedule rates must be finite and >= 0")

    @classmethod
    def parse(cls, text: str) -> RateSchedule:
        """Parse `"t:rate,t:rate,..."` (seconds, requests per second)."""
        try:
            points = tuple((float(t), float(r)) for t, r in
                           (item.split(":") for item in text.split(",") if item.strip()))
        except ValueError:
            raise ValueError(f"expected 'time:rate,time:rate,...', got {text!r}") from None
        return cls(points)

    @classmethod
    def diurnal(cls, min_rps: float, max_rps: float, period_s: float, duration_s: float,
                steps_per_period: int = 48) -> RateSchedule:
        """A daily shape: the rate follows a cosine from `min_rps` (t = 0) to `max_rps`
        (half a period) and back, sampled `steps_per_period` times a period."""
        steps = max(1, math.ceil(duration_s / period_s * steps_per_period))
        mid, amp = (max_rps + min_rps) / 2, (max_rps - min_rps) / 2
        points = tuple(
            (t, mid - amp * math.cos(2 * math.pi * t / period_s))
            for t in (duration_s * i / steps for i in range(steps + 1)))
        return cls(points)

    @property
    def end_s(self) -> float:
        """When the schedule ends."""
        return self.points[-1][0]

    @property
    def max_rate_rps(self) -> float:
        """The largest rate (the thinning bound)."""
        return max(r for _, r in self.points)

    def rate(self, t: float) -> float:
        """The rate at time `t` (0 outside the schedule; the later point wins at a step)."""
        pts = self.points
        if t < pts[0][0] or t > pts[-1][0]:
            return 0.0
        for (t0, r0), (t1, r1) in zip(pts, pts[1:], strict=False):
            if t0 <= t < t1:
                return r0 + (r1 - r0) * (t - t0) / (t1 - t0)
        return pts[-1][1]


@dataclass(frozen=True, slots=True)
class ScheduledArrivals:
    """A non-homogeneous Poisson process following a `RateSchedule` (thinning)."""

    schedule: RateSchedule
    sizes: TokenSizes = TokenSizes()

    def arrivals(self, rng: np.random.Generator) -> Iterator[Arrival]:
        """Candidates at the peak rate, each kept with probability rate(t) / peak."""
        peak = self.schedule.max_rate_rps
        if peak <= 0:
            return
        t = self.schedule.points[0][0]
        while True:
            t += rng.exponential(1.0 / peak)
            if t > self.schedule.end_s:
                return
            if rng.random() * peak < self.schedule.rate(t):
                yield Arrival(float(t), self.sizes.prompt_tokens, self.sizes.output_tokens)


@dataclass(frozen=True, slots=True)
class TraceArrivals:
    """Replay of `records` in [start_s, start_s + window_s) of trace time (see docstring)."""

    records: Sequence[TraceRecord]
    time_scale: float = 1.0
    rate_multiplier: float = 1.0
    start_s: float = 0.0
    window_s: float | None = None
    token_scale: float = 1.0
    max_prompt_tokens: int | None = None
    max_output_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.time_scale <= 0 or self.rate_multiplier < 0 or self.token_scale <= 0:
            raise ValueError("time_scale and token_scale must be > 0, rate_multiplier >= 0")

    def _sizes(self, record: TraceRecord) -> tuple[int, int]:
        prompt = max(1, round(record.prompt_tokens * self.token_scale))
        output = max(1, round(record.output_tokens * self.token_scale))
        if self.max_prompt_tokens:
            prompt = min(prompt, self.max_prompt_tokens)
        if self.max_output_tokens:
            output = min(output, self.max_output_tokens)
        return prompt, output

    def _window(self) -> list[TraceRecord]:
        end = math.inf if self.window_s is None else self.start_s + self.window_s
        return [r for r in self.records if self.start_s <= r.time_s < end]

    def arrivals(self, rng: np.random.Generator) -> Iterator[Arrival]:
        """The window's requests, shifted to start at 0 and scaled."""
        window = self._window()
        if not window:
            return
        m = self.rate_multiplier
        mean_gap = (window[-1].time_s - window[0].time_s) / max(len(window) - 1, 1)
        pending: list[Arrival] = []  # extra copies, not yet due
        for i, record in enumerate(window):
            t = (record.time_s - self.start_s) * self.time_scale
            gap = ((window[i + 1].time_s if i + 1 < len(window) else record.time_s + mean_gap)
                   - record.time_s) * self.time_scale
            copies = math.floor(m) + (rng.random() < m - math.floor(m))
            prompt, output = self._sizes(record)
            pending.extend(Arrival(t + float(rng.random()) * gap, prompt, output)
                           for _ in range(max(copies - 1, 0)))
            pending.sort(key=lambda a: a.time_s)
            while pending and pending[0].time_s <= t:
                yield pending.pop(0)
            if copies:
                yield Arrival(t, prompt, output)
        yield from pending


def assign_classes(arrivals: Iterable[Arrival], mix: Mapping[str, float],
                   rng: np.random.Generator) -> Iterator[Arrival]:
    """Tag each arrival with a class drawn from `mix` (name -> weight); empty mix: untouched."""
    if not mix:
        yield from arrivals
        return
    names = sorted(mix)
    weights = np.array([mix[n] for n in names], dtype=float)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("class weights must be >= 0 with a positive sum")
    cumulative = np.cumsum(weights / weights.sum())
    for arrival in arrivals:
        index = min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(names) - 1)
        yield replace(arrival, service_class=names[index])
