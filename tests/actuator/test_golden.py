"""The API calls the Kubernetes actuator makes for fixed plan changes, as golden files.

Each golden file under `tests/actuator/golden/` is the JSON list of write calls (create,
patch, scale, patch_pod; operation, object name, body) the actuator sends to the
`DeploymentApi` for one fixed change. A difference fails the test and shows the diff.

After a deliberate change of what the actuator sends, regenerate and review them:

    FLEETPLAN_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/actuator/test_golden.py
    git diff tests/actuator/golden/
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from actuator.kubernetes import KubernetesActuator
from tests.actuator.fakes import FakeDeploymentApi
from tests.actuator.plans import allocation, plan, settings, spec, variant

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("FLEETPLAN_REGEN_GOLDEN") == "1"

BEFORE = plan(allocation("premium-llama", variant("H100", 2, 128, 0.6, token_budget=8192),
                         variant("A100", 1, 64, 0.4, token_budget=8192)),
              allocation("premium-qwen", variant("2xL4", 1, 32, token_budget=2048)),
              allocation("standard-llama", variant("L4", 2, 16)))  # no budget: template's
AFTER = plan(allocation("premium-llama", variant("H100", 3, 96, 0.75, token_budget=4096),
                        variant("A100", 1, 64, 0.25, token_budget=8192)),
             allocation("premium-qwen", variant("H100", 1, 64, token_budget=8192)),
             unserved=("standard-llama",))


def check(name: str, calls: list[dict]) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(calls, indent=2, sort_keys=True) + "\n"
    if REGENERATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
        pytest.skip(f"regenerated {path}")
    assert path.exists(), f"{path} missing: run with FLEETPLAN_REGEN_GOLDEN=1"
    assert json.loads(text) == json.loads(path.read_text())


def actuator(api: FakeDeploymentApi) -> KubernetesActuator:
    return KubernetesActuator(api, spec(), settings(
        accelerator_values={"H100": "NVIDIA-H100-80GB-HBM3", "A100": "NVIDIA-A100-SXM4-80GB",
                            "L4": "NVIDIA-L4"}))


def test_creating_a_heterogeneous_fleet():
    api = FakeDeploymentApi()
    actuator(api).apply(BEFORE, plan_id="plan-0001", reason="initial placement")
    check("create", api.writes())


def test_a_plan_change():
    pods = [{"metadata": {"name": f"premium-llama-{acc}-abc{i}", "labels": {
        "fleetplan.io/managed": "true", "fleetplan.io/variant": f"premium-llama-{acc}"},
        "annotations": {"fleetplan.io/router-weight": weight}}}
        for acc, weight in (("h100", "0.6"), ("a100", "0.4")) for i in range(2)]
    api = FakeDeploymentApi(pods=pods)
    act = actuator(api)
    act.apply(BEFORE, plan_id="plan-0001", reason="initial placement")
    api.calls.clear()
    result = act.apply(AFTER, plan_id="plan-0002",
                       reason="premium-llama load +50%; standard-llama unserved (capacity)")
    assert result.ok
    check("plan-change", api.writes())
    assert "standard-llama-l4" not in {c["name"] for c in api.writes()}
