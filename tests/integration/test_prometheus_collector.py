"""The collector against a real Prometheus server (Debian's package; skipped without it).

1. Two emulated workers under Poisson load for ~34 s, scraped every second by a private
   Prometheus: `PrometheusCollector`'s arrival rate, token means and mean ITL over a
   26 s window agree with the load generator's own figures within 10%.
2. Recorded series with the underscore spelling (`vllm_...`, as OpenMetrics-escaped
   scrapes store them) are backfilled with promtool: the same vLLM queries read them.
3. With Prometheus stopped, the snapshot says `unavailable` and nothing reads as 0.

Every process started here is stopped in a `finally` (context managers).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from collector import (
    CollectorConfig,
    FigureStatus,
    PrometheusCollector,
    PrometheusConnectApi,
    SourceStatus,
    VariantConfig,
    observations_of,
)
from tests.collector.live import (
    ACCELERATOR,
    MODEL,
    poisson,
    run_load,
    window_figures,
    worker_args,
    write_spec,
)
from tests.collector.prometheus_server import (
    ScrapeTarget,
    backfill,
    binary,
    started_prometheus,
    wait_for_sample,
)
from tests.integration.processes import started_workers

LABELS = {"namespace": "fleetplan-test", "deployment": "llama-h100"}
LOAD_S, EVAL_AT_S, WINDOW_S = 34.0, 32.0, 26.0


def variant(window_s: float = WINDOW_S) -> CollectorConfig:
    return CollectorConfig(window_s=window_s, stale_after_s=10, variants=(VariantConfig(
        name="llama-h100", server="premium", model=MODEL, accelerator=ACCELERATOR,
        labels=LABELS),))


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_collector_agrees_with_the_load_generator(tmp_path: Path) -> None:
    binary("prometheus")
    spec = write_spec(tmp_path / "spec.json", alpha_ms=12.0, beta_ms=0.04, gamma_ms=8e-5)
    rng = np.random.default_rng(42)
    arrivals = poisson(rng, 6.0, 0.5, LOAD_S, prompt=(64, 512), output=(16, 96))
    with started_workers(tmp_path, [worker_args(spec), worker_args(spec)]) as workers:
        targets = [ScrapeTarget(urlparse(w.url).netloc, LABELS) for w in workers]
        with started_prometheus(tmp_path, targets, interval_s=1.0) as url:
            wait_for_sample(url, "sum(up)", at_least=len(targets))  # counters before load
            results, origin = run_load([w.url for w in workers], arrivals, LOAD_S)
            api = PrometheusConnectApi(url)
            snapshot = PrometheusCollector(api, variant()).snapshot(origin + EVAL_AT_S)
            api.close()
    truth = window_figures(results, EVAL_AT_S - WINDOW_S, EVAL_AT_S)
    v = snapshot.variant("llama-h100")
    print(f"loadgen {truth}\ncollector arrivals {v.arrival_rate_rps.value:.3f} "
          f"completions {v.completion_rate_rps.value:.3f} in {v.in_tokens.value:.1f} "
          f"out {v.out_tokens.value:.1f} ITL {v.itl_mean_ms.value:.2f} ms "
          f"TTFT {v.ttft_mean_ms.value:.2f} ms p95 {v.ttft_p95_ms.value:.1f} ms "
          f"running {v.running.value:.2f} replicas {v.replicas.value}")
    assert snapshot.status == SourceStatus.OK, snapshot.error
    assert sum(r.ok for r in results) == len(results) and truth.completed > 100
    assert v.arrival_rate_rps.usable and v.arrival_rate_rps.age_s < 5
    assert v.arrival_rate_rps.value == pytest.approx(truth.arrival_rate_rps, rel=0.10)
    assert v.in_tokens.value == pytest.approx(truth.in_tokens, rel=0.10)
    assert v.out_tokens.value == pytest.approx(truth.out_tokens, rel=0.10)
    assert v.itl_mean_ms.value == pytest.approx(truth.itl_ms, rel=0.10)
    assert v.ttft_mean_ms.value == pytest.approx(truth.ttft_ms, rel=0.30)
    assert v.ttft_p95_ms.value >= v.ttft_mean_ms.value
    assert v.replicas.value == 2 and v.max_batch.value == 32 and v.running.value > 0
    (obs,), _ = observations_of(snapshot)
    assert obs.arrival_rate_rps == pytest.approx(v.arrival_rate_rps.value / 2)


def openmetrics_run(start: int, seconds: int) -> str:
    """A replica at 2 req/s (300 in / 100 out tokens, TTFT 40 ms, ITL 10 ms, 5 running,
    queue growing by 0.5/s) with underscore-escaped vLLM names, one sample per second."""
    labels = 'namespace="fleetplan-test",deployment="llama-h100",instance="r1"'
    times = range(start, start + seconds)
    families: list[str] = []

    def family(kind: str, name: str, sample: str, value_of: object) -> None:
        families.append(f"# TYPE {name} {kind}")
        families.extend(f"{sample}{{{labels}}} {value_of(t - start)} {t}" for t in times)

    family("counter", "vllm_request_success", "vllm_request_success_total", lambda s: 2 * s)
    family("counter", "vllm_prompt_tokens", "vllm_prompt_tokens_total", lambda s: 600 * s)
    family("counter", "vllm_generation_tokens", "vllm_generation_tokens_total",
           lambda s: 200 * s)
    families.append("# TYPE vllm_time_to_first_token_seconds histogram")
    for le, share in (("0.02", 0.0), ("0.05", 1.0), ("+Inf", 1.0)):
        families.extend(f'vllm_time_to_first_token_seconds_bucket{{{labels},le="{le}"}} '
                        f"{share * 2 * (t - start)} {t}" for t in times)
    families.extend(f"vllm_time_to_first_token_seconds_sum{{{labels}}} "
                    f"{0.08 * (t - start)} {t}" for t in times)
    families.extend(f"vllm_time_to_first_token_seconds_count{{{labels}}} {2 * (t - start)} {t}"
                    for t in times)
    families.append("# TYPE vllm_inter_token_latency_seconds histogram")
    families.extend(f'vllm_inter_token_latency_seconds_bucket{{{labels},le="+Inf"}} '
                    f"{198 * (t - start)} {t}" for t in times)
    families.extend(f"vllm_inter_token_latency_seconds_sum{{{labels}}} "
                    f"{1.98 * (t - start)} {t}" for t in times)
    families.extend(f"vllm_inter_token_latency_seconds_count{{{labels}}} {198 * (t - start)} {t}"
                    for t in times)
    family("gauge", "vllm_num_requests_running", "vllm_num_requests_running", lambda s: 5)
    family("gauge", "vllm_num_requests_waiting", "vllm_num_requests_waiting", lambda s: 0.5 * s)
    return "\n".join(families) + "\n# EOF\n"


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_underscore_spelling_from_a_backfilled_run(tmp_path: Path) -> None:
    start = 1_700_000_000
    storage = tmp_path / "tsdb"
    backfill(openmetrics_run(start, 120), storage, tmp_path)
    with started_prometheus(tmp_path, storage=storage) as url:
        api = PrometheusConnectApi(url)
        config = variant(window_s=60)
        snapshot = PrometheusCollector(api, config).snapshot(start + 100.5)
        late = PrometheusCollector(api, config).snapshot(start + 119.0 + 60.0)
        api.close()
    v = snapshot.variant("llama-h100")
    assert snapshot.status == SourceStatus.OK, snapshot.error
    assert v.completion_rate_rps.value == pytest.approx(2.0, rel=1e-6)
    assert v.arrival_rate_rps.value == pytest.approx(2.5, rel=1e-6)  # + 0.5/s queue growth
    assert v.in_tokens.value == pytest.approx(300) and v.out_tokens.value == pytest.approx(100)
    assert v.ttft_mean_ms.value == pytest.approx(40.0)
    assert 20.0 < v.ttft_p95_ms.value <= 50.0
    assert v.itl_mean_ms.value == pytest.approx(10.0)
    assert v.running.value == pytest.approx(5.0) and v.replicas.value == 1
    assert v.arrival_rate_rps.age_s == pytest.approx(0.5, abs=0.01)
    old = late.variant("llama-h100")
    assert old.running.status == FigureStatus.STALE and old.running.value == pytest.approx(5.0)
    assert old.running.age_s == pytest.approx(60.0, abs=0.01)
    assert old.arrival_rate_rps.status == FigureStatus.MISSING  # one sample: no rate


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_stopped_prometheus_is_unavailable(tmp_path: Path) -> None:
    with started_prometheus(tmp_path) as url:
        api = PrometheusConnectApi(url, timeout_s=2.0)
        assert PrometheusCollector(api, variant()).snapshot(1.0e9).status == SourceStatus.OK
    snapshot = PrometheusCollector(api, variant()).snapshot(1.0e9)
    api.close()
    assert snapshot.status == SourceStatus.UNAVAILABLE
    figure = snapshot.variant("llama-h100").arrival_rate_rps
    assert figure.status == FigureStatus.UNAVAILABLE and figure.value is None
