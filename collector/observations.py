"""Turn a snapshot's variants into the tuner's observations (one per variant).

The tuner learns per replica, so the variant's arrival rate is divided by its replica
count; running is already a per-replica mean. A variant gives an observation only when
every figure needed is fresh and complete (status ok): arrival rate, replicas, token
means, mean TTFT and ITL, and a max batch (exported by the worker or configured). Too few
completed requests in the window (`min_completed`) is too noisy to learn from, and a
load of zero says nothing about speed. Running is used when it is known. Each skipped
variant is reported with the reason, never silently dropped.

To extend: another observed figure is one more field in `tuner.observation.Observation`,
filled here.
"""

from __future__ import annotations

from dataclasses import dataclass

from collector.snapshot import FleetSnapshot, VariantSnapshot
from tuner.observation import Observation

REQUIRED = ("arrival_rate_rps", "completion_rate_rps", "replicas", "in_tokens", "out_tokens",
            "ttft_mean_ms", "itl_mean_ms", "max_batch")


@dataclass(frozen=True)
class Skipped:
    """A variant that gave no observation, and why."""

    variant: str
    reason: str


def observation_of(variant: VariantSnapshot, min_completed: float = 10.0,
                   ) -> Observation | Skipped:
    """The variant's observation, or why there is none."""
    figures = variant.figures()
    bad = [f"{name} {figures[name].status.value}" for name in REQUIRED
           if not figures[name].usable]
    if bad:
        return Skipped(variant.name, "not usable: " + ", ".join(bad))
    value = {name: float(figures[name].value or 0.0) for name in REQUIRED}
    replicas = value["replicas"]
    if replicas < 1 or value["arrival_rate_rps"] <= 0:
        return Skipped(variant.name, "no load")
    completed = value["completion_rate_rps"] * variant.window_s
    if completed < min_completed:
        return Skipped(variant.name, f"only {completed:.0f} requests completed in the window")
    if value["out_tokens"] < 1 or value["ttft_mean_ms"] <= 0 or value["itl_mean_ms"] <= 0:
        return Skipped(variant.name, "degenerate token or latency means")
    running = variant.running.value if variant.running.usable else None
    return Observation(
        model=variant.model, accelerator=variant.accelerator,
        arrival_rate_rps=value["arrival_rate_rps"] / replicas,
        in_tokens=value["in_tokens"], out_tokens=value["out_tokens"],
        max_batch=max(round(value["max_batch"]), 1), ttft_ms=value["ttft_mean_ms"],
        itl_ms=value["itl_mean_ms"], running=running if running and running > 0 else None,
    )


def observations_of(snapshot: FleetSnapshot, min_completed: float = 10.0,
                    ) -> tuple[list[Observation], list[Skipped]]:
    """Observations of every usable variant, and the variants skipped with reasons."""
    observations: list[Observation] = []
    skipped: list[Skipped] = []
    for variant in snapshot.variants:
        found = observation_of(variant, min_completed)
        (observations if isinstance(found, Observation) else skipped).append(found)
    return observations, skipped
