"""What every router policy sees and returns, and the registry policies are registered in.

A policy is a small pure unit: `choose(request, candidates, now)` returns one of the
candidate `Backend`s. It does no I/O and reads no clock (`now` is passed in); its only
state is what it needs between decisions (a round-robin cursor, a hash ring, weighted
round-robin credits), and randomness comes from the `random.Random` it was built with, so a
seeded policy decides the same way every time. The mechanism around it (`serving.router`)
guarantees `candidates` is never empty, keeps `Backend`'s live accounting up to date and
retries on another candidate when a forward fails.

`Backend` carries the replica's identity (from discovery) and the router's own accounting
of the requests it has in flight there (outstanding requests, their prompt tokens still to
prefill, their estimated decode tokens still to generate, their context (prompt plus
tokens generated so far, what attention reads every iteration), an EWMA of time to first
byte),
so policies work the same in front of emulated workers and real vLLM pods. Its max batch
comes from the backends document (the controller fills it in from the plan) when known.

To extend: write one module with a class taking `(options, rng)` and a `choose` method,
register it with `POLICIES.register("name", Class)` and import the module in
`serving/routing/__init__.py`. Options it needs become `PolicyOptions` fields.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from specs.registry import Registry


@dataclass(slots=True, eq=False)
class Backend:
    """One replica of one model, as the router sees it (policies only read it)."""

    url: str
    model: str
    variant: str
    weight: float | None = None
    service_class: str | None = None
    max_batch: int | None = None
    """Requests the replica runs at once (None: unknown)."""
    # live accounting, kept by the router
    outstanding: int = 0
    prefill_tokens: int = 0
    decode_tokens: int = 0
    context_tokens: int = 0
    ewma_ttfb_s: float = 0.0
    ewma_departure_gap_s: float = 0.0
    """Mean time between completions while the replica's batch is full (0: not measured);
    its inverse is the replica's service rate (`serving.router_admission`)."""
    last_departure_s: float | None = None
    last_departure_full: bool = False
    # health, kept by the router's pool
    ejected: str | None = None
    check_failures: int = 0
    consecutive_errors: int = 0
    heartbeat_deadline: float | None = None

    @property
    def healthy(self) -> bool:
        """True unless ejected (failed health checks, connection errors, missed heartbeats)."""
        return self.ejected is None

    @property
    def key(self) -> tuple[str, str]:
        """Identity in the pool: (url, model)."""
        return (self.url, self.model)


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What routing needs to know about one request (parsed once by the router)."""

    model: str
    service_class: str | None = None
    session_key: str | None = None
    prompt_tokens: int = 1
    max_tokens: int | None = None
    decode_estimate: int = 1
    stream: bool = False


@dataclass(frozen=True, slots=True)
class PolicyOptions:
    """Tunables of the registered policies (one set for the router; defaults work)."""

    p2c_metric: Literal["outstanding", "latency"] = "outstanding"
    """power_of_two compares outstanding requests, or the EWMA of time to first byte."""
    affinity_vnodes: int = 64
    """session_affinity: points per replica on the hash ring."""
    affinity_load_factor: float = 1.25
    """session_affinity: a replica is overloaded above this times the mean outstanding."""
    affinity_min_load: int = 8
    """session_affinity: a replica with fewer outstanding requests is never overloaded."""
    token_ms: float = 0.0219
    """workload_aware: cost of one token in a batch iteration, ms (a profile's beta;
    the default is llama-3.1-8B on H100)."""
    context_ms: float = 4.96e-5
    """workload_aware: cost of one token of context read by a decode step, ms (gamma)."""


class Policy(Protocol):
    """A routing decision: one of `candidates` (never empty) for `request`."""

    def choose(self, request: RouteRequest, candidates: Sequence[Backend], now: float,
               ) -> Backend:
        """The backend to send `request` to."""
        ...


PolicyFactory = Callable[[PolicyOptions, random.Random], Policy]

POLICIES: Registry[PolicyFactory] = Registry("router policy")
"""Router policies by the name the CLI and the backends document use."""


def least_outstanding(candidates: Sequence[Backend], start: int) -> Backend:
    """The candidate with the fewest outstanding requests; ties go to the first one found
    scanning from index `start` (a rotating start spreads ties instead of piling them on
    the first replica)."""
    n = len(candidates)
    best = candidates[start % n]
    low = best.outstanding
    for i in range(1, n):
        backend = candidates[(start + i) % n]
        if backend.outstanding < low:
            best, low = backend, backend.outstanding
    return best
