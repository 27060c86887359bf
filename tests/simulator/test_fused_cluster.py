"""SimCluster's fused decode runs against one event per iteration (SimConfig.fuse=False),
record by record, with the real control loop scaling two servers, noise, a bounded queue
and a KV capacity; and the per-(model, accelerator) iteration-cost law and the noise."""

from __future__ import annotations

import math
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from collector.snapshot import FleetSnapshot
from controller.config import LoopOptions
from controller.loop import ControlLoop, LoopParts
from queue_models.iteration_cost import LinearCost, lognormal_factors
from simulator.cluster import SimCluster, SimConfig
from simulator.records import RequestRecord, SimRequest, requests_of
from specs.clock import FakeClock
from specs.documents import FleetSpec
from specs.loading import load_fleet
from workloads.arrivals import PoissonArrivals, TokenSizes

EXAMPLE = Path(__file__).resolve().parents[2] / "specs" / "examples" / "h100-vllm.json"
LLAMA, QWEN = "premium-llama", "bronze-qwen"


@pytest.fixture(scope="module")
def spec() -> FleetSpec:
    """The example with llama slowed down (so a burst needs more replicas)."""
    spec = load_fleet(EXAMPLE).spec
    profiles = [p.model_copy(update={"alpha_ms": 20.0, "beta_ms": 0.1, "gamma_ms": 1e-4,
                                     "max_batch": 32})
                if p.model == "llama_3_1_8b" else p for p in spec.profiles]
    classes = [c.model_copy(update={"targets": [t.model_copy(update={"itl_ms": 60.0})
                                                for t in c.targets]})
               if c.name == "Premium" else c for c in spec.service_classes]
    return spec.model_copy(update={"profiles": profiles, "service_classes": classes})


def workload(seed: int = 1) -> list[SimRequest]:
    rng = np.random.default_rng(seed)
    small, large = TokenSizes(300, 60), TokenSizes(2000, 150)
    out = list(requests_of(LLAMA, PoissonArrivals(4.0, 90.0, small).arrivals(rng)))
    out += requests_of(LLAMA, PoissonArrivals(30.0, 60.0, small).arrivals(rng), start_s=90.0)
    out += requests_of(LLAMA, PoissonArrivals(3.0, 450.0, small).arrivals(rng), start_s=150.0)
    out += requests_of(QWEN, PoissonArrivals(1.0, 600.0, large).arrivals(rng))
    return out + [SimRequest(50.0 * k, LLAMA, 9000, 10) for k in range(1, 4)]  # too large


def run(spec: FleetSpec, config: SimConfig,
        ) -> tuple[SimCluster, list[int], list[FleetSnapshot]]:
    cluster = SimCluster(spec, config, initial={(LLAMA, "H100"): 1, (QWEN, "H100"): 1})
    cluster.submit(workload())
    clock = FakeClock(0.0)
    loop = ControlLoop(LoopParts(spec=spec, metrics=cluster, actuator=cluster, clock=clock),
                       LoopOptions(period_s=30.0, startup_s=config.startup_s, tune=False))
    plans, snapshots = [], []
    for t in range(30, 601, 30):
        clock.set(float(t))
        cluster.advance_to(float(t))
        loop.tick(float(t))
        plans.append(sum(v.replicas for v in cluster.observe().variants))
        snapshots.append(cluster.collect(float(t), cluster.observe()))
    cluster.advance_to(700.0)
    return cluster, plans, snapshots


def same(a: RequestRecord, b: RequestRecord) -> bool:
    for f in fields(RequestRecord):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, float) and isinstance(y, float):
            if abs(x - y) > 1e-9:
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize("noise_cv", [0.0, 0.3])
def test_fused_runs_give_the_same_records_as_one_event_per_iteration(spec, noise_cv):
    config = SimConfig(startup_s=30.0, noise_cv=noise_cv, seed=5, max_queue=8,
                       kv_capacity_tokens={"H100": 8000})
    fused, fused_plans, fused_snapshots = run(spec, config)
    step, step_plans, step_snapshots = run(spec, replace(config, fuse=False))
    assert len(fused.records) == len(step.records) > 1000
    mismatched = [(a, b) for a, b in zip(fused.records, step.records, strict=True)
                  if not same(a, b)]
    assert not mismatched, mismatched[:3]
    assert fused_plans == step_plans
    assert max(fused_plans) > fused_plans[0] and fused_plans[-1] < max(fused_plans), fused_plans
    assert fused.retired  # replicas drained and left
    rejected = [r for r in fused.records if r.rejected]
    assert len(rejected) > 3  # too large for the KV cache, or the queue was full
    assert all(r.first_token_s is None and r.finish_s is None for r in rejected)
    assert all(r.finish_s is not None for r in fused.records if not r.rejected)
    replicas = lambda c: sorted(  # noqa: E731
        (r.name, r.engine.stats.iterations, r.left_s) for r in [*c.replicas.values(), *c.retired])
    assert replicas(fused) == replicas(step)
    for a, b in zip(fused_snapshots, step_snapshots, strict=True):
        assert [s.name for s in a.servers] == [s.name for s in b.servers]
        for va, vb in zip(a.variants, b.variants, strict=True):
            for name, figure in va.figures().items():
                other = vb.figures()[name]
                assert figure.status == other.status, name
                if figure.value is None:
                    assert other.value is None, name
                else:
                    assert figure.value == pytest.approx(other.value, rel=1e-9, abs=1e-12), name


class Fixed:
    """A law of fixed iteration time that records what it was asked."""

    def __init__(self, ms: float) -> None:
        self.ms, self.calls = ms, []

    def duration_ms(self, decode_requests: int, decode_context_tokens: int,
                    prefill_tokens: int, prefill_context_tokens: int) -> float:
        self.calls.append((decode_requests, decode_context_tokens, prefill_tokens,
                           prefill_context_tokens))
        return self.ms


def test_a_law_per_model_and_accelerator_replaces_the_profile(spec):
    law = Fixed(10.0)
    cluster = SimCluster(spec, SimConfig(laws={("llama_3_1_8b", "H100"): law}),
                         initial={(LLAMA, "H100"): 1, (QWEN, "H100"): 1})
    cluster.submit([SimRequest(0.0, LLAMA, 100, 5), SimRequest(0.0, QWEN, 100, 5)])
    cluster.advance_to(10.0)
    llama, qwen = cluster.records
    # one prefill iteration, then five decode steps, 10 ms each
    assert llama.first_token_s == pytest.approx(0.020)
    assert llama.finish_s == pytest.approx(0.060)
    assert law.calls == [(0, 0, 100, 100)] + [(1, 100 + k, 0, 0) for k in range(1, 6)]
    profile = next(p for p in spec.profiles if p.model == "qwen_2_5_14b")
    prefill = LinearCost(profile.alpha_ms, profile.beta_ms, profile.gamma_ms).duration_ms(
        0, 0, 100, 100)
    assert qwen.first_token_s > prefill / 1000.0  # the profile's law, not the fixed one


def test_noise_replays_with_its_seed_and_has_mean_one(spec):
    def finishes(seed: int, cv: float) -> list[float | None]:
        cluster = SimCluster(spec, SimConfig(noise_cv=cv, seed=seed), initial={(LLAMA, "H100"): 2})
        cluster.submit(SimRequest(0.1 * i, LLAMA, 500, 50) for i in range(40))
        cluster.advance_to(60.0)
        return [r.finish_s for r in cluster.records]

    assert finishes(1, 0.2) == finishes(1, 0.2)
    assert finishes(1, 0.2) != finishes(2, 0.2) != finishes(1, 0.0)
    draws = lognormal_factors(0.25, np.random.default_rng(0))
    sample = np.array([next(draws) for _ in range(200_000)])
    assert sample.mean() == pytest.approx(1.0, abs=0.005)
    assert sample.std() / sample.mean() == pytest.approx(0.25, rel=0.02)


def test_noise_makes_iterations_vary_around_the_law(spec):
    law = Fixed(10.0)
    config = SimConfig(laws={("llama_3_1_8b", "H100"): law}, noise_cv=0.5, seed=3)
    cluster = SimCluster(spec, config, initial={(LLAMA, "H100"): 1})
    cluster.submit([SimRequest(0.0, LLAMA, 100, 2000)])
    cluster.advance_to(100.0)
    (record,) = cluster.records
    itl_ms = 1000.0 * record.itl_s
    assert itl_ms == pytest.approx(10.0, rel=0.05) and itl_ms != pytest.approx(10.0, rel=1e-6)
    assert not math.isnan(itl_ms)
