"""One simulated replica: a `BatchEngine` plus its life cycle in virtual time.

A replica is `starting` until `ready_at_s` (pod start-up), then `ready`; scale-down marks
it `draining`: it takes no new requests and leaves the fleet once its engine is empty.
The replica runs at most one iteration at a time (`in_flight`); `simulator.cluster`
schedules the iteration's end as an event.

To extend: a new life-cycle phase is one more `Phase` value handled in `simulator.cluster`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from queue_models.engine import BatchEngine, EngineConfig, Iteration

Phase = Literal["starting", "ready", "draining"]


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
    engine: BatchEngine = field(init=False)
    in_flight: Iteration | None = None

    def __post_init__(self) -> None:
        self.engine = BatchEngine(self.config)

    @property
    def load(self) -> int:
        """Requests running or waiting."""
        return self.engine.running + self.engine.waiting

    @property
    def accepts(self) -> bool:
        """True when the router may send it requests."""
        return self.phase == "ready"

    @property
    def gone(self) -> bool:
        """True for a draining replica with nothing left to do."""
        return self.phase == "draining" and not self.engine.has_work and self.in_flight is None
