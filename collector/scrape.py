"""`ScrapeCollector`: the embedded default, reading the workers' `/metrics` directly.

No Prometheus server: for each configured variant it fetches `/metrics` of every replica
URL (through a `Fetcher`; `HttpFetcher` uses urllib), keeps the scrape of the previous
snapshot as the baseline, and computes the same figures `PrometheusCollector` asks
Prometheus for, over the interval since that baseline:

- rates from counter increases (a counter that went down restarted: its increase is its
  value), means from histogram `_sum` / `_count` increases (token means from the
  per-request token histograms when the engine has them, else token counters over
  completions), p95 TTFT from bucket increases;
- running, waiting and KV-cache usage as the mean of the gauge readings taken in the
  interval: the two ends, plus any taken by `sample(now)` between snapshots (call it every
  few seconds for a better mean);
- arrivals from completions plus the growth of running + waiting.

The first snapshot has no baseline: its rates and means are `missing`, gauges are read.
A replica that does not answer makes its variant `partial` (figures from the others); a
variant with no replica answering is `unavailable`. Nothing becomes 0 for lack of data.
The collector keeps the baseline between calls (not persisted: after a restart the first
snapshot again has no rates).

To extend: another figure is one more entry in `_rates` or `_gauges`, with its name in
`collector.config.MetricNames`.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from collector.aggregate import servers_of
from collector.config import CollectorConfig, MetricNames, VariantConfig
from collector.estimate import arrivals, bucket_quantile, ratio
from collector.exposition import ExpositionError, Scrape, parse_exposition
from collector.snapshot import (
    VARIANT_FIGURES,
    Figure,
    FigureStatus,
    FleetSnapshot,
    SourceStatus,
    VariantSnapshot,
)


class ScrapeFailed(Exception):
    """A replica's /metrics could not be read."""


class Fetcher(Protocol):
    """Reads one /metrics page."""

    def fetch(self, url: str) -> str:
        """The text of `url` + '/metrics' (raises `ScrapeFailed`)."""
        ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect is an error: scrape only the configured URL


@dataclass(frozen=True)
class HttpFetcher:
    """`Fetcher` over urllib, with a timeout; follows no redirects."""

    timeout_s: float = 2.0

    def fetch(self, url: str) -> str:
        """GET url/metrics."""
        try:
            opener = urllib.request.build_opener(_NoRedirect)
            with opener.open(url.rstrip("/") + "/metrics", timeout=self.timeout_s) as response:
                return response.read().decode("utf-8")
        except (OSError, urllib.error.URLError, UnicodeDecodeError) as exc:
            raise ScrapeFailed(f"{url}: {exc}") from exc


@dataclass
class _Replica:
    """Baseline and gauge readings of one replica URL."""

    baseline: Scrape | None = None
    readings: list[Scrape] = field(default_factory=list)


def _increase(now: Scrape, before: Scrape, name: str) -> float | None:
    current, previous = now.value(name), before.value(name)
    if current is None or previous is None:
        return None
    return current if current < previous else current - previous


def _first(scrape: Scrape, names: Sequence[str], suffix: str = "") -> str | None:
    return next((n for n in names if scrape.value(n + suffix) is not None), None)


_PER_SECOND = ("completions", "prompt", "generation", "growth")


def _increases(names: MetricNames, now: Scrape, before: Scrape) -> dict[str, float] | None:
    """One replica's increases since its baseline (rates for `_PER_SECOND` keys); None if
    a required series is missing. Per-request token histograms are optional."""
    span = now.time_s - before.time_s
    itl = _first(now, names.itl, "_count") or names.itl[0]
    required = {"completions": names.completions, "prompt": names.prompt_tokens,
                "generation": names.generation_tokens, "ttft_sum": names.ttft + "_sum",
                "ttft_count": names.ttft + "_count", "itl_sum": itl + "_sum",
                "itl_count": itl + "_count"}
    optional = {}
    for key, base in (("req_prompt", names.request_prompt_tokens),
                      ("req_generation", names.request_generation_tokens)):
        if base is not None:
            optional.update({f"{key}_sum": base + "_sum", f"{key}_count": base + "_count"})
    found = {k: _increase(now, before, n) for k, n in {**required, **optional}.items()}
    if any(found[k] is None for k in required):
        return None
    held = [sum(s.value(n) or 0.0 for n in (names.running, names.waiting)) for s in (now, before)]
    found["growth"] = held[0] - held[1]
    return {k: (v / span if k in _PER_SECOND else v) for k, v in found.items() if v is not None}


class ScrapeCollector:
    """`MetricsSource` scraping replicas directly (see the module docstring)."""

    source = "scrape"

    def __init__(self, config: CollectorConfig, fetcher: Fetcher | None = None) -> None:
        self.config = config
        self.fetcher = fetcher or HttpFetcher()
        self._replicas: dict[str, _Replica] = {}

    def _read(self, url: str, now: float) -> Scrape | None:
        try:
            return parse_exposition(self.fetcher.fetch(url), now)
        except (ScrapeFailed, ExpositionError):
            return None

    def sample(self, now: float) -> None:
        """Take a gauge reading of every replica (between snapshots)."""
        for variant in self.config.variants:
            for url in variant.urls:
                scrape = self._read(url, now)
                if scrape is not None:
                    self._replicas.setdefault(url, _Replica()).readings.append(scrape)

    def snapshot(self, now: float) -> FleetSnapshot:
        """Scrape every replica and compute figures since the previous snapshot."""
        variants = tuple(self._variant(v, now) for v in self.config.variants)
        down = [v for v in variants if v.error]
        status = SourceStatus.OK
        if down:
            everything = len(down) == len(variants) and all(
                v.replicas.status == FigureStatus.UNAVAILABLE for v in down)
            status = SourceStatus.UNAVAILABLE if everything else SourceStatus.PARTIAL
        return FleetSnapshot(time_s=now, source=self.source, status=status,
                             error="; ".join(v.error or "" for v in down) or None,
                             variants=variants, servers=servers_of(variants))

    # -- one variant --------------------------------------------------------------------

    def _variant(self, variant: VariantConfig, now: float) -> VariantSnapshot:
        pairs: list[tuple[Scrape, _Replica]] = []
        failed = []
        for url in variant.urls:
            scrape = self._read(url, now)
            replica = self._replicas.setdefault(url, _Replica())
            if scrape is None:
                failed.append(url)
                continue
            pairs.append((scrape, replica))
        figures = self._figures(variant, pairs)
        window = self._window(pairs)
        for scrape, replica in pairs:  # the new baseline
            replica.baseline, replica.readings = scrape, [scrape]
        error = f"no answer from {', '.join(failed)}" if failed else None
        if not pairs:
            status = FigureStatus.UNAVAILABLE if variant.urls else FigureStatus.MISSING
            figures = {name: Figure(status=status) for name in VARIANT_FIGURES}
        elif failed:
            figures = {n: f.with_status(FigureStatus.PARTIAL) if f.known else f
                       for n, f in figures.items()}
        return VariantSnapshot(name=variant.name, server=variant.server, model=variant.model,
                               accelerator=variant.accelerator, window_s=window,
                               error=error, **figures)

    def _window(self, pairs: list[tuple[Scrape, _Replica]]) -> float:
        spans = [s.time_s - r.baseline.time_s for s, r in pairs
                 if r.baseline is not None and s.time_s > r.baseline.time_s]
        return max(spans) if spans else self.config.window_s

    def _figures(self, variant: VariantConfig, pairs: list[tuple[Scrape, _Replica]],
                 ) -> dict[str, Figure]:
        names = self.config.metric_names
        figures = self._gauges(names, pairs)
        figures.update(self._rates(names, pairs))
        figures["replicas"] = Figure.ok(float(len(pairs)), 0.0)
        if not figures["max_batch"].known and variant.max_batch is not None:
            figures["max_batch"] = Figure.ok(float(variant.max_batch), 0.0)
        return figures

    def _gauges(self, names: MetricNames, pairs: list[tuple[Scrape, _Replica]],
                ) -> dict[str, Figure]:
        def mean_of(name: str | None) -> Figure:
            per_replica = []
            for scrape, replica in pairs:
                values = [r.value(name) for r in (*replica.readings, scrape)] if name else []
                values = [v for v in values if v is not None]
                if values:
                    per_replica.append(sum(values) / len(values))
            if not per_replica:
                return Figure.missing()
            return Figure.ok(sum(per_replica) / len(per_replica), 0.0)

        kv = _first(pairs[0][0], names.kv_cache_usage) if pairs else None
        return {"running": mean_of(names.running), "waiting": mean_of(names.waiting),
                "kv_cache_usage": mean_of(kv), "max_batch": mean_of(names.max_batch)}

    def _rates(self, names: MetricNames, pairs: list[tuple[Scrape, _Replica]],
               ) -> dict[str, Figure]:
        per_replica: list[dict[str, float]] = []
        buckets: dict[float, float] = {}
        for scrape, replica in pairs:
            before = replica.baseline
            if before is None or scrape.time_s <= before.time_s:
                continue
            increases = _increases(names, scrape, before)
            if increases is not None:
                per_replica.append(increases)
                self._add_buckets(buckets, scrape, before, names.ttft)
        if not per_replica:
            return {}
        usable = len(per_replica)
        shared = set.intersection(*(set(r) for r in per_replica))  # keys every replica has
        sums = {key: sum(r[key] for r in per_replica) for key in shared}
        return self._rate_figures(sums, buckets, partial=usable < len(pairs))

    @staticmethod
    def _add_buckets(total: dict[float, float], now: Scrape, before: Scrape, name: str) -> None:
        earlier = dict(before.histogram(name))
        for bound, count in now.histogram(name):
            previous = earlier.get(bound, 0.0)
            total[bound] = total.get(bound, 0.0) + (count if count < previous
                                                    else count - previous)

    @staticmethod
    def _rate_figures(sums: dict[str, float], buckets: dict[float, float],
                      partial: bool) -> dict[str, Figure]:
        def ok(key: str) -> Figure:
            figure = Figure.ok(sums[key], 0.0)
            return figure.with_status(FigureStatus.PARTIAL) if partial else figure

        def tokens(histogram: str, counter: str) -> Figure:
            if f"{histogram}_count" in sums and f"{histogram}_sum" in sums:
                return ratio(ok(f"{histogram}_sum"), ok(f"{histogram}_count"))
            return ratio(ok(counter), completions)

        completions = ok("completions")
        p95 = bucket_quantile(0.95, list(buckets.items()))
        return {
            "completion_rate_rps": completions,
            "arrival_rate_rps": arrivals(completions, ok("growth")),
            "in_tokens": tokens("req_prompt", "prompt"),
            "out_tokens": tokens("req_generation", "generation"),
            "ttft_mean_ms": ratio(ok("ttft_sum"), ok("ttft_count"), 1000.0),
            "itl_mean_ms": ratio(ok("itl_sum"), ok("itl_count"), 1000.0),
            "ttft_p95_ms": (ok("ttft_count").model_copy(update={"value": p95 * 1000.0})
                            if math.isfinite(p95) else Figure.nan(0.0)),
        }
