"""Evaluation at scale: bounded replicas and a progress bar.

In bounded memory: the reactive policy cannot grow a saturated fleet beyond
the spec's capacity or a server's `max_replicas` (each replica is an engine in memory).

A server without `max_replicas` gets a ten-second burst of ten times its load: with 40
H100 cards the HPA rule asks for all 40, so with two it must stop at two.
"""

from __future__ import annotations

import io
from pathlib import Path

from controller.cli import main
from controller.evaluation.policies import fit_capacity
from controller.evaluation.progress import TerminalBar, render
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


def test_progress_reaches_the_end_of_simulated_time():
    scenario, truth = _scenario({"H100": 2, "A100": 2, "L4": 2})
    seen: list[tuple[str, float, float]] = []
    run_policy(scenario, "static_peak", make_requests(scenario, NO_DATA), truth=truth,
               progress=lambda *call: seen.append(call))
    assert seen[-1] == ("static_peak", 240.0, 240.0)
    assert [t for _, t, _ in seen] == sorted(t for _, t, _ in seen)


def test_the_bar_draws_on_a_terminal_only():
    quiet, loud = io.StringIO(), _Terminal()
    TerminalBar(quiet)("reactive", 1800.0, 3600.0)
    TerminalBar(loud)("reactive", 3600.0, 3600.0)
    assert quiet.getvalue() == ""
    assert loud.getvalue() == "\r" + render("reactive", 3600.0, 3600.0) + "\n"
    assert "[###############...............] 30:00 / 60:00" in render("r", 1800.0, 3600.0)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_fleet_too_small_for_the_peak_is_bad_input(tmp_path, capsys):
    scenario, truth = _scenario({"H100": 0, "A100": 0, "L4": 0})
    spec = tmp_path / "spec.json"
    spec.write_text(truth.model_dump_json())
    trace = tmp_path / "trace.jsonl"
    trace.write_text("".join(f'{{"timestamp": {i * 100}, "input_length": 4096, '
                             f'"output_length": 64}}\n' for i in range(200)))
    code = main(["evaluate", "--trace", str(trace), "--spec", str(spec), "--policies",
                 "static_peak", "-o", str(tmp_path / "out")])
    assert code == 2
    assert "no single card type" in capsys.readouterr().err
    assert not (tmp_path / "out" / "summary.json").exists()
