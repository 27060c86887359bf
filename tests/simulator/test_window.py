"""What `SimCluster.collect` reports: time-weighted gauges over the window, arrivals
waiting at the router (replicas starting, or no variant at all), rejected requests, and
figures that come from the per-variant logs rather than a scan of all records."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import pytest

from controller.config import LoopOptions
from controller.loop import ControlLoop, LoopParts
from controller.sources import server_loads
from simulator.cluster import SimCluster, SimConfig
from simulator.records import SimRequest, requests_of
from simulator.window import VariantLog, split
from specs.clock import FakeClock
from specs.documents import FleetSpec, Load
from specs.loading import load_fleet
from specs.plan import Plan, ServerAllocation, VariantAllocation
from workloads.arrivals import PoissonArrivals, TokenSizes

EXAMPLE = Path(__file__).resolve().parents[2] / "specs" / "examples" / "h100-vllm.json"
SERVER, OTHER = "premium-llama", "bronze-qwen"
KEY = (SERVER, "H100")
VARIANT = "premium-llama-h100"


@pytest.fixture(scope="module")
def slow() -> FleetSpec:
    """The example with llama slowed down (alpha 40 ms, max batch 32, ITL target 60 ms),
    as in test_cluster."""
    spec = load_fleet(EXAMPLE).spec
    profiles = [p.model_copy(update={"alpha_ms": 40.0, "beta_ms": 0.5, "gamma_ms": 1e-4,
                                     "max_batch": 32})
                if p.model == "llama_3_1_8b" else p for p in spec.profiles]
    classes = [c.model_copy(update={"targets": [t.model_copy(update={"itl_ms": 60.0})
                                                for t in c.targets]})
               if c.name == "Premium" else c for c in spec.service_classes]
    return spec.model_copy(update={"profiles": profiles, "service_classes": classes})


def plan(replicas: int) -> Plan:
    variant = VariantAllocation(accelerator="H100", card_type="H100", replicas=replicas,
                                max_batch=32, cards=replicas, cost_per_hour=replicas,
                                arrival_rate_rps=1.0, router_weight=1.0)
    return Plan(allocations=[ServerAllocation(
        server=SERVER, model="llama_3_1_8b", service_class="Premium", priority=1,
        load=Load(arrival_rate_rps=1.0, in_tokens=128, out_tokens=32), variants=[variant])])


def test_running_is_a_time_weighted_mean_over_the_window(slow):
    cluster = SimCluster(slow, SimConfig(kv_capacity_tokens=50_000), initial={KEY: 1})
    cluster.submit(SimRequest(0.0, SERVER, 128, 64) for _ in range(16))
    snapshot = cluster.collect(60.0, cluster.observe())
    v = snapshot.variant(VARIANT)
    finishes = [r.finish_s for r in cluster.records]
    assert all(f is not None and f < 60.0 for f in finishes)
    # every request waited or ran from t = 0 to its finish (the first one ran alone for
    # one iteration while the others waited); nothing is left now
    assert (v.running.value + v.waiting.value) * 60.0 == pytest.approx(sum(finishes), rel=1e-9)
    assert 0.0 < v.waiting.value < 0.1 * v.running.value
    assert 0.0 < v.kv_cache_usage.value < 16 * 192 / 50_000
    (replica,) = cluster.replicas.values()
    assert replica.engine.running == 0 and replica.engine.kv_usage == 0.0


def test_waiting_counts_a_backlog_that_has_cleared(slow):
    cluster = SimCluster(slow, initial={KEY: 1})
    cluster.submit(SimRequest(0.0, SERVER, 128, 16) for _ in range(64))
    cluster.advance_to(60.0)
    (replica,) = cluster.replicas.values()
    assert replica.engine.waiting == 0
    v = cluster.collect(60.0, cluster.observe()).variant(VARIANT)
    assert v.waiting.value > 0.1 and v.running.value > 0.1


def test_arrivals_waiting_for_starting_replicas_count(slow):
    cluster = SimCluster(slow, SimConfig(startup_s=120.0))
    cluster.apply(plan(2), plan_id="p", reason="test")
    arrivals = list(requests_of(SERVER, PoissonArrivals(3.0, 60.0, TokenSizes(128, 32))
                                .arrivals(np.random.default_rng(0))))
    cluster.submit(arrivals)
    snapshot = cluster.collect(60.0, cluster.observe())
    (v,) = snapshot.variants
    assert v.replicas.value == 0.0 and v.completion_rate_rps.value == 0.0
    assert v.arrival_rate_rps.value == pytest.approx(len(arrivals) / 60.0)
    assert snapshot.server(SERVER).arrival_rate_rps.value == pytest.approx(len(arrivals) / 60.0)
    # once they are ready, the backlog is routed but counted when it arrived, not again
    snapshot = cluster.collect(180.0, cluster.observe())
    assert snapshot.variant(VARIANT).arrival_rate_rps.value == 0.0
    assert all(r.routed_s == 120.0 for r in cluster.records)


def test_a_server_with_no_variant_shows_its_router_load(slow):
    cluster = SimCluster(slow, SimConfig(startup_s=120.0))
    arrivals = [SimRequest(1.0 + i, SERVER, 100 + i, 32) for i in range(30)]
    cluster.submit(arrivals)
    snapshot = cluster.collect(60.0, cluster.observe())
    assert snapshot.variants == ()
    (server,) = snapshot.servers  # the other server saw nothing: absent, as before
    assert server.name == SERVER and server.variants == ()
    assert server.arrival_rate_rps.value == pytest.approx(30 / 60.0)
    assert server.in_tokens.value == pytest.approx(np.mean([a.prompt_tokens for a in arrivals]))
    loads = server_loads(snapshot, slow, stale_after_s=180.0)
    assert set(loads) == {SERVER}
    configured = next(s for s in slow.servers if s.name == SERVER).load
    assert loads[SERVER].arrival_rate_rps == pytest.approx(0.5)
    assert loads[SERVER].out_tokens == configured.out_tokens  # unknown until they finish
    assert OTHER not in loads  # the loop sizes it for its last known load, as before


def test_the_loop_starts_an_empty_fleet_for_the_load_its_router_sees(slow):
    cluster = SimCluster(slow, SimConfig(startup_s=60.0))
    cluster.submit(SimRequest(0.25 * i, SERVER, 128, 32) for i in range(1, 400))
    clock = FakeClock(30.0)
    loop = ControlLoop(LoopParts(spec=slow, metrics=cluster, actuator=cluster, clock=clock),
                       LoopOptions(period_s=30.0, startup_s=60.0, tune=False))
    cluster.advance_to(30.0)
    report = loop.tick(30.0)
    assert report.status == "applied", report.reasons
    assert report.measured[SERVER].arrival_rate_rps == pytest.approx(4.0)
    configured = next(s for s in slow.servers if s.name == OTHER).load
    assert report.measured[OTHER] == configured  # no traffic, no variant: bootstrapped
    assert {v.server for v in cluster.observe().variants} == {SERVER, OTHER}


def test_rejected_requests_are_marked_and_counted_as_arrivals(slow):
    config = SimConfig(max_queue=0, kv_capacity_tokens={"H100": 10_000})
    cluster = SimCluster(slow, config, initial={KEY: 1})
    cluster.submit(SimRequest(0.5, SERVER, 128, 32) for _ in range(40))
    cluster.submit([SimRequest(1.0, SERVER, 10_000, 32)])  # larger than the KV cache
    cluster.advance_to(60.0)
    rejected = [r for r in cluster.records if r.rejected]
    assert len(rejected) == 40 - 32 + 1
    assert all(r.first_token_s is None and r.finish_s is None and r.ttft_s is None
               for r in rejected)
    v = cluster.collect(60.0, cluster.observe()).variant(VARIANT)
    assert v.arrival_rate_rps.value == pytest.approx(41 / 60.0)
    assert v.completion_rate_rps.value == pytest.approx(32 / 60.0)


def test_collect_reads_its_logs_not_the_records(slow):
    def figures(clear: bool) -> dict:
        cluster = SimCluster(slow, initial={KEY: 2})
        rng = np.random.default_rng(4)
        cluster.submit(requests_of(SERVER, PoissonArrivals(4.0, 300.0, TokenSizes(128, 32))
                                   .arrivals(rng)))
        cluster.advance_to(200.0)
        if clear:
            cluster.records.clear()
        snapshot = cluster.collect(240.0, cluster.observe())
        return snapshot.variant(VARIANT).model_dump()

    assert figures(clear=True) == figures(clear=False)


def test_variant_log_prunes_what_no_window_needs():
    log = VariantLog(arrivals=deque([1.0, 2.0, 0.5, 3.0]))
    log.finishes.extend([(1.0, 1, 1, 0.0), (5.0, 1, 1, 0.0)])
    log.prune(2.0)
    assert list(log.arrivals) == [3.0]  # entries behind the first newer one go with it
    assert [f[0] for f in log.finishes] == [5.0]
    assert log.routed_in(2.0, 4.0) == 1


def test_split_shares_by_weight_else_equally():
    assert split(8.0, {"a": 1.0, "b": 3.0}) == {"a": 2.0, "b": 6.0}
    assert split(4.0, {"a": 0.0, "b": 0.0}) == {"a": 2.0, "b": 2.0}
    assert split(3.0, {"a": 2.0, "b": 0.0}) == {"a": 3.0}
