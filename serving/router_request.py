"""What the router reads from a request body and from the answers it passes through.

The router forwards the client's body bytes unchanged; it parses the JSON once only to
learn what routing needs: `model`, `stream`, `max_tokens` (chat also
`max_completion_tokens`), the prompt size, the `user` (a fallback session key) and
whether the request is cacheable (`serving.router_cache.cacheable`). Prompt tokens use
the worker's approximation (`serving.openai_api`: characters / 4, or the length of a
token-id list); a shape the router does not understand counts one token, and the backend
decides whether it is valid.

`TokenCounter` follows a server-sent event stream as it passes: events seen (one per
token for vLLM and fleetplan's worker), the usage block's `completion_tokens` when the
stream has one, and whether `data: [DONE]` arrived. `completion_tokens(body)` reads the
same number from a non-streaming answer without parsing it.

To extend: another endpoint's prompt shape gets a branch in `_prompt_tokens`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from serving.http import decode_json
from serving.openai_api import CHARS_PER_TOKEN, BadRequest
from serving.router_cache import cacheable

_COMPLETION_TOKENS = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """The routing fields of a request body."""

    model: str | None
    stream: bool
    prompt_tokens: int
    max_tokens: int | None
    user: str | None
    cacheable: bool


def _text_tokens(chars: int) -> int:
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


def _chat_chars(messages: Any) -> int:
    chars = 0
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
    return chars


def _prompt_tokens(body: dict[str, Any]) -> int:
    if "messages" in body:
        return _text_tokens(_chat_chars(body["messages"]))
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and not isinstance(prompt[0], int):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return _text_tokens(len(prompt))
    if isinstance(prompt, list):
        return max(1, len(prompt))
    return 1


def _positive_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def parse_body(raw: bytes) -> ParsedBody:
    """The routing fields of a JSON request body; `BadRequest` if it is not a JSON object
    or `model` is not a string."""
    body = decode_json(raw)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string")
    user = body.get("user")
    return ParsedBody(
        model=model or None, stream=bool(body.get("stream", False)),
        prompt_tokens=_prompt_tokens(body),
        max_tokens=(_positive_int(body.get("max_completion_tokens"))
                    or _positive_int(body.get("max_tokens"))),
        user=user if isinstance(user, str) and user else None,
        cacheable=cacheable(body),
    )


def completion_tokens(body: bytes) -> int | None:
    """`usage.completion_tokens` of an answer, if it has one."""
    found = _COMPLETION_TOKENS.search(body)
    return int(found.group(1)) if found else None


class TokenCounter:
    """Counts the events of a server-sent event stream as its chunks pass by."""

    __slots__ = ("events", "usage_tokens", "done", "_tail")

    def __init__(self) -> None:
        self.events = 0
        self.usage_tokens: int | None = None
        self.done = False
        self._tail = b""

    def feed(self, chunk: bytes) -> int:
        """Account a chunk; returns the data events that started in it."""
        text = self._tail + chunk if self._tail else chunk
        count = text.count(b"data: {") - self._tail.count(b"data: {")
        self._tail = chunk[-16:]
        self.events += count
        if b"completion_tokens" in chunk:
            found = completion_tokens(text)
            if found is not None:
                self.usage_tokens = found
        if b"[DONE]" in text:
            self.done = True
        return count

    @property
    def output_tokens(self) -> int:
        """Tokens generated: the usage block's count, else the events seen."""
        return self.usage_tokens if self.usage_tokens is not None else self.events
