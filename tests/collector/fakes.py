"""Fakes of the collector's own seams: `PrometheusApi` and `Fetcher` (never the libraries).

`FakePrometheus` answers exactly the queries the collector renders from its templates:
`answers[(variant, field)]` is the value of template `field` for that variant (a float,
NaN, or None for an empty answer); every other query gets an empty vector. `down=True`
raises `PrometheusUnavailable`; `broken={variant}` raises `QueryError` for that variant.

`FakeFetcher` serves /metrics pages from `pages[url]` (text) and fails for URLs in `down`.
`exposition(...)` writes a vLLM-like page from counter values, in either spelling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from collector.config import CollectorConfig, QueryTemplates
from collector.prometheus_api import PrometheusUnavailable, QueryError, Sample
from collector.promql import render
from collector.scrape import ScrapeFailed


class FakePrometheus:
    """A `PrometheusApi` with canned answers per (variant, template field)."""

    def __init__(self, config: CollectorConfig,
                 answers: Mapping[tuple[str, str], float | None],
                 down: bool = False, broken: Iterable[str] = ()) -> None:
        self.down = down
        self.queries: list[tuple[str, float | None]] = []
        self._table: dict[str, float | None] = {}
        self._broken: set[str] = set()
        for variant in config.variants:
            for name in QueryTemplates.model_fields:
                template = getattr(config.queries, name)
                if template is None:
                    continue
                promql = render(template, variant.labels, config.window_s)
                if variant.name in set(broken):
                    self._broken.add(promql)
                self._table[promql] = answers.get((variant.name, name))

    def query(self, promql: str, at_s: float | None = None) -> list[Sample]:
        self.queries.append((promql, at_s))
        if self.down:
            raise PrometheusUnavailable("connection refused")
        if promql in self._broken:
            raise QueryError("bad_data: parse error")
        value = self._table.get(promql)
        return [] if value is None else [Sample({}, value)]


class FakeFetcher:
    """A `Fetcher` serving canned pages."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.down: set[str] = set()

    def fetch(self, url: str) -> str:
        if url in self.down or url not in self.pages:
            raise ScrapeFailed(f"{url}: connection refused")
        return self.pages[url]


TTFT_BOUNDS = (0.01, 0.05, 0.1, 0.5, 1.0)


def exposition(*, success: float, prompt: float, generation: float, ttft_sum: float,
               ttft_count: float, itl_sum: float, itl_count: float, running: float,
               waiting: float, kv: float = 0.2, max_batch: int = 64,
               ttft_buckets: Iterable[float] | None = None, sep: str = ":",
               request_tokens: tuple[float, float, float] | None = None) -> str:
    """A /metrics page with vLLM's names (sep ':' or '_', the escaped spelling);
    `request_tokens` = (prompt sum, generation sum, count) of the per-request histograms."""
    p = f"vllm{sep}"
    buckets = list(ttft_buckets or [ttft_count] * len(TTFT_BOUNDS))
    lines = [
        f"# TYPE {p}request_success_total counter",
        f'{p}request_success_total{{model_name="m",finished_reason="length"}} {success}',
        f"# TYPE {p}prompt_tokens_total counter",
        f'{p}prompt_tokens_total{{model_name="m"}} {prompt}',
        f"# TYPE {p}generation_tokens_total counter",
        f'{p}generation_tokens_total{{model_name="m"}} {generation}',
        f"# TYPE {p}time_to_first_token_seconds histogram",
        *[f'{p}time_to_first_token_seconds_bucket{{le="{b}",model_name="m"}} {c}'
          for b, c in zip(TTFT_BOUNDS, buckets, strict=True)],
        f'{p}time_to_first_token_seconds_bucket{{le="+Inf",model_name="m"}} {ttft_count}',
        f'{p}time_to_first_token_seconds_sum{{model_name="m"}} {ttft_sum}',
        f'{p}time_to_first_token_seconds_count{{model_name="m"}} {ttft_count}',
        f"# TYPE {p}inter_token_latency_seconds histogram",
        f'{p}inter_token_latency_seconds_bucket{{le="+Inf",model_name="m"}} {itl_count}',
        f'{p}inter_token_latency_seconds_sum{{model_name="m"}} {itl_sum}',
        f'{p}inter_token_latency_seconds_count{{model_name="m"}} {itl_count}',
        f"# TYPE {p}num_requests_running gauge",
        f'{p}num_requests_running{{model_name="m"}} {running}',
        f"# TYPE {p}num_requests_waiting gauge",
        f'{p}num_requests_waiting{{model_name="m"}} {waiting}',
        f"# TYPE {p}kv_cache_usage_perc gauge",
        f'{p}kv_cache_usage_perc{{model_name="m"}} {kv}',
        "# TYPE fleetplan:max_batch gauge",
        f'fleetplan:max_batch{{model_name="m"}} {max_batch}',
    ]
    if request_tokens is not None:
        prompt_sum, generation_sum, count = request_tokens
        for name, total in (("request_prompt_tokens", prompt_sum),
                            ("request_generation_tokens", generation_sum)):
            lines += [f"# TYPE {p}{name} histogram",
                      f'{p}{name}_bucket{{le="+Inf",model_name="m"}} {count}',
                      f'{p}{name}_sum{{model_name="m"}} {total}',
                      f'{p}{name}_count{{model_name="m"}} {count}']
    return "\n".join(lines) + "\n"
