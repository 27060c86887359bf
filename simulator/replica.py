"""One simulated replica: a `FusedEngine` plus its life cycle in virtual time.

A replica is `starting` until `ready_at_s` (pod start-up), then `ready`; scale-down marks
it `draining`: it takes no new requests and leaves the fleet once its engine is empty
(`left_s`). The replica runs at most one iteration at a time (`in_flight`);
`simulator.cluster` schedules the iteration's end as an event. `gauges` keeps readings of
the engine's gauge integrals on the sampling grid for the window's time-weighted means.

To extend: a new life-cycle phase is one more `Phase` value handled in `simulator.cluster`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from queue_models.engine import EngineConfig, Iteration, Occupancy
from queue_models.fused import FusedEngine

Phase = Literal["starting", "ready", "draining"]


class GaugeHistory:
    """Readings of one engine's `Occupancy` integrals, oldest first."""

    def __init__(self) -> None:
        self._points: deque[Occupancy] = deque()

    def add(self, reading: Occupancy, keep_after_s: float) -> None:
        """Record a reading; drop those before the newest one at or before `keep_after_s`."""
        points = self._points
        points.append(reading)
        while len(points) > 1 and points[1].time_s <= keep_after_s:
            points.popleft()

    def at(self, t: float, latest: Occupancy) -> Occupancy:
        """The integrals at `t`: linear between the readings around it (`latest` is the
        reading now); zero before the first reading (the replica was not ready)."""
        before: Occupancy | None = None
        for point in (*self._points, latest):
            if point.time_s >= t:
                if point.time_s == t:
                    return point
                if before is None:
                    return Occupancy(t)
                f = (t - before.time_s) / (point.time_s - before.time_s)
                return Occupancy(t, before.running_s + f * (point.running_s - before.running_s),
                                 before.waiting_s + f * (point.waiting_s - before.waiting_s),
                                 before.kv_tokens_s + f * (point.kv_tokens_s
                                                           - before.kv_tokens_s))
            before = point
        return latest


@dataclass(eq=False)
class SimReplica:
    """A replica of `variant` (server on accelerator)."""

    name: str
    variant: str
    server: str
    accelerator: str
    config: EngineConfig
    ready_at_s: float
    phase: Phase = "starting"
    engine: FusedEngine = field(init=False)
    in_flight: Iteration | None = None
    left_s: float | None = None
    """When it left the fleet (drained), None while it is in it."""
    gauges: GaugeHistory = field(default_factory=GaugeHistory)

    def __post_init__(self) -> None:
        self.engine = FusedEngine(self.config)

    @property
    def load(self) -> int:
        """Requests running or waiting."""
        return self.engine.running + self.engine.waiting

    @property
    def max_batch(self) -> int:
        """The engine's max batch now (a plan may change it live)."""
        return self.engine.max_batch

    @property
    def accepts(self) -> bool:
        """True when the router may send it requests."""
        return self.phase == "ready"

    @property
    def gone(self) -> bool:
        """True for a draining replica with nothing left to do."""
        return self.phase == "draining" and not self.engine.has_work and self.in_flight is None
