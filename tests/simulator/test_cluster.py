"""SimCluster: the real control loop scales a simulated fleet; ITL follows the profile.

The example's llama profile is slowed down (alpha 40 ms, max batch 32) so a replica
saturates at a few requests per second and ten simulated minutes run in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controller.config import LoopOptions
from controller.loop import ControlLoop, LoopParts
from simulator.cluster import SimCluster, SimConfig
from simulator.records import SimRequest, requests_of
from specs.clock import FakeClock
from specs.documents import FleetSpec, Load
from specs.loading import load_fleet
from specs.plan import Plan, ServerAllocation, VariantAllocation
from workloads.arrivals import PoissonArrivals, TokenSizes

EXAMPLE = Path(__file__).resolve().parents[2] / "specs" / "examples" / "h100-vllm.json"
SERVER = "premium-llama"
KEY = (SERVER, "H100")
SIZES = TokenSizes(prompt_tokens=128, output_tokens=32)


@pytest.fixture(scope="module")
def spec() -> FleetSpec:
    spec = load_fleet(EXAMPLE).spec
    profiles = [p.model_copy(update={"alpha_ms": 40.0, "beta_ms": 0.5, "gamma_ms": 1e-4,
                                     "max_batch": 32})
                if p.model == "llama_3_1_8b" else p for p in spec.profiles]
    classes = [c.model_copy(update={"targets": [t.model_copy(update={"itl_ms": 60.0})
                                                for t in c.targets]})
               if c.name == "Premium" else c for c in spec.service_classes]
    servers = [s.model_copy(update={"load": s.load.model_copy(update={
        "arrival_rate_rps": 2.0, "in_tokens": 128, "out_tokens": 32})})
        for s in spec.servers if s.name == SERVER]
    return spec.model_copy(update={"profiles": profiles, "service_classes": classes,
                                   "servers": servers})


def test_loop_scales_up_under_a_load_step(spec):
    cluster = SimCluster(spec, SimConfig(startup_s=120.0, window_s=60.0), initial={KEY: 1})
    rng = np.random.default_rng(7)
    cluster.submit(requests_of(SERVER, PoissonArrivals(2.0, 300.0, SIZES).arrivals(rng)))
    cluster.submit(requests_of(SERVER, PoissonArrivals(12.0, 300.0, SIZES).arrivals(rng),
                               start_s=300.0))
    clock = FakeClock(0.0)
    loop = ControlLoop(LoopParts(spec=spec, metrics=cluster, actuator=cluster, clock=clock),
                       LoopOptions(period_s=30.0, startup_s=120.0, tune=False))
    desired: dict[float, int] = {}
    for t in range(30, 601, 30):
        clock.set(float(t))
        cluster.advance_to(float(t))
        report = loop.tick(float(t))
        assert report.status in ("applied", "held"), report.reasons
        state = cluster.observe().for_server(SERVER)
        desired[t] = sum(v.replicas for v in state)
    ready = sum(v.ready_replicas for v in cluster.observe().for_server(SERVER))
    assert desired[300] <= 2, desired
    assert desired[600] > desired[300], desired
    assert ready > 1
    before = [r for r in cluster.records if r.arrival_s < 290]
    assert all(r.finish_s is not None for r in before)
    assert float(np.mean([r.ttft_s for r in before])) < 1.0
    # a backlog builds until the new replicas are ready (start-up 120 s), then shrinks
    assert _waiting(cluster, 390, 450) > 5.0
    assert _waiting(cluster, 540, 570) < 0.8 * _waiting(cluster, 390, 450)


def _waiting(cluster: SimCluster, start: float, end: float) -> float:
    """Median TTFT (s) of requests arriving in [start, end) that got their first token."""
    ttfts = [r.ttft_s for r in cluster.records
             if start <= r.arrival_s < end and r.ttft_s is not None]
    return float(np.median(ttfts))


def test_steady_batch_itl_matches_the_profile(spec):
    batch, prompt, out = 16, 128, 64
    cluster = SimCluster(spec, initial={KEY: 1})
    cluster.submit(SimRequest(0.0, SERVER, prompt, out) for _ in range(batch))
    cluster.advance_to(30.0)
    assert all(r.finish_s is not None for r in cluster.records)
    profile = next(p for p in spec.profiles if p.model == "llama_3_1_8b")
    (replica,) = cluster.replicas.values()
    stats = replica.engine.stats
    # the engine's own account of the profile over the ITL samples it produced
    expected = profile.alpha_ms + (profile.beta_ms * stats.itl_tokens_sum
                                   + profile.gamma_ms * stats.itl_context_sum) / stats.itl_tokens
    simulated = float(np.mean([r.itl_s for r in cluster.records])) * 1000.0
    assert simulated == pytest.approx(expected, rel=1e-6)
    # and the closed form: each later token is a decode step of the whole batch, context
    # L + k (the first arrival starts alone, so within 0.1%)
    closed = profile.alpha_ms + batch * (profile.beta_ms + profile.gamma_ms
                                         * (prompt + (out + 2) / 2))
    assert simulated == pytest.approx(closed, rel=1e-3)
    snapshot = cluster.collect(30.0, cluster.observe())
    figure = snapshot.variant("premium-llama-h100").itl_mean_ms
    assert figure.usable and figure.value == pytest.approx(expected, rel=1e-6)


def _plan(replicas: int, max_batch: int = 32, token_budget: int | None = None) -> Plan:
    variant = VariantAllocation(accelerator="H100", card_type="H100", replicas=replicas,
                                max_batch=max_batch, token_budget=token_budget, cards=replicas,
                                cost_per_hour=replicas, arrival_rate_rps=1.0, router_weight=1.0)
    return Plan(allocations=[ServerAllocation(
        server=SERVER, model="llama_3_1_8b", service_class="Premium", priority=1,
        load=Load(arrival_rate_rps=1.0, in_tokens=128, out_tokens=32), variants=[variant])])


def test_new_replicas_start_late_and_removed_ones_drain(spec):
    cluster = SimCluster(spec, SimConfig(startup_s=120.0), initial={KEY: 1})
    result = cluster.apply(_plan(3), plan_id="p1", reason="test")
    assert [c.detail for c in result.changes] == ["replicas 1 -> 3"]
    (state,) = cluster.observe().variants
    assert (state.replicas, state.ready_replicas) == (3, 1)
    cluster.advance_to(119.0)
    assert cluster.observe().variants[0].ready_replicas == 1
    cluster.advance_to(120.0)
    assert cluster.observe().variants[0].ready_replicas == 3
    cluster.submit(SimRequest(120.0, SERVER, 128, 200) for _ in range(30))
    cluster.advance_to(120.5)
    busy = {name: r.load for name, r in cluster.replicas.items()}
    assert sorted(busy.values()) == [10, 10, 10]  # least-loaded routing spreads them
    cluster.apply(_plan(1), plan_id="p2", reason="test")
    draining = [r for r in cluster.replicas.values() if r.phase == "draining"]
    assert len(draining) == 2 and cluster.observe().variants[0].replicas == 1
    cluster.submit([SimRequest(121.0, SERVER, 128, 8)])
    cluster.advance_to(121.0)
    assert cluster.records[-1].replica not in {r.name for r in draining}
    cluster.advance_to(200.0)
    assert all(r.finish_s is not None for r in cluster.records)
    assert len(cluster.replicas) == 1  # drained replicas left once empty


def test_a_token_budget_change_is_a_live_reconfigure(spec):
    cluster = SimCluster(spec, SimConfig(startup_s=60.0), initial={KEY: 1})
    (running,) = cluster.replicas.values()
    assert running.engine.token_budget == 8192  # the profile's
    result = cluster.apply(_plan(2, token_budget=256), plan_id="p1", reason="test")
    assert [(c.kind, c.detail) for c in result.changes] == [
        ("reconfigure", "token budget 8192 -> 256"), ("scale", "replicas 1 -> 2")]
    assert {r.engine.token_budget for r in cluster.replicas.values()} == {256}  # new one too
    assert cluster.observe().variants[0].token_budget == 256
    cluster.submit([SimRequest(0.0, SERVER, 1000, 2)])
    cluster.advance_to(30.0)
    assert cluster.records[-1].replica == running.name
    assert running.engine.stats.iterations == 4 + 2  # 3 x 256 + 232 prompt tokens, 2 decodes
    # a plan without a budget leaves the running one
    assert cluster.apply(_plan(2), plan_id="p2", reason="test").changes == ()
    assert {r.engine.token_budget for r in cluster.replicas.values()} == {256}
