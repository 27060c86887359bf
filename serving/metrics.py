"""Prometheus metrics of the emulated worker, under vLLM's names, so anything that reads
vLLM's `/metrics` (fleetplan's collector, inferno's control loop, dashboards) reads ours.

Every metric carries the label `model_name`, as vLLM's do; `vllm:request_success_total`
also carries `finished_reason` (always "length": the emulated model stops at max_tokens).
Timing histograms use vLLM's (v1) bucket boundaries. Gauges (running, waiting, KV cache
usage, max batch) are read from the engine when scraped, so they cost nothing per
iteration. Each worker has its own `CollectorRegistry` (no global registry).

The exposition is the classic text format 0.0.4 whatever the scraper asks for: with
prometheus-client 0.26 the OpenMetrics / text 1.0 negotiation escapes `vllm:` names to
`vllm_` for Prometheus 2.x (prometheus/client_python#1177), which would hide our series
from queries written for vLLM. (`CONTENT_TYPE_LATEST` is text 1.0.0 in 0.26, so we name
0.0.4 explicitly.)

To extend: add the metric in `build_metrics` with vLLM's name and buckets, and observe it
in `WorkerMetrics.record`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from queue_models.engine import BatchEngine, Iteration, TokenEvent

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""Content type of `/metrics`: Prometheus text format 0.0.4."""

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
                           40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)


def buckets_1_2_5(max_value: int) -> list[float]:
    """vLLM's token-count buckets: 1, 2, 5, 10, 20, 50, ... up to `max_value`."""
    out: list[float] = []
    scale = 1
    while True:
        for mantissa in (1, 2, 5):
            if mantissa * scale > max_value:
                return out
            out.append(float(mantissa * scale))
        scale *= 10


class EngineGauges(Collector):
    """Scrape-time gauges read from the engine."""

    def __init__(self, engine: BatchEngine, model_name: str) -> None:
        self._engine = engine
        self._model = model_name

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=["model_name"])
        family.add_metric([self._model], value)
        return family

    def collect(self) -> Iterator[Metric]:
        """Yield the current gauges."""
        e = self._engine
        yield self._gauge("vllm:num_requests_running",
                          "Number of requests in model execution batches.", e.running)
        yield self._gauge("vllm:num_requests_waiting",
                          "Number of requests waiting to be processed.", e.waiting)
        yield self._gauge("vllm:kv_cache_usage_perc",
                          "KV-cache usage. 1 means 100 percent usage.", e.kv_usage)
        yield self._gauge("vllm:gpu_cache_usage_perc",
                          "GPU KV-cache usage. 1 means 100 percent usage. DEPRECATED: use "
                          "vllm:kv_cache_usage_perc.", e.kv_usage)
        yield self._gauge("fleetplan:max_batch",
                          "Max batch size (max_num_seqs) of the emulated worker.", e.max_batch)


@dataclass(frozen=True)
class WorkerMetrics:
    """The worker's metric children (labelled with the model name) and their registry."""

    registry: CollectorRegistry
    prompt_tokens: Counter
    generation_tokens: Counter
    request_success: Counter
    ttft: Histogram
    itl: Histogram
    tpot: Histogram
    e2e: Histogram
    queue_time: Histogram
    request_prompt_tokens: Histogram
    request_generation_tokens: Histogram

    def record(self, iteration: Iteration, events: list[TokenEvent]) -> None:
        """Account one completed iteration and the tokens it generated."""
        prefill = iteration.tokens - iteration.decode_slots
        if prefill:
            self.prompt_tokens.inc(prefill)
        if not events:
            return
        self.generation_tokens.inc(len(events))
        itl, tpot = self.itl.observe, self.tpot.observe
        for event in events:
            if event.previous_s is None:
                self.ttft.observe(event.time_s - event.request.arrival_s)
            else:
                gap = event.time_s - event.previous_s
                itl(gap)
                tpot(gap)
            if event.finished:
                self._finished(event)

    def _finished(self, event: TokenEvent) -> None:
        request = event.request
        self.request_success.inc()
        self.e2e.observe(event.time_s - request.arrival_s)
        self.queue_time.observe(request.queue_time_s or 0.0)
        self.request_prompt_tokens.observe(request.prompt_tokens)
        self.request_generation_tokens.observe(request.generated)


def build_metrics(engine: BatchEngine, model_name: str, max_model_len: int) -> WorkerMetrics:
    """A fresh registry with the vLLM metrics of one worker serving `model_name`."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(EngineGauges(engine, model_name))
    ProcessCollector(registry=registry)
    labels = ["model_name"]

    def counter(name: str, doc: str) -> Counter:
        return Counter(name, doc, labels, registry=registry).labels(model_name)

    def histogram(name: str, doc: str, buckets: tuple[float, ...] | list[float]) -> Histogram:
        return Histogram(name, doc, labels, registry=registry, buckets=buckets).labels(model_name)

    token_buckets = buckets_1_2_5(max_model_len)
    success = Counter("vllm:request_success", "Count of successfully processed requests.",
                      [*labels, "finished_reason"], registry=registry)
    return WorkerMetrics(
        registry=registry,
        prompt_tokens=counter("vllm:prompt_tokens", "Number of prefill tokens processed."),
        generation_tokens=counter("vllm:generation_tokens",
                                  "Number of generation tokens processed."),
        request_success=success.labels(model_name, "length"),
        ttft=histogram("vllm:time_to_first_token_seconds",
                       "Histogram of time to first token in seconds.", TTFT_BUCKETS),
        itl=histogram("vllm:inter_token_latency_seconds",
                      "Histogram of inter-token latency in seconds.", ITL_BUCKETS),
        tpot=histogram("vllm:time_per_output_token_seconds",
                       "Histogram of time per output token in seconds (deprecated name of "
                       "vllm:inter_token_latency_seconds).", ITL_BUCKETS),
        e2e=histogram("vllm:e2e_request_latency_seconds",
                      "Histogram of e2e request latency in seconds.", REQUEST_LATENCY_BUCKETS),
        queue_time=histogram("vllm:request_queue_time_seconds",
                             "Histogram of time spent in WAITING phase for request.",
                             REQUEST_LATENCY_BUCKETS),
        request_prompt_tokens=histogram("vllm:request_prompt_tokens",
                                        "Number of prefill tokens processed.", token_buckets),
        request_generation_tokens=histogram("vllm:request_generation_tokens",
                                            "Number of generation tokens processed.",
                                            token_buckets),
    )


def exposition(metrics: WorkerMetrics) -> bytes:
    """The registry in text format 0.0.4 (serve with `CONTENT_TYPE`)."""
    return generate_latest(metrics.registry)
