"""The `validate`, `schema` and `size` commands: output, exit codes, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.cli import main
from specs.documents import FleetSpec
from tests.conftest import shared_path

EXAMPLES = Path(__file__).resolve().parents[2] / "specs" / "examples"


def test_validate_native_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLES / "heterogeneous-fleet.json")]) == 0
    out = capsys.readouterr().out
    assert "valid native document" in out
    assert "2xL4" in out and "total load: 20.00 req/s" in out


def test_validate_inferno_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(shared_path("inferno", "sample-data-large"))]) == 0
    out = capsys.readouterr().out
    assert "valid inferno document" in out and "servers (27)" in out


def test_validate_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads((EXAMPLES / "h100-vllm.json").read_text())
    doc["profiles"][0]["accelerator"] = "B200"
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(doc))
    assert main(["validate", str(file)]) == 2
    err = capsys.readouterr().err
    assert str(file) in err and "$.profiles[0].accelerator" in err and "B200" in err


def test_schema_documents_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == json.loads(json.dumps(FleetSpec.model_json_schema()))
    missing = [
        f"{name}.{prop}"
        for name, definition in schema["$defs"].items()
        for prop, body in definition.get("properties", {}).items()
        if "description" not in body
    ]
    assert not missing, f"fields without a description: {missing}"
    assert main(["schema", "plan"]) == 0


def test_size_reproduces_inferno_optimize(capsys: pytest.CaptureFixture[str]) -> None:
    problem = shared_path("inferno", "queue-analysis", "problem-data.json")
    expected = json.loads(shared_path("inferno", "queue-analysis", "solution-optimize.json").read_text())
    assert main(["size", str(problem)]) == 0
    answer = json.loads(capsys.readouterr().out)
    for key in ("concurrency", "throughput", "avgRespTime", "avgWaitTime", "avgNumInServ",
                "avgTTFT", "avgITL", "maxRPS"):
        assert answer[key] == pytest.approx(expected[key], rel=1e-3), key


def test_size_v06_solve(capsys: pytest.CaptureFixture[str]) -> None:
    problem = shared_path("inferno", "queue-analysis", "problem-data.json")
    expected = json.loads(shared_path("inferno", "queue-analysis", "solution-solve.json").read_text())
    assert main(["size", str(problem), "--queue-model", "batch-queue-v06", "--mode", "solve"]) == 0
    answer = json.loads(capsys.readouterr().out)
    for key in ("avgTTFT", "avgITL", "maxRPS", "avgWaitTime"):
        assert answer[key] == pytest.approx(expected[key], rel=1e-3), key


def test_size_bad_problem_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problem = tmp_path / "problem.json"
    problem.write_text(json.dumps({"RPS": -1, "maxBatchSize": 8, "AvgInputTokens": 10,
                                   "AvgOutputTokens": 10, "alpha": 1, "beta": 1, "gamma": 0}))
    out = tmp_path / "answer.json"
    assert main(["size", str(problem), "-o", str(out)]) == 2
    assert "$.RPS" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_queue_model_lists_names(capsys: pytest.CaptureFixture[str]) -> None:
    problem = shared_path("inferno", "queue-analysis", "problem-data.json")
    assert main(["size", str(problem), "--queue-model", "mm1"]) == 2
    err = capsys.readouterr().err
    assert "batch-queue" in err and "batch-queue-v06" in err
