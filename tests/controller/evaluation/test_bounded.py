"""Evaluation in bounded memory: the reactive policy cannot grow a saturated fleet beyond
the spec's capacity or a server's `max_replicas` (each replica is an engine in memory).

A server without `max_replicas` gets a ten-second burst of ten times its load: with 40
H100 cards the HPA rule asks for all 40, so with two it must stop at two.
"""

from __future__ import annotations

from pathlib import Path

from controller.evaluation.policies import fit_capacity
from controller.evaluation.run import run_policy
from controller.evaluation.scenario import (
    Burst,
    Scenario,
    SyntheticSource,
    Workload,
    make_requests,
)
from specs.documents import FleetSpec

SATURATED = {
    "name": "saturated",
    "spec": "example:heterogeneous-fleet",
    "servers": [{"name": "chat", "model": "llama_3_1_8b", "service_class": "premium",
                 "min_replicas": 1,
                 "load": {"arrival_rate_rps": 2.0, "in_tokens": 4096, "out_tokens": 64}}],
    "duration_s": 240, "period_s": 30, "startup_s": 30, "drain_s": 60,
    "policies": ["reactive"],
}
NO_DATA = Path(".")
"""Synthetic workloads read no data folder."""


def _scenario(capacity: dict[str, int]) -> tuple[Scenario, FleetSpec]:
    workload = Workload(server="chat", synthetic=SyntheticSource(
        base_rps=2, peak_rps=2, bursts=[Burst(at_s=60, duration_s=10, extra_rps=20)], prompt_tokens=4096, output_tokens=64))
    scenario = Scenario.model_validate({**SATURATED, "workloads": [workload.model_dump()]})
    truth = scenario.fleet()
    return scenario, truth.model_copy(update={"capacity": capacity})


def test_fit_capacity_trims_the_largest_variant_down_to_the_cards():
    _, truth = _scenario({"H100": 3, "A100": 8, "L4": 24})
    wanted = {("chat", "H100"): 50, ("chat", "A100"): 2}
    counts = fit_capacity(truth, wanted, {("chat", "H100"): 1, ("chat", "A100"): 1})
    assert counts == {("chat", "H100"): 3, ("chat", "A100"): 2}


def test_fit_capacity_keeps_the_floor():
    _, truth = _scenario({"H100": 0, "A100": 8, "L4": 24})
    assert fit_capacity(truth, {("chat", "H100"): 4}, {("chat", "H100"): 1}) == {
        ("chat", "H100"): 1}


def test_reactive_never_exceeds_capacity_on_a_saturated_fleet():
    scenario, truth = _scenario({"H100": 2, "A100": 2, "L4": 2})
    requests = make_requests(scenario, NO_DATA)
    run = run_policy(scenario, "reactive", requests, truth=truth)
    limits = truth.capacity
    card = {a.name: a.card_type for a in truth.accelerators}
    for sample in run.samples:
        for accelerator, n in sample.replicas.items():
            assert n <= limits[card[accelerator]], (sample.time_s, sample.replicas)
    assert max(sum(s.replicas.values()) for s in run.samples) == 2, "it wanted more"


def test_reactive_respects_max_replicas():
    scenario, truth = _scenario({"H100": 8, "A100": 8, "L4": 24})
    servers = [s.model_copy(update={"max_replicas": 2}) for s in truth.servers]
    truth = truth.model_copy(update={"servers": servers})
    run = run_policy(scenario, "reactive", make_requests(scenario, NO_DATA),
                     truth=truth)
    assert max(sum(s.replicas.values()) for s in run.samples) <= 2
