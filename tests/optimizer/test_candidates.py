"""Candidate generation: batch, replicas, limits, reasons, percentiles, cache, transitions."""

from __future__ import annotations

import math

import pytest

from optimizer.api import build_problem, make_generator, optimize
from optimizer.candidates import resolve_batch_policy
from specs.registry import UnknownNameError
from tests.optimizer.fleets import fleet, server


def _by_acc(entry):
    return {c.accelerator: c for c in entry.candidates}


def test_candidate_fields_follow_the_sizing():
    (entry,) = build_problem(fleet([server("a", rate=40.0)])).servers
    a100 = _by_acc(entry)["A100"]
    assert a100.replicas == math.ceil(40.0 / a100.max_rate_per_replica_rps - 1e-9)
    assert a100.cost == pytest.approx(a100.replicas * 4.6)
    assert a100.value == pytest.approx(1.1 * a100.cost)  # nothing runs yet: inferno's 1.1 x cost
    assert a100.max_queue == 10 * a100.max_batch
    assert 0 < a100.predicted_ttft_ms <= 1000 and 0 < a100.predicted_itl_ms <= 60
    assert [c.value for c in entry.candidates] == sorted(c.value for c in entry.candidates)


def test_unreachable_targets_are_reported_not_dropped():
    spec = fleet([server("a")])
    (entry,) = build_problem(spec).servers
    assert dict(entry.rejected)["L4"].startswith("ITL target unreachable")
    tight = fleet(
        [server("a")],
        service_classes=[
            {"name": "gold", "priority": 1, "targets": [{"model": "llama", "itl_ms": 1.0}]},
            {"name": "bronze", "priority": 2, "targets": []},
        ],
    )
    plan = optimize(tight, timer=None)
    assert plan.allocations == []
    (unserved,) = plan.unserved
    assert unserved.server == "a" and "no accelerator meets the targets" in unserved.reason
    assert "H100: ITL target unreachable" in unserved.reason


def test_zero_load_scales_to_zero_or_keeps_min_replicas():
    spec = fleet([server("idle", rate=0.0), server("warm", rate=0.0, min_replicas=2)])
    idle, warm = build_problem(spec).servers
    assert idle.scale_to_zero and not idle.candidates
    assert {c.replicas for c in warm.candidates} == {2}
    plan = optimize(spec, timer=None)
    assert plan.allocation("idle").variants == [] and plan.unserved == []
    assert plan.allocation("warm").variants[0].replicas == 2


def test_keep_accelerator_and_replica_limits():
    spec = fleet(
        [
            server("kept", current={"accelerator": "H100", "replicas": 1}, keep_accelerator=True),
            server("capped", rate=40.0, max_replicas=2),
        ]
    )
    capped, kept = build_problem(spec).servers  # sorted by name
    assert [c.accelerator for c in kept.candidates] == ["H100"]
    assert "A100" not in _by_acc(capped)
    assert dict(capped.rejected)["A100"].startswith("needs ")


def test_batch_override_and_queue_override():
    (entry,) = build_problem(fleet([server("a", max_batch=8, max_queue=3)])).servers
    assert {(c.max_batch, c.max_queue) for c in entry.candidates} == {(8, 3)}


def test_percentile_targets_are_predicted_as_percentiles():
    classes = [
        {
            "name": "gold",
            "priority": 1,
            "targets": [{"model": "llama", "ttft_ms": 1000, "itl_ms": 60, "ttft_statistic": "p95"}],
        },
        {"name": "bronze", "priority": 2, "targets": []},
    ]
    mean = _by_acc(build_problem(fleet([server("a", rate=40.0)])).servers[0])["A100"]
    p95 = _by_acc(
        build_problem(fleet([server("a", rate=40.0)], service_classes=classes)).servers[0]
    )["A100"]
    assert p95.max_rate_per_replica_rps <= mean.max_rate_per_replica_rps
    assert p95.replicas >= mean.replicas
    assert p95.predicted_ttft_ms <= 1000


def test_tokens_per_second_target_raises_the_demand():
    classes = [
        {"name": "gold", "priority": 1, "targets": [{"model": "llama", "tokens_per_s": 12800}]},
        {"name": "bronze", "priority": 2, "targets": []},
    ]
    (entry,) = build_problem(fleet([server("a", rate=1.0)], service_classes=classes)).servers
    assert entry.demand_rps == pytest.approx(100.0)  # 12,800 tokens/s / 128 tokens
    assert entry.arrival_rate_rps == 1.0


def test_transition_penalty_against_the_current_allocation():
    spec = fleet([server("a", current={"accelerator": "H100", "replicas": 1})])
    cands = _by_acc(build_problem(spec).servers[0])
    assert cands["H100"].value == pytest.approx(cands["H100"].cost)  # same accelerator, same count
    old, new = 8.22, cands["A100"].cost
    assert cands["A100"].value == pytest.approx(new + 0.1 * (old + new))
    factor = fleet(
        [server("a", current={"accelerator": "H100", "replicas": 1})],
        optimizer={"transition_factor": 0.5},
    )
    assert _by_acc(build_problem(factor).servers[0])["A100"].value == pytest.approx(
        new + 0.5 * (old + new)
    )


def test_identical_servers_share_one_sizing():
    spec = fleet([server(f"s{i}", rate=1.0 + i) for i in range(20)])
    generator = make_generator(spec)
    generator.problem(spec)
    assert generator.lookups == 60
    assert generator.distinct_sizings == 3  # one per accelerator: the rate never enters sizing


def test_batch_policies():
    assert resolve_batch_policy("auto", "batch-queue-v06") == "scaled"
    assert resolve_batch_policy("auto", "batch-queue") == "search"
    with pytest.raises(UnknownNameError, match="known: scaled, search"):
        resolve_batch_policy("biggest", "batch-queue")
    spec = fleet([server("a", rate=40.0)])
    scaled = _by_acc(build_problem(spec, batch_policy="scaled").servers[0])["A100"]
    searched = _by_acc(build_problem(spec, batch_policy="search").servers[0])["A100"]
    assert scaled.max_batch == 64 and searched.max_batch <= 64
