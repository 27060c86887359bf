"""Numbers in documents are strict and bounded: a string is not an integer, and a max batch
of 10**12 or a rate of 1e300 is bad input at `validate` time (exit 2), never a crash or a
terabyte allocation in `optimize`."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from controller.cli import main
from specs import limits
from specs.documents import FleetSpec
from tests.conftest import shared_path

EXAMPLE = Path(__file__).resolve().parents[2] / "specs" / "examples" / "heterogeneous-fleet.json"


def _write(tmp_path: Path, path: list, value: object) -> Path:
    doc = copy.deepcopy(json.loads(EXAMPLE.read_text()))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    file = tmp_path / "fleet.json"
    file.write_text(json.dumps(doc))
    return file


BAD = [
    # (path, value, JSON path in the error, words in the error)
    (["profiles", 0, "max_batch"], 10**12, "$.profiles[0].max_batch", str(limits.MAX_BATCH)),
    (["servers", 0, "load", "arrival_rate_rps"], 1e300, "$.servers[0].load.arrival_rate_rps",
     "1000000"),
    (["servers", 0, "load", "in_tokens"], 1e9, "$.servers[0].load.in_tokens", "10000000"),
    (["profiles", 0, "token_budget"], 10**9, "$.profiles[0].token_budget", "10000000"),
    (["servers", 0, "max_queue"], 10**9, "$.servers[0].max_queue", str(limits.MAX_QUEUE)),
    (["servers", 0, "max_replicas"], "3", "$.servers[0].max_replicas", "integer"),
    (["servers", 0, "min_replicas"], 1.0, "$.servers[0].min_replicas", "integer"),
    (["servers", 0, "load", "arrival_rate_rps"], "4", "$.servers[0].load.arrival_rate_rps",
     "number"),
    (["servers", 0, "keep_accelerator"], 1, "$.servers[0].keep_accelerator", "true or false"),
    (["capacity", "H100"], "8", "$.capacity.H100", "integer"),
    (["accelerators", 0, "cost_per_hour"], "3.5", "$.accelerators[0].cost_per_hour", "number"),
]


@pytest.mark.parametrize(("path", "value", "where", "words"), BAD,
                         ids=[f"{'.'.join(map(str, p))}={v!r}"[:40] for p, v, _, _ in BAD])
@pytest.mark.parametrize("command", ["validate", "optimize"])
def test_bad_numbers_are_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   command: str, path: list, value: object, where: str,
                                   words: str) -> None:
    file = _write(tmp_path, path, value)
    out = tmp_path / "plan.json"
    extra = ["-o", str(out)] if command == "optimize" else []
    assert main([command, str(file), *extra]) == 2
    err = capsys.readouterr().err
    assert str(file) in err and where in err and words in err, err
    assert not out.exists()


def test_bounds_are_in_the_schema() -> None:
    schema = FleetSpec.model_json_schema()["$defs"]
    assert schema["Profile"]["properties"]["max_batch"]["maximum"] == limits.MAX_BATCH
    assert schema["Load"]["properties"]["arrival_rate_rps"]["maximum"] == limits.MAX_RATE_RPS


def test_inferno_rate_bound_is_per_minute(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "small"
    shutil.copytree(shared_path("inferno", "sample-data-small"), folder)
    server_file = next(p for p in folder.iterdir() if p.name.lower() == "server-data.json")
    doc = json.loads(server_file.read_text())
    servers = next(v for k, v in doc.items() if k.lower() == "servers")
    load = next(v for k, v in servers[0]["currentAlloc"].items() if k.lower() == "load")
    key = next(k for k in load if k.lower() == "arrivalrate")
    load[key] = 1e300
    server_file.write_text(json.dumps(doc))
    assert main(["validate", str(folder)]) == 2
    err = capsys.readouterr().err
    assert ".arrivalRate" in err and "per minute" in err, err


def test_queue_problem_max_batch_is_bounded(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    problem = tmp_path / "problem.json"
    problem.write_text(json.dumps({"RPS": 1, "maxBatchSize": 10**12, "AvgInputTokens": 10,
                                   "AvgOutputTokens": 10, "alpha": 1, "beta": 1, "gamma": 0}))
    assert main(["size", str(problem)]) == 2
    assert "$.maxBatchSize" in capsys.readouterr().err
