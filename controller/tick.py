"""The tick report: one typed value per tick, written as one decision-log line.

A `TickReport` holds what went in (the snapshot's status, the measured, forecast and
sizing loads, the running fleet, the stabiliser state before the tick, the previous
plan), what was learned (tuned profiles), what was decided (the spec exactly as
optimised, the proposed plan, the final plan, held-off actions with reasons, the changes
made) and how long each stage took. The spec as optimised plus the solver name are enough
to re-run the optimisation; with the fleet, the previous plan and the stabiliser state,
the stabilisation too (`controller.decision_log.replay`).

Status: `applied` (the actuator was called), `dry-run` / `metrics` (decided, not acted),
`held` (no fresh metrics or the fleet could not be read: nothing changed), `solve-failed`
(the last plan is kept), `stopped` (a stop came before actuation: nothing applied).

To extend: add a field with a default (older logs still load) and fill it in the loop.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from actuator.base import ActuationResult, FleetState
from controller.stabilize import HeldAction, StabilizerState
from specs.documents import FleetSpec, Load
from specs.plan import Plan

TickStatus = Literal["applied", "dry-run", "metrics", "held", "solve-failed", "stopped"]
STAGES = ("observe", "collect", "forecast", "tune", "optimize", "stabilize", "actuate", "record")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunningVariant(_Model):
    """One variant of the fleet as observed."""

    variant: str
    server: str
    model: str
    accelerator: str
    replicas: int
    ready_replicas: int
    max_batch: int | None = None


class Held(_Model):
    """An action held off by the stabiliser."""

    server: str
    accelerator: str
    kind: str
    proposed: int
    kept: int
    reason: str


class Change(_Model):
    """A change the actuator made (or would make)."""

    variant: str
    server: str
    kind: str
    detail: str


class TunedParameters(_Model):
    """One tuned profile."""

    model: str
    accelerator: str
    alpha_ms: float
    beta_ms: float
    gamma_ms: float
    phase: str
    updates: int


class TickReport(_Model):
    """See the module docstring."""

    tick: int = Field(description="Tick number (1-based).")
    time_s: float = Field(description="The loop clock at the start of the tick, s.")
    status: TickStatus = Field(description="What happened (see the module docstring).")
    reasons: list[str] = Field(default_factory=list, description="Why, in words.")
    metrics_status: str = Field("", description="The snapshot's source status.")
    measured: dict[str, Load] = Field(default_factory=dict, description="Fresh loads.")
    forecast_rps: dict[str, float] = Field(default_factory=dict,
                                           description="Forecast rate one start-up ahead.")
    sizing: dict[str, Load] = Field(default_factory=dict, description="Loads sized for.")
    fleet: list[RunningVariant] = Field(default_factory=list, description="Fleet observed.")
    stabilizer_before: StabilizerState = Field(default_factory=StabilizerState)
    previous_plan: Plan | None = Field(None, description="Final plan of the previous tick.")
    tuned: list[TunedParameters] = Field(default_factory=list, description="Tuned profiles.")
    observations: int = Field(0, description="Tuner observations this tick.")
    solver: str | None = Field(None, description="Solver name used.")
    spec: FleetSpec | None = Field(None, description="The spec exactly as optimised.")
    proposed: Plan | None = Field(None, description="The optimizer's plan.")
    plan: Plan | None = Field(None, description="The final plan after stabilising.")
    plan_id: str | None = Field(None, description="Id of the final plan.")
    held: list[Held] = Field(default_factory=list, description="Held-off actions.")
    changes: list[Change] = Field(default_factory=list, description="Changes made or planned.")
    failures: list[str] = Field(default_factory=list, description="Actuation failures.")
    timings_ms: dict[str, float] = Field(default_factory=dict, description="Per stage, ms.")

    @property
    def total_ms(self) -> float:
        """Sum of the stage timings."""
        return sum(self.timings_ms.values())


def running_variants(fleet: FleetState) -> list[RunningVariant]:
    """The fleet as report entries, sorted by variant."""
    return [RunningVariant(variant=v.variant, server=v.server, model=v.model,
                           accelerator=v.accelerator, replicas=v.replicas,
                           ready_replicas=v.ready_replicas, max_batch=v.max_batch)
            for v in sorted(fleet.variants, key=lambda x: x.variant)]


def current_replicas(fleet: list[RunningVariant]) -> dict[tuple[str, str], int]:
    """Desired replicas running now per (server, accelerator)."""
    out: dict[tuple[str, str], int] = {}
    for v in fleet:
        out[(v.server, v.accelerator)] = out.get((v.server, v.accelerator), 0) + v.replicas
    return out


def held_entries(held: tuple[HeldAction, ...]) -> list[Held]:
    """Stabiliser actions as report entries."""
    return [Held(server=h.server, accelerator=h.accelerator, kind=h.kind, proposed=h.proposed,
                 kept=h.kept, reason=h.reason) for h in held]


def change_entries(result: ActuationResult) -> tuple[list[Change], list[str]]:
    """Actuation changes and failures as report entries."""
    changes = [Change(variant=c.variant, server=c.server, kind=c.kind, detail=c.detail)
               for c in result.changes]
    failures = [f"{f.variant}: {f.reason}" for f in result.failures]
    return changes, failures


def blind(report: TickReport) -> str | None:
    """Why the tick could not see the fleet or its metrics (a metrics source outage or an
    unreadable fleet), or None when it could: what the daemon's /readyz, logs and
    `fleetplan_metrics_up` report."""
    if report.metrics_status == "unavailable" or (report.status == "held"
                                                  and not report.metrics_status):
        return "; ".join(report.reasons) or "metrics unavailable"
    return None
