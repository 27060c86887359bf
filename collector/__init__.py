"""collector: see the fleet as it is, as one typed snapshot per tick.

Load per variant and per server (arrival and completion rates, token means), latency
(mean and p95 TTFT, mean ITL), occupancy (running, waiting, KV cache), replicas, each
figure with a status and an age, so "unknown" is never read as 0.

Layout: `snapshot` (the typed snapshot), `source` (the `MetricsSource` Protocol),
`config` (variants, PromQL templates and metric names, vLLM and SGLang presets),
`promql` (template rendering), `prometheus_api` (the only module importing
prometheus-api-client), `prometheus` (`PrometheusCollector`), `exposition` and `scrape`
(`ScrapeCollector`, the embedded default reading workers' /metrics), `estimate` (arrivals,
ratios, quantiles), `aggregate` (per-server figures), `recorded` (record and replay JSON
lines), `observations` (snapshot -> tuner observations). Imports `tuner`, `specs`; never
`serving` or `controller`.

To extend: a new source implements `collector.source.MetricsSource`.
"""

from collector.config import CollectorConfig, MetricNames, QueryTemplates, VariantConfig
from collector.observations import Skipped, observation_of, observations_of
from collector.prometheus import PrometheusCollector
from collector.prometheus_api import (
    PrometheusApi,
    PrometheusConnectApi,
    PrometheusUnavailable,
    QueryError,
    Sample,
)
from collector.recorded import RecordedSource, SnapshotRecorder
from collector.scrape import Fetcher, HttpFetcher, ScrapeCollector, ScrapeFailed
from collector.snapshot import (
    Figure,
    FigureStatus,
    FleetSnapshot,
    ServerSnapshot,
    SourceStatus,
    VariantSnapshot,
)
from collector.source import MetricsSource

__all__ = [
    "CollectorConfig", "Fetcher", "Figure", "FigureStatus", "FleetSnapshot", "HttpFetcher",
    "MetricNames", "MetricsSource", "PrometheusApi", "PrometheusCollector",
    "PrometheusConnectApi", "PrometheusUnavailable", "QueryError", "QueryTemplates",
    "RecordedSource", "Sample", "ScrapeCollector", "ScrapeFailed", "ServerSnapshot",
    "Skipped", "SnapshotRecorder", "SourceStatus", "VariantConfig", "VariantSnapshot",
    "observation_of", "observations_of",
]
