"""The controller's configuration document (`fleetplan run --config FILE`).

Two parts: `LoopOptions` (how each tick decides: period, pod start-up horizon, mode,
staleness, forecaster, stabiliser and its options, tuning, solver) is what
`controller.loop.ControlLoop` takes; `ControllerConfig` adds what the daemon wires: the
spec, the actuator kind, the collector kind and its settings, the state and decision-log
paths, the HTTP address. Both reject unknown keys; relative paths are relative to the
config file. `load_config(path)` raises `SpecError` (exit code 2) with the JSON path on
any problem, including unknown forecaster and stabiliser names.

Example (JSON):

    {"spec": "fleet.json", "period_s": 60, "mode": "dry-run",
     "actuator": {"kind": "kubernetes", "namespace": "llm"},
     "collector": {"kind": "prometheus", "url": "http://prometheus:9090"},
     "stabilizer_options": {"scale_down_delay_s": 300}}

To extend: add a field with a default and a description; a new actuator or collector kind
is one more literal here and one more branch in `controller.wiring`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from actuator.base import ActuationMode
from collector.config import PRESETS
from controller.correction import CorrectionOptions
from controller.forecast import FORECASTERS
from controller.stabilize import STABILIZERS, StabilizerOptions
from specs.errors import SpecError
from specs.jsonnode import read_json
from specs.loading import parse_native


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoopOptions(_Doc):
    """How a tick decides."""

    period_s: float = Field(60.0, gt=0, description="Time between ticks, s.")
    startup_s: float = Field(120.0, ge=0, description="Pod start-up time: the forecast "
                             "horizon, s.")
    mode: ActuationMode = Field("apply", description="apply: change the fleet; dry-run: "
                                "decide and record only; metrics: export desired replicas.")
    stale_after_s: float = Field(180.0, gt=0, description="Metrics older than this are "
                                 "treated as missing, s.")
    forecaster: str = Field("holt", description="Forecaster: " + ", ".join(FORECASTERS.names()))
    forecast_half_life_s: float | None = Field(
        None, gt=0, description="Level half-life of the forecaster (holt: the trend's is "
        "twice it), s; none: the forecaster's own (holt: 60 s). Shorter follows a fall "
        "sooner and a noisy rate more.")
    rate_margin_z: float = Field(
        0.0, ge=0, le=5, description="Size for the measured rate plus this many standard "
        "deviations of its counting noise, sqrt(rate / window) (0: the rate itself). For "
        "short collector windows, where a window holds few requests.")
    stabilizer: str = Field("hysteresis", description="Stabiliser: " +
                            ", ".join(STABILIZERS.names()))
    stabilizer_options: StabilizerOptions = Field(default_factory=StabilizerOptions,
                                                  description="Stabiliser options.")
    tune: bool = Field(True, description="Learn profiles online and optimise with them.")
    correct: bool = Field(True, description="Correct the measured model's sizing per variant "
                          "from measured against predicted latency (controller.correction).")
    correction: CorrectionOptions = Field(default_factory=CorrectionOptions,
                                          description="How the correction moves.")
    solver: str | None = Field(None, description="Solver (default: the spec's).")

    @model_validator(mode="after")
    def _names(self) -> LoopOptions:
        for registry, name in ((FORECASTERS, self.forecaster), (STABILIZERS, self.stabilizer)):
            if name not in registry:
                raise ValueError(f"unknown {registry.kind} {name!r}; known: "
                                 f"{', '.join(registry.names())}")
        return self


class ActuatorConfig(_Doc):
    """Which actuator changes the fleet."""

    kind: Literal["kubernetes", "local"] = Field("local", description="kubernetes or local.")
    namespace: str = Field("default", description="Kubernetes namespace of the variants.")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="Further options passed to the actuator.")


class CollectorSettings(_Doc):
    """Which source measures the fleet."""

    kind: Literal["prometheus", "scrape", "recorded"] = Field(
        "scrape", description="prometheus, scrape (workers' /metrics) or recorded (a file).")
    url: str | None = Field(None, description="Prometheus base URL (kind prometheus).")
    path: str | None = Field(None, description="Recorded snapshots, JSON lines (kind recorded).")
    window_s: float = Field(60.0, gt=0, description="Collection window, s.")
    engine: str = Field("vllm", description="Metric names of the engine (kinds prometheus and "
                        "scrape): vllm (also the emulated worker) or sglang.")
    variant_label: str = Field(
        "variant", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description="Prometheus label holding a series' variant name (kind prometheus); "
        "deploy/prometheus/prometheus.yaml copies the Pods' fleetplan.io/variant label to it.")
    match_labels: dict[str, str] = Field(
        default_factory=dict, description="Further exact label matchers for every variant "
        "(kind prometheus); with the kubernetes actuator, `namespace` defaults to the "
        "actuator's namespace.")

    @field_validator("engine")
    @classmethod
    def _engine(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(f"unknown engine {value!r}; known: {', '.join(sorted(PRESETS))}")
        return value


class ControllerConfig(LoopOptions):
    """The daemon's configuration (see the module docstring)."""

    spec: str = Field(description="Fleet spec path (native, inferno envelope or directory).")
    actuator: ActuatorConfig = Field(default_factory=ActuatorConfig, description="Actuator.")
    collector: CollectorSettings = Field(default_factory=CollectorSettings,
                                         description="Metrics source.")
    state_path: str = Field("fleetplan-state.json", description="Persisted loop state.")
    decision_log: str = Field("fleetplan-decisions.jsonl", description="One JSON line a tick.")
    host: str = Field("127.0.0.1", description="HTTP address to bind.")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port (0: any free port).")
    base_dir: str | None = Field(
        None, description="Folder that relative paths (e.g. actuator templates) are read from; "
        "set to the config file's folder when loaded from a file.")

    def loop_options(self) -> LoopOptions:
        """The part the loop takes."""
        return LoopOptions.model_validate(
            {k: getattr(self, k) for k in LoopOptions.model_fields})

    def resolve(self, base: Path) -> ControllerConfig:
        """Paths made relative to `base` (the config file's folder)."""
        def fix(p: str | None) -> str | None:
            return None if p is None else str(base / p)
        collector = self.collector.model_copy(update={"path": fix(self.collector.path)})
        return self.model_copy(update={
            "spec": fix(self.spec), "state_path": fix(self.state_path),
            "decision_log": fix(self.decision_log), "collector": collector,
            "base_dir": str(base)})


def load_config(path: str | Path) -> ControllerConfig:
    """Read and validate a config file (`SpecError` on any problem)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("no such config file", file=path)
    config = parse_native(read_json(path), path, ControllerConfig)
    return config.resolve(path.parent)
