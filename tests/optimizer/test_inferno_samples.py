"""inferno's published sample solutions, reproduced with the greedy and beaten by the MILP.

The solutions in ../shared/data/inferno/sample-data-{small,large} were made by inferno's
2026-03 optimizer: greedy solver, queue model v0.3 formulas (`batch-queue-v06`), max
batch N = max(floor(maxBatchSize x atTokens / avgOutTokens), 1) with no batch search
(the `scaled` batch policy) and a queue of 10 N.
"""

from __future__ import annotations

import json

import pytest

from optimizer.api import build_problem, optimize
from specs.inferno import to_inferno_solution
from specs.loading import load_fleet
from tests.conftest import shared_path

V06 = "batch-queue-v06"


def _expected(sample: str) -> dict[str, tuple[str, int, int]]:
    doc = json.loads(shared_path("inferno", sample, "solution-data.json").read_text())
    return {
        k: (v["accelerator"], v["numReplicas"], v["maxBatch"])
        for k, v in doc["allocations"].items()
    }


def _got(plan) -> dict[str, tuple[str, int, int]]:
    doc = to_inferno_solution(plan)["allocations"]
    return {k: (v["accelerator"], v["numReplicas"], v["maxBatch"]) for k, v in doc.items()}


@pytest.mark.parametrize("source", ["sample-data-small", "sample-data-small/system-data.json"])
def test_small_sample_reproduces_all_15_servers(source):
    spec = load_fleet(shared_path("inferno", *source.split("/"))).spec
    plan = optimize(spec, solver="greedy", queue_model=V06, timer=None)
    assert _got(plan) == _expected("sample-data-small")
    assert len(plan.allocations) == 15 and plan.unserved == []


def test_small_sample_saturation_policy_does_not_matter():
    # The directory's optimizer-data.json says RoundRobin, system-data.json says
    # PriorityRoundRobin. Both reproduce the published solution because the greedy
    # places every server with a full candidate (capacity binds: 740 of 768 A100 and
    # 441 of 512 G2 cards, pushing three servers off G2), so no best effort runs at all.
    directory = load_fleet(shared_path("inferno", "sample-data-small")).spec
    envelope = load_fleet(shared_path("inferno", "sample-data-small", "system-data.json")).spec
    assert directory.optimizer.saturation_policy == "RoundRobin"
    assert envelope.optimizer.saturation_policy == "PriorityRoundRobin"
    for policy in ("None", "PriorityExhaustive", "PriorityRoundRobin", "RoundRobin"):
        spec = directory.model_copy(
            update={
                "optimizer": directory.optimizer.model_copy(update={"saturation_policy": policy})
            }
        )
        plan = optimize(spec, solver="greedy", queue_model=V06, timer=None)
        assert _got(plan) == _expected("sample-data-small"), policy
    assert plan.cards_used == {"A100": 740, "G2": 441}
    cheapest = {
        s.server: s.candidates[0].accelerator
        for s in build_problem(directory, queue_model=V06).servers
    }
    pushed = sorted(
        k for k, (acc, _, _) in _expected("sample-data-small").items() if cheapest[k] != acc
    )
    assert pushed == ["Bronze-llama_70b", "Free-llama_70b", "Free-mixtral_8_7b"]


def test_large_sample_reproduces_all_27_servers_including_the_cost_tie():
    spec = load_fleet(shared_path("inferno", "sample-data-large")).spec
    plan = optimize(spec, solver="greedy", queue_model=V06, timer=None)
    expected = _expected("sample-data-large")
    assert len(expected) == 27
    assert _got(plan) == expected
    # The one cost tie: Premium-granite_20b costs 130/h as 1 x 2xMI300X or as 2 x MI300X
    # (same cards, same cost). inferno broke it by Go map order; fleetplan breaks ties by
    # accelerator name, and "2xMI300X" < "MI300X" happens to give inferno's published
    # answer. With the other order only this server would differ (same cost, 2 x MI300X).
    ties = {}
    for server in build_problem(spec, queue_model=V06).servers:
        first = server.candidates[0]
        tied = [c.accelerator for c in server.candidates if c.value == first.value]
        if len(tied) > 1:
            ties[server.server] = (tied, first.cost)
    assert ties == {"Premium-granite_20b": (["2xMI300X", "MI300X"], 130.0)}


@pytest.mark.parametrize("sample", ["sample-data-small", "sample-data-large"])
def test_milp_costs_no_more_than_greedy_and_proves_its_gap(sample):
    spec = load_fleet(shared_path("inferno", sample)).spec
    greedy = optimize(spec, solver="greedy", queue_model=V06, timer=None)
    milp = optimize(spec, solver="milp", queue_model=V06, timer=None)
    assert milp.total_cost_per_hour <= greedy.total_cost_per_hour
    assert milp.solver.status == "optimal"
    assert milp.solver.gap is not None and milp.solver.gap <= 1e-3
    assert milp.unserved == [] and greedy.unserved == []
    for card_type, used in milp.cards_used.items():
        assert used <= spec.capacity[card_type]


def test_candidate_sizing_is_cached():
    spec = load_fleet(shared_path("inferno", "sample-data-large")).spec
    from optimizer.api import make_generator

    generator = make_generator(spec, queue_model=V06)
    generator.problem(spec)
    generator.problem(spec)
    assert generator.lookups == 2 * 27 * 21
    assert generator.distinct_sizings <= 27 * 21
