"""HTTP plumbing shared by the worker, the router and the controller daemon.

- `make_runner(app)`: an `AppRunner` with handler cancellation on, so a client that
  disconnects cancels its handler (the worker's engine then frees the request's batch
  slot, the router's upstream request is closed, which the worker sees in turn); every
  server of fleetplan is started through it.
- `listen(runner, host, port)`: bind and start; a port in use (or any bind failure)
  is a `SpecError` naming the address (one line and exit code 2 from the command line).
- `BodyLimits` and `BodyBudget`: request bodies are read whole, so they are bounded:
  one body at most `max_body_bytes` (413 above, from the Content-Length before anything
  is read, else while reading), and all bodies being read at once at most
  `max_buffered_bytes` together; a body that finds no room within `wait_s` is answered
  503 with `Retry-After` (`read_body`).
- `decode_json(raw)`: a JSON body, or `BadRequest` (400) with a clear message for bytes
  that are not UTF-8, not JSON, or nested too deeply to parse.

To extend: another server-wide behaviour is one more runner or app option set here, so
the three servers keep behaving alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from serving.openai_api import BadRequest, error_body
from specs.errors import SpecError

MIB = 1024 * 1024


@dataclass(frozen=True)
class BodyLimits:
    """Bounds on request bodies (see the module docstring)."""

    max_body_bytes: int = 4 * MIB
    max_buffered_bytes: int = 64 * MIB
    wait_s: float = 2.0
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or self.max_buffered_bytes < self.max_body_bytes:
            raise ValueError("need 1 <= max_body_bytes <= max_buffered_bytes")


class BodyBudget:
    """Bytes of request bodies being read at once, bounded by `max_buffered_bytes`."""

    def __init__(self, limits: BodyLimits) -> None:
        self.limits = limits
        self.in_use = 0
        self._room: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._room is None:
            self._room = asyncio.Condition()
        return self._room

    @contextlib.asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        """Hold `size` bytes of the budget while reading; `TimeoutError` when no room
        frees up within `wait_s`."""
        room = self._condition()
        limit = self.limits.max_buffered_bytes
        async with room:
            await asyncio.wait_for(room.wait_for(lambda: self.in_use + size <= limit),
                                   self.limits.wait_s)
            self.in_use += size
        try:
            yield
        finally:
            async with room:
                self.in_use -= size
                room.notify_all()


def _too_large(limit: int, size: int) -> web.HTTPException:
    message = f"request body of {size} bytes exceeds the limit of {limit}" if size else (
        f"request body exceeds the limit of {limit} bytes")
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=size, content_type="application/json",
        text=json.dumps(error_body(413, message, "RequestTooLarge")))


def _busy(retry_after_s: int) -> web.HTTPException:
    message = "too many request bodies being read at once; retry"
    return web.HTTPServiceUnavailable(
        headers={"Retry-After": str(retry_after_s)}, content_type="application/json",
        text=json.dumps(error_body(503, message, "ServiceUnavailable")))


async def read_body(request: web.Request, budget: BodyBudget) -> bytes:
    """The whole body within the limits; raises the 413 or 503 answer otherwise."""
    limits = budget.limits
    declared = request.content_length
    if declared is not None and declared > limits.max_body_bytes:
        raise _too_large(limits.max_body_bytes, declared)
    size = limits.max_body_bytes if declared is None else declared
    try:
        async with budget.reserve(size):
            return await request.read()
    except TimeoutError:
        raise _busy(limits.retry_after_s) from None
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limits.max_body_bytes, 0) from None


def decode_json(raw: bytes) -> Any:
    """Parse a JSON body (see the module docstring)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest(f"invalid JSON body: not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise BadRequest("invalid JSON body: nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from None


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner every fleetplan server uses (handlers cancelled on disconnect)."""
    return web.AppRunner(app, access_log=None, handle_signals=False,
                         handler_cancellation=True)


async def listen(runner: web.AppRunner, host: str, port: int, **site: Any) -> str:
    """Set up `runner` if needed, bind `host:port` and start; returns the base URL."""
    if runner.server is None:
        await runner.setup()
    try:
        await web.TCPSite(runner, host, port, **site).start()
    except OSError as exc:
        raise SpecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                        json_path="--port", hint="is another process using it? choose "
                        "another port (0 picks a free one)") from None
    bound = runner.addresses[-1]
    return f"http://{bound[0]}:{bound[1]}"
