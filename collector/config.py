"""Configuration of the collectors: which variants to watch and the queries that read them.

A `VariantConfig` names a variant (a Deployment or a local worker group), the server,
model and accelerator it serves, and how to find its replicas: Prometheus label matchers
(`labels`, e.g. namespace and a deployment/pod label) for `PrometheusCollector`, and
`/metrics` base URLs (`urls`) for `ScrapeCollector`.

`QueryTemplates` are the PromQL queries, as configuration. Two placeholders:
`[[metric:name]]` becomes a series selector that matches the metric under both spellings
(`vllm:x` and `vllm_x`, the OpenMetrics underscore escaping of prometheus/client_python
#1177) plus the variant's label matchers, and `$window` the collection window (e.g. `60s`).
Latency queries must return seconds; rates per second; gauges as means per replica.
Presets: `vllm` and `sglang` (`PRESETS`). `MetricNames` are the plain names the
embedded `ScrapeCollector` reads, with the same presets (`NAME_PRESETS`).

To extend: a new figure is one more template field (optional with None when an engine
lacks it) read in `collector.prometheus`; a new engine is one more preset.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _ratio(name: str) -> str:
    return (f"sum(rate([[{name}_sum]][$window])) / sum(rate([[{name}_count]][$window]))")


def _quantile(name: str, q: float) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate([[{name}_bucket]][$window])))"


class QueryTemplates(_Config):
    """PromQL templates for one engine's metric names (see the module docstring)."""

    completions: str = Field(description="Completed requests per second (all replicas).")
    prompt_tokens: str = Field(description="Prompt tokens per second (all replicas).")
    generation_tokens: str = Field(description="Generated tokens per second (all replicas).")
    in_tokens_mean: str | None = Field(
        None, description="Mean prompt tokens per finished request (a per-request histogram); "
        "preferred to prompt_tokens / completions, which counts tokens of requests still "
        "running and is noisy over short windows.")
    out_tokens_mean: str | None = Field(
        None, description="Mean generated tokens per finished request (per-request histogram).")
    ttft_mean: str = Field(description="Mean TTFT, seconds.")
    ttft_p95: str = Field(description="95th percentile of TTFT, seconds.")
    itl_mean: str = Field(description="Mean ITL, seconds.")
    running: str = Field(description="Mean running requests per replica over the window.")
    waiting: str = Field(description="Mean waiting requests per replica over the window.")
    queue_growth: str = Field(description="Growth of running + waiting, requests per second "
                              "(all replicas); arrivals = completions + growth.")
    kv_cache_usage: str | None = Field(None, description="Mean KV-cache usage (fraction).")
    replicas: str = Field(description="Replicas reporting now.")
    targets_up: str | None = Field(None, description="Scrape targets up (sum of `up`).")
    targets: str | None = Field(None, description="Scrape targets configured (count of `up`).")
    last_sample: str = Field(description="Unix time (s) of the newest sample of the variant.")
    max_batch: str | None = Field(None, description="Max batch size, if the engine exports it.")
    router_arrivals: str | None = Field(
        None, description="Arrivals per second counted by a router in front of the variant; "
        "used instead of completions plus queue growth when it answers.")


VLLM = QueryTemplates(
    completions="sum(rate([[vllm:request_success_total]][$window]))",
    prompt_tokens="sum(rate([[vllm:prompt_tokens_total]][$window]))",
    generation_tokens="sum(rate([[vllm:generation_tokens_total]][$window]))",
    in_tokens_mean=_ratio("vllm:request_prompt_tokens"),
    out_tokens_mean=_ratio("vllm:request_generation_tokens"),
    ttft_mean=_ratio("vllm:time_to_first_token_seconds"),
    ttft_p95=_quantile("vllm:time_to_first_token_seconds", 0.95),
    itl_mean=f"({_ratio('vllm:inter_token_latency_seconds')}) or "
    f"({_ratio('vllm:time_per_output_token_seconds')})",
    running="avg(avg_over_time([[vllm:num_requests_running]][$window]))",
    waiting="avg(avg_over_time([[vllm:num_requests_waiting]][$window]))",
    queue_growth="sum(deriv([[vllm:num_requests_waiting]][$window])) + "
    "sum(deriv([[vllm:num_requests_running]][$window]))",
    kv_cache_usage="(avg(avg_over_time([[vllm:kv_cache_usage_perc]][$window]))) or "
    "(avg(avg_over_time([[vllm:gpu_cache_usage_perc]][$window])))",
    replicas="count([[vllm:num_requests_running]])",
    targets_up="sum([[up]])",
    targets="count([[up]])",
    last_sample="max(timestamp([[vllm:num_requests_running]]))",
    max_batch="max([[fleetplan:max_batch]])",
)
"""vLLM's metric names (v1; the ITL falls back to the older time_per_output_token)."""

SGLANG = QueryTemplates(
    completions="sum(rate([[sglang:num_requests_total]][$window]))",
    prompt_tokens="sum(rate([[sglang:prompt_tokens_total]][$window]))",
    generation_tokens="sum(rate([[sglang:generation_tokens_total]][$window]))",
    ttft_mean=_ratio("sglang:time_to_first_token_seconds"),
    ttft_p95=_quantile("sglang:time_to_first_token_seconds", 0.95),
    itl_mean=f"({_ratio('sglang:inter_token_latency_seconds')}) or "
    f"({_ratio('sglang:time_per_output_token_seconds')})",
    running="avg(avg_over_time([[sglang:num_running_reqs]][$window]))",
    waiting="avg(avg_over_time([[sglang:num_queue_reqs]][$window]))",
    queue_growth="sum(deriv([[sglang:num_queue_reqs]][$window])) + "
    "sum(deriv([[sglang:num_running_reqs]][$window]))",
    kv_cache_usage="avg(avg_over_time([[sglang:token_usage]][$window]))",
    replicas="count([[sglang:num_running_reqs]])",
    targets_up="sum([[up]])",
    targets="count([[up]])",
    last_sample="max(timestamp([[sglang:num_running_reqs]]))",
)
"""SGLang's metric names (`--enable-metrics`)."""

PRESETS = {"vllm": VLLM, "sglang": SGLANG}


class MetricNames(_Config):
    """Metric names `ScrapeCollector` reads from `/metrics` (either spelling matches)."""

    completions: str = Field(description="Counter of completed requests.")
    prompt_tokens: str = Field(description="Counter of prompt tokens.")
    generation_tokens: str = Field(description="Counter of generated tokens.")
    request_prompt_tokens: str | None = Field(None, description="Histogram of prompt tokens "
                                              "per finished request (preferred for the mean).")
    request_generation_tokens: str | None = Field(None, description="Histogram of generated "
                                                  "tokens per finished request.")
    ttft: str = Field(description="TTFT histogram (seconds), without _sum/_count/_bucket.")
    itl: tuple[str, ...] = Field(description="ITL histograms (seconds), first one present wins.")
    running: str = Field(description="Gauge of running requests.")
    waiting: str = Field(description="Gauge of waiting requests.")
    kv_cache_usage: tuple[str, ...] = Field((), description="Gauges of KV-cache usage, first "
                                            "one present wins.")
    max_batch: str | None = Field(None, description="Gauge of the max batch, if exported.")


VLLM_NAMES = MetricNames(
    completions="vllm:request_success_total", prompt_tokens="vllm:prompt_tokens_total",
    generation_tokens="vllm:generation_tokens_total",
    request_prompt_tokens="vllm:request_prompt_tokens",
    request_generation_tokens="vllm:request_generation_tokens",
    ttft="vllm:time_to_first_token_seconds",
    itl=("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
    running="vllm:num_requests_running", waiting="vllm:num_requests_waiting",
    kv_cache_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    max_batch="fleetplan:max_batch",
)
SGLANG_NAMES = MetricNames(
    completions="sglang:num_requests_total", prompt_tokens="sglang:prompt_tokens_total",
    generation_tokens="sglang:generation_tokens_total",
    ttft="sglang:time_to_first_token_seconds",
    itl=("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"),
    running="sglang:num_running_reqs", waiting="sglang:num_queue_reqs",
    kv_cache_usage=("sglang:token_usage",),
)
NAME_PRESETS = {"vllm": VLLM_NAMES, "sglang": SGLANG_NAMES}

Label = Annotated[str, Field(min_length=1, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")]


class VariantConfig(_Config):
    """One variant to watch."""

    name: str = Field(min_length=1, description="Variant name, unique in the configuration.")
    server: str | None = Field(None, description="Server this variant serves.")
    model: str = Field(min_length=1, description="Model served.")
    accelerator: str = Field(min_length=1, description="Accelerator its replicas run on.")
    labels: dict[Label, str] = Field(default_factory=dict, description="Prometheus label "
                                     "matchers selecting its series (exact values).")
    urls: tuple[str, ...] = Field((), description="Base URLs of its replicas' /metrics "
                                  "(ScrapeCollector).")
    max_batch: int | None = Field(None, ge=1, description="Max batch configured, when the "
                                  "engine does not export it.")


class CollectorConfig(_Config):
    """The collector's settings."""

    window_s: float = Field(60.0, gt=0, description="Collection window, s.")
    stale_after_s: float = Field(120.0, gt=0, description="Figures older than this are stale.")
    engine: str = Field("vllm", description="Query preset: " + ", ".join(sorted(PRESETS)) + ".")
    templates: QueryTemplates | None = Field(None, description="Custom queries (overrides the "
                                             "preset).")
    names: MetricNames | None = Field(None, description="Custom metric names for scraping "
                                      "(overrides the preset).")
    variants: tuple[VariantConfig, ...] = Field((), description="Variants to watch.")

    @model_validator(mode="after")
    def _check(self) -> CollectorConfig:
        if (self.templates is None or self.names is None) and self.engine not in PRESETS:
            raise ValueError(f"unknown engine {self.engine!r}; known: {', '.join(sorted(PRESETS))}")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        return self

    @property
    def queries(self) -> QueryTemplates:
        """The PromQL templates in force."""
        return self.templates or PRESETS[self.engine]

    @property
    def metric_names(self) -> MetricNames:
        """The metric names in force (scraping)."""
        return self.names or NAME_PRESETS[self.engine]
