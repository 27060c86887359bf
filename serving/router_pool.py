"""The router's backends: who serves which model, who is a candidate right now.

`BackendPool` merges two kinds of membership:

- the source's backends (a file, the plan URL or Kubernetes), replaced as a whole by
  `apply(document)` on every reload;
- backends that registered themselves (`register`), each with a heartbeat deadline;
  a backend whose deadline passes is ejected by `expire(now)` and re-admitted by its next
  heartbeat.

Each `Backend` object lives as long as its (url, model) key stays in the pool, so a
reload keeps the router's accounting of requests in flight. A backend is a candidate when
it is healthy (`ejected is None`); `eject` and `readmit` are called by the health checker
and the proxy (connection errors, repeated 5xx). `candidates(model, service_class)`
answers from a cache rebuilt on every membership or health change:

1. the model's healthy backends, or all of them when none is healthy (panic routing: a
   health signal that is wrong everywhere must not take the model down);
2. of those, the ones dedicated to the request's service class, else the ones without a
   class, else all.

No I/O and no clock reads here: the caller passes `now`.

To extend: another membership source is another caller of `apply` (see
`serving.discovery`); another candidate rule changes `_select`.
"""

from __future__ import annotations

from collections.abc import Iterable

from serving.router_config import BackendEntry, BackendsDocument
from serving.routing import Backend

Key = tuple[str, str]
GroupKey = tuple[str, str | None]


Identity = tuple[str, float | None, str | None, int | None]


def _refresh(backend: Backend, entry: BackendEntry) -> None:
    backend.variant = entry.variant_name
    backend.weight = entry.weight
    backend.service_class = entry.service_class
    backend.max_batch = entry.max_batch


def _backend(entry: BackendEntry) -> Backend:
    return Backend(url=entry.url, model=entry.model, variant=entry.variant_name,
                   weight=entry.weight, service_class=entry.service_class,
                   max_batch=entry.max_batch)


def _described(backend: Backend) -> Identity:
    """What the source says about a backend (a change rebuilds the policies)."""
    return (backend.variant, backend.weight, backend.service_class, backend.max_batch)


def _entry(entry: BackendEntry) -> Identity:
    return (entry.variant_name, entry.weight, entry.service_class, entry.max_batch)


class BackendPool:
    """Backends by (url, model), with cached candidate lists per (model, class)."""

    def __init__(self) -> None:
        self._sourced: dict[Key, Backend] = {}
        self._registered: dict[Key, Backend] = {}
        self._by_model: dict[str, list[Backend]] = {}
        self._cache: dict[tuple[str, str | None], tuple[GroupKey, list[Backend]]] = {}
        self.document_policies: dict[str, str] = {}
        self.generation = 0
        """Bumped when membership changes (the router rebuilds its policies then)."""

    # -- membership ---------------------------------------------------------------------

    def apply(self, document: BackendsDocument) -> bool:
        """Replace the source's backends; returns True if anything changed."""
        before = {k: _described(b) for k, b in self._sourced.items()}
        sourced: dict[Key, Backend] = {}
        for entry in document.backends:
            key = (entry.url, entry.model)
            backend = self._sourced.get(key) or self._registered.pop(key, None)
            if backend is None:
                backend = _backend(entry)
            _refresh(backend, entry)
            backend.heartbeat_deadline = None
            sourced[key] = backend
        after = {k: _described(b) for k, b in sourced.items()}
        changed = after != before or dict(document.policies) != self.document_policies
        self._sourced = sourced
        self.document_policies = dict(document.policies)
        if changed:
            self._membership_changed()
        return changed

    def register(self, entry: BackendEntry, now: float, ttl_s: float) -> Backend:
        """Add or refresh a self-registered backend; its heartbeat is due within `ttl_s`.
        A backend ejected for a missed heartbeat is re-admitted."""
        key = (entry.url, entry.model)
        backend = self._sourced.get(key)
        if backend is not None:  # the source already lists it: nothing to track
            return backend
        backend = self._registered.get(key)
        if backend is None:
            backend = self._registered[key] = _backend(entry)
            self._membership_changed()
        elif _described(backend) != _entry(entry):
            _refresh(backend, entry)
            self._membership_changed()
        backend.heartbeat_deadline = now + ttl_s
        if backend.ejected == "heartbeat":
            self.readmit(backend)
        return backend

    def deregister(self, url: str, model: str) -> bool:
        """Remove a self-registered backend; False if it was not registered."""
        if self._registered.pop((url.rstrip("/"), model), None) is None:
            return False
        self._membership_changed()
        return True

    def expire(self, now: float) -> list[Backend]:
        """Eject registered backends whose heartbeat is overdue; returns them."""
        late = [b for b in self._registered.values()
                if b.heartbeat_deadline is not None and b.heartbeat_deadline < now
                and b.ejected is None]
        for backend in late:
            self.eject(backend, "heartbeat")
        return late

    # -- health -------------------------------------------------------------------------

    def eject(self, backend: Backend, reason: str) -> bool:
        """Stop routing to `backend`; False if it was already ejected."""
        if backend.ejected is not None:
            return False
        backend.ejected = reason
        self._cache.clear()
        return True

    def readmit(self, backend: Backend) -> bool:
        """Route to `backend` again; False if it was not ejected."""
        if backend.ejected is None:
            return False
        backend.ejected = None
        backend.check_failures = backend.consecutive_errors = 0
        self._cache.clear()
        return True

    # -- queries ------------------------------------------------------------------------

    def backends(self) -> list[Backend]:
        """Every backend (sourced, then registered)."""
        return [*self._sourced.values(), *self._registered.values()]

    def models(self) -> list[str]:
        """Models with at least one backend, sorted."""
        return sorted(self._by_model)

    def planned(self, model: str) -> bool:
        """True when some backend of `model` carries a weight or a max batch (it comes
        from a plan, or a document written like one)."""
        return any(b.weight is not None or b.max_batch is not None
                   for b in self._by_model.get(model, ()))

    def candidates(self, model: str, service_class: str | None,
                   ) -> tuple[GroupKey, list[Backend]]:
        """(group key, backends to choose from); the list is empty for an unknown model.
        The group key names the policy instance: the model and the class the candidates
        are dedicated to (None when they serve any class)."""
        found = self._cache.get((model, service_class))
        if found is None:
            found = self._select(model, service_class)
            if len(self._cache) < 4096:  # classes come from clients: keep the cache bounded
                self._cache[(model, service_class)] = found
        return found

    def _select(self, model: str, service_class: str | None) -> tuple[GroupKey, list[Backend]]:
        members = self._by_model.get(model, [])
        healthy = [b for b in members if b.ejected is None] or members
        if service_class is not None:
            dedicated = [b for b in healthy if b.service_class == service_class]
            if dedicated:
                return (model, service_class), dedicated
        shared = [b for b in healthy if b.service_class is None]
        return (model, None), shared or healthy

    def _membership_changed(self) -> None:
        by_model: dict[str, list[Backend]] = {}
        for backend in self.backends():
            by_model.setdefault(backend.model, []).append(backend)
        self._by_model = by_model
        self._cache.clear()
        self.generation += 1


def urls(backends: Iterable[Backend]) -> list[str]:
    """Distinct URLs of `backends`, in order."""
    return list(dict.fromkeys(b.url for b in backends))
