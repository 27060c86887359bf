"""The standard scenarios: they load, their fleet's profiles are the fits of the tables
the simulator replays, and a reduced standard set (five simulated minutes of each real
trace, every policy) runs end to end. The full hour is `bench/evaluate.py`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.cli import main
from controller.evaluation.scenario import POLICY_NAMES, builtin_scenarios, load_scenario
from simulator.timing import fit_profile, read_known_table
from tests.conftest import shared_path

STANDARD = ("azure-code", "azure-conv", "synthetic-bursts")


def test_the_standard_scenarios_load():
    assert set(STANDARD) <= set(builtin_scenarios())
    for name in STANDARD:
        scenario = load_scenario(name)
        assert scenario.policies == list(POLICY_NAMES)
        assert scenario.sim.timing, "the H100 and A100 replicas replay measured tables"


def test_the_fleet_profiles_are_the_fits_of_the_replayed_tables():
    scenario = load_scenario("azure-conv")
    profiles = {(p.model, p.accelerator): p for p in scenario.fleet().profiles}
    for t in scenario.sim.timing:
        table = read_known_table(shared_path(t.path), model=t.table_model,
                                 hardware=t.hardware, tensor_parallel=t.tensor_parallel)
        fit = fit_profile(table)
        profile = profiles[(t.model, t.accelerator)]
        assert profile.alpha_ms == pytest.approx(fit.alpha_ms, rel=1e-3)
        assert profile.beta_ms == pytest.approx(fit.beta_ms, rel=1e-3)
        assert profile.gamma_ms == pytest.approx(fit.gamma_ms, rel=1e-3, abs=1e-9)


@pytest.mark.parametrize("name", STANDARD)
def test_reduced_standard_set_runs(name, tmp_path):
    data = shared_path()
    out = tmp_path / name
    assert main(["evaluate", name, "-o", str(out), "--duration", "300",
                 "--data-dir", str(data), "--calibration-requests", "300",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["policies"]
    assert list(rows) == list(POLICY_NAMES)
    assert len({r["requests"] for r in rows.values()}) == 1
    assert all(r["cost"] > 0 for r in rows.values())
    assert rows["static_peak"]["scaling_actions"] == 0
    assert Path(out / "report.md").read_text().count("|") > 20
