"""Per-variant figures over the last window, from request records and replicas: what a
collector would have measured on the simulated fleet (a `collector.snapshot.VariantSnapshot`).

Rates count requests routed (arrivals) and finished (completions) in the window; token
means and ITL are over requests finished in it (ITL token-weighted: total decode time over
tokens after the first); TTFT over first tokens in it. Running, waiting and KV usage are
the ready replicas' means at `now`. A window with no finished request gives `nan` means,
never 0.

To extend: one more figure is one more keyword here (see `VARIANT_FIGURES`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from collector.snapshot import Figure, VariantSnapshot
from simulator.records import RequestRecord
from simulator.replica import SimReplica


def _in(t: float | None, start: float, end: float) -> bool:
    return t is not None and start < t <= end


def _mean(values: Sequence[float]) -> Figure:
    return Figure.ok(float(np.mean(values))) if values else Figure.nan()


def variant_window(variant: str, server: str, model: str, accelerator: str,
                   records: Sequence[RequestRecord], replicas: Sequence[SimReplica],
                   now: float, window_s: float) -> VariantSnapshot:
    """The variant's snapshot over (now - window_s, now]; `records` may hold any variant."""
    start = now - window_s
    mine = [r for r in records if r.variant == variant]
    routed = sum(1 for r in mine if _in(r.routed_s, start, now))
    done = [r for r in mine if _in(r.finish_s, start, now)]
    firsts = [r.ttft_s * 1000.0 for r in mine
              if _in(r.first_token_s, start, now) and r.ttft_s is not None]
    decode_s = sum(r.finish_s - r.first_token_s for r in done  # type: ignore[operator]
                   if r.output_tokens > 1)
    decode_tokens = sum(r.output_tokens - 1 for r in done if r.output_tokens > 1)
    ready = [p for p in replicas if p.phase != "starting"]
    per = max(len(ready), 1)
    return VariantSnapshot(
        name=variant, server=server, model=model, accelerator=accelerator, window_s=window_s,
        arrival_rate_rps=Figure.ok(routed / window_s),
        completion_rate_rps=Figure.ok(len(done) / window_s),
        in_tokens=_mean([r.prompt_tokens for r in done]),
        out_tokens=_mean([r.output_tokens for r in done]),
        ttft_mean_ms=_mean(firsts),
        ttft_p95_ms=Figure.ok(float(np.percentile(firsts, 95))) if firsts else Figure.nan(),
        itl_mean_ms=(Figure.ok(1000.0 * decode_s / decode_tokens) if decode_tokens
                     else Figure.nan()),
        running=Figure.ok(sum(p.engine.running for p in ready) / per),
        waiting=Figure.ok(sum(p.engine.waiting for p in ready) / per),
        kv_cache_usage=Figure.ok(sum(p.engine.kv_usage for p in ready) / per),
        replicas=Figure.ok(float(len(ready))),
        max_batch=(Figure.ok(float(ready[0].engine.max_batch)) if ready else Figure.missing()),
    )
