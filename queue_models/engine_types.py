"""Value types of the batching engine (`queue_models.engine`): config, request state,
iterations, token events, statistics and errors.

Pure data: no policy lives here. `BatchEngine` creates and mutates `RequestState` and
`EngineStats`; everything else is immutable once built. Times are the driver's `now` values in seconds,
profile parameters in ms, sizes in tokens.

To extend: add a field with a default (drivers and the simulator construct these
types), and document its unit in the name or the docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

from queue_models.iteration_cost import IterationCost, LinearCost
from specs.documents import Profile

LOWEST_PRIORITY = 100
"""Priority of requests without (or with an unknown) service class: the lowest a class can have."""


class EngineError(ValueError):
    """A request the engine cannot take (the driver turns it into an error response)."""


class QueueFullError(EngineError):
    """The waiting queue is at its bound (the worker answers 429)."""


class RequestTooLargeError(EngineError):
    """A request needs more KV cache than the replica has (the worker answers 400)."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Profile and limits of one replica (times in ms, sizes in tokens)."""

    alpha_ms: float
    beta_ms: float
    gamma_ms: float
    max_batch: int
    token_budget: int = 8192
    max_queue: int | None = None
    """Requests allowed to wait beyond the free batch slots (None: unbounded)."""
    kv_capacity_tokens: int | None = None
    """KV cache size in tokens (None: unlimited, usage reported as 0)."""
    law: IterationCost | None = None
    """Iteration-cost law (None: the profile's, `LinearCost` of alpha, beta and gamma)."""

    def __post_init__(self) -> None:
        if min(self.alpha_ms, self.beta_ms, self.gamma_ms) < 0:
            raise ValueError("alpha, beta and gamma must be >= 0")
        if self.max_batch < 1 or self.token_budget < 1:
            raise ValueError("max_batch and token_budget must be >= 1")
        if self.max_queue is not None and self.max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        if self.kv_capacity_tokens is not None and self.kv_capacity_tokens < 1:
            raise ValueError("kv_capacity_tokens must be >= 1")

    @property
    def cost(self) -> IterationCost:
        """The law iterations are timed with: `law`, else the profile's."""
        if self.law is not None:
            return self.law
        return LinearCost(self.alpha_ms, self.beta_ms, self.gamma_ms)

    @classmethod
    def from_profile(
        cls,
        profile: Profile,
        *,
        max_batch: int | None = None,
        max_queue: int | None = None,
        kv_capacity_tokens: int | None = None,
        token_budget: int | None = None,
        law: IterationCost | None = None,
    ) -> EngineConfig:
        """The engine of `profile` (max batch and token budget default to the profile's;
        `law`, when given, times iterations instead of the profile's alpha, beta, gamma)."""
        return cls(
            alpha_ms=profile.alpha_ms,
            beta_ms=profile.beta_ms,
            gamma_ms=profile.gamma_ms,
            max_batch=max_batch or profile.max_batch,
            token_budget=token_budget or profile.token_budget,
            max_queue=max_queue,
            kv_capacity_tokens=kv_capacity_tokens,
            law=law,
        )


class RequestState:
    """One request as the engine tracks it; times are the driver's `now` values (s)."""

    __slots__ = (
        "request_id",
        "prompt_tokens",
        "output_tokens",
        "priority",
        "arrival_s",
        "prefilled",
        "generated",
        "scheduled_s",
        "first_token_s",
        "last_token_s",
        "finished_s",
        "cancelled",
    )

    def __init__(
        self,
        request_id: str,
        prompt_tokens: int,
        output_tokens: int,
        priority: int,
        arrival_s: float,
    ) -> None:
        self.request_id = request_id
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.priority = priority
        self.arrival_s = arrival_s
        self.prefilled = 0
        self.generated = 0
        self.scheduled_s: float | None = None
        self.first_token_s: float | None = None
        self.last_token_s: float | None = None
        self.finished_s: float | None = None
        self.cancelled = False

    @property
    def in_prefill(self) -> bool:
        """True while prompt tokens remain to be processed."""
        return self.prefilled < self.prompt_tokens

    @property
    def finished(self) -> bool:
        """True once every output token has been generated."""
        return self.generated >= self.output_tokens

    @property
    def kv_tokens(self) -> int:
        """Tokens held in the KV cache now."""
        return self.prefilled + self.generated

    @property
    def queue_time_s(self) -> float | None:
        """Time from arrival to the first iteration that included the request."""
        return None if self.scheduled_s is None else max(self.scheduled_s - self.arrival_s, 0.0)

    def __repr__(self) -> str:
        return (
            f"RequestState({self.request_id!r}, prompt={self.prompt_tokens}, "
            f"out={self.output_tokens}, prefilled={self.prefilled}, "
            f"generated={self.generated})"
        )


@dataclass(frozen=True, slots=True)
class Slot:
    """A request's part in one iteration: a prefill chunk, or one decode step."""

    request: RequestState
    prefill_tokens: int
    """Prompt tokens processed in this iteration; 0 for a decode step."""
    context_tokens: int
    """The context the slot's attention term is charged for (gamma multiplies it)."""

    @property
    def is_decode(self) -> bool:
        """True when this slot generates a token."""
        return self.prefill_tokens == 0

    @property
    def tokens(self) -> int:
        """Tokens processed by this slot (beta multiplies it)."""
        return self.prefill_tokens or 1


@dataclass(frozen=True, slots=True)
class Iteration:
    """One engine step: its slots and its duration from the profile."""

    start_s: float
    duration_s: float
    slots: tuple[Slot, ...]
    tokens: int
    """Tokens processed (prefill + decode): the beta term."""
    attention_tokens: int
    """Sum of the slots' context tokens: the gamma term."""

    @property
    def end_s(self) -> float:
        """When the iteration ends."""
        return self.start_s + self.duration_s

    @property
    def batch_size(self) -> int:
        """Requests taking part."""
        return len(self.slots)

    @property
    def decode_slots(self) -> int:
        """Requests generating a token in this iteration."""
        return sum(1 for s in self.slots if s.prefill_tokens == 0)


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """A token generated for `request` at `time_s`; index 0 is the first token."""

    request: RequestState
    index: int
    finished: bool
    time_s: float
    previous_s: float | None
    """When the request's previous token came (None for the first token)."""

    @property
    def first(self) -> bool:
        """True for the request's first token."""
        return self.index == 0


@dataclass(frozen=True, slots=True)
class Occupancy:
    """Time integrals of the engine's gauges from its start to `time_s`: request-seconds
    running and waiting, token-seconds in the KV cache. The mean of a gauge over (t0, t1]
    is the difference of two readings over t1 - t0 (Prometheus' avg_over_time, exact)."""

    time_s: float
    running_s: float = 0.0
    waiting_s: float = 0.0
    kv_tokens_s: float = 0.0


@dataclass(slots=True)
class EngineStats:
    """Cumulative counters, including what a fidelity check needs to predict ITL.

    Every token after a request's first is one ITL sample, taking its iteration's
    duration. Sums over those samples of the iteration's `tokens` (itl_tokens_sum) and
    `attention_tokens` (itl_context_sum) let anyone recompute the profile's mean ITL:
    alpha + (beta * itl_tokens_sum + gamma * itl_context_sum) / itl_tokens (ms);
    itl_batch_sum / itl_tokens is the batch size those tokens saw.
    """

    iterations: int = 0
    busy_s: float = 0.0
    prefill_tokens: int = 0
    decode_tokens: int = 0
    batch_sum: int = 0
    submitted: int = 0
    rejected: int = 0
    cancelled: int = 0
    finished: int = 0
    itl_tokens: int = 0
    itl_duration_s: float = 0.0
    itl_batch_sum: int = 0
    itl_tokens_sum: int = 0
    itl_context_sum: int = 0
