"""optimize(spec) end to end: scarce capacity, heterogeneous splits, determinism, registry."""

from __future__ import annotations

import pytest

from optimizer.api import optimize
from optimizer.registry import get_solver, solver_names
from optimizer.saturation import SATURATION
from specs.documents import SATURATION_POLICIES, SOLVER_NAMES
from specs.loading import dump_json
from specs.registry import UnknownNameError
from tests.optimizer.fleets import BASE, fleet, server


def _placed(plan) -> dict[str, list[tuple[str, int]]]:
    return {a.server: [(v.accelerator, v.replicas) for v in a.variants] for a in plan.allocations}


def test_registry_names_match_the_spec():
    assert solver_names() == sorted(SOLVER_NAMES)
    assert SATURATION.names() == sorted(SATURATION_POLICIES)
    with pytest.raises(UnknownNameError, match="known: greedy, milp, unlimited"):
        get_solver("simplex")


def _scarce():
    # 2 A100 and 1 H100. gold-a runs on 1 A100 (cheapest) or 1 H100; bronze-b must stay
    # on A100 (2 replicas, keep_accelerator); bronze-x takes 1 H100 or 2 A100.
    return fleet(
        [
            server("gold-a", rate=12.0),
            server(
                "bronze-b",
                "bronze",
                26.0,
                current={"accelerator": "A100", "replicas": 2},
                keep_accelerator=True,
            ),
            server("bronze-x", "bronze", 25.0),
        ],
        capacity={"A100": 2, "H100": 1, "L4": 0},
    )


def test_scarce_capacity_milp_serves_gold_fully_and_shares_the_rest_differently():
    spec = _scarce()
    greedy = optimize(spec, solver="greedy", timer=None)
    milp = optimize(spec, solver="milp", timer=None)
    # both serve the priority-1 server fully
    assert greedy.allocation("gold-a").meets_targets and milp.allocation("gold-a").meets_targets
    # greedy gives gold its cheapest (A100), which leaves bronze-b (26 rps) out
    assert _placed(greedy) == {"gold-a": [("A100", 1)], "bronze-x": [("H100", 1)]}
    assert [u.server for u in greedy.unserved] == ["bronze-b"]
    # milp moves gold to H100 so the larger bronze server (26 > 25 rps) fits on A100
    assert _placed(milp) == {"gold-a": [("H100", 1)], "bronze-b": [("A100", 2)]}
    (left,) = milp.unserved
    assert (
        left.server == "bronze-x"
        and left.reason.startswith("not enough capacity")
        and not left.partial
    )
    assert milp.solver.status == "optimal"


def test_best_effort_after_the_milp_follows_the_saturation_policy():
    spec = _scarce()
    spec = spec.model_copy(
        update={
            "capacity": {"A100": 3, "H100": 0, "L4": 0},
            "optimizer": spec.optimizer.model_copy(
                update={"saturation_policy": "PriorityExhaustive"}
            ),
        }
    )
    plan = optimize(spec, solver="milp", timer=None)
    # gold 1 A100 + bronze-b 2 A100 fill A100; bronze-x gets nothing to share
    assert _placed(plan) == {"gold-a": [("A100", 1)], "bronze-b": [("A100", 2)]}
    spec = spec.model_copy(update={"capacity": {"A100": 4, "H100": 0, "L4": 0}})
    plan = optimize(spec, solver="milp", timer=None)
    partial = plan.allocation("bronze-x")
    assert partial is not None and not partial.meets_targets and partial.variants[0].replicas == 1
    assert [(u.server, u.partial) for u in plan.unserved] == [("bronze-x", True)]


def test_heterogeneous_split_beats_any_single_type():
    # 25 rps: 2 A100 or 21 L4 alone, but only 1 A100 and 12 L4 exist
    spec = fleet([server("bronze-x", "bronze", 25.0)], capacity={"A100": 1, "H100": 0, "L4": 12})
    single = optimize(spec, timer=None)
    assert single.allocations == [] and [u.server for u in single.unserved] == ["bronze-x"]
    split_spec = spec.model_copy(
        update={"optimizer": spec.optimizer.model_copy(update={"heterogeneous": True})}
    )
    split = optimize(split_spec, timer=None)
    (alloc,) = split.allocations
    assert alloc.meets_targets and split.unserved == []
    by_acc = {v.accelerator: v for v in alloc.variants}
    assert set(by_acc) == {"A100", "L4"} and by_acc["A100"].replicas == 1
    capacity = {a: v.replicas * v.max_rate_per_replica_rps for a, v in by_acc.items()}
    assert sum(capacity.values()) >= 25.0
    assert sum(v.router_weight for v in alloc.variants) == pytest.approx(1.0)
    for acc, v in by_acc.items():
        assert v.router_weight == pytest.approx(capacity[acc] / sum(capacity.values()))
        assert v.arrival_rate_rps == pytest.approx(25.0 * v.router_weight)
        assert v.predicted_itl_ms <= 200 and v.predicted_ttft_ms <= 4000
    assert split.cards_used == {"A100": 1, "L4": by_acc["L4"].replicas}


@pytest.mark.parametrize("solver", ["milp", "greedy", "unlimited"])
def test_same_input_same_plan_byte_for_byte(solver):
    spec = _scarce()
    texts = {dump_json(optimize(spec, solver=solver, timer=None)) for _ in range(3)}
    assert len(texts) == 1
    timed = optimize(spec, solver=solver)
    assert timed.solver.candidate_time_s > 0


def test_unlimited_ignores_capacity():
    plan = optimize(_scarce(), solver="unlimited", timer=None)
    assert plan.cards_used["A100"] > 2 and plan.unserved == []


def test_queue_model_override_and_unknown_names():
    spec = _scarce()
    assert (
        optimize(spec, queue_model="batch-queue-v06", timer=None).queue_model == "batch-queue-v06"
    )
    assert optimize(spec, timer=None).queue_model == "batch-queue"
    with pytest.raises(KeyError, match="known: batch-queue, batch-queue-v06"):
        optimize(spec, queue_model="mm1", timer=None)


def test_each_variant_carries_the_token_budget_it_was_sized_with():
    budgets = {"H100": 2048, "A100": 4096, "L4": 512}
    profiles = [{**p, "token_budget": budgets[p["accelerator"]]} for p in BASE["profiles"]]
    idle = {"name": "idle", "model": "llama", "service_class": "gold", "min_replicas": 1,
            "load": {"arrival_rate_rps": 0.0, "in_tokens": 0, "out_tokens": 0}}
    spec = fleet([server("gold-a", rate=12.0), server("bronze-x", "bronze", 25.0), idle],
                 profiles=profiles)
    plan = optimize(spec, solver="milp", timer=None)
    placed = {(a.server, v.accelerator): v.token_budget
              for a in plan.allocations for v in a.variants}
    assert {k: b for k, b in placed.items() if k[0] != "idle"} == {
        ("gold-a", "A100"): 4096, ("bronze-x", "H100"): 2048}
    # a zero-load candidate has no queue-model configuration: no budget is set
    assert [b for (s, _), b in placed.items() if s == "idle"] == [None]
