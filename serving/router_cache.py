"""The router's optional exact-match response cache: an LRU with a time to live.

Only deterministic answers are cached: non-streaming requests with `temperature` exactly
0 (an absent temperature defaults to 1 in the OpenAI API) and `n` at most 1, answered 200.
The key is the endpoint path and the request body's bytes (exact match: the same JSON
written differently is a different key); the value is the answer's body and content
type. Entries expire `ttl_s` after they were stored; the least recently used entry goes
when the cache is full. Time is passed in (`now`), so tests run on a fake clock. A hit
is answered with `reissued`: the stored body under a new `id` and `created` (ids stay
unique per answer, as the OpenAI API has them).

To extend: a semantic or prefix cache would be another class with `get` / `put`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A stored answer."""

    body: bytes
    content_type: str
    expires: float


def cacheable(body: dict[str, Any]) -> bool:
    """True for a non-streaming, temperature-0, single-choice request."""
    temperature = body.get("temperature")
    n = body.get("n", 1)
    return (not body.get("stream") and isinstance(temperature, int | float)
            and not isinstance(temperature, bool) and temperature == 0
            and (n is None or n == 1))


def reissued(body: bytes) -> bytes:
    """A cached JSON answer with a fresh `id` (same prefix, e.g. `cmpl-`) and `created`;
    a body that is not a JSON object with an `id` is returned as it is."""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
        return body
    prefix = answer["id"].split("-", 1)[0] if "-" in answer["id"] else "cmpl"
    answer["id"] = f"{prefix}-{uuid.uuid4().hex}"
    if "created" in answer:
        answer["created"] = int(time.time())
    return json.dumps(answer).encode()


class ResponseCache:
    """LRU of (path, body bytes) -> answer, each entry valid for `ttl_s`."""

    def __init__(self, max_entries: int, ttl_s: float, max_body_bytes: int = 1 << 20) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.max_body_bytes = max_body_bytes
        self._entries: OrderedDict[tuple[str, bytes], CachedResponse] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str, body: bytes, now: float) -> CachedResponse | None:
        """The stored answer, if present and not expired."""
        key = (path, body)
        found = self._entries.get(key)
        if found is None:
            return None
        if found.expires <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return found

    def put(self, path: str, body: bytes, answer: bytes, content_type: str, now: float,
            ) -> None:
        """Store an answer (too large an answer is not stored)."""
        if self.max_entries <= 0 or len(answer) > self.max_body_bytes:
            return
        key = (path, body)
        self._entries[key] = CachedResponse(answer, content_type, now + self.ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
