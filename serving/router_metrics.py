"""The router's own Prometheus metrics (one `CollectorRegistry` per router, no globals).

- `fleetplan_router_requests_total{model, service_class, backend, outcome}`: finished
  requests. Outcomes: `ok`, `client_error` (a 4xx from the backend, passed through),
  `upstream_error` (a 5xx or no answer after every retry), `stream_error` (the backend
  failed after the first byte), `rejected` (429 from admission control), `no_backend`
  (unknown model or nothing to route to), `bad_request` (a body the router cannot read),
  `cancelled` (the client went away), `cached`.
- `fleetplan_router_decision_seconds`: time the policy took to choose.
- `fleetplan_router_retries_total{model, reason}`: attempts on another replica
  (`connection`, `http_5xx`, `http_429`, `empty`).
- `fleetplan_router_ejections_total{backend, reason}`: backends taken out of rotation
  (`health`, `connection`, `errors`, `heartbeat`).
- `fleetplan_router_cache_hits_total{model}`, `fleetplan_router_cache_misses_total{model}`.
- Scrape-time gauges per backend: `fleetplan_router_backend_outstanding`,
  `fleetplan_router_backend_healthy`, `fleetplan_router_backend_weight`.

Label children are cached in dicts so the hot path does one dict lookup per metric.
Exposition is text format 0.0.4, as the worker's.

To extend: add the metric in `RouterMetrics.__init__` and a method that records it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from serving.routing import Backend

__all__ = ["CONTENT_TYPE", "RouterMetrics"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""Content type of `/metrics`: text format 0.0.4 (as `serving.metrics`; see why there)."""

DECISION_BUCKETS = (1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2)


class BackendGauges(Collector):
    """Per-backend gauges read from the pool when scraped."""

    def __init__(self, backends: Callable[[], Iterable[Backend]]) -> None:
        self._backends = backends

    def collect(self) -> Iterator[Metric]:
        """Outstanding requests, health and weight of every backend."""
        labels = ["backend", "model", "variant"]
        families = {
            "outstanding": GaugeMetricFamily("fleetplan_router_backend_outstanding",
                                             "Requests in flight from this router.", labels=labels),
            "healthy": GaugeMetricFamily("fleetplan_router_backend_healthy",
                                         "1 when the backend is in rotation.", labels=labels),
            "weight": GaugeMetricFamily("fleetplan_router_backend_weight",
                                        "Router weight of the backend's variant.", labels=labels),
        }
        for b in self._backends():
            values = [b.url, b.model, b.variant]
            families["outstanding"].add_metric(values, b.outstanding)
            families["healthy"].add_metric(values, 1.0 if b.healthy else 0.0)
            families["weight"].add_metric(values, 1.0 if b.weight is None else b.weight)
        yield from families.values()


class RouterMetrics:
    """The router's metric families and cached label children."""

    def __init__(self, backends: Callable[[], Iterable[Backend]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(BackendGauges(backends))
        r = self.registry
        self._requests = Counter("fleetplan_router_requests", "Requests by outcome.",
                                 ["model", "service_class", "backend", "outcome"], registry=r)
        self.decision = Histogram("fleetplan_router_decision_seconds",
                                  "Time the routing policy took to choose, s.",
                                  buckets=DECISION_BUCKETS, registry=r)
        self._retries = Counter("fleetplan_router_retries", "Retries on another replica.",
                                ["model", "reason"], registry=r)
        self._ejections = Counter("fleetplan_router_ejections", "Backends ejected.",
                                  ["backend", "reason"], registry=r)
        self._hits = Counter("fleetplan_router_cache_hits", "Response cache hits.",
                             ["model"], registry=r)
        self._misses = Counter("fleetplan_router_cache_misses", "Response cache misses.",
                               ["model"], registry=r)
        self._children: dict[tuple[str, ...], Counter] = {}

    def _child(self, family: Counter, *labels: str) -> Counter:
        key = (str(id(family)), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child

    def request(self, model: str, service_class: str | None, backend: str, outcome: str,
                ) -> None:
        """Count one finished request."""
        self._child(self._requests, model, service_class or "", backend, outcome).inc()

    def retry(self, model: str, reason: str) -> None:
        """Count one retry."""
        self._child(self._retries, model, reason).inc()

    def ejection(self, backend: str, reason: str) -> None:
        """Count one ejection."""
        self._child(self._ejections, backend, reason).inc()

    def cache(self, model: str, hit: bool) -> None:
        """Count a cache lookup."""
        self._child(self._hits if hit else self._misses, model).inc()

    def exposition(self) -> bytes:
        """Text format 0.0.4 (serve with `CONTENT_TYPE`)."""
        return generate_latest(self.registry)
