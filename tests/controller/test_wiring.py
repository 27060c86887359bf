"""`controller.wiring`: the Prometheus source follows the fleet; the configured source."""

from __future__ import annotations

from actuator.base import FleetState, VariantState
from collector import CollectorConfig, PrometheusCollector, SourceStatus
from controller.config import ControllerConfig
from controller.wiring import FleetPrometheusSource, build_source, match_labels
from tests.collector.fakes import FakePrometheus

NOW = 1_700_000_000.0
FLEET = FleetState((
    VariantState("premium-llama-h100", "premium-llama", "llama", "H100", 2, 2, max_batch=64),
    VariantState("premium-llama-a100", "premium-llama", "llama", "A100", 1, 0),  # not ready
))


def _source(down: bool = False) -> tuple[FleetPrometheusSource, FakePrometheus]:
    api = FakePrometheus(CollectorConfig(), {}, down=down)
    collector = PrometheusCollector(api, CollectorConfig(window_s=60))
    return FleetPrometheusSource(collector, "variant", {"namespace": "llm"}), api


def test_prometheus_source_asks_about_the_ready_variants_of_the_fleet() -> None:
    source, api = _source()
    snapshot = source.collect(NOW, FLEET)
    assert [v.name for v in snapshot.variants] == ["premium-llama-h100"]
    assert api.queries and all('variant="premium-llama-h100"' in q for q, _ in api.queries
                               if "vllm" in q)
    assert all('namespace="llm"' in q for q, _ in api.queries if "vllm" in q)


def test_prometheus_outage_is_unavailable_with_or_without_variants() -> None:
    for fleet in (FLEET, FleetState()):
        source, _ = _source(down=True)
        snapshot = source.collect(NOW, fleet)
        assert snapshot.status == SourceStatus.UNAVAILABLE, fleet
    source, api = _source()
    assert source.collect(NOW, FleetState()).status == SourceStatus.OK
    assert [q for q, _ in api.queries] == ["vector(1)"]  # the probe


def test_build_source_wires_the_fleet_following_prometheus_source() -> None:
    config = ControllerConfig.model_validate({
        "spec": "fleet.json", "actuator": {"kind": "kubernetes", "namespace": "llm"},
        "collector": {"kind": "prometheus", "url": "http://127.0.0.1:9"}})
    source = build_source(config)
    assert isinstance(source, FleetPrometheusSource)
    assert source.match_labels == {"namespace": "llm"} == match_labels(config)
