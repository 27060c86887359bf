"""The `MetricsSource` Protocol: one typed snapshot of the fleet per tick.

Implementations: `collector.prometheus.PrometheusCollector` (a Prometheus server),
`collector.scrape.ScrapeCollector` (the workers' /metrics directly, the embedded default)
and `collector.recorded.RecordedSource` (a recorded run). The loop calls
`snapshot(now)` once per tick with its clock's time (Unix seconds for Prometheus) and
never gets an exception for an outage: the snapshot's status says `unavailable`.

To extend: a new source is a class with a `source` name and `snapshot(now)`; tests fake
this Protocol (or the thin client module the source wraps), never a third-party library.
"""

from __future__ import annotations

from typing import Protocol

from collector.snapshot import FleetSnapshot


class MetricsSource(Protocol):
    """Anything that produces a `FleetSnapshot` per tick."""

    source: str

    def snapshot(self, now: float) -> FleetSnapshot:
        """The fleet as seen at `now` (never raises for an unreachable source)."""
        ...
