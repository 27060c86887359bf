"""Overload bounded in time: how long a request arriving now would wait for a batch slot.

A replica runs at most `max_batch` requests; one more waits until enough of them have
left. At a full batch, requests leave at about `max_batch / service_s` per second, where
`service_s` is the mean time a request spends in the batch (prefill plus decode). So a
request that finds `in_system` requests (running and waiting) waits about

    queue_wait_s = max(0, in_system + 1 - max_batch) x service_s / max_batch

(`queue_wait_s`). The worker and the router answer 429 with `Retry-After` when that wait
exceeds their bound (`max_queue_wait_s`) instead of queueing without limit; Retry-After
is the time until the wait would be back under the bound (`retry_after_s`, 1..60 s).
Priorities are ignored: a premium request may in fact wait less than estimated.

`service_s` is measured where possible (`ServiceTime`: an exponentially weighted mean of
completed requests' time in the batch) and otherwise taken from the replica's profile
(`profile_service_s`: the request's prefill plus its output tokens at full-batch decode
iterations).

Pure functions and one small accumulator, no clock: callers pass durations in.

To extend: a better service-time model (e.g. by output length) is another function
returning seconds; a priority-aware bound counts only the requests ahead of the class.
"""

from __future__ import annotations

import math

from queue_models.iteration_cost import IterationCost

DEFAULT_MAX_QUEUE_WAIT_S = 10.0
"""Default bound on the expected wait for a batch slot, s (worker and router)."""
EWMA_ALPHA = 0.1
MAX_RETRY_AFTER_S = 60


def queue_wait_s(in_system: int, max_batch: int, service_s: float) -> float:
    """Expected wait for a slot of a request finding `in_system` requests (see above)."""
    beyond = in_system + 1 - max_batch
    if beyond <= 0:
        return 0.0
    return beyond * service_s / max(max_batch, 1)


def retry_after_s(wait_s: float, max_wait_s: float) -> int:
    """Seconds until the expected wait is back under the bound, in 1..60."""
    return max(1, min(MAX_RETRY_AFTER_S, math.ceil(wait_s - max_wait_s)))


def profile_service_s(cost: IterationCost, max_batch: int, prompt_tokens: int,
                      output_tokens: int) -> float:
    """A request's time in a full batch by the profile: its prefill, then one decode
    iteration of `max_batch` requests (mean context) per output token."""
    context = int(max_batch * (prompt_tokens + output_tokens / 2))
    step_ms = cost.duration_ms(max_batch, context, 0, 0)
    prefill_ms = cost.duration_ms(0, 0, prompt_tokens, prompt_tokens * prompt_tokens // 2)
    return (prefill_ms + output_tokens * step_ms) / 1000.0


class ServiceTime:
    """The measured mean time a request spends in the batch (EWMA), s."""

    def __init__(self, alpha: float = EWMA_ALPHA) -> None:
        self.alpha = alpha
        self.mean_s: float | None = None

    def observe(self, seconds: float) -> None:
        """One completed request's time from admission to its last token."""
        if seconds < 0 or not math.isfinite(seconds):
            return
        self.mean_s = seconds if self.mean_s is None else (
            self.mean_s + self.alpha * (seconds - self.mean_s))

    def estimate(self, fallback_s: float) -> float:
        """The measured mean, or `fallback_s` before any completion."""
        return fallback_s if self.mean_s is None else self.mean_s
