"""The queue models reproduce inferno's published answers (read from ../shared/data)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from queue_models import (
    ServiceParams,
    get_queue_model,
    optimize_problem,
    problem_from_dict,
    solve_problem,
    target_problem,
)
from tests.conftest import shared_path

REL = 1e-3
EXACT_FIELDS = {"concurrency", "M_ITL", "M_TPF", "oracleCalls", "feasible"}


def _load(*parts: str) -> Any:
    return json.loads(shared_path(*parts).read_text())


def _problem():
    return problem_from_dict(_load("inferno", "queue-analysis", "problem-data.json"))


def _assert_matches(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(got) == set(expected)
    for key, want in expected.items():
        if key in EXACT_FIELDS:
            assert got[key] == want, key
        else:
            assert got[key] == pytest.approx(want, rel=REL, abs=1e-9), key


def test_optimize_with_batch_queue_matches_solution_optimize():
    problem = _problem()
    got = optimize_problem(
        get_queue_model("batch-queue"), problem.params, problem.rate_rps, problem.targets
    )
    _assert_matches(got, _load("inferno", "queue-analysis", "solution-optimize.json"))


def test_solve_with_v06_matches_solution_solve():
    problem = _problem()
    got = solve_problem(
        get_queue_model("batch-queue-v06"), problem.params, problem.rate_rps, problem.targets
    )
    _assert_matches(got, _load("inferno", "queue-analysis", "solution-solve.json"))


def test_target_with_v06_matches_solution_target():
    problem = _problem()
    got = target_problem(
        get_queue_model("batch-queue-v06"), problem.params, problem.rate_rps, problem.targets
    )
    _assert_matches(got, _load("inferno", "queue-analysis", "solution-target.json"))


def _lower_keys(doc: dict[str, Any]) -> dict[str, Any]:
    return {key.lower(): value for key, value in doc.items()}


@pytest.mark.parametrize("folder", ["sample-data-small", "sample-data-large"])
def test_v06_reproduces_sample_data_allocations(folder):
    """Every allocation's max batch, ITL and TTFT in inferno's sample solutions."""
    model = get_queue_model("batch-queue-v06")
    profiles = _load("inferno", folder, "model-data.json")["models"]
    servers = {s["name"]: s for s in _load("inferno", folder, "server-data.json")["servers"]}
    allocations = _load("inferno", folder, "solution-data.json")["allocations"]
    checked = 0
    for name, alloc in sorted(allocations.items()):
        if alloc["numReplicas"] == 0:
            continue
        model_name = servers[name]["model"]
        profile = next(
            p for p in profiles if p["name"] == model_name and p["acc"] == alloc["accelerator"]
        )
        load = _lower_keys(alloc["load"])
        batch = model.effective_max_batch(
            profile["maxBatchSize"], profile.get("atTokens"), load["avgouttokens"]
        )
        assert batch == alloc["maxBatch"], name
        perf_parms = profile["perfParms"]
        params = ServiceParams(
            alpha_ms=perf_parms["alpha"],
            beta_ms=perf_parms["beta"],
            gamma_ms=perf_parms["gamma"],
            in_tokens=load["avgintokens"],
            out_tokens=load["avgouttokens"],
            max_batch=batch,
            max_queue=model.default_max_queue(batch),
        )
        perf = model.evaluate(params, load["arrivalrate"] / 60.0 / alloc["numReplicas"])
        assert perf.avg_itl_ms == pytest.approx(alloc["itlAverage"], rel=REL), name
        assert perf.avg_ttft_ms == pytest.approx(alloc["ttftAverage"], rel=REL), name
        checked += 1
    assert checked > 10
