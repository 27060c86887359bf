"""An executable model of one batched replica: continuous batching with chunked prefill.

`BatchEngine` is the batching scheduler of an emulated vLLM-like worker, written as a pure
state machine: no asyncio, no HTTP, no clock reads. A driver (the asyncio worker in
`serving/`, or the simulator in virtual time) owns time and calls, in a loop:

1. `submit(...)` for every arriving request (priority 1 is the most important);
2. `next_iteration(now)` -> the `Iteration` to run: which requests take part, how many
   prefill tokens each gets, and how long it takes according to the iteration-cost law
   (`EngineConfig.law`, default the profile's: `queue_models.iteration_cost`);
3. `complete(iteration, now)` at the iteration's end -> `TokenEvent`s (first token,
   token, finished), one per request that generated a token.

The default law, iteration time by inferno's batch-queue v0.8 model (INFERNO.md), in ms:

    duration = alpha + sum over slots of work(slot)
    decode step of a request:       beta + gamma * c,   c = input + tokens generated,
                                    counting the token being generated (so the K steps
                                    cost beta K + gamma K (L + (K+1)/2) = the model's w_dec)
    prefill chunk of n tokens:      beta * n + gamma * p,   p = prompt tokens done after it

A prefill split into nc equal chunks therefore costs (beta + gamma (nc+1)/2) L, the
model's w_pre. We charge the model's cost rather than the exact attention cost of a chunk
(gamma * n * p): profiles are fitted to this model (inferno's tuner fits alpha, beta,
gamma against it), so a worker that charged the exact cost would make every model
prediction wrong by construction. As in the model, prefill produces no token: the first
token comes from the first decode step after the last chunk, and every later token from
one more decode step, so ITL at batch B without prefill is alpha + sum of the B decode
costs, which averages to alpha + B (beta + gamma (L + (K+1)/2)). When new requests'
prefill chunks share iterations with the others' decodes (a steady state with staggered
requests), the mean ITL is the model's itl(B) = alpha + (B-1) delta + beta + gamma (L +
(K+1)/2) (tests check both, within 2%). The model splits a prefill into nc(B) equal
chunks; the engine's greedy chunks agree with it when the prompt fits the budget (nc = 1)
and differ slightly otherwise (e.g. 8192 + 8192 + 3616 tokens instead of 4 x 5000).

Chunking is vLLM's greedy rule under the token budget: each iteration first gives every
decoding request one token, then gives prefilling requests (in admission order) as many
prompt tokens as the budget has left, then admits waiting requests while the budget,
max batch and KV capacity allow. Waiting requests are ordered by priority, FCFS within a
priority. Running requests are never preempted: lowering max batch stops admissions until
the batch has drained below the new bound. Max batch and the token budget may change live
(`set_max_batch`, `set_token_budget`, as an emulated worker's admin routes do; vLLM itself
reads both only at start-up): a change applies from the next iteration planned, and a
prefill under way continues in chunks of the new budget. KV capacity (tokens) is reserved at admission
for the whole request (prompt + output), so usage never exceeds capacity; the reported
usage is what is filled (prompt tokens prefilled + tokens generated).

`occupancy(now)` gives the time integrals of the running, waiting and KV gauges (updated
whenever the engine is given a `now`: submit, next_iteration, complete; `cancel` has no
time, so its change counts from the previous reading). A driver in virtual time may run
many iterations between outside events in one go (the simulator's `FusedEngine`
subclass does); it must keep the law called once per iteration, in order.

To extend: a different iteration-cost law is an `EngineConfig.law` (any
`queue_models.iteration_cost.IterationCost`); a different admission or chunking policy
overrides `_admit` or `_plan_prefill`. Keep it free of I/O and time reads so virtual
time still works.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Protocol

from queue_models.engine_types import (
    LOWEST_PRIORITY,
    EngineConfig,
    EngineError,
    EngineStats,
    Iteration,
    Occupancy,
    QueueFullError,
    RequestState,
    RequestTooLargeError,
    Slot,
    TokenEvent,
)

__all__ = [
    "LOWEST_PRIORITY",
    "BatchEngine",
    "EngineConfig",
    "EngineError",
    "EngineStats",
    "Iteration",
    "Occupancy",
    "QueueFullError",
    "RequestState",
    "RequestTooLargeError",
    "Slot",
    "TokenEvent",
    "step",
]


class _Clock(Protocol):
    def now(self) -> float: ...

    def set(self, t: float) -> None: ...


class BatchEngine:
    """Continuous batching over a priority waiting queue (see the module docstring)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.stats = EngineStats()
        self._max_batch = config.max_batch
        self._token_budget = config.token_budget
        self._running: dict[str, RequestState] = {}
        self._waiting: list[tuple[int, int, RequestState]] = []
        self._waiting_live = 0
        self._ids: set[str] = set()
        self._seq = itertools.count()
        self._reserved = 0
        self._kv_used = 0
        self._inflight: Iteration | None = None
        self._cost = config.cost
        self._touched_s: float | None = None
        self._running_s = self._waiting_s = self._kv_tokens_s = 0.0

    # -- inspection ---------------------------------------------------------------------

    @property
    def max_batch(self) -> int:
        """The current max batch (requests running at once)."""
        return self._max_batch

    @property
    def token_budget(self) -> int:
        """The current token budget (tokens per iteration; `config` has the initial one)."""
        return self._token_budget

    @property
    def running(self) -> int:
        """Requests admitted and not finished."""
        return len(self._running)

    @property
    def waiting(self) -> int:
        """Requests waiting for admission."""
        return self._waiting_live

    @property
    def kv_used_tokens(self) -> int:
        """Tokens held in the KV cache (prompt tokens prefilled + tokens generated)."""
        return self._kv_used

    @property
    def kv_usage(self) -> float:
        """KV cache usage as a fraction of capacity (0 with unlimited capacity)."""
        cap = self.config.kv_capacity_tokens
        return self._kv_used / cap if cap else 0.0

    @property
    def has_work(self) -> bool:
        """True when a request is running or waiting."""
        return bool(self._running) or self._waiting_live > 0

    @property
    def updated_s(self) -> float | None:
        """The latest `now` the engine was given (None before any)."""
        return self._touched_s

    @property
    def in_flight(self) -> Iteration | None:
        """The iteration planned and not yet completed, if any."""
        return self._inflight

    def running_requests(self) -> list[RequestState]:
        """Running requests in admission order."""
        return list(self._running.values())

    def occupancy(self, now: float) -> Occupancy:
        """Time integrals of running, waiting and KV tokens up to `now` (no change)."""
        since = self._touched_s
        dt = now - since if since is not None and now > since else 0.0
        return Occupancy(now, self._running_s + len(self._running) * dt,
                         self._waiting_s + self._waiting_live * dt,
                         self._kv_tokens_s + self._kv_used * dt)

    # -- control ------------------------------------------------------------------------

    def set_max_batch(self, max_batch: int) -> None:
        """Change max batch live; a lower bound drains (no preemption)."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._max_batch = max_batch

    def set_token_budget(self, token_budget: int) -> None:
        """Change the token budget live; it applies from the next iteration planned."""
        if token_budget < 1:
            raise ValueError(f"token_budget must be >= 1, got {token_budget}")
        self._token_budget = token_budget

    def submit(
        self,
        request_id: str,
        prompt_tokens: int,
        output_tokens: int,
        now: float,
        priority: int = LOWEST_PRIORITY,
    ) -> RequestState:
        """Queue a request; raises `QueueFullError` or `RequestTooLargeError`."""
        if request_id in self._ids:
            raise ValueError(f"duplicate request id {request_id!r}")
        self._touch(now)
        if prompt_tokens < 0 or output_tokens < 1:
            raise EngineError("prompt_tokens must be >= 0 and output_tokens >= 1")
        cap = self.config.kv_capacity_tokens
        if cap is not None and prompt_tokens + output_tokens > cap:
            self.stats.rejected += 1
            raise RequestTooLargeError(
                f"request needs {prompt_tokens + output_tokens} KV tokens, capacity is {cap}"
            )
        if self._queue_full():
            self.stats.rejected += 1
            raise QueueFullError(f"waiting queue full ({self._waiting_live} waiting)")
        request = RequestState(request_id, prompt_tokens, output_tokens, priority, now)
        heapq.heappush(self._waiting, (priority, next(self._seq), request))
        self._waiting_live += 1
        self._ids.add(request_id)
        self.stats.submitted += 1
        return request

    def cancel(self, request_id: str) -> bool:
        """Drop a waiting or running request (e.g. the client went away)."""
        request = self._running.pop(request_id, None)
        if request is not None:
            self._release(request)
        else:
            request = next((r for _, _, r in self._waiting if r.request_id == request_id), None)
            if request is None or request.cancelled:
                return False
            self._waiting_live -= 1
        request.cancelled = True
        self._ids.discard(request_id)
        self.stats.cancelled += 1
        return True

    # -- the iteration loop -------------------------------------------------------------

    def next_iteration(self, now: float) -> Iteration | None:
        """Plan the iteration starting at `now` (None when there is nothing to run)."""
        if self._inflight is not None:
            raise RuntimeError("complete() the iteration in flight before planning another")
        self._touch(now)
        budget = self._token_budget
        slots: list[Slot] = []
        prefilling: list[RequestState] = []
        for request in self._running.values():
            if request.in_prefill:
                prefilling.append(request)
            elif budget > 0:
                slots.append(Slot(request, 0, request.prompt_tokens + request.generated + 1))
                budget -= 1
        budget = self._plan_prefill(prefilling, budget, slots)
        self._admit(budget, slots, now)
        if not slots:
            return None
        decodes = decode_context = prefill = prefill_context = 0
        for slot in slots:
            if slot.prefill_tokens:
                prefill += slot.prefill_tokens
                prefill_context += slot.context_tokens
            else:
                decodes += 1
                decode_context += slot.context_tokens
        duration_s = self._duration_ms(decodes, decode_context, prefill, prefill_context) / 1000.0
        self._inflight = Iteration(now, duration_s, tuple(slots), decodes + prefill,
                                   decode_context + prefill_context)
        return self._inflight

    def complete(self, iteration: Iteration, now: float) -> list[TokenEvent]:
        """Apply the iteration at time `now`; returns the tokens it generated."""
        if iteration is not self._inflight:
            raise RuntimeError("complete() must get the iteration returned by next_iteration()")
        self._inflight = None
        self._touch(now)
        events: list[TokenEvent] = []
        itl_tokens = 0
        for slot in iteration.slots:
            request = slot.request
            if request.cancelled:
                continue
            if slot.prefill_tokens:
                request.prefilled += slot.prefill_tokens
                self._kv_used += slot.prefill_tokens
                self.stats.prefill_tokens += slot.prefill_tokens
                continue
            itl_tokens += request.generated > 0
            events.append(self._generate(request, now))
        self._record(iteration, len(events), itl_tokens)
        return events

    # -- policy pieces (the cost law is EngineConfig.law; override chunking, admission) --

    def _duration_ms(self, decodes: int, decode_context: int, prefill: int,
                     prefill_context: int) -> float:
        return self._cost.duration_ms(decodes, decode_context, prefill, prefill_context)

    def _plan_prefill(self, prefilling: list[RequestState], budget: int, slots: list[Slot]) -> int:
        for request in prefilling:
            if budget <= 0:
                break
            chunk = min(request.prompt_tokens - request.prefilled, budget)
            slots.append(Slot(request, chunk, request.prefilled + chunk))
            budget -= chunk
        return budget

    def _admit(self, budget: int, slots: list[Slot], now: float) -> None:
        cap = self.config.kv_capacity_tokens
        while self._waiting and budget > 0 and len(self._running) < self.max_batch:
            request = self._waiting[0][2]
            if request.cancelled:
                heapq.heappop(self._waiting)
                continue
            need = request.prompt_tokens + request.output_tokens
            if cap is not None and self._reserved + need > cap:
                break  # strict order: the head waits for KV room
            heapq.heappop(self._waiting)
            self._waiting_live -= 1
            self._running[request.request_id] = request
            self._reserved += need
            request.scheduled_s = now
            if request.in_prefill:
                budget = self._plan_prefill([request], budget, slots)
            else:
                slots.append(Slot(request, 0, request.prompt_tokens + 1))
                budget -= 1

    # -- internals ----------------------------------------------------------------------

    def _touch(self, now: float) -> None:
        """Bring the gauges' time integrals up to `now` before a change."""
        since = self._touched_s
        if since is not None and now > since:
            dt = now - since
            self._running_s += len(self._running) * dt
            self._waiting_s += self._waiting_live * dt
            self._kv_tokens_s += self._kv_used * dt
        if since is None or now > since:
            self._touched_s = now

    def _queue_full(self) -> bool:
        bound = self.config.max_queue
        if bound is None:
            return False
        return len(self._running) + self._waiting_live >= max(self.max_batch, self.running) + bound

    def _generate(self, request: RequestState, now: float) -> TokenEvent:
        request.generated += 1
        self._kv_used += 1
        previous = request.last_token_s
        if previous is None:
            request.first_token_s = now
        request.last_token_s = now
        done = request.generated >= request.output_tokens
        if done:
            request.finished_s = now
            del self._running[request.request_id]
            self._release(request)
            self._ids.discard(request.request_id)
            self.stats.finished += 1
        return TokenEvent(request, request.generated - 1, done, now, previous)

    def _release(self, request: RequestState) -> None:
        self._reserved -= request.prompt_tokens + request.output_tokens
        self._kv_used -= request.kv_tokens

    def _record(self, iteration: Iteration, decoded: int, itl_tokens: int) -> None:
        s = self.stats
        s.iterations += 1
        s.busy_s += iteration.duration_s
        s.decode_tokens += decoded
        s.batch_sum += iteration.batch_size
        s.itl_tokens += itl_tokens
        s.itl_duration_s += itl_tokens * iteration.duration_s
        s.itl_batch_sum += itl_tokens * iteration.batch_size
        s.itl_tokens_sum += itl_tokens * iteration.tokens
        s.itl_context_sum += itl_tokens * iteration.attention_tokens


def step(engine: BatchEngine, clock: _Clock) -> list[TokenEvent]:
    """Run one iteration in virtual time: plan at `clock.now()`, move the clock to its end,
    complete it. Returns no events (and leaves the clock) when there is nothing to run."""
    iteration = engine.next_iteration(clock.now())
    if iteration is None:
        return []
    clock.set(iteration.end_s)
    return engine.complete(iteration, iteration.end_s)
