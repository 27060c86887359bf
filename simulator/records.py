"""Requests fed to the simulator and what happened to each of them.

`SimRequest` is one request for a server (sizes, service class, arrival time in virtual
seconds); `RequestRecord` is its outcome: where it ran, when its first token came and when
it finished (None while pending), or that the replica refused it (`rejected`: its queue
was full or the request did not fit its KV cache; first token and finish stay None).
Records are what an evaluation reads afterwards; `RecordTable` keeps a finished run's
records as numpy columns, so an evaluation holding several runs stays small.

To extend: add a field with a default and fill it in `simulator.cluster` (and one column
of `RecordTable`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

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


class RecordTable:
    """Finished runs' records kept compactly: one numpy column per field (NaN for a time
    that never came, -1 for no variant or replica), names stored once. About 80 bytes a
    request instead of about 300 as `RequestRecord` objects. Iterating or indexing gives
    `RequestRecord`s made on demand, so readers of a list of records read a table alike.
    """

    _TIMES = ("arrival_s", "routed_s", "first_token_s", "finish_s")
    _NAMES = ("server", "service_class", "variant", "replica")

    def __init__(self, records: Sequence[RequestRecord]) -> None:
        self.request_ids = np.array([r.request_id for r in records], dtype=str)
        self.times = {f: np.array([np.nan if getattr(r, f) is None else getattr(r, f)
                                   for r in records], dtype=np.float64) for f in self._TIMES}
        self.tokens = np.array([(r.prompt_tokens, r.output_tokens) for r in records],
                               dtype=np.int64).reshape(-1, 2)
        self.rejected = np.array([r.rejected for r in records], dtype=bool)
        self.names: dict[str, list[str | None]] = {}
        self.codes: dict[str, np.ndarray] = {}
        for f in self._NAMES:
            self.names[f], self.codes[f] = _encode([getattr(r, f) for r in records])

    def __len__(self) -> int:
        return len(self.request_ids)

    def __getitem__(self, i: int) -> RequestRecord:
        times = {f: None if math.isnan(v := float(self.times[f][i])) else v
                 for f in self._TIMES}
        names = {f: self.names[f][int(self.codes[f][i])] for f in self._NAMES}
        return RequestRecord(str(self.request_ids[i]), names["server"] or "",
                             names["service_class"], times["arrival_s"] or 0.0,
                             int(self.tokens[i, 0]), int(self.tokens[i, 1]),
                             names["variant"], names["replica"], times["routed_s"],
                             times["first_token_s"], times["finish_s"],
                             bool(self.rejected[i]))

    def __iter__(self) -> Iterator[RequestRecord]:
        return (self[i] for i in range(len(self)))


def _encode(values: Sequence[str | None]) -> tuple[list[str | None], np.ndarray]:
    """(distinct values, code of each value) with None as one more value."""
    index: dict[str | None, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int32,
                        count=len(values))
    return list(index), codes
