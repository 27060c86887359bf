"""`fleetplan optimize`: table, plan files, reproducible JSON, exit codes, clean stdout."""

from __future__ import annotations

import json

import pytest

from controller.cli import main
from specs.documents import FleetSpec
from specs.loading import dump_json
from tests.conftest import shared_path
from tests.optimizer.fleets import fleet, server


@pytest.fixture
def scarce_file(tmp_path):
    spec = fleet(
        [server("gold-a", rate=12.0), server("bronze-x", "bronze", 60.0), server("idle", rate=0.0)],
        capacity={"A100": 3, "H100": 1, "L4": 0},
    )
    path = tmp_path / "fleet.json"
    path.write_text(dump_json(spec))
    return path


def test_prints_a_table_and_lists_unserved_with_exit_0(scarce_file, tmp_path, capfd):
    out_file = tmp_path / "plan.json"
    assert main(["optimize", str(scarce_file), "-o", str(out_file)]) == 0
    out, err = capfd.readouterr()
    assert "Running HiGHS" not in out and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["server", "class", "accelerator", "repl", "batch"]
    assert any(line.startswith("gold-a ") and " A100 " in line for line in lines)
    assert any(line.startswith("idle ") and "(scaled to zero)" in line for line in lines)
    assert "not fully served (1):" in out and "bronze-x: not enough capacity" in out
    assert "solver milp: optimal" in out
    plan = json.loads(out_file.read_text())
    assert [u["server"] for u in plan["unserved"]] == ["bronze-x"]
    assert plan["solver"]["solve_time_s"] > 0


def test_no_timings_makes_the_json_byte_identical(scarce_file, tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for target in (first, second):
        assert main(["optimize", str(scarce_file), "--no-timings", "-o", str(target)]) == 0
    assert first.read_bytes() == second.read_bytes()
    assert json.loads(first.read_text())["solver"]["candidate_time_s"] == 0.0


def test_inferno_format_and_solver_flags(tmp_path, capfd):
    out_file = tmp_path / "solution.json"
    directory = shared_path("inferno", "sample-data-small")
    args = [
        "optimize",
        str(directory),
        "--solver",
        "greedy",
        "--queue-model",
        "batch-queue-v06",
        "--format",
        "inferno",
        "-o",
        str(out_file),
    ]
    assert main(args) == 0
    capfd.readouterr()
    expected = json.loads((directory / "solution-data.json").read_text())["allocations"]
    got = json.loads(out_file.read_text())["allocations"]
    assert {k: (v["accelerator"], v["numReplicas"]) for k, v in got.items()} == {
        k: (v["accelerator"], v["numReplicas"]) for k, v in expected.items()
    }


@pytest.mark.parametrize("extra", [["--solver", "simplex"], ["--queue-model", "mm1"]])
def test_unknown_names_exit_2_and_write_nothing(scarce_file, tmp_path, capfd, extra):
    out_file = tmp_path / "plan.json"
    assert main(["optimize", str(scarce_file), "-o", str(out_file), *extra]) == 2
    assert not out_file.exists()
    assert "known:" in capfd.readouterr().err


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capfd):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"accelerators": [], "servers": []}))
    out_file = tmp_path / "plan.json"
    assert main(["optimize", str(bad), "-o", str(out_file)]) == 2
    assert not out_file.exists()
    assert "fleetplan: error:" in capfd.readouterr().err


def test_plan_document_round_trips(scarce_file, tmp_path):
    from specs.plan import Plan

    out_file = tmp_path / "plan.json"
    assert main(["optimize", str(scarce_file), "--no-timings", "-o", str(out_file)]) == 0
    plan = Plan.model_validate_json(out_file.read_text())
    assert plan.queue_model == "batch-queue" and plan.batch_policy == "search"
    assert FleetSpec  # the fleet document type is what `optimize` reads
