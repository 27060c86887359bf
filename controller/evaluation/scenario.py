"""An evaluation scenario: a fleet, its workloads, the simulated hardware, the policies.

A scenario is a JSON document (`Scenario`, pydantic, unknown keys rejected). It names a
fleet spec (`"example:NAME"` for one of `specs/examples/`, or a path relative to the
scenario file), may replace the spec's service classes and servers, and gives one
workload per server: a public trace (Azure 2023 CSV or Mooncake JSON lines, read from the
data folder, rate-scaled and time-stretched) or a synthetic process (a cosine day shape
squeezed into `period_s`, plus bursts). The standard set lives in
`controller/evaluation/scenarios/` and is listed by `builtin_scenarios()`.

`load_scenario(name_or_path)` returns a `Scenario` (`SpecError` with the JSON path on any
problem); `scenario.fleet()` the resolved spec; `make_requests(scenario, data_dir)` the
arrivals every policy replays (same seed, same requests).

To extend: a new workload kind is one more optional field on `Workload` and one more
branch in `_arrivals`; a new standard scenario is one more JSON file in `scenarios/`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.records import SimRequest, requests_of
from specs.documents import FleetSpec, Server, ServiceClass
from specs.errors import SpecError
from specs.jsonnode import read_json
from specs.loading import load_fleet, parse_native
from workloads.arrivals import Arrival, TraceArrivals
from workloads.traces import read_trace

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "specs" / "examples"
POLICY_NAMES = ("static_peak", "reactive", "inferno_greedy", "fleetplan", "clairvoyant")


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraceSource(_Doc):
    """A public trace replayed for one server."""

    path: str = Field(description="Trace file, relative to the data folder (or absolute).")
    format: Literal["azure", "mooncake"] | None = Field(
        None, description="azure or mooncake (default: from the extension).")
    rate_multiplier: float = Field(1.0, gt=0, description="Requests per trace request.")
    time_scale: float = Field(1.0, gt=0, description="Stretch of trace time (2: half as fast).")
    start_s: float = Field(0.0, ge=0, description="Where in the trace to start, s.")
    max_prompt_tokens: int | None = Field(None, ge=1, description="Cap on prompt tokens.")
    max_output_tokens: int | None = Field(None, ge=1, description="Cap on output tokens.")


class Burst(_Doc):
    """Extra load for a while."""

    at_s: float = Field(ge=0, description="Start, s.")
    duration_s: float = Field(gt=0, description="Length, s.")
    extra_rps: float = Field(gt=0, description="Added arrival rate, req/s.")


class SyntheticSource(_Doc):
    """A day shape (cosine from `base_rps` at 0 to `peak_rps` at half a period) with bursts;
    token sizes lognormal with the given means and coefficient of variation."""

    base_rps: float = Field(ge=0, description="Rate at t = 0, req/s.")
    peak_rps: float = Field(ge=0, description="Rate at half a period, req/s.")
    period_s: float = Field(3600.0, gt=0, description="Length of one 'day', s.")
    bursts: list[Burst] = Field(default_factory=list, description="Bursts on top.")
    prompt_tokens: float = Field(1024.0, ge=1, description="Mean prompt tokens.")
    output_tokens: float = Field(128.0, ge=1, description="Mean output tokens.")
    size_cv: float = Field(0.5, ge=0, description="Coefficient of variation of sizes.")

    def rate(self, t: float) -> float:
        """The arrival rate at `t`, req/s."""
        mid, amp = (self.base_rps + self.peak_rps) / 2, (self.peak_rps - self.base_rps) / 2
        day = mid - amp * math.cos(2 * math.pi * t / self.period_s)
        return day + sum(b.extra_rps for b in self.bursts if b.at_s <= t < b.at_s + b.duration_s)


class Workload(_Doc):
    """What one server receives: exactly one of `trace` and `synthetic`."""

    server: str = Field(description="Server name in the spec.")
    trace: TraceSource | None = Field(None, description="A public trace.")
    synthetic: SyntheticSource | None = Field(None, description="A synthetic process.")

    @model_validator(mode="after")
    def _one_source(self) -> Workload:
        if (self.trace is None) == (self.synthetic is None):
            raise ValueError("give exactly one of 'trace' and 'synthetic'")
        return self


class TimingSource(_Doc):
    """Iteration times of one (model, accelerator) from a measured timing table instead of
    the spec's profile (`simulator.timing`)."""

    model: str = Field(description="Model name in the spec.")
    accelerator: str = Field(description="Accelerator name in the spec.")
    path: str = Field(description="Timing CSV, relative to the data folder (or absolute).")
    table_model: str | None = Field(None, description="Model name in the table.")
    hardware: str | None = Field(None, description="Hardware name in the table.")
    tensor_parallel: int | None = Field(None, ge=1, description="Tensor parallel degree.")


class SimSettings(_Doc):
    """How the simulated hardware behaves (the same for every policy)."""

    timing: list[TimingSource] = Field(
        default_factory=list, description="Measured timing tables that replace profiles.")

    noise_cv: float = Field(0.05, ge=0, description="Iteration-time noise (lognormal CV).")
    seed: int = Field(1, description="Seed of arrivals and noise.")
    kv_capacity_tokens: int | None = Field(
        None, ge=1, description="KV-cache capacity per replica, tokens (none: unlimited).")
    max_queue: int | None = Field(None, ge=0, description="Waiting bound per replica.")


class CalibrationSettings(_Doc):
    """How capacity tables are measured for the policies when the spec's queue model is
    `capacity-table` (`queue_models.capacity_sizing.CalibrationOptions`)."""

    requests: int = Field(4000, ge=50, description="Requests of the workload sample "
                          "replayed per probe.")
    headroom: float = Field(0.5, ge=0, lt=1, description="Share of the misses a "
                            "percentile target allows that sizing keeps in reserve (0.5: "
                            "p99 is sized for 99.5% of requests).")
    noise_cv: float | None = Field(None, ge=0, description="Iteration-time noise of the "
                                   "replays (none: the simulated hardware's).")
    rate_window_s: float | None = Field(
        None, gt=0, description="Workload samples keep the burstiness within this window and "
        "normalise slower changes of the rate away (none: the period plus the pod start-up, "
        "the fastest change a loop can follow; faster ones must be in the tables).")
    token_budgets: list[int] = Field(
        default_factory=lambda: [512], description="Token budgets (chunked prefill, tokens "
        "per iteration) tried besides each profile's own.")


class LoopSettings(_Doc):
    """How the loops (fleetplan, inferno_greedy) observe and hold."""

    window_s: float | None = Field(
        None, gt=0, description="Window of the figures the simulated collector reports, s "
        "(none: the calibration's rate window, so the loops measure rates over the window "
        "the capacity tables' burstiness was normalised over).")
    scale_down_delay_s: float = Field(
        300.0, ge=0, description="fleetplan's stabiliser: a variant scales down to the "
        "highest count proposed over this long (300 s, the Kubernetes HPA's default "
        "scale-down stabilisation window).")
    forecast_half_life_s: float | None = Field(
        None, gt=0, description="The loops' forecaster level half-life, s (none: the "
        "forecaster's own).")
    rate_margin_z: float = Field(
        0.0, ge=0, le=5, description="The loops size for the measured rate plus this many "
        "standard deviations of its counting noise.")


class Scenario(_Doc):
    """See the module docstring."""

    name: str = Field(description="Scenario name (used in file names).")
    description: str = Field("", description="What it shows and where its numbers come from.")
    spec: str = Field(description="'example:NAME' or a fleet spec path (relative to this file).")
    service_classes: list[ServiceClass] | None = Field(
        None, description="Replace the spec's service classes.")
    servers: list[Server] | None = Field(None, description="Replace the spec's servers.")
    workloads: list[Workload] = Field(min_length=1, description="One per server.")
    duration_s: float = Field(3600.0, gt=0, description="Simulated time with arrivals, s.")
    period_s: float = Field(30.0, gt=0, description="Control period, s.")
    startup_s: float = Field(120.0, ge=0, description="Pod start-up delay, s.")
    drain_s: float = Field(600.0, ge=0, description="Time after the end to finish requests, s.")
    sim: SimSettings = Field(default_factory=SimSettings, description="Simulated hardware.")
    calibration: CalibrationSettings = Field(
        default_factory=CalibrationSettings, description="How capacity tables are measured.")
    loop: LoopSettings = Field(default_factory=LoopSettings,
                               description="How the loops observe and hold.")
    tuner_start_error: float = Field(
        0.3, ge=0, lt=1, description="fleetplan's profiles start this far off (all three "
        "parameters times 1 - error: optimistic), and the tuner must find the truth.")
    policies: list[str] = Field(default_factory=lambda: list(POLICY_NAMES),
                                description="Policies to run: " + ", ".join(POLICY_NAMES))
    base_dir: str | None = Field(None, description="Folder of the scenario file (set on load).")

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        unknown = [p for p in self.policies if p not in POLICY_NAMES]
        if unknown:
            raise ValueError(f"unknown policy {unknown[0]!r}; known: {', '.join(POLICY_NAMES)}")
        servers = [w.server for w in self.workloads]
        if len(set(servers)) != len(servers):
            raise ValueError("one workload per server")
        return self

    def fleet(self) -> FleetSpec:
        """The spec with the scenario's classes and servers, checked."""
        base = _load_spec(self.spec, Path(self.base_dir or "."))
        update = {}
        if self.service_classes is not None:
            update["service_classes"] = self.service_classes
        if self.servers is not None:
            update["servers"] = self.servers
        try:
            spec = FleetSpec.model_validate({**base.model_dump(), **{
                k: [x.model_dump() for x in v] for k, v in update.items()}})
        except ValueError as exc:
            raise SpecError(f"spec with the scenario's classes and servers: {exc}",
                            file=self.base_dir) from None
        names = {s.name for s in spec.servers}
        for i, w in enumerate(self.workloads):
            if w.server not in names:
                raise SpecError(f"unknown server {w.server!r}; servers: {', '.join(sorted(names))}",
                                json_path=f"$.workloads[{i}].server")
        return spec


def _load_spec(ref: str, base: Path) -> FleetSpec:
    if ref.startswith("example:"):
        path = EXAMPLES_DIR / f"{ref.removeprefix('example:')}.json"
    else:
        path = Path(ref) if Path(ref).is_absolute() else base / ref
    return load_fleet(path).spec


def builtin_scenarios() -> list[str]:
    """Names of the standard scenarios."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.json"))


def load_scenario(ref: str | Path) -> Scenario:
    """A built-in scenario by name, or a scenario file."""
    path = Path(ref)
    if not path.suffix and not path.exists():
        path = SCENARIO_DIR / f"{ref}.json"
        if not path.is_file():
            raise SpecError(f"no scenario {str(ref)!r}",
                            hint="built-in: " + ", ".join(builtin_scenarios()))
    if not path.is_file():
        raise SpecError("no such scenario file", file=path)
    document = read_json(path)
    if not isinstance(document, dict):
        raise SpecError("expected a JSON object", file=path)
    scenario = parse_native({**document, "base_dir": str(path.parent)}, path, Scenario)
    try:
        scenario.fleet()
    except SpecError as exc:
        raise exc.with_file(path) from None
    return scenario


# -- arrivals -----------------------------------------------------------------------------

def make_requests(scenario: Scenario, data_dir: Path) -> list[SimRequest]:
    """Every server's arrivals over the scenario's duration, by time (seeded)."""
    rng = np.random.default_rng(scenario.sim.seed)
    spec = scenario.fleet()
    classes = {s.name: s.service_class for s in spec.servers}
    out: list[SimRequest] = []
    for i, workload in enumerate(scenario.workloads):
        arrivals = [a for a in _arrivals(workload, data_dir, rng, i, scenario.duration_s)
                    if a.time_s < scenario.duration_s]
        out.extend(requests_of(workload.server, arrivals))
    out = [r if r.service_class else SimRequest(r.time_s, r.server, r.prompt_tokens,
                                                r.output_tokens, classes[r.server])
           for r in out]
    out.sort(key=lambda r: (r.time_s, r.server))
    return out


def _arrivals(workload: Workload, data_dir: Path, rng: np.random.Generator,
              index: int, duration_s: float) -> list[Arrival]:
    if workload.trace is not None:
        return _trace_arrivals(workload.trace, data_dir, rng, index)
    assert workload.synthetic is not None
    return _synthetic_arrivals(workload.synthetic, rng, duration_s)


def _trace_arrivals(source: TraceSource, data_dir: Path, rng: np.random.Generator,
                    index: int) -> list[Arrival]:
    path = Path(source.path) if Path(source.path).is_absolute() else data_dir / source.path
    if not path.is_file():
        raise SpecError("no such trace file", file=path, json_path=f"$.workloads[{index}].trace",
                        hint="pass --data-dir (the folder holding azure2023/ and mooncake/)")
    records = read_trace(path, source.format)
    process = TraceArrivals(records, time_scale=source.time_scale,
                            rate_multiplier=source.rate_multiplier, start_s=source.start_s,
                            max_prompt_tokens=source.max_prompt_tokens,
                            max_output_tokens=source.max_output_tokens)
    return list(process.arrivals(rng))


def _synthetic_arrivals(source: SyntheticSource, rng: np.random.Generator,
                        duration: float) -> list[Arrival]:
    """Thinning at the peak rate; sizes lognormal around the means."""
    peak = max(source.base_rps, source.peak_rps) + sum(b.extra_rps for b in source.bursts)
    if peak <= 0:
        return []
    sigma = math.sqrt(math.log1p(source.size_cv ** 2))
    out, t = [], 0.0
    while True:
        t += float(rng.exponential(1.0 / peak))
        if t > duration:
            return out
        if rng.random() * peak < source.rate(t):
            prompt, output = (max(1, round(m * math.exp(sigma * rng.standard_normal()
                                                         - sigma * sigma / 2)))
                              for m in (source.prompt_tokens, source.output_tokens))
            out.append(Arrival(t, prompt, output))

