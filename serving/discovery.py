"""Where the router learns its backends: a file, the controller's plan URL (or Kubernetes,
in `serving.discovery_kubernetes`), polled by `poll_source`.

A source implements `BackendSource.fetch()`: the current backends document, or None when
nothing changed since the last fetch. It raises `SpecError` for a bad document and
`SourceUnavailable` for a transient outage (a file being replaced, an unreachable URL).

- `FileSource(path)`: re-reads the file when its modification time or size changes.
- `PlanSource(url, session)`: GETs the URL (JSON; the backends document, extra top-level
  keys such as `plan` ignored); None when the answer is the same bytes as last time.

`poll_source` applies each new document to the pool. A bad document (at a reload) is
logged and the last good one is kept; an outage is retried with exponential backoff (up
to `MAX_BACKOFF_S`) and never empties the pool. The first fetch happens before the router
starts listening (`fleetplan router` exits with code 2 on a bad document then).

To extend: a new source is a class with `name` and `async fetch()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import aiohttp

from serving.router_config import BackendsDocument, load_backends, parse_backends
from specs.errors import SpecError

LOG = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0


class SourceUnavailable(Exception):
    """The source cannot be read right now (retried)."""


class BackendSource(Protocol):
    """Something that knows the backends."""

    name: str

    async def fetch(self) -> BackendsDocument | None:
        """The current document, or None when unchanged since the last fetch."""
        ...


class FileSource:
    """A backends JSON file, re-read when it changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self._seen: tuple[int, int] | None = None

    async def fetch(self) -> BackendsDocument | None:
        """The document if the file changed (by mtime and size) since the last read."""
        try:
            stat = self.path.stat()
        except OSError as exc:
            if self._seen is None:
                raise SpecError("no such backends file", file=self.path) from None
            raise SourceUnavailable(f"{self.path}: {exc.strerror}") from None
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen == self._seen:
            return None
        document = load_backends(self.path)
        self._seen = seen
        return document


class PlanSource:
    """The controller's plan endpoint: GET, JSON backends document."""

    def __init__(self, url: str, session: aiohttp.ClientSession, timeout_s: float = 5.0,
                 ) -> None:
        self.url = url
        self.name = url
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._last: bytes | None = None

    async def fetch(self) -> BackendsDocument | None:
        """The document, or None when the endpoint answers the same bytes as last time."""
        try:
            async with self._session.get(self.url, timeout=self._timeout,
                                         allow_redirects=False) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SourceUnavailable(f"{self.url}: {type(exc).__name__} {exc}") from None
        if status != 200:
            raise SourceUnavailable(f"{self.url}: HTTP {status}")
        if body == self._last:
            return None
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise SpecError(f"not valid JSON: {exc}", file=self.url) from None
        document = parse_backends(data, self.url)
        self._last = body
        return document


async def poll_source(source: BackendSource, apply: Callable[[BackendsDocument], None],
                      interval_s: float) -> None:
    """Fetch forever (until cancelled), applying each new document (see the docstring)."""
    delay = interval_s
    while True:
        await asyncio.sleep(delay)
        try:
            document = await source.fetch()
        except SpecError as exc:
            LOG.error("keeping the last good backends: %s", exc)
            delay = interval_s
            continue
        except SourceUnavailable as exc:
            delay = min(max(delay, interval_s) * 2, MAX_BACKOFF_S)
            LOG.warning("backends source unavailable (retry in %.0f s): %s", delay, exc)
            continue
        delay = interval_s
        if document is not None:
            apply(document)
