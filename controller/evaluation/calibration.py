"""How an evaluation's policies size replicas: the optimizer with what a profiler would have
measured beforehand.

`Sizer` holds one `CandidateGenerator` per queue model, built with the scenario's
measured iteration-cost laws (its timing tables, by model and accelerator) and a
workload sample per server (`WorkloadSample.from_arrivals` over the run's own arrivals:
their sizes and burstiness, normalised to rate 1, never their rates). The spec's
`optimizer.queue_model` picks the model; with `capacity-table` the tables are measured
once and kept in the `CapacityCache` (a folder when given), shared by every policy of
the run, so static peak, the loops and the clairvoyant bound all size from the same
measurements. `solve(spec, solver, heterogeneous)` is the optimizer with reproducible
output (no timings).

Every policy gets the same information; what differs is what each does with it (the
static peak sizes once for the peak, the loops measure and forecast, the clairvoyant
bound knows the future rate).

To extend: another thing a profiler measures is one more argument of the generator,
filled here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from controller.evaluation.scenario import Scenario
from controller.evaluation.sizing import RequestIndex
from optimizer.api import optimize
from optimizer.candidates import CandidateGenerator
from queue_models.base import QueueModel
from queue_models.capacity_cache import CapacityCache
from queue_models.capacity_model import CapacityTableModel
from queue_models.capacity_sizing import CalibrationOptions
from queue_models.iteration_cost import IterationCost
from queue_models.registry import get_queue_model
from queue_models.workload_sample import WorkloadSample
from specs.documents import FleetSpec, Profile
from specs.plan import Plan

Profiled = tuple[Profile, ...]


@dataclass
class Sizer:
    """Candidate generators with the scenario's laws and workload samples."""

    laws: Mapping[tuple[str, str], IterationCost]
    workloads: Mapping[str, WorkloadSample]
    options: CalibrationOptions = field(default_factory=CalibrationOptions)
    cache: CapacityCache = field(default_factory=CapacityCache)
    _models: dict[str, QueueModel] = field(default_factory=dict)
    _generators: dict[tuple[str, Profiled], CandidateGenerator] = field(default_factory=dict)

    def generator(self, queue_model: str, profiled: Profiled) -> CandidateGenerator:
        """The (kept warm) generator of a queue model for a fleet profiled as `profiled`
        (its configured profiles: the reference tuned profiles are scaled against)."""
        key = (queue_model, profiled)
        found = self._generators.get(key)
        if found is None:
            found = self._generators[key] = CandidateGenerator(
                self.model(queue_model), laws=self.laws, workloads=self.workloads,
                profiled={(p.model, p.accelerator): p for p in profiled})
        return found

    def model(self, name: str) -> QueueModel:
        """One model per name, shared by every generator (so are its tables)."""
        if name not in self._models:
            self._models[name] = (CapacityTableModel(self.options, self.cache)
                                  if name == CapacityTableModel.name else get_queue_model(name))
        return self._models[name]

    def generators(self, spec: FleetSpec) -> dict[str, CandidateGenerator]:
        """Generators by queue model name for a fleet configured as `spec`, made on use."""
        return _LazyGenerators(self, tuple(spec.profiles))

    def solve(self, spec: FleetSpec, solver: str, heterogeneous: bool | None = None) -> Plan:
        """Optimise with `solver` (no timings in the plan: reproducible); the spec's
        profiles are the reference."""
        if heterogeneous is not None:
            options = spec.optimizer.model_copy(update={"heterogeneous": heterogeneous})
            spec = spec.model_copy(update={"optimizer": options})
        generator = self.generator(spec.optimizer.queue_model, tuple(spec.profiles))
        return optimize(spec, solver=solver, timer=None, generator=generator)


class _LazyGenerators(dict[str, CandidateGenerator]):
    """A mapping that asks the sizer for a generator it does not hold yet."""

    def __init__(self, sizer: Sizer, profiled: Profiled) -> None:
        super().__init__()
        self.sizer = sizer
        self.profiled = profiled

    def __missing__(self, key: str) -> CandidateGenerator:
        self[key] = self.sizer.generator(key, self.profiled)
        return self[key]


def workload_samples(scenario: Scenario, index: RequestIndex,
                     options: CalibrationOptions) -> dict[str, WorkloadSample]:
    """Per server with at least two arrivals: a sample of its requests, normalised over
    the scenario's rate window."""
    out = {}
    for server, requests in sorted(index.by_server.items()):
        if len(requests) < 2:
            continue
        out[server] = WorkloadSample.from_arrivals(
            f"{scenario.name}/{server}", [r.time_s for r in requests],
            [r.prompt_tokens for r in requests], [r.output_tokens for r in requests],
            max_requests=options.requests,
            local_window_s=rate_window(scenario))
    return out


def rate_window(scenario: Scenario) -> float:
    """The window workload samples are normalised over (see `CalibrationSettings`)."""
    window = scenario.calibration.rate_window_s
    return window if window is not None else scenario.period_s + scenario.startup_s


def collector_window(scenario: Scenario) -> float:
    """The simulated collector's window (see `LoopSettings`)."""
    window = scenario.loop.window_s
    return window if window is not None else rate_window(scenario)


def calibration_options(scenario: Scenario) -> CalibrationOptions:
    """The scenario's calibration settings (noise defaults to the simulated hardware's)."""
    c = scenario.calibration
    noise = scenario.sim.noise_cv if c.noise_cv is None else c.noise_cv
    return CalibrationOptions(requests=c.requests, headroom=c.headroom, noise_cv=noise,
                              token_budgets=tuple(c.token_budgets),
                              seed=scenario.sim.seed + 1000)


def make_sizer(scenario: Scenario, index: RequestIndex,
               laws: Mapping[tuple[str, str], IterationCost],
               cache_dir: Path | None = None) -> Sizer:
    """The sizer of one evaluation run (tables cached in `cache_dir` when given)."""
    options = calibration_options(scenario)
    return Sizer(laws, workload_samples(scenario, index, options), options,
                 CapacityCache(cache_dir))
