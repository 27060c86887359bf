"""`FusedEngine`: a `queue_models.engine.BatchEngine` that runs many iterations at once,
up to a horizon: the simulator's replicas and the capacity calibration's replays run it in
virtual time.

Between outside events (an arrival, a tick) a replica mostly runs decode-only iterations:
the same requests each generate one token, nobody is admitted, nobody is prefilling. Such
a run needs no `Slot`, `Iteration` or `TokenEvent` per iteration: `advance(now,
horizon_s)` walks it with a few integers (decode requests, their summed context), calling
the iteration-cost law once per iteration with exactly the counts `next_iteration` would
give it, so times, statistics and the gauges' integrals come out as step by step (the
same floating-point sums in the same order; tests/queue_models/test_fused_engine.py).
Iterations that are not decode-only (prefill chunks, admissions) run through
`next_iteration` and `complete` as usual.

The horizon is the driver's promise that nothing outside touches the engine before it
(no submit, cancel, max-batch or token-budget change): every iteration ending strictly
before it is completed; the first one ending at or after it is returned in flight, for the
driver to `complete` at its end like any other (then `advance` again). Only the events a driver
records are returned: first tokens and finishes, each with its own time.

It is a subclass (it reads the engine's request tables and updates its statistics and
gauge integrals the way `complete` does), so a change to how `BatchEngine` plans or
accounts an iteration must be mirrored here; the equivalence tests catch a mismatch.

To extend: another fusable kind of run (e.g. prefill chunks of one long prompt) is one
more `_<kind>_run` tried in `advance` before the general step.
"""

from __future__ import annotations

import heapq

from queue_models.engine import BatchEngine
from queue_models.engine_types import Iteration, RequestState, Slot, TokenEvent


class FusedEngine(BatchEngine):
    """`BatchEngine` plus `advance` (see the module docstring)."""

    def advance(self, now: float, horizon_s: float,
                ) -> tuple[list[TokenEvent], Iteration | None]:
        """Run iterations from `now` while they end before `horizon_s`. Returns the first
        token and finish events of those iterations and the iteration left in flight (None
        when the engine ran out of work)."""
        if self._inflight is not None:
            raise RuntimeError("complete() the iteration in flight before advancing")
        events: list[TokenEvent] = []
        while True:
            if self._decode_only():
                now, iteration = self._decode_run(now, horizon_s, events)
                if iteration is not None:
                    return events, iteration
                continue
            iteration = self.next_iteration(now)
            if iteration is None:
                return events, None
            end = iteration.end_s
            if not end < horizon_s:
                return events, iteration
            events.extend(e for e in self.complete(iteration, end) if e.index == 0 or e.finished)
            now = end

    def _decode_only(self) -> bool:
        """True when the next iteration gives every running request one decode token and
        admits nobody (so the batch stays the same until a request finishes)."""
        n = len(self._running)
        budget = self._token_budget
        if n == 0 or n > budget:
            return False
        if any(r.prefilled < r.prompt_tokens for r in self._running.values()):
            return False
        if not self._waiting_live or n >= self._max_batch or n == budget:
            return True
        while self._waiting[0][2].cancelled:  # _admit would drop these too
            heapq.heappop(self._waiting)
        cap = self.config.kv_capacity_tokens
        head = self._waiting[0][2]
        return cap is not None and self._reserved + head.prompt_tokens + head.output_tokens > cap

    def _decode_run(self, now: float, horizon_s: float, events: list[TokenEvent],
                    ) -> tuple[float, Iteration | None]:
        """Decode-only iterations from `now` until the first finish or the horizon.
        Returns the time reached and the iteration left in flight (None: someone finished)."""
        requests = list(self._running.values())
        n = len(requests)
        context = sum(r.prompt_tokens + r.generated + 1 for r in requests)
        left = min(r.output_tokens - r.generated for r in requests)
        durations, crossing = self._decode_times(n, context, left, now, horizon_s)
        t = now
        if durations:
            fresh = sum(1 for r in requests if r.generated == 0)
            first_end, previous, t = self._account(n, fresh, context, now, durations)
            self._emit(requests, len(durations), t, previous, first_end, events)
        if crossing is None:
            return t, None
        slots = tuple(Slot(r, 0, r.prompt_tokens + r.generated + 1) for r in requests)
        context += n * len(durations)
        self._inflight = Iteration(t, crossing, slots, n, context)
        return t, self._inflight

    def _decode_times(self, n: int, context: int, left: int, now: float, horizon_s: float,
                      ) -> tuple[list[float], float | None]:
        """Durations (s) of the next decode iterations of `n` requests, at most `left`,
        that end before the horizon; and the duration of the one crossing it (None when
        all `left` end before it). One law call per iteration, as `next_iteration` makes."""
        cost = self._cost.duration_ms
        durations: list[float] = []
        t = now
        for k in range(left):
            d = cost(n, context + k * n, 0, 0) / 1000.0
            t += d
            if not t < horizon_s:
                return durations, d
            durations.append(d)
        return durations, None

    def _account(self, n: int, fresh: int, context: int, now: float, durations: list[float],
                 ) -> tuple[float, float, float]:
        """Statistics and gauge integrals of decode iterations run back to back from `now`
        (the same sums, in the same order, as `complete` would make). Returns the end of
        the first iteration, the start of the last and the end of the last."""
        s = self.stats
        self._touch(now)
        busy, itl_duration = s.busy_s, s.itl_duration_s
        kv, kv_area = self._kv_used, self._kv_tokens_s
        itl_tokens = itl_context = 0
        t = previous = first_end = now
        for j, d in enumerate(durations):
            itl = n - fresh if j == 0 else n
            busy += d
            itl_duration += itl * d
            itl_tokens += itl
            itl_context += itl * (context + j * n)
            kv_area += kv * d
            kv += n
            previous, t = t, t + d
            if j == 0:
                first_end = t
        done = len(durations)
        s.iterations += done
        s.busy_s, s.itl_duration_s = busy, itl_duration
        s.decode_tokens += n * done
        s.batch_sum += n * done
        s.itl_tokens += itl_tokens
        s.itl_batch_sum += n * itl_tokens
        s.itl_tokens_sum += n * itl_tokens
        s.itl_context_sum += itl_context
        self._running_s += n * (t - now)
        self._waiting_s += self._waiting_live * (t - now)
        self._kv_tokens_s, self._kv_used, self._touched_s = kv_area, kv, t
        return first_end, previous, t

    def _emit(self, requests: list[RequestState], done: int, t: float, previous: float,
              first_end: float, events: list[TokenEvent]) -> None:
        """Apply `done` decode steps to every request: first tokens, then finishes."""
        finished: list[tuple[RequestState, float | None]] = []
        for r in requests:
            was, prior = r.generated, r.last_token_s
            r.generated = was + done
            r.last_token_s = t
            last = r.generated >= r.output_tokens
            if was == 0:
                r.first_token_s = first_end
                if not (last and done == 1):
                    events.append(TokenEvent(r, 0, False, first_end, None))
            if last:
                finished.append((r, prior if done == 1 else previous))
        for r, before in finished:
            r.finished_s = t
            del self._running[r.request_id]
            self._release(r)
            self._ids.discard(r.request_id)
            self.stats.finished += 1
            events.append(TokenEvent(r, r.generated - 1, True, t, before))
