"""One streaming request of the load generator, timed at the client.

`send(session, target, arrival, options)` posts an OpenAI completion (or chat) request
with the arrival's prompt length, a fixed output length (`max_tokens` and vLLM's
`ignore_eos`), `stream: true` and the service-class header, reads the server-sent events
and returns a `RequestResult`: TTFT (first event with text), the gaps between events with
text (ITL samples), end-to-end time, tokens, or what went wrong.

Prompts: `ids` sends a list of token ids, whose length any OpenAI-compatible server counts
exactly (vLLM, fleetplan's worker); `text` sends CHARS_PER_TOKEN characters per token,
exact with fleetplan's tokenizer approximation and close with real tokenizers. The chat
endpoint always sends text.

To extend with another API (e.g. SGLang's native one): add a body builder and a text
extractor and select them by `ClientOptions.endpoint`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from serving.openai_api import CHARS_PER_TOKEN
from workloads.arrivals import Arrival

SERVICE_CLASS_HEADER = "x-service-class"
PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
_FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit "

Endpoint = Literal["completions", "chat"]
PromptFormat = Literal["ids", "text"]


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How requests are shaped."""

    endpoint: Endpoint = "completions"
    model: str | None = None
    """Sent as `model` when given (fleetplan's worker accepts requests without one)."""
    prompt_format: PromptFormat = "ids"
    timeout_s: float = 300.0


@dataclass(slots=True)
class RequestResult:
    """What one request did, timed at the client (seconds from the run's start)."""

    target: str
    service_class: str | None
    scheduled_s: float
    sent_s: float = 0.0
    status: int = 0
    error: str | None = None
    ttft_s: float | None = None
    e2e_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    chunks: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0

    @property
    def ok(self) -> bool:
        """Completed with status 200 and at least one token."""
        return self.error is None and self.status == 200 and self.chunks > 0


def _prompt_text(tokens: int) -> str:
    n = tokens * CHARS_PER_TOKEN
    return (_FILLER * (n // len(_FILLER) + 1))[:n]


def request_body(arrival: Arrival, options: ClientOptions) -> bytes:
    """The JSON body for one arrival."""
    body: dict[str, Any] = {}
    if options.model:
        body["model"] = options.model
    if options.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": _prompt_text(arrival.prompt_tokens)}]
    elif options.prompt_format == "text":
        body["prompt"] = _prompt_text(arrival.prompt_tokens)
    else:
        body["prompt"] = "@PROMPT@"
    body.update(max_tokens=arrival.output_tokens, ignore_eos=True, stream=True,
                stream_options={"include_usage": True})
    text = json.dumps(body)
    if body.get("prompt") == "@PROMPT@":  # a long id list is cheaper to build as text
        text = text.replace('"@PROMPT@"', "[" + ",".join(["100"] * arrival.prompt_tokens) + "]")
    return text.encode()


def _text_of(chunk: dict[str, Any], endpoint: Endpoint) -> str | None:
    choices = chunk.get("choices") or ()
    if not choices:
        return None
    if endpoint == "chat":
        return (choices[0].get("delta") or {}).get("content")
    return choices[0].get("text")


async def _read_stream(response: aiohttp.ClientResponse, result: RequestResult, start: float,
                       endpoint: Endpoint) -> None:
    last = None
    done = False
    async for line in response.content:
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            done = True
            break
        chunk = json.loads(payload)
        usage = chunk.get("usage")
        if usage:
            result.prompt_tokens = usage.get("prompt_tokens", result.prompt_tokens)
            result.output_tokens = usage.get("completion_tokens", result.output_tokens)
        if not _text_of(chunk, endpoint):
            continue
        now = time.perf_counter()
        if last is None:
            result.ttft_s = now - start
        else:
            result.itl_s.append(now - last)
        last = now
        result.chunks += 1
    if not done:
        result.error = "incomplete stream"


async def send(session: aiohttp.ClientSession, target: str, arrival: Arrival,
               options: ClientOptions, result: RequestResult, origin: float) -> RequestResult:
    """Send one request to `target` (base URL); fills and returns `result`."""
    headers = {"Content-Type": "application/json"}
    if arrival.service_class:
        headers[SERVICE_CLASS_HEADER] = arrival.service_class
    body = request_body(arrival, options)
    result.prompt_tokens, result.output_tokens = arrival.prompt_tokens, 0
    start = time.perf_counter()
    result.sent_s = start - origin
    try:
        async with session.post(target.rstrip("/") + PATHS[options.endpoint], data=body,
                                headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=options.timeout_s)) as resp:
            result.status = resp.status
            if resp.status != 200:
                result.error = f"http {resp.status}"
                await resp.read()
                return result
            await _read_stream(resp, result, start, options.endpoint)
    except TimeoutError:
        result.error = "timeout"
    except aiohttp.ClientError as exc:
        result.error = f"connection: {type(exc).__name__}"
    except ValueError:
        result.error = "bad response"
    except asyncio.CancelledError:
        result.error = "cancelled"
    result.e2e_s = time.perf_counter() - start
    if result.output_tokens == 0:
        result.output_tokens = result.chunks
    return result
