"""Requests fed to the simulator and what happened to each of them.

`SimRequest` is one request for a server (sizes, service class, arrival time in virtual
seconds); `RequestRecord` is its outcome: where it ran, when its first token came and when
it finished (None while pending), or that the replica refused it (`rejected`: its queue
was full or the request did not fit its KV cache; first token and finish stay None).
Records are what an evaluation reads afterwards.

To extend: add a field with a default and fill it in `simulator.cluster`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from workloads.arrivals import Arrival


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One request arriving for `server` at `time_s` (virtual seconds)."""

    time_s: float
    server: str
    prompt_tokens: int
    output_tokens: int
    service_class: str | None = None


def requests_of(server: str, arrivals: Iterable[Arrival], start_s: float = 0.0,
                ) -> Iterator[SimRequest]:
    """Arrivals of a workload process as requests for `server`, shifted by `start_s`."""
    for a in arrivals:
        yield SimRequest(start_s + a.time_s, server, a.prompt_tokens, a.output_tokens,
                         a.service_class)


@dataclass(slots=True)
class RequestRecord:
    """The outcome of one request (times in virtual seconds)."""

    request_id: str
    server: str
    service_class: str | None
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    variant: str | None = None
    replica: str | None = None
    routed_s: float | None = None
    first_token_s: float | None = None
    finish_s: float | None = None
    rejected: bool = False
    """The replica it was routed to refused it (queue full or too large for the KV
    cache); it never gets a token."""

    @property
    def ttft_s(self) -> float | None:
        """Time to first token, s (None before it came)."""
        return None if self.first_token_s is None else self.first_token_s - self.arrival_s

    @property
    def itl_s(self) -> float | None:
        """Mean inter-token latency, s (None unfinished or with a single token)."""
        if self.finish_s is None or self.first_token_s is None or self.output_tokens < 2:
            return None
        return (self.finish_s - self.first_token_s) / (self.output_tokens - 1)
