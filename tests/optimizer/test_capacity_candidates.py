"""Candidates sized by capacity-table: configuration, pool curve, laws and workloads."""

from __future__ import annotations

import pytest

from optimizer.api import optimize, solver_options
from optimizer.candidates import CandidateGenerator
from queue_models.batch_queue import BatchQueueModel
from queue_models.capacity_model import CapacityTableModel
from queue_models.capacity_sizing import CalibrationOptions
from queue_models.iteration_cost import LinearCost
from queue_models.workload_sample import WorkloadSample
from tests.optimizer.fleets import fleet, server

OPTIONS = CalibrationOptions(requests=300, pool_sizes=(1, 2, 4), batch_fractions=(1.0, 0.5),
                             token_budgets=(), tolerance=0.05)
P99 = {"ttft_statistic": "p99", "itl_statistic": "p99"}


def _spec(rate: float):
    spec = fleet([server("chat", rate=rate)], optimizer={"queue_model": "capacity-table"})
    classes = [c.model_copy(update={"targets": [t.model_copy(update=P99) for t in c.targets]})
               for c in spec.service_classes]
    profiles = [p for p in spec.profiles if p.accelerator == "A100"]
    return spec.model_copy(update={"service_classes": classes, "profiles": profiles})


@pytest.fixture(scope="module")
def generator() -> CandidateGenerator:
    return CandidateGenerator(CapacityTableModel(OPTIONS))


def test_replicas_follow_the_pool_curve(generator):
    spec = _spec(6.0)
    problem = generator.problem(spec, predict=False)
    candidate = problem.server("chat").candidates[0]
    sizing = generator.model.size_candidate(  # the same (cached) sizing
        candidate.params.__class__(**{**_fields(candidate.params), "max_batch": 64}),
        problem.server("chat").targets)
    assert candidate.replicas == sizing.replicas_for(6.0)
    assert candidate.max_rate_per_replica_rps == pytest.approx(sizing.rate_at(candidate.replicas))
    assert candidate.max_batch == sizing.config.max_batch
    plan = optimize(spec, timer=None, generator=generator)
    variant = plan.allocations[0].variants[0]
    assert variant.replicas == candidate.replicas
    assert variant.token_budget == sizing.config.token_budget
    assert plan.queue_model == "capacity-table"


def test_a_slower_measured_law_needs_more_replicas(generator):
    spec = _spec(6.0)
    slow = CandidateGenerator(generator.model,
                              laws={("llama", "A100"): LinearCost(2 * 10.66, 2 * 0.0694,
                                                                  2 * 8.1e-05)})
    fast_n = generator.problem(spec, predict=False).server("chat").candidates[0].replicas
    slow_n = slow.problem(spec, predict=False).server("chat").candidates[0].replicas
    assert slow_n > fast_n


def test_an_online_correction_reads_the_tables_slower(generator):
    spec = _spec(6.0)
    corrected = spec.model_copy(update={"servers": [
        s.model_copy(update={"time_scale": {"A100": 1.5}}) for s in spec.servers]})
    plain = generator.problem(spec, predict=False).server("chat").candidates[0]
    slow = generator.problem(corrected, predict=False).server("chat").candidates[0]
    assert slow.params.time_scale == pytest.approx(1.5, rel=0.02)
    assert slow.max_rate_per_replica_rps < 0.8 * plain.max_rate_per_replica_rps
    assert slow.replicas >= plain.replicas


def test_a_burstier_workload_needs_more_replicas(generator):
    spec = _spec(40.0)
    times = [20.0 * (i // 100) + 0.001 * (i % 100) for i in range(300)]  # bursts of 100
    bursty = WorkloadSample.from_arrivals("bursty", times, [512] * 300, [128] * 300)
    with_bursts = CandidateGenerator(generator.model, workloads={"chat": bursty})
    calm = generator.problem(spec, predict=False).server("chat").candidates[0]
    bumpy = with_bursts.problem(spec, predict=False).server("chat").candidates[0]
    assert bumpy.replicas > calm.replicas


def _fields(params) -> dict:
    return {name: getattr(params, name) for name in params.__slots__}


def test_measured_pools_are_not_split_across_accelerators(generator):
    spec = _spec(6.0)
    spec = spec.model_copy(update={"optimizer": spec.optimizer.model_copy(
        update={"heterogeneous": True})})
    assert solver_options(spec, generator).heterogeneous is False
    analytic = CandidateGenerator(BatchQueueModel())
    assert solver_options(spec, analytic).heterogeneous is True
