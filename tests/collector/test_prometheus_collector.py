"""`PrometheusCollector` against a fake `PrometheusApi`: figures, statuses, outages."""

from __future__ import annotations

import math

import pytest

from collector import (
    CollectorConfig,
    FigureStatus,
    PrometheusCollector,
    QueryTemplates,
    SourceStatus,
    VariantConfig,
    observations_of,
)
from collector.config import SGLANG, VLLM
from collector.promql import render
from tests.collector.fakes import FakePrometheus

NOW = 1_700_000_000.0
A = VariantConfig(name="llama-h100", server="premium", model="llama", accelerator="H100",
                  labels={"namespace": "llm", "deployment": "llama-h100"})
B = VariantConfig(name="llama-a100", server="premium", model="llama", accelerator="A100",
                  labels={"namespace": "llm", "deployment": "llama-a100"}, max_batch=32)
CONFIG = CollectorConfig(window_s=60, stale_after_s=90, variants=(A, B))

HEALTHY = {
    "completions": 4.0, "queue_growth": 0.0, "prompt_tokens": 2000.0,
    "generation_tokens": 800.0, "ttft_mean": 0.05, "ttft_p95": 0.12, "itl_mean": 0.011,
    "running": 9.0, "waiting": 0.5, "kv_cache_usage": 0.3, "replicas": 2.0,
    "targets_up": 2.0, "targets": 2.0, "last_sample": NOW - 3, "max_batch": 64.0,
}


def answers(variant: str = "llama-h100", **changes: float | None) -> dict:
    values = {**HEALTHY, **changes}
    return {(variant, name): value for name, value in values.items()}


def snap(table: dict, **kwargs: object):
    api = FakePrometheus(CONFIG, table, **kwargs)
    return PrometheusCollector(api, CONFIG).snapshot(NOW), api


def test_healthy_variant_figures() -> None:
    snapshot, api = snap(answers())
    assert snapshot.status == SourceStatus.OK
    v = snapshot.variant("llama-h100")
    assert v.arrival_rate_rps.value == 4.0 and v.arrival_rate_rps.usable
    assert v.in_tokens.value == 500.0 and v.out_tokens.value == 200.0
    assert v.ttft_mean_ms.value == pytest.approx(50.0)
    assert v.ttft_p95_ms.value == pytest.approx(120.0)
    assert v.itl_mean_ms.value == pytest.approx(11.0)
    assert (v.running.value, v.waiting.value, v.replicas.value) == (9.0, 0.5, 2.0)
    assert v.max_batch.value == 64 and v.arrival_rate_rps.age_s == pytest.approx(3.0)
    assert all(at == NOW for _, at in api.queries)


def test_per_request_token_means_win_over_counters() -> None:
    snapshot, _ = snap(answers(in_tokens_mean=480.0, out_tokens_mean=None))
    v = snapshot.variant("llama-h100")
    assert v.in_tokens.value == 480.0  # the per-request histogram
    assert v.out_tokens.value == 200.0  # no histogram: generation tokens over completions


def test_saturated_server_arrivals_exceed_completions() -> None:
    snapshot, _ = snap(answers(completions=4.0, queue_growth=1.5))
    v = snapshot.variant("llama-h100")
    assert v.completion_rate_rps.value == 4.0 and v.arrival_rate_rps.value == 5.5


def test_idle_is_zero_load_but_means_are_nan_not_zero() -> None:
    nan = math.nan
    snapshot, _ = snap(answers(completions=0.0, prompt_tokens=0.0, generation_tokens=0.0,
                               ttft_mean=nan, ttft_p95=nan, itl_mean=nan, running=0.0))
    v = snapshot.variant("llama-h100")
    assert v.arrival_rate_rps.value == 0.0 and v.arrival_rate_rps.usable
    for figure in (v.in_tokens, v.ttft_mean_ms, v.ttft_p95_ms, v.itl_mean_ms):
        assert figure.status == FigureStatus.NAN and figure.value is None
    observations, skipped = observations_of(snapshot)
    assert observations == [] and {s.variant for s in skipped} == {"llama-h100", "llama-a100"}


def test_missing_series_are_missing() -> None:
    snapshot, _ = snap(answers())
    b = snapshot.variant("llama-a100")  # no answers at all for this variant
    assert b.arrival_rate_rps.status == FigureStatus.MISSING and b.arrival_rate_rps.value is None
    assert b.replicas.status == FigureStatus.MISSING
    assert b.max_batch.value == 32  # configured, since the engine exports none
    assert snapshot.status == SourceStatus.OK


def test_growth_missing_makes_arrivals_partial() -> None:
    snapshot, _ = snap(answers(queue_growth=None))
    figure = snapshot.variant("llama-h100").arrival_rate_rps
    assert figure.value == 4.0 and figure.status == FigureStatus.PARTIAL


def test_stale_data_is_marked_stale() -> None:
    snapshot, _ = snap(answers(last_sample=NOW - 300))
    v = snapshot.variant("llama-h100")
    assert v.arrival_rate_rps.status == FigureStatus.STALE
    assert v.arrival_rate_rps.value == 4.0 and v.arrival_rate_rps.age_s == pytest.approx(300)
    assert observations_of(snapshot)[0] == []


def test_target_down_marks_partial() -> None:
    snapshot, _ = snap(answers(targets_up=1.0))
    v = snapshot.variant("llama-h100")
    assert v.itl_mean_ms.status == FigureStatus.PARTIAL and v.itl_mean_ms.value == 11.0


def test_prometheus_down_is_unavailable_not_zero() -> None:
    snapshot, _ = snap(answers(), down=True)
    assert snapshot.status == SourceStatus.UNAVAILABLE and "connection refused" in snapshot.error
    for variant in snapshot.variants:
        for figure in variant.figures().values():
            assert figure.status == FigureStatus.UNAVAILABLE and figure.value is None
    premium = snapshot.server("premium")
    assert premium.arrival_rate_rps.status == FigureStatus.UNAVAILABLE
    assert observations_of(snapshot)[0] == []


def test_query_error_affects_one_variant() -> None:
    table = {**answers(), **answers("llama-a100")}
    snapshot, _ = snap(table, broken={"llama-a100"})
    assert snapshot.status == SourceStatus.PARTIAL and "parse error" in snapshot.error
    assert snapshot.variant("llama-h100").arrival_rate_rps.usable
    assert snapshot.variant("llama-a100").error


def test_server_aggregates_variants() -> None:
    table = {**answers(), **answers("llama-a100", completions=1.0, generation_tokens=100.0,
                                    prompt_tokens=300.0, itl_mean=0.021, ttft_mean=0.1,
                                    ttft_p95=0.3, replicas=1.0)}
    snapshot, _ = snap(table)
    s = snapshot.server("premium")
    assert s.variants == ("llama-h100", "llama-a100")
    assert s.arrival_rate_rps.value == 5.0 and s.replicas.value == 3.0
    assert s.in_tokens.value == pytest.approx((4 * 500 + 1 * 300) / 5)
    assert s.ttft_mean_ms.value == pytest.approx((4 * 50 + 1 * 100) / 5)
    assert s.itl_mean_ms.value == pytest.approx((800 * 11 + 100 * 21) / 900)
    assert s.ttft_p95_ms.value == pytest.approx(300.0)
    half, _ = snap(answers())
    assert half.server("premium").arrival_rate_rps.status == FigureStatus.PARTIAL


def test_router_count_wins_when_configured() -> None:
    templates = VLLM.model_copy(update={"router_arrivals":
                                        "sum(rate([[router:requests_total]][$window]))"})
    config = CONFIG.model_copy(update={"templates": templates})
    api = FakePrometheus(config, answers(router_arrivals=7.0, queue_growth=1.0))
    v = PrometheusCollector(api, config).snapshot(NOW).variant("llama-h100")
    assert v.arrival_rate_rps.value == 7.0


def test_observation_from_a_healthy_variant() -> None:
    snapshot, _ = snap(answers())
    (obs,), skipped = observations_of(snapshot)
    assert obs.model == "llama" and obs.accelerator == "H100"
    assert obs.arrival_rate_rps == 2.0  # per replica
    assert (obs.in_tokens, obs.out_tokens, obs.max_batch) == (500.0, 200.0, 64)
    assert obs.ttft_ms == pytest.approx(50.0) and obs.running == 9.0
    assert [s.variant for s in skipped] == ["llama-a100"]


def test_queries_match_both_spellings_and_select_labels() -> None:
    query = render(VLLM.completions, A.labels, 60)
    assert query == ('sum(rate({__name__=~"vllm[:_]request_success_total",'
                     'deployment="llama-h100",namespace="llm"}[60s]))')
    assert 'histogram_quantile(0.95, sum by (le)' in render(VLLM.ttft_p95, {}, 30)
    assert "sglang[:_]num_running_reqs" in render(SGLANG.running, {}, 30)
    assert render("[[up]]", {"a": 'x"y'}, 1.5) == '{__name__=~"up",a="x\\"y"}'
    assert set(QueryTemplates.model_fields) >= {"completions", "ttft_p95", "queue_growth"}
