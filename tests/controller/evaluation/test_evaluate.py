"""`fleetplan evaluate`: the five policies run on the same arrivals and the outputs are
complete, consistent and written only when everything succeeded.

A small synthetic scenario (five simulated minutes, two servers) keeps it fast; the
standard set over real traces is `bench/evaluate.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.cli import main
from controller.evaluation.metrics import churn, mean_cost, meets
from controller.evaluation.run import Applied, Sample, run_policy
from controller.evaluation.scenario import POLICY_NAMES, load_scenario, make_requests
from simulator.records import RequestRecord

SCENARIO = {
    "name": "tiny",
    "description": "two synthetic servers for five minutes",
    "spec": "example:heterogeneous-fleet",
    "servers": [
        {"name": "chat", "model": "llama_3_1_8b", "service_class": "standard",
         "min_replicas": 1, "max_replicas": 8,
         "load": {"arrival_rate_rps": 2.0, "in_tokens": 512, "out_tokens": 64}},
        {"name": "bulk", "model": "llama_3_1_8b", "service_class": "batch",
         "min_replicas": 1, "max_replicas": 8,
         "load": {"arrival_rate_rps": 1.0, "in_tokens": 512, "out_tokens": 64}},
    ],
    "workloads": [
        {"server": "chat", "synthetic": {"base_rps": 2, "peak_rps": 6, "period_s": 600,
                                         "prompt_tokens": 512, "output_tokens": 64,
                                         "bursts": [{"at_s": 120, "duration_s": 30,
                                                     "extra_rps": 4}]}},
        {"server": "bulk", "synthetic": {"base_rps": 1, "peak_rps": 1, "period_s": 600,
                                         "prompt_tokens": 512, "output_tokens": 64}},
    ],
    "duration_s": 300, "period_s": 30, "startup_s": 60, "drain_s": 300,
}


@pytest.fixture()
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(SCENARIO))
    return path


def test_every_policy_runs_and_the_summary_is_complete(scenario_file, tmp_path):
    out = tmp_path / "out"
    assert main(["evaluate", str(scenario_file), "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["policies"]) == list(POLICY_NAMES)
    requests = {row["requests"] for row in summary["policies"].values()}
    assert len(requests) == 1, "every policy must see the same arrivals"
    for row in summary["policies"].values():
        assert row["cost"] > 0
        assert 0.0 <= row["slo_attainment"] <= 1.0
        assert set(row["slo_attainment_by_class"]) == {"standard", "batch"}
        assert row["ttft_p50_ms"] <= row["ttft_p99_ms"]
    assert summary["policies"]["static_peak"]["scaling_actions"] == 0
    assert set(summary["goals"]) == {"slo_attainment", "below_static_peak", "below_reactive",
                                     "within_clairvoyant"}
    report = (out / "report.md").read_text()
    for name in ("load_capacity.png", "replicas.png", "latency.png", "cost.png"):
        assert (out / name).stat().st_size > 1000
        assert name in report
    assert "fleetplan against the goals" in report


def test_runs_replay_exactly(scenario_file):
    scenario = load_scenario(scenario_file)
    requests = make_requests(scenario, Path("."))
    first = run_policy(scenario, "fleetplan", requests)
    second = run_policy(scenario, "fleetplan", requests)
    assert [(r.first_token_s, r.finish_s) for r in first.records] == \
        [(r.first_token_s, r.finish_s) for r in second.records]
    assert [s.cost_per_hour for s in first.samples] == [s.cost_per_hour for s in second.samples]


def test_static_peak_never_scales_and_costs_its_plan(scenario_file):
    scenario = load_scenario(scenario_file)
    run = run_policy(scenario, "static_peak", make_requests(scenario, Path(".")))
    assert len(run.applied) == 1
    planned = run.applied[0].plan.total_cost_per_hour
    assert mean_cost(run.samples, scenario.duration_s) == pytest.approx(planned)


def test_a_request_meets_only_within_both_targets():
    done = RequestRecord("r", "s", "c", 0.0, 10, 11, first_token_s=0.5, finish_s=1.5)
    assert meets(done, 600.0, 100.0)
    assert not meets(done, 400.0, 100.0)
    assert not meets(done, 600.0, 90.0)
    assert meets(done, 0.0, 0.0)
    assert not meets(RequestRecord("r", "s", "c", 0.0, 10, 11, first_token_s=0.5), 600, 100)


def test_cost_is_time_weighted():
    samples = [Sample(0.0, {}, {}, 10.0, {}), Sample(900.0, {}, {}, 20.0, {})]
    assert mean_cost(samples, 3600.0) == pytest.approx((10 * 900 + 20 * 2700) / 3600)


def test_churn_counts_scaling_and_switches(scenario_file):
    scenario = load_scenario(scenario_file)
    run = run_policy(scenario, "inferno_greedy", make_requests(scenario, Path(".")))
    actions, switches = churn(run.applied)
    assert actions == sum(1 for a in run.applied[1:] for c in a.changes
                          if c.kind in ("create", "scale", "delete"))
    assert churn([run.applied[0]]) == (0, 0)
    assert isinstance(run.applied[0], Applied)
    assert switches >= 0


@pytest.mark.parametrize("change, message", [
    ({"policies": ["nope"]}, "unknown policy"),
    ({"workloads": [{"server": "ghost", "synthetic": {"base_rps": 1, "peak_rps": 1}}]},
     "unknown server"),
    ({"duration_s": -1}, "duration_s"),
])
def test_bad_scenarios_exit_2_and_write_nothing(tmp_path, capsys, change, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**SCENARIO, **change}))
    out = tmp_path / "out"
    assert main(["evaluate", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "bad.json" in err
    assert not out.exists()


def test_a_missing_trace_names_the_file(tmp_path, capsys):
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({**SCENARIO, "workloads": [
        {"server": "chat", "trace": {"path": "nowhere/trace.csv"}},
        SCENARIO["workloads"][1]]}))
    assert main(["evaluate", str(path), "-o", str(tmp_path / "out"),
                 "--data-dir", str(tmp_path)]) == 2
    assert "nowhere/trace.csv" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_validation_covers_every_profile_the_servers_can_use(scenario_file):
    from controller.evaluation.validation import validate_scenario
    from simulator.validation import ValidationOptions

    options = ValidationOptions(max_batches=(8,), load_fractions=(0.1, 0.5), requests=150,
                                warmup=30)
    result = validate_scenario(load_scenario(scenario_file), Path("."), options)
    accelerators = {row.accelerator for row in result.rows}
    assert accelerators == {"H100", "A100", "L4"}  # llama_3_1_8b's profiles
    low = [r for r in result.rows if r.load_fraction == 0.1]
    assert all(abs(r.itl_error_pct) < 10 for r in low)
    assert "|" in result.to_markdown()
