"""`PrometheusCollector`: the fleet as Prometheus sees it, over a configurable window.

For each configured variant it evaluates the query templates (`collector.config`, vLLM
or SGLang names) at the tick's time (`now`, Unix seconds) through a `PrometheusApi`
(`collector.prometheus_api`), and turns the answers into a `VariantSnapshot`:

- completions from the rate of the success counter; arrivals from completions plus the
  growth of running + waiting (`collector.estimate.arrivals`), or a router's count;
- token means from the per-request token histograms where the engine has them (vLLM),
  else as prompt/generation token rates over the completion rate (which also counts
  tokens of requests still running: fine over long windows, noisy over short ones);
- mean TTFT and ITL from the histograms' `_sum` / `_count` rates, p95 TTFT from
  `histogram_quantile`; running, waiting and KV-cache usage from `avg_over_time`;
- freshness: every figure's age is the age of the variant's newest sample; older than
  `stale_after_s` marks it stale; fewer scrape targets up than configured marks it partial.

An empty answer is `missing`, a NaN answer `nan`: neither becomes 0. If Prometheus cannot
be reached the snapshot's status is `unavailable` with every figure `unavailable` (the loop
holds the fleet); a query error affects only its variant (status `partial`). With no
variant configured, one probe query (`PROBE`) still checks that Prometheus answers, so an
outage is `unavailable` even before the fleet has a ready replica.

To extend: a new figure is a template field in `QueryTemplates` and one `_query` call in
`_variant`.
"""

from __future__ import annotations

import math

from collector.aggregate import servers_of
from collector.config import CollectorConfig, QueryTemplates, VariantConfig
from collector.estimate import arrivals, combine, ratio
from collector.prometheus_api import PrometheusApi, PrometheusUnavailable, QueryError
from collector.promql import render
from collector.snapshot import (
    VARIANT_FIGURES,
    Figure,
    FigureStatus,
    FleetSnapshot,
    SourceStatus,
    VariantSnapshot,
)


def _scaled(figure: Figure, scale: float) -> Figure:
    if not figure.known or figure.value is None:
        return figure
    return combine(figure.value * scale, figure)


def _prefer(first: Figure, fallback: Figure) -> Figure:
    return first if first.known else fallback


PROBE = "vector(1)"
"""The query that checks Prometheus answers when there is no variant to ask about."""


class PrometheusCollector:
    """`MetricsSource` over a Prometheus server (see the module docstring)."""

    source = "prometheus"

    def __init__(self, api: PrometheusApi, config: CollectorConfig) -> None:
        self.api = api
        self.config = config

    def snapshot(self, now: float) -> FleetSnapshot:
        """One tick: every configured variant at Unix time `now`."""
        if not self.config.variants:
            return self._probe(now)
        variants: list[VariantSnapshot] = []
        for variant in self.config.variants:
            try:
                variants.append(self._variant(variant, now))
            except PrometheusUnavailable as exc:
                return self._unavailable(now, str(exc))
            except QueryError as exc:
                variants.append(self._empty(variant, FigureStatus.MISSING, str(exc)))
        failed = any(v.error for v in variants)
        return FleetSnapshot(
            time_s=now, source=self.source,
            status=SourceStatus.PARTIAL if failed else SourceStatus.OK,
            error="; ".join(v.error for v in variants if v.error) or None,
            variants=tuple(variants), servers=servers_of(variants),
        )

    # -- one variant --------------------------------------------------------------------

    def _query(self, template: str | None, variant: VariantConfig, now: float) -> Figure:
        if template is None:
            return Figure.missing()
        promql = render(template, variant.labels, self.config.window_s)
        samples = self.api.query(promql, now)
        if not samples:
            return Figure.missing()
        if len(samples) > 1:
            raise QueryError(f"expected one series, got {len(samples)} (query: {promql})")
        value = samples[0].value
        return Figure.ok(value) if math.isfinite(value) else Figure.nan()

    def _variant(self, variant: VariantConfig, now: float) -> VariantSnapshot:
        q = self.config.queries
        raw = {name: self._query(getattr(q, name), variant, now)
               for name in QueryTemplates.model_fields}
        completions = raw["completions"]
        figures = {
            "arrival_rate_rps": arrivals(completions, raw["queue_growth"],
                                         raw["router_arrivals"] if q.router_arrivals else None),
            "completion_rate_rps": completions,
            "in_tokens": _prefer(raw["in_tokens_mean"], ratio(raw["prompt_tokens"], completions)),
            "out_tokens": _prefer(raw["out_tokens_mean"],
                                  ratio(raw["generation_tokens"], completions)),
            "ttft_mean_ms": _scaled(raw["ttft_mean"], 1000.0),
            "ttft_p95_ms": _scaled(raw["ttft_p95"], 1000.0),
            "itl_mean_ms": _scaled(raw["itl_mean"], 1000.0),
            "running": raw["running"], "waiting": raw["waiting"],
            "kv_cache_usage": raw["kv_cache_usage"], "replicas": raw["replicas"],
            "max_batch": raw["max_batch"] if raw["max_batch"].known or variant.max_batch is None
            else Figure.ok(float(variant.max_batch)),
        }
        figures = self._freshness(figures, raw, now)
        return VariantSnapshot(name=variant.name, server=variant.server, model=variant.model,
                               accelerator=variant.accelerator, window_s=self.config.window_s,
                               **figures)

    def _freshness(self, figures: dict[str, Figure], raw: dict[str, Figure], now: float,
                   ) -> dict[str, Figure]:
        last = raw["last_sample"]
        age = max(now - last.value, 0.0) if last.known and last.value is not None else None
        status = FigureStatus.OK
        if age is not None and age > self.config.stale_after_s:
            status = FigureStatus.STALE
        up, total = raw["targets_up"], raw["targets"]
        if up.known and total.known and (up.value or 0.0) < (total.value or 0.0):
            status = FigureStatus.PARTIAL if status == FigureStatus.OK else status
        out = {}
        for name, figure in figures.items():
            if figure.known and status != FigureStatus.OK:
                figure = figure.with_status(status)
            out[name] = figure.model_copy(update={"age_s": age}) if figure.known else figure
        return out

    def _probe(self, now: float) -> FleetSnapshot:
        """No variant to query: `ok` (and empty) only if Prometheus answers."""
        try:
            self.api.query(PROBE, now)
        except PrometheusUnavailable as exc:
            return self._unavailable(now, str(exc))
        except QueryError as exc:
            return self._unavailable(now, f"probe query failed: {exc}")
        return FleetSnapshot(time_s=now, source=self.source, status=SourceStatus.OK)

    # -- failures -----------------------------------------------------------------------

    def _empty(self, variant: VariantConfig, status: FigureStatus, error: str,
               ) -> VariantSnapshot:
        figure = Figure(status=status)
        return VariantSnapshot(
            name=variant.name, server=variant.server, model=variant.model,
            accelerator=variant.accelerator, window_s=self.config.window_s, error=error,
            **{name: figure for name in VARIANT_FIGURES})

    def _unavailable(self, now: float, error: str) -> FleetSnapshot:
        variants = tuple(self._empty(v, FigureStatus.UNAVAILABLE, error)
                         for v in self.config.variants)
        return FleetSnapshot(time_s=now, source=self.source, status=SourceStatus.UNAVAILABLE,
                             error=error, variants=variants, servers=servers_of(variants))
