"""The native fleet document: accelerators, capacity, profiles, classes, servers, options.

Every model is a frozen pydantic v2 model that rejects unknown keys, NaN and infinity,
carries units in its field names and describes each field, so `fleetplan schema` documents
itself. `FleetSpec` also checks cross-references (a profile's accelerator exists, every
server's model has a profile, ...) and raises `SpecError` with the JSON path.

To extend: add a field with a `Field(description=...)`; a new cross-reference check goes
into `references.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SOLVER_NAMES = ("milp", "greedy", "unlimited")
"""Solver names the optimizer registry must provide (a test checks they agree)."""
QUEUE_MODEL_NAMES = ("batch-queue", "batch-queue-v06", "capacity-table")
"""Queue model names the queue_models registry must provide (a test checks they agree)."""
SATURATION_POLICIES = ("None", "PriorityExhaustive", "PriorityRoundRobin", "RoundRobin")
MILP_BACKENDS = ("highs", "cbc")

SolverName = Literal["milp", "greedy", "unlimited"]
QueueModelName = Literal["batch-queue", "batch-queue-v06", "capacity-table"]
SaturationPolicy = Literal["None", "PriorityExhaustive", "PriorityRoundRobin", "RoundRobin"]
MilpBackend = Literal["highs", "cbc"]

_STATISTIC = re.compile(r"^(mean|p(\d{1,2}(\.\d+)?))$")

Name = Annotated[str, Field(min_length=1, max_length=253)]
NonNegFloat = Annotated[float, Field(ge=0)]


class Document(BaseModel):
    """Base of every native document: frozen, strict about keys and numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Accelerator(Document):
    """An allocatable unit, e.g. `A100` or `4xA100`."""

    name: Name = Field(description="Unit name used by profiles and allocations, e.g. '4xA100'.")
    card_type: Name = Field(description="Card type counted against capacity, e.g. 'A100'.")
    multiplicity: int = Field(1, ge=1, description="Cards of `card_type` in one unit.")
    cost_per_hour: NonNegFloat = Field(description="Cost of one unit per hour (any currency).")
    memory_gb: NonNegFloat | None = Field(None, description="Memory of one unit in GB (informative).")


class Profile(Document):
    """Performance parameters of one model on one accelerator (iteration-time model, ms)."""

    model: Name = Field(description="Model name, e.g. 'llama_3_1_8b'.")
    accelerator: Name = Field(description="Name of an accelerator in `accelerators`.")
    alpha_ms: NonNegFloat = Field(description="Fixed time per batch iteration, ms.")
    beta_ms: NonNegFloat = Field(description="Time per token processed in an iteration, ms.")
    gamma_ms: NonNegFloat = Field(
        description="Time per token per token of context (attention), ms."
    )
    units_per_replica: int = Field(1, ge=1, description="Accelerator units one replica uses.")
    max_batch: int = Field(ge=1, description="Ceiling on the max batch size (concurrent requests).")
    token_budget: int = Field(
        8192, ge=1, description="Max tokens per iteration (chunked prefill budget)."
    )
    at_tokens: int | None = Field(
        None,
        ge=1,
        description="Output length at which `max_batch` was measured; the batch-queue-v06 model "
        "scales max batch by at_tokens / out_tokens. Unused by batch-queue.",
    )


class ModelTarget(Document):
    """Latency targets of a service class for one model; 0 means no target."""

    model: Name = Field(description="Model the targets apply to.")
    ttft_ms: NonNegFloat = Field(0.0, description="Time-to-first-token target, ms (0: none).")
    itl_ms: NonNegFloat = Field(0.0, description="Inter-token latency target, ms (0: none).")
    tokens_per_s: NonNegFloat = Field(
        0.0, description="Throughput target in output tokens per second (0: none)."
    )
    ttft_statistic: str = Field(
        "mean", description="What `ttft_ms` bounds: 'mean' or a percentile such as 'p95'."
    )
    itl_statistic: str = Field(
        "mean", description="What `itl_ms` bounds: 'mean' or a percentile such as 'p95'."
    )

    @field_validator("ttft_statistic", "itl_statistic")
    @classmethod
    def _statistic(cls, value: str) -> str:
        match = _STATISTIC.match(value)
        if not match or (match.group(2) and not 0 < float(match.group(2)) < 100):
            raise ValueError("expected 'mean' or a percentile 'pNN' with 0 < NN < 100, e.g. 'p95'")
        return value

    @staticmethod
    def percentile(statistic: str) -> float | None:
        """None for 'mean', else the percentile (e.g. 95.0 for 'p95')."""
        return None if statistic == "mean" else float(statistic[1:])


class ServiceClass(Document):
    """A priority and per-model targets."""

    name: Name = Field(description="Class name, e.g. 'premium'.")
    priority: int = Field(ge=1, le=100, description="1 is the most important; larger is less.")
    targets: list[ModelTarget] = Field(
        default_factory=list, description="Per-model latency targets."
    )

    def target_for(self, model: str) -> ModelTarget | None:
        """The targets for `model`, if the class names it."""
        return next((t for t in self.targets if t.model == model), None)


class Load(Document):
    """Offered load of a server."""

    arrival_rate_rps: NonNegFloat = Field(description="Request arrival rate, requests/second.")
    in_tokens: NonNegFloat = Field(description="Mean input (prompt) tokens per request.")
    out_tokens: NonNegFloat = Field(description="Mean output (generated) tokens per request.")

    @model_validator(mode="after")
    def _tokens_when_loaded(self) -> Load:
        if self.arrival_rate_rps > 0 and self.out_tokens < 1:
            raise ValueError("out_tokens must be >= 1 when arrival_rate_rps > 0")
        return self


class CurrentAllocation(Document):
    """What a server runs now (used for the transition penalty and stabilisation)."""

    accelerator: Name = Field(description="Accelerator the server's replicas run on.")
    replicas: int = Field(ge=0, description="Running replicas.")
    max_batch: int | None = Field(None, ge=1, description="Max batch size configured now.")


class Server(Document):
    """One workload: a model served for one service class."""

    name: Name = Field(description="Server name, unique in the fleet.")
    model: Name = Field(description="Model served; must have at least one profile.")
    service_class: Name = Field(description="Name of a service class.")
    load: Load = Field(description="Current (or forecast) load.")
    current: CurrentAllocation | None = Field(None, description="Current allocation, if any.")
    min_replicas: int = Field(0, ge=0, description="Never fewer replicas (0 allows scale to zero).")
    max_replicas: int | None = Field(None, ge=1, description="Never more replicas (none: no cap).")
    keep_accelerator: bool = Field(
        False, description="Only the current accelerator may be chosen."
    )
    max_batch: int | None = Field(
        None, ge=1, description="Fixed max batch size (overrides the search)."
    )
    max_queue: int | None = Field(
        None, ge=0, description="Waiting-queue bound per replica (default: the queue model's)."
    )
    time_scale: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="Online correction by accelerator: this server's "
        "replicas there run this many times slower than the profile or measured law says "
        "(the loop's measured over predicted latency; absent: 1). Read by capacity-table.",
    )

    @model_validator(mode="after")
    def _replica_bounds(self) -> Server:
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        return self


class OptimizerOptions(Document):
    """How the optimizer solves."""

    solver: SolverName = Field("milp", description="Solver: " + ", ".join(SOLVER_NAMES) + ".")
    queue_model: QueueModelName = Field(
        "batch-queue", description="Queue model: " + ", ".join(QUEUE_MODEL_NAMES) + "."
    )
    heterogeneous: bool = Field(
        False, description="Allow a server to be split across accelerator types (milp)."
    )
    saturation_policy: SaturationPolicy = Field(
        "None", description="Best effort for unserved servers (greedy): "
        + ", ".join(SATURATION_POLICIES) + ".",
    )
    delayed_best_effort: bool = Field(
        False, description="Greedy: best effort only after every priority group is allocated."
    )
    transition_factor: NonNegFloat = Field(
        0.1, description="Accelerator-change penalty as a fraction of old plus new cost."
    )
    variant_cost_fraction: NonNegFloat = Field(
        0.25,
        description="Heterogeneous milp: each variant a server is split into beyond its "
        "first is charged this fraction of the hourly cost of one replica of the server's "
        "cheapest single-accelerator candidate, so a server is split only when the split "
        "saves more than that (0: splits cost nothing extra). Charges count in the "
        "objective, not in the plan's cost.",
    )
    milp_backend: MilpBackend = Field("highs", description="MILP backend: highs or cbc.")
    time_limit_s: float = Field(10.0, gt=0, description="MILP time limit, seconds.")
    mip_gap: float = Field(1e-4, ge=0, lt=1, description="MILP relative gap to stop at.")


class FleetSpec(Document):
    """The whole fleet: what there is, what runs, and how to optimise it."""

    description: str = Field("", description="Free text: what this fleet is, where figures come from.")
    accelerators: list[Accelerator] = Field(min_length=1, description="Allocatable units.")
    capacity: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict,
        description="Cards available per card type; a type not listed has none.",
    )
    profiles: list[Profile] = Field(default_factory=list, description="Model-on-accelerator profiles.")
    service_classes: list[ServiceClass] = Field(default_factory=list, description="Service classes.")
    servers: list[Server] = Field(default_factory=list, description="Workloads to place.")
    optimizer: OptimizerOptions = Field(
        default_factory=OptimizerOptions, description="Optimizer options."
    )

    @model_validator(mode="after")
    def _references(self) -> FleetSpec:
        from specs.references import check_references

        check_references(self)
        return self

    def accelerator(self, name: str) -> Accelerator:
        """The accelerator called `name` (KeyError when absent)."""
        return self._index("accelerators")[name]

    def service_class(self, name: str) -> ServiceClass:
        """The service class called `name` (KeyError when absent)."""
        return self._index("service_classes")[name]

    def profiles_for(self, model: str) -> list[Profile]:
        """Profiles of `model`, in document order."""
        return [p for p in self.profiles if p.model == model]

    def profile(self, model: str, accelerator: str) -> Profile | None:
        """The profile of `model` on `accelerator`, if any."""
        return next(
            (p for p in self.profiles if p.model == model and p.accelerator == accelerator), None
        )

    def targets_for(self, server: Server) -> ModelTarget:
        """The class targets for a server's model (no targets when the class names none)."""
        found = self.service_class(server.service_class).target_for(server.model)
        return found if found is not None else ModelTarget(model=server.model)

    def _index(self, field: str) -> dict[str, Accelerator | ServiceClass]:
        return {item.name: item for item in getattr(self, field)}
