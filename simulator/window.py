"""Per-variant figures over the last window: what a collector would have measured on the
simulated fleet (a `collector.snapshot.VariantSnapshot`).

`VariantLog` keeps, per variant, only what a window needs, appended as things happen:
arrival times of the requests routed to it, first tokens (time, TTFT) and finishes
(time, sizes, decode time), and replicas that left while a window may still cover them.
`prune(start)` drops what is older than a window start, so `collect` never rescans all
records. Entries come nearly in time order (a fused decode run logs a little ahead of
other replicas' events, a request that waited at the router logs its arrival time when
routed), so counts filter by time and pruning only bounds the memory.

Figures over (now - window, now]: the arrival rate counts requests routed to the variant
by their arrival time, plus the share the cluster gives it of requests that arrived and
were not routed (waiting at the router); completions, token means and ITL (token-weighted:
total decode time over tokens after the first) are over requests finished in the window,
TTFT over first tokens in it. Running, waiting and KV usage are time-weighted means (the
exact `avg_over_time` of the gauges), per replica: the integrals of every replica that
reported (ready or draining) in the window over its reporting time. A window with no
finished request gives `nan` means, never 0.

To extend: one more figure is one more keyword in `variant_window` (see
`collector.snapshot.VARIANT_FIGURES`), fed by one more deque in `VariantLog` if needed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from collector.snapshot import Figure, ServerSnapshot, VariantSnapshot
from simulator.records import RequestRecord
from simulator.replica import SimReplica


@dataclass
class VariantLog:
    """What the window needs of one variant (see the module docstring)."""

    arrivals: deque[float] = field(default_factory=deque)
    firsts: deque[tuple[float, float]] = field(default_factory=deque)
    """(first token time, TTFT ms)."""
    finishes: deque[tuple[float, int, int, float]] = field(default_factory=deque)
    """(finish time, prompt tokens, output tokens, decode time s)."""
    retired: list[SimReplica] = field(default_factory=list)

    def first_token(self, record: RequestRecord, time_s: float) -> None:
        """Log a request's first token."""
        self.firsts.append((time_s, (time_s - record.arrival_s) * 1000.0))

    def finish(self, record: RequestRecord, time_s: float) -> None:
        """Log a finished request."""
        first = record.first_token_s if record.first_token_s is not None else time_s
        self.finishes.append((time_s, record.prompt_tokens, record.output_tokens,
                              time_s - first))

    def prune(self, start: float) -> None:
        """Drop entries at or before `start` (and replicas that left by then)."""
        while self.arrivals and self.arrivals[0] <= start:
            self.arrivals.popleft()
        for timed in (self.firsts, self.finishes):
            while timed and timed[0][0] <= start:
                timed.popleft()
        self.retired = [r for r in self.retired if r.left_s is None or r.left_s > start]

    def routed_in(self, start: float, now: float) -> int:
        """Requests routed to the variant that arrived in (start, now]."""
        return sum(1 for t in self.arrivals if start < t <= now)


def _mean(values: Sequence[float]) -> Figure:
    return Figure.ok(float(np.mean(values))) if values else Figure.nan()


def occupancy_means(replicas: Iterable[SimReplica], start: float, now: float,
                    ) -> tuple[float, float, float]:
    """Time-weighted mean running, waiting and KV usage per reporting replica over
    (start, now] (zeros when no replica reported)."""
    span = running = waiting = kv = 0.0
    for r in replicas:
        end = now if r.left_s is None else min(now, r.left_s)
        begin = max(start, r.ready_at_s)
        if r.phase == "starting" or end <= begin:
            continue
        latest = r.engine.occupancy(now)
        first = r.gauges.at(start, latest)
        span += end - begin
        running += latest.running_s - first.running_s
        waiting += latest.waiting_s - first.waiting_s
        cap = r.engine.config.kv_capacity_tokens
        if cap:
            kv += (latest.kv_tokens_s - first.kv_tokens_s) / cap
    if span <= 0:
        return 0.0, 0.0, 0.0
    return running / span, waiting / span, kv / span


def variant_window(variant: str, server: str, model: str, accelerator: str, log: VariantLog,
                   replicas: Sequence[SimReplica], now: float, window_s: float,
                   router_share: float = 0.0) -> VariantSnapshot:
    """The variant's snapshot over (now - window_s, now]; `replicas` are its replicas in
    the fleet, `router_share` the requests waiting at the router counted as its arrivals."""
    start = now - window_s
    done = [f for f in log.finishes if start < f[0] <= now]
    firsts = [ttft for t, ttft in log.firsts if start < t <= now]
    decode_s = sum(f[3] for f in done if f[2] > 1)
    decode_tokens = sum(f[2] - 1 for f in done if f[2] > 1)
    ready = [p for p in replicas if p.phase != "starting"]
    running, waiting, kv = occupancy_means([*replicas, *log.retired], start, now)
    return VariantSnapshot(
        name=variant, server=server, model=model, accelerator=accelerator, window_s=window_s,
        arrival_rate_rps=Figure.ok((log.routed_in(start, now) + router_share) / window_s),
        completion_rate_rps=Figure.ok(len(done) / window_s),
        in_tokens=_mean([f[1] for f in done]),
        out_tokens=_mean([f[2] for f in done]),
        ttft_mean_ms=_mean(firsts),
        ttft_p95_ms=Figure.ok(float(np.percentile(firsts, 95))) if firsts else Figure.nan(),
        itl_mean_ms=(Figure.ok(1000.0 * decode_s / decode_tokens) if decode_tokens
                     else Figure.nan()),
        running=Figure.ok(running), waiting=Figure.ok(waiting), kv_cache_usage=Figure.ok(kv),
        replicas=Figure.ok(float(len(ready))),
        max_batch=(Figure.ok(float(ready[0].engine.max_batch)) if ready else Figure.missing()),
    )


@dataclass
class RouterLog:
    """Every request the router received for one server: (arrival time, prompt tokens)."""

    arrivals: deque[tuple[float, int]] = field(default_factory=deque)

    def prune(self, start: float) -> None:
        """Drop arrivals at or before `start`."""
        while self.arrivals and self.arrivals[0][0] <= start:
            self.arrivals.popleft()

    def prompts_in(self, start: float, now: float) -> list[int]:
        """Prompt sizes of the requests that arrived in (start, now]."""
        return [p for t, p in self.arrivals if start < t <= now]


def split(count: float, weights: Mapping[str, float]) -> dict[str, float]:
    """`count` shared over the names by positive weight (equally when none is positive)."""
    live = {name: w for name, w in weights.items() if w > 0}
    if not live:
        live = dict.fromkeys(weights, 1.0)
    total = sum(live.values())
    return {name: count * w / total for name, w in live.items()} if total else {}


def router_shares(arrived: int, routed: Mapping[str, int], planned: Mapping[str, float],
                  replicas: Mapping[str, float]) -> dict[str, float]:
    """A server's requests that arrived in the window and were not routed to one of its
    variants in the snapshot (`routed`: per variant; the rest waits at the router or went
    to a variant since gone), shared over those variants by planned router weight, else
    by replicas (starting ones too), else equally."""
    rest = arrived - sum(routed.values())
    if rest <= 0:
        return {}
    weights = {name: planned.get(name, 0.0) for name in routed}
    if not any(w > 0 for w in weights.values()):
        weights = {name: replicas.get(name, 0.0) for name in routed}
    return split(float(rest), weights)


def router_only(server: str, prompts: Sequence[int], window_s: float) -> ServerSnapshot:
    """A server with no variant in the fleet, as its router saw it over the window: the
    arrival rate and mean prompt size (output sizes are unknown until requests finish)."""
    return ServerSnapshot(name=server, variants=(),
                          arrival_rate_rps=Figure.ok(len(prompts) / window_s),
                          in_tokens=_mean(prompts), replicas=Figure.ok(0.0))
