"""The asyncio driver of a `BatchEngine`: runs iterations in real time and fans tokens out.

`EngineDriver.run()` is the worker's engine loop. It plans an iteration at time t, sleeps
until the absolute deadline t + duration, completes the iteration at that deadline and
starts the next one from the same deadline, so wake-up jitter never accumulates into
drift: token k of a stream is due at a time fixed by the profile, and a late wake-up only
delays its delivery, not the tokens after it. If the loop falls more than `max_lag_s`
behind (a stalled process), it resynchronises to the present instead of bursting. Idle,
it sleeps until a request is submitted.

Each request has a `TokenStream`, a one-reader mailbox: the loop counts new tokens into
it and wakes the reader, which writes whatever has accumulated (so a slow reader gets
several tokens in one write instead of slowing the loop down).

Times are `loop.time()` (monotonic seconds), which is also what the engine's request
timestamps are in.

`service` measures the mean time a finished request spent in the batch (admission to last
token), which the worker's overload bound uses (`serving.overload`).

To extend: per-iteration observers go into `_dispatch` (metrics are one of them).
"""

from __future__ import annotations

import asyncio
import math

from queue_models.engine import LOWEST_PRIORITY, BatchEngine, Iteration, TokenEvent
from serving.metrics import WorkerMetrics
from serving.overload import ServiceTime


class TokenStream:
    """Tokens generated for one request, waiting to be written to its client."""

    __slots__ = ("request_id", "prompt_tokens", "output_tokens", "pending", "sent", "done",
                 "failed", "_waiter")

    def __init__(self, request_id: str, prompt_tokens: int, output_tokens: int) -> None:
        self.request_id = request_id
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.pending = 0
        self.sent = 0
        self.done = False
        self.failed = False
        self._waiter: asyncio.Future[None] | None = None

    def push(self, finished: bool) -> None:
        """One more token (called by the engine loop)."""
        self.pending += 1
        self.done = self.done or finished
        self._wake()

    def fail(self) -> None:
        """End the stream without its tokens (the engine loop died)."""
        self.failed = self.done = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take(self) -> int:
        """Wait for tokens; returns how many arrived since the last call (0 only at the end)."""
        while not self.pending and not self.done:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None
        count, self.pending = self.pending, 0
        self.sent += count
        return count


class EngineDriver:
    """Runs a `BatchEngine` in real time (see the module docstring)."""

    def __init__(
        self, engine: BatchEngine, metrics: WorkerMetrics | None = None, max_lag_s: float = 0.25,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.max_lag_s = max_lag_s
        self._streams: dict[str, TokenStream] = {}
        self._wake: asyncio.Event | None = None
        self._last_duration_s = 0.0
        self.lag_resyncs = 0
        self.service = ServiceTime()

    def now(self) -> float:
        """The driver's time (the event loop's monotonic clock)."""
        return asyncio.get_running_loop().time()

    def submit(
        self, request_id: str, prompt_tokens: int, output_tokens: int,
        priority: int = LOWEST_PRIORITY,
    ) -> TokenStream:
        """Queue a request (engine errors propagate) and return its token stream."""
        self.engine.submit(request_id, prompt_tokens, output_tokens, self.now(), priority)
        stream = TokenStream(request_id, prompt_tokens, output_tokens)
        self._streams[request_id] = stream
        if self._wake is not None:
            self._wake.set()
        return stream

    def cancel(self, request_id: str) -> None:
        """Forget a request whose client went away."""
        if self._streams.pop(request_id, None) is not None:
            self.engine.cancel(request_id)

    def set_max_batch(self, max_batch: int) -> None:
        """Change max batch live (takes effect at the next iteration)."""
        self.engine.set_max_batch(max_batch)
        if self._wake is not None:
            self._wake.set()

    def set_token_budget(self, token_budget: int) -> None:
        """Change the token budget live (takes effect at the next iteration)."""
        self.engine.set_token_budget(token_budget)
        if self._wake is not None:
            self._wake.set()

    def retry_after_s(self) -> int:
        """Seconds until a running request is likely to finish (for Retry-After), >= 1."""
        remaining = [r.output_tokens - r.generated for r in self.engine.running_requests()]
        if not remaining or not self._last_duration_s:
            return 1
        return max(1, min(60, math.ceil(min(remaining) * self._last_duration_s)))

    async def run(self) -> None:
        """The engine loop; runs until cancelled. If it fails, every open stream is failed
        (so no handler waits forever) and the exception propagates."""
        try:
            await self._loop()
        except Exception:
            for stream in self._streams.values():
                stream.fail()
            self._streams.clear()
            raise

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        t = loop.time()
        while True:
            if not self.engine.has_work:
                self._wake.clear()
                await self._wake.wait()
                t = loop.time()
            if loop.time() - t > self.max_lag_s:
                self.lag_resyncs += 1
                t = loop.time()
            iteration = self.engine.next_iteration(t)
            if iteration is None:  # work, but nothing can run now (cannot happen with
                self._wake.clear()  # max batch >= 1; kept as a guard against spinning)
                await self._wake.wait()
                continue
            delay = iteration.end_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            t = iteration.end_s
            self._dispatch(iteration, self.engine.complete(iteration, t))

    def _dispatch(self, iteration: Iteration, events: list[TokenEvent]) -> None:
        self._last_duration_s = iteration.duration_s
        if self.metrics is not None:
            self.metrics.record(iteration, events)
        streams = self._streams
        for event in events:
            stream = streams.get(event.request.request_id)
            if stream is None:
                continue
            stream.push(event.finished)
            if event.finished:
                del streams[event.request.request_id]
                if event.request.scheduled_s is not None:
                    self.service.observe(event.time_s - event.request.scheduled_s)
