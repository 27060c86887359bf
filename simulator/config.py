"""`SimConfig`: how the simulated fleet behaves (seconds, tokens).

Pod start-up, the window of the figures `collect` reports, the hardware of each replica
(iteration-cost law per model and accelerator, multiplicative noise, KV capacity, queue
bound), how the router picks a replica (`simulator.routing`), and two knobs of the event
loop (fused decode runs, the gauge sampling grid).
Frozen; `SimCluster` reads it and never changes it.

To extend: a new knob is one more field with a default and a check in `__post_init__`,
read where the behaviour lives (`simulator.hardware` for per-replica engines).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from queue_models.iteration_cost import IterationCost
from simulator.routing import ROUTING, RoutingName


@dataclass(frozen=True)
class SimConfig:
    """How the twin behaves (seconds)."""

    startup_s: float = 120.0
    """Pod start-up: time from scale-up to a new replica being ready."""
    window_s: float = 60.0
    """Window of the figures `collect` reports."""
    laws: Mapping[tuple[str, str], IterationCost] = field(default_factory=dict)
    """Iteration-cost law by (model, accelerator), used instead of the profile's alpha,
    beta, gamma for that pair (e.g. `simulator.timing.TableLaw`)."""
    noise_cv: float = 0.0
    """Each iteration's duration is multiplied by a lognormal factor with mean 1 and this
    coefficient of variation (0: none)."""
    seed: int = 0
    """Seed of the noise: replica k draws from `numpy.random.default_rng([seed, k])`, k
    counting replicas in creation order, so a run replays exactly."""
    kv_capacity_tokens: int | Mapping[str, int] | None = None
    """KV cache per replica in tokens: one size, or one per accelerator name (absent
    accelerators unlimited); None: unlimited."""
    max_queue: int | None = None
    """Requests a replica lets wait beyond its free batch slots; None: unbounded. A
    request beyond it (or larger than the KV cache) is rejected."""
    fuse: bool = True
    """Run decode-only iterations between outside events in one step (same times as one
    event per iteration, which False gives: the reference for tests)."""
    sample_s: float = 1.0
    """Grid on which the replicas' gauge integrals are recorded; window means starting
    between two grid points interpolate between them."""
    routing: RoutingName = "least_loaded"
    """How a server's requests are spread (`simulator.routing`): `least_loaded` (the
    ready replica of any variant with the fewest requests per max-batch slot) or
    `weighted` (the plan's router weights across variants, then the least-loaded replica)."""

    def __post_init__(self) -> None:
        if self.startup_s < 0 or self.window_s <= 0 or self.sample_s <= 0:
            raise ValueError("startup_s must be >= 0, window_s and sample_s > 0")
        if self.noise_cv < 0:
            raise ValueError(f"noise_cv must be >= 0, got {self.noise_cv}")
        if self.max_queue is not None and self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue}")
        caps = self.kv_capacity_tokens
        values = caps.values() if isinstance(caps, Mapping) else [caps]
        if any(v is not None and v < 1 for v in values):
            raise ValueError(f"kv_capacity_tokens must be >= 1, got {caps}")
        if self.routing not in ROUTING:
            raise ValueError(f"unknown routing {self.routing!r}; known: "
                             + ", ".join(ROUTING.names()))

    def kv_capacity_for(self, accelerator: str) -> int | None:
        """The KV capacity of a replica on `accelerator` (None: unlimited)."""
        caps = self.kv_capacity_tokens
        if isinstance(caps, Mapping):
            return caps.get(accelerator)
        return caps
