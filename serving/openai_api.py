"""The OpenAI-compatible request and response shapes of the emulated worker.

`parse_request(kind, body)` turns a `/v1/completions` or `/v1/chat/completions` JSON body
into a `GenerationRequest` (how many prompt tokens, how many to generate, streaming or
not); anything malformed raises `BadRequest` (HTTP 400). `ResponseWriter` renders the
answer: one server-sent event per generated token, or one JSON body.

Prompt length (the tokenizer approximation): a text prompt counts
ceil(characters / CHARS_PER_TOKEN) tokens, at least 1 (English averages about four
characters per token with BPE tokenizers). For exact lengths send the prompt as a list of
token ids (`"prompt": [1, 2, 3]`, as vLLM and the OpenAI API accept): its length is the
count. Chat prompts count the characters of every message's text content (no per-message
overhead, so a client can fix the length exactly).

Output length: `max_tokens` (chat also `max_completion_tokens`), default
`default_max_tokens`. The emulated model never emits an end-of-sequence token, so it
always generates exactly that many; `ignore_eos` (vLLM's field) is accepted and changes
nothing. The text is synthetic: one word per token.

Log probabilities: the synthetic text has none, so a request asking for them
(completions: `logprobs` set, even to 0; chat: `logprobs: true` or `top_logprobs` set) is
a 400 naming the field, never an answer with `"logprobs": null` the client would have to
notice.

To extend with another endpoint: add a parser returning `GenerationRequest` and the
response shape in `ResponseWriter`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

CHARS_PER_TOKEN = 4
"""Characters per token of the tokenizer approximation."""

WORDS = (" lorem", " ipsum", " dolor", " sit", " amet", " consectetur", " adipiscing", " elit")
"""The synthetic output text: token i is WORDS[i % len(WORDS)]."""

_WORDS_JSON = tuple(json.dumps(w) for w in WORDS)

Kind = Literal["completion", "chat"]


class BadRequest(ValueError):
    """A malformed request body (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What the worker needs from a request body."""

    kind: Kind
    model: str | None
    prompt_tokens: int
    max_tokens: int
    stream: bool
    include_usage: bool


def text_tokens(text: str) -> int:
    """Tokens of a text by the approximation: ceil(len / CHARS_PER_TOKEN), at least 1."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def _is_token_ids(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value)


def _prompt_tokens(prompt: Any) -> int:
    if isinstance(prompt, str):
        return text_tokens(prompt)
    if _is_token_ids(prompt):
        if not prompt:
            raise BadRequest("'prompt' must not be empty")
        return len(prompt)
    if isinstance(prompt, list) and len(prompt) == 1:
        return _prompt_tokens(prompt[0])
    if isinstance(prompt, list):
        raise BadRequest("batched prompts are not supported: send one prompt per request")
    raise BadRequest("'prompt' must be a string or a list of token ids")


def _content_chars(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(p.get("text", "")) for p in content if isinstance(p, dict))
    raise BadRequest("message 'content' must be a string or a list of parts")


def _chat_tokens(messages: Any) -> int:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    if not all(isinstance(m, dict) for m in messages):
        raise BadRequest("every message must be an object")
    chars = sum(_content_chars(m.get("content")) for m in messages)
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


def _int_field(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest(f"'{name}' must be an integer >= 1, got {value!r}")
    return value


def _reject_logprobs(kind: Kind, body: dict[str, Any]) -> None:
    """`BadRequest` when the body asks for log probabilities (see the module docstring)."""
    if kind == "chat":
        asked = [name for name in ("logprobs", "top_logprobs")
                 if body.get(name) not in (None, False)]
    else:
        asked = ["logprobs"] if body.get("logprobs") is not None else []
    if asked:
        raise BadRequest(f"'{asked[0]}' is not supported: the emulated worker generates "
                         "synthetic text without token log probabilities")


def parse_request(kind: Kind, body: Any, default_max_tokens: int) -> GenerationRequest:
    """Validate a request body; raises `BadRequest` naming the offending field."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    _reject_logprobs(kind, body)
    if kind == "chat":
        prompt_tokens = _chat_tokens(body.get("messages"))
        max_tokens = _int_field(body, "max_completion_tokens", None)
    else:
        if "prompt" not in body:
            raise BadRequest("missing field 'prompt'")
        prompt_tokens = _prompt_tokens(body["prompt"])
        max_tokens = None
    max_tokens = max_tokens or _int_field(body, "max_tokens", default_max_tokens)
    if _int_field(body, "n", 1) != 1:
        raise BadRequest("only n = 1 is supported")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object")
    return GenerationRequest(
        kind=kind, model=model, prompt_tokens=prompt_tokens, max_tokens=int(max_tokens or 1),
        stream=bool(body.get("stream", False)),
        include_usage=bool(options.get("include_usage", False)),
    )


def error_body(status: int, message: str, kind: str) -> dict[str, Any]:
    """An OpenAI/vLLM-style error object."""
    return {"object": "error", "message": message, "type": kind, "param": None, "code": status}


class ResponseWriter:
    """Renders one request's answer; the per-token event is pre-split for speed."""

    def __init__(self, kind: Kind, request_id: str, model: str, created: int) -> None:
        self.kind = kind
        self.request_id = request_id
        self.model = model
        self.created = created
        head = {"id": request_id, "object": self._object(stream=True), "created": created,
                "model": model}
        self._head = "data: " + json.dumps(head)[:-1] + ', "choices": [{"index": 0, '

    def _object(self, stream: bool) -> str:
        if self.kind == "chat":
            return "chat.completion.chunk" if stream else "chat.completion"
        return "text_completion"

    def events(self, start: int, count: int, last: int) -> bytes:
        """Server-sent events for tokens start .. start+count-1 (token `last` ends it)."""
        parts = []
        for i in range(start, start + count):
            word = _WORDS_JSON[i % len(WORDS)]
            reason = '"length"' if i == last else "null"
            if self.kind == "chat":
                role = '"role": "assistant", ' if i == 0 else ""
                body = f'"delta": {{{role}"content": {word}}}, "logprobs": null, '
            else:
                body = f'"text": {word}, "logprobs": null, '
            parts.append(f"{self._head}{body}\"finish_reason\": {reason}}}]}}\n\n")
        return "".join(parts).encode()

    def end_of_stream(self, usage: dict[str, int] | None) -> bytes:
        """The optional usage event and `data: [DONE]`."""
        text = ""
        if usage is not None:
            chunk = {"id": self.request_id, "object": self._object(stream=True),
                     "created": self.created, "model": self.model, "choices": [],
                     "usage": usage}
            text = f"data: {json.dumps(chunk)}\n\n"
        return (text + "data: [DONE]\n\n").encode()

    def full(self, tokens: int, usage: dict[str, int]) -> dict[str, Any]:
        """The non-streaming response body."""
        text = "".join(WORDS[i % len(WORDS)] for i in range(tokens))
        if self.kind == "chat":
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                      "logprobs": None, "finish_reason": "length"}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        return {"id": self.request_id, "object": self._object(stream=False),
                "created": self.created, "model": self.model, "choices": [choice],
                "usage": usage}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The OpenAI usage object."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
