"""Online correction of the sizing per variant: measured latency against predicted (a
policy: pure, no clock, no I/O).

The capacity tables say what a replica configuration does on the profiled hardware with
the profiled workload; a variant that runs slower than that (hardware drift, a software
upgrade, a workload the sample missed) must be sized as slower. As Dynamo's planner does,
the loop compares, per variant (server on accelerator), what it measured over the window
with what the model predicts at the load it measured, and keeps a correction factor: the
variant's time scale, by which the sizing reads its tables slower
(`specs.documents.Server.time_scale`, `queue_models.base.ServiceParams.time_scale`).

The comparison is on the mean ITL, which depends on the hardware and the batch a replica
runs and barely on the rate's burstiness: `ratio = measured / predicted`, the prediction
made with the current factor. The factor follows slowly and boundedly:

- only variants with `min_tokens` generated tokens in the window and ready replicas count;
- within `dead_band` of 1 nothing changes (noise);
- otherwise the factor moves by `ratio ** gain`, per tick at most `max_rise` up (fast:
  a variant slower than sized misses its targets now) and `max_fall` down (slow),
  on the 2% grid the tables share (`on_grid`), within [`lower`, `upper`].

A variant absent from a window keeps its factor, and so does one that left the fleet:
what was measured on that configuration still holds when the optimizer weighs it again
(forgetting it, the evaluation's loop went back to an accelerator it had measured 37%
slower than its profile said, and missed there again). It moves again once the variant
runs; factors of servers no longer in the spec are dropped.

By default the factor never goes below 1: a variant whose mean ITL beats the prediction
is not taken to have better tails (in the azure-code evaluation a correction allowed down
to 0.67 cut the fleet 8% and attainment from 99% to 98.2%); a faster fleet is the tuner's
to find.

To extend: another measured figure (e.g. a TTFT percentile) is one more `Observed`
field and one more ratio combined in `_ratio`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from actuator.base import FleetState
from collector.snapshot import FleetSnapshot
from queue_models.capacity_model import PROFILE_GRID, on_grid
from specs.documents import FleetSpec


class CorrectionOptions(BaseModel):
    """How fast and how far the correction moves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gain: float = Field(0.5, gt=0, le=1, description="Share of the log ratio taken per tick.")
    max_rise: float = Field(0.25, gt=0, description="Largest relative rise per tick.")
    max_fall: float = Field(0.05, gt=0, lt=1, description="Largest relative fall per tick.")
    dead_band: float = Field(0.05, ge=0, lt=1, description="Ratios within this of 1 are noise.")
    lower: float = Field(1.0, gt=0, le=1, description="Smallest factor (1: the correction "
                         "only ever sizes more conservatively than the tables).")
    upper: float = Field(2.0, ge=1, description="Largest factor.")
    min_tokens: int = Field(200, ge=1, description="Tokens a window needs to count.")


class CorrectionState(BaseModel):
    """Factors by 'server/accelerator' (absent: 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    factors: dict[str, float] = Field(default_factory=dict,
                                      description="Time scale per 'server/accelerator'.")

    def factor(self, server: str, accelerator: str) -> float:
        """The variant's factor (1 when none was learned)."""
        return self.factors.get(f"{server}/{accelerator}", 1.0)

    def for_server(self, server: str) -> dict[str, float]:
        """Factors of one server's variants, by accelerator."""
        prefix = f"{server}/"
        return {k.removeprefix(prefix): v for k, v in self.factors.items()
                if k.startswith(prefix)}


@dataclass(frozen=True)
class Observed:
    """One variant over the last window: measured and predicted mean ITL (ms)."""

    server: str
    accelerator: str
    measured_itl_ms: float
    predicted_itl_ms: float
    tokens: float


def _ratio(obs: Observed) -> float | None:
    ok = (math.isfinite(obs.measured_itl_ms) and math.isfinite(obs.predicted_itl_ms)
          and obs.measured_itl_ms > 0 and obs.predicted_itl_ms > 0)
    return obs.measured_itl_ms / obs.predicted_itl_ms if ok else None


def correct(state: CorrectionState, observed: Iterable[Observed], servers: Iterable[str],
            options: CorrectionOptions) -> CorrectionState:
    """The new factors (see the module docstring); `servers` names the spec's servers
    (factors of any other server are dropped)."""
    known = set(servers)
    factors = {k: v for k, v in state.factors.items() if k.split("/", 1)[0] in known}
    for obs in observed:
        ratio = _ratio(obs)
        if ratio is None or obs.tokens < options.min_tokens:
            continue
        if abs(ratio - 1.0) <= options.dead_band:
            continue
        key = f"{obs.server}/{obs.accelerator}"
        old = factors.get(key, 1.0)
        step = min(max(ratio ** options.gain, 1.0 - options.max_fall), 1.0 + options.max_rise)
        new = _within(on_grid(old * step), options)
        if new != 1.0:
            factors[key] = new
        else:
            factors.pop(key, None)
    return CorrectionState(factors=dict(sorted(factors.items())))


def _within(value: float, options: CorrectionOptions) -> float:
    """The grid point nearest `value` inside [lower, upper]."""
    while value > options.upper:
        value = on_grid(value / PROFILE_GRID)
    while value < options.lower:
        value = on_grid(value * PROFILE_GRID)
    return value


Predict = Callable[[str, str, int | None, int | None, float], float | None]
"""(server, accelerator, max batch, token budget, per-replica rate) -> predicted mean ITL
(ms) with the current correction, or None when the model cannot say."""


def observations(snapshot: FleetSnapshot, fleet: FleetState, predict: Predict,
                 ) -> list[Observed]:
    """Per variant with a usable mean ITL, rate and completions: measured against
    predicted at the measured per-replica rate."""
    running = {v.variant: v for v in fleet.variants}
    out = []
    for v in snapshot.variants:
        state = running.get(v.name)
        if state is None or v.server is None or state.ready_replicas < 1:
            continue
        figures = (v.itl_mean_ms, v.arrival_rate_rps, v.completion_rate_rps, v.out_tokens)
        if not all(f.usable for f in figures):
            continue
        itl, rate, done, out_tokens = (float(f.value) for f in figures)  # type: ignore[arg-type]
        predicted = predict(v.server, v.accelerator, state.max_batch, state.token_budget,
                            rate / state.ready_replicas)
        if predicted is None:
            continue
        out.append(Observed(v.server, v.accelerator, itl, predicted,
                            done * v.window_s * max(out_tokens - 1.0, 0.0)))
    return out


def with_corrections(spec: FleetSpec, state: CorrectionState) -> FleetSpec:
    """The spec with every server's factors as its `time_scale`."""
    servers = [s.model_copy(update={"time_scale": state.for_server(s.name)})
               for s in spec.servers]
    return spec.model_copy(update={"servers": servers})
