"""What the collector sees in one tick: a typed snapshot of every variant and server.

Every figure is a `Figure`: a value and a status saying how far to trust it. "Unknown" is
never 0: a figure with no data is `missing` (value None), a ratio with nothing to divide
(no request finished in the window) is `nan` (value None), data older than the staleness
limit is `stale` (value kept), a figure computed from only some of a variant's replicas
is `partial` (value kept), and a source that could not be reached gives `unavailable`
(value None). `age_s` says how old the newest sample behind the figure is.

A `VariantSnapshot` is one Deployment (or local worker group): its model, accelerator and
server, and per-variant figures; `ServerSnapshot` aggregates the variants of a server;
`FleetSnapshot` is the whole tick, with the source's own status (`ok`, `partial`,
`unavailable`). Snapshots are frozen pydantic models, written and read as JSON lines
(`collector.recorded`).

Units: rates in requests per second, latencies in ms, token counts per request, running
and waiting as means per replica, KV-cache usage as a fraction.

To extend: a new figure is one more `Figure` field with a default of
`Figure.missing()`, listed in `VARIANT_FIGURES`, and filled by each source.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class FigureStatus(StrEnum):
    """How far a figure can be trusted."""

    OK = "ok"
    PARTIAL = "partial"
    STALE = "stale"
    MISSING = "missing"
    NAN = "nan"
    UNAVAILABLE = "unavailable"


KNOWN = (FigureStatus.OK, FigureStatus.PARTIAL, FigureStatus.STALE)
"""Statuses that carry a value."""


class _Snap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Figure(_Snap):
    """One measured figure with its status and age."""

    value: float | None = Field(None, description="The figure; None unless the status is "
                                "ok, partial or stale.")
    status: FigureStatus = Field(FigureStatus.MISSING, description="How far to trust it.")
    age_s: float | None = Field(None, description="Age of the newest sample behind it, s.")

    @classmethod
    def ok(cls, value: float, age_s: float | None = None) -> Figure:
        """A fresh, complete figure."""
        return cls(value=value, status=FigureStatus.OK, age_s=age_s)

    @classmethod
    def missing(cls) -> Figure:
        """No data."""
        return cls()

    @classmethod
    def nan(cls, age_s: float | None = None) -> Figure:
        """Undefined (e.g. a mean over no requests)."""
        return cls(status=FigureStatus.NAN, age_s=age_s)

    @classmethod
    def unavailable(cls) -> Figure:
        """The source could not be reached."""
        return cls(status=FigureStatus.UNAVAILABLE)

    @property
    def known(self) -> bool:
        """True when there is a value (ok, partial or stale)."""
        return self.value is not None and self.status in KNOWN

    @property
    def usable(self) -> bool:
        """True when the value is fresh and complete (status ok)."""
        return self.value is not None and self.status == FigureStatus.OK

    def with_status(self, status: FigureStatus) -> Figure:
        """The same value with a (worse) status; no value for statuses that carry none."""
        if status not in KNOWN:
            return Figure(status=status, age_s=self.age_s)
        if self.status not in KNOWN:
            return self
        return self.model_copy(update={"status": status})


VARIANT_FIGURES = (
    "arrival_rate_rps", "completion_rate_rps", "in_tokens", "out_tokens", "ttft_mean_ms",
    "ttft_p95_ms", "itl_mean_ms", "running", "waiting", "kv_cache_usage", "replicas",
    "max_batch",
)
"""The figures every variant snapshot carries."""


class VariantSnapshot(_Snap):
    """One variant (Deployment or local worker group) over the collection window."""

    name: str = Field(description="Variant name (from the collector configuration).")
    server: str | None = Field(None, description="Server the variant serves, if known.")
    model: str = Field(description="Model served.")
    accelerator: str = Field(description="Accelerator the replicas run on.")
    window_s: float = Field(gt=0, description="Collection window, s.")
    arrival_rate_rps: Figure = Field(default_factory=Figure, description="Arrivals, req/s "
                                     "(all replicas): completions plus queue growth.")
    completion_rate_rps: Figure = Field(default_factory=Figure,
                                        description="Completed requests, req/s (all replicas).")
    in_tokens: Figure = Field(default_factory=Figure, description="Mean input tokens/request.")
    out_tokens: Figure = Field(default_factory=Figure, description="Mean output tokens/request.")
    ttft_mean_ms: Figure = Field(default_factory=Figure, description="Mean TTFT, ms.")
    ttft_p95_ms: Figure = Field(default_factory=Figure, description="p95 TTFT (buckets), ms.")
    itl_mean_ms: Figure = Field(default_factory=Figure, description="Mean ITL, ms.")
    running: Figure = Field(default_factory=Figure, description="Mean running requests per "
                            "replica.")
    waiting: Figure = Field(default_factory=Figure, description="Mean waiting requests per "
                            "replica.")
    kv_cache_usage: Figure = Field(default_factory=Figure, description="Mean KV-cache usage.")
    replicas: Figure = Field(default_factory=Figure, description="Replicas reporting.")
    max_batch: Figure = Field(default_factory=Figure, description="Max batch (if exported).")
    error: str | None = Field(None, description="What went wrong collecting it, if anything.")

    def figures(self) -> dict[str, Figure]:
        """Every figure by name."""
        return {name: getattr(self, name) for name in VARIANT_FIGURES}


class ServerSnapshot(_Snap):
    """A server's variants together (see `collector.aggregate`)."""

    name: str = Field(description="Server name.")
    variants: tuple[str, ...] = Field(description="Its variants, by name.")
    arrival_rate_rps: Figure = Field(default_factory=Figure, description="Sum of arrivals.")
    completion_rate_rps: Figure = Field(default_factory=Figure, description="Sum of completions.")
    in_tokens: Figure = Field(default_factory=Figure, description="Completion-weighted mean.")
    out_tokens: Figure = Field(default_factory=Figure, description="Completion-weighted mean.")
    ttft_mean_ms: Figure = Field(default_factory=Figure, description="Completion-weighted mean.")
    ttft_p95_ms: Figure = Field(default_factory=Figure, description="Worst variant's p95.")
    itl_mean_ms: Figure = Field(default_factory=Figure, description="Token-weighted mean.")
    replicas: Figure = Field(default_factory=Figure, description="Sum of replicas.")


class SourceStatus(StrEnum):
    """Whether the source answered."""

    OK = "ok"
    PARTIAL = "partial"
    UNAVAILABLE = "unavailable"


class FleetSnapshot(_Snap):
    """One tick of the collector."""

    time_s: float = Field(description="When the snapshot was taken (the clock's seconds).")
    source: str = Field(description="Which source produced it (prometheus, scrape, replay).")
    status: SourceStatus = Field(description="ok, partial (some variants or replicas failed) or "
                                 "unavailable (nothing could be read: hold the fleet).")
    error: str | None = Field(None, description="What went wrong, if anything.")
    variants: tuple[VariantSnapshot, ...] = Field((), description="Per variant.")
    servers: tuple[ServerSnapshot, ...] = Field((), description="Per server.")

    def variant(self, name: str) -> VariantSnapshot | None:
        """The variant called `name`, if present."""
        return next((v for v in self.variants if v.name == name), None)

    def server(self, name: str) -> ServerSnapshot | None:
        """The server called `name`, if present."""
        return next((s for s in self.servers if s.name == name), None)
