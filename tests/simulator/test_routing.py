"""Simulated routing: least-loaded across variants relative to max batch, and the plan's
weights kept as an option (`SimConfig.routing`).

The cluster tests use the example's llama slowed down (alpha 40 ms, max batch 32, as in
test_cluster) on two identical accelerators, one replica each: a replica carries a bit
under 11 req/s, so 12 req/s fits the two together but not 90% of it on one.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from simulator.cluster import SimCluster, SimConfig
from simulator.records import requests_of
from simulator.routing import (
    ROUTING,
    ROUTING_NAMES,
    RoutingName,
    least_relative_load,
    route_least_loaded,
    route_weighted,
)
from specs.documents import FleetSpec, Load
from specs.loading import load_fleet
from specs.plan import Plan, ServerAllocation, VariantAllocation
from workloads.arrivals import PoissonArrivals, TokenSizes

EXAMPLE = Path(__file__).resolve().parents[2] / "specs" / "examples" / "h100-vllm.json"
SERVER = "premium-llama"
HEAVY, LIGHT = "premium-llama-h100", "premium-llama-h100b"


@dataclass
class Fake:
    name: str
    variant: str
    load: int
    max_batch: int


def test_registry_matches_the_names_the_config_accepts():
    assert tuple(ROUTING.names()) == ROUTING_NAMES == typing.get_args(RoutingName)
    assert SimConfig().routing == "least_loaded"
    with pytest.raises(ValueError, match="known: least_loaded, weighted"):
        SimConfig(routing="random")  # type: ignore[arg-type]


def test_least_loaded_compares_load_per_max_batch_slot():
    big = Fake("big", "a", load=12, max_batch=32)  # 0.375
    small = Fake("small", "b", load=4, max_batch=8)  # 0.5
    assert least_relative_load([small, big]) is big
    # an equal ratio goes to the one with fewer requests, then by name
    half = Fake("half", "b", load=16, max_batch=32)
    assert least_relative_load([half, small]) is small
    twin = Fake("a-twin", "b", load=4, max_batch=8)
    assert least_relative_load([small, twin]) is twin
    assert least_relative_load([]) is None


def test_least_loaded_ignores_the_weights_and_weighted_follows_them():
    a = Fake("a0", "a", load=10, max_batch=32)
    b = Fake("b0", "b", load=0, max_batch=32)

    def weights() -> dict[str, float]:
        return {"a": 1.0, "b": 0.0}

    assert route_least_loaded([a, b], weights, {}) is b
    credit: dict[str, float] = {}
    assert [route_weighted([a, b], weights, credit) for _ in range(3)] == [a, a, a]


@pytest.fixture(scope="module")
def twins() -> FleetSpec:
    """One llama server on two identical accelerators (H100 and H100b, one card type)."""
    spec = load_fleet(EXAMPLE).spec
    (h100,) = spec.accelerators
    llama = next(p for p in spec.profiles if p.model == "llama_3_1_8b").model_copy(
        update={"alpha_ms": 40.0, "beta_ms": 0.5, "gamma_ms": 1e-4, "max_batch": 32})
    return spec.model_copy(update={
        "accelerators": [h100, h100.model_copy(update={"name": "H100b"})],
        "profiles": [llama, llama.model_copy(update={"accelerator": "H100b"})],
        "servers": [s for s in spec.servers if s.name == SERVER],
        "service_classes": [c for c in spec.service_classes if c.name == "Premium"]})


def _wrong_plan() -> Plan:
    """One replica on each accelerator, equal capacity, but weights 0.9 / 0.1."""
    def variant(accelerator: str, weight: float) -> VariantAllocation:
        return VariantAllocation(accelerator=accelerator, card_type="H100", replicas=1,
                                 max_batch=32, cards=1, cost_per_hour=1.0,
                                 arrival_rate_rps=12.0 * weight, router_weight=weight)
    return Plan(allocations=[ServerAllocation(
        server=SERVER, model="llama_3_1_8b", service_class="Premium", priority=1,
        load=Load(arrival_rate_rps=12.0, in_tokens=128, out_tokens=32),
        variants=[variant("H100", 0.9), variant("H100b", 0.1)])])


def _run(spec: FleetSpec, routing: RoutingName) -> tuple[SimCluster, dict[float, dict[str, int]]]:
    """12 req/s for 200 s under the wrong plan; waiting requests per variant at 100, 200 s."""
    cluster = SimCluster(spec, SimConfig(routing=routing),
                         initial={(SERVER, "H100"): 1, (SERVER, "H100b"): 1})
    cluster.apply(_wrong_plan(), plan_id="p1", reason="test")
    arrivals = PoissonArrivals(12.0, 200.0, TokenSizes(128, 32))
    cluster.submit(requests_of(SERVER, arrivals.arrivals(np.random.default_rng(3))))
    waiting = {}
    for t in (100.0, 200.0):
        cluster.advance_to(t)
        waiting[t] = {r.variant: r.engine.waiting for r in cluster.replicas.values()}
    return cluster, waiting


def test_wrong_weights_no_longer_leave_one_variant_queueing(twins):
    cluster, waiting = _run(twins, "least_loaded")
    assert all(n < 32 for at in waiting.values() for n in at.values()), waiting
    share = sum(r.variant == LIGHT for r in cluster.records) / len(cluster.records)
    assert 0.4 < share < 0.6
    ttft = [r.ttft_s for r in cluster.records if r.ttft_s is not None]
    assert len(ttft) > 0.99 * len(cluster.records) and float(np.median(ttft)) < 1.0


def test_weighted_routing_follows_the_wrong_weights_into_a_growing_queue(twins):
    cluster, waiting = _run(twins, "weighted")
    assert waiting[200.0][HEAVY] > waiting[100.0][HEAVY] > 100
    assert waiting[200.0][LIGHT] < 8
    share = sum(r.variant == LIGHT for r in cluster.records) / len(cluster.records)
    assert share == pytest.approx(0.1, abs=0.01)
