"""Plans, a spec and a Deployment template for the actuator tests.

Plans are built by hand over `specs/examples/heterogeneous-fleet.json` (servers
premium-llama, standard-llama, batch-llama, premium-qwen, standard-qwen on H100, A100,
L4 and 2xL4), so each test states exactly which allocation it enacts.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

from actuator.kubernetes import KubernetesSettings
from actuator.manifests import ManifestSettings
from actuator.ratelimit import UNLIMITED, TokenBucket
from specs.documents import FleetSpec, Load
from specs.loading import load_fleet
from specs.plan import Plan, ServerAllocation, Unserved, VariantAllocation

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO_ROOT / "specs" / "examples" / "heterogeneous-fleet.json"

VLLM_TEMPLATE: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"labels": {"app.kubernetes.io/part-of": "fleetplan"}},
    "spec": {
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "vllm"}},
            "spec": {
                "containers": [{
                    "name": "vllm",
                    "image": "vllm/vllm-openai:v0.8.5",
                    "args": ["--model", "$(FLEETPLAN_MODEL)", "--port", "8000",
                             "--max-num-seqs", "256"],
                    "ports": [{"name": "http", "containerPort": 8000}],
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                }],
            },
        },
    },
}


@cache
def spec() -> FleetSpec:
    """The heterogeneous example fleet."""
    return load_fleet(SPEC_PATH).spec


def settings(mode: str = "apply", limit: TokenBucket = UNLIMITED,
             **manifest: Any) -> KubernetesSettings:
    """Kubernetes actuator settings over the vLLM template."""
    manifests = ManifestSettings(templates={"*": copy.deepcopy(VLLM_TEMPLATE)}, **manifest)
    return KubernetesSettings(manifests=manifests, mode=mode, restart_limit=limit)


def variant(accelerator: str, replicas: int, max_batch: int, weight: float = 1.0,
            token_budget: int | None = None) -> VariantAllocation:
    """A variant allocation on `accelerator` (card type and cards from the spec)."""
    unit = spec().accelerator(accelerator)
    return VariantAllocation(
        accelerator=accelerator, card_type=unit.card_type, replicas=replicas,
        max_batch=max_batch, token_budget=token_budget, cards=replicas * unit.multiplicity,
        cost_per_hour=replicas * unit.cost_per_hour, arrival_rate_rps=1.0,
        router_weight=weight,
    )


def allocation(server: str, *variants: VariantAllocation) -> ServerAllocation:
    """The allocation of a spec server."""
    found = next(s for s in spec().servers if s.name == server)
    priority = spec().service_class(found.service_class).priority
    return ServerAllocation(
        server=server, model=found.model, service_class=found.service_class,
        priority=priority, load=Load(arrival_rate_rps=1.0, in_tokens=100, out_tokens=100),
        variants=list(variants),
    )


def plan(*allocations: ServerAllocation, unserved: tuple[str, ...] = ()) -> Plan:
    """A plan of these allocations; `unserved` servers are listed as not served (capacity)."""
    return Plan(allocations=sorted(allocations, key=lambda a: a.server),
                unserved=[Unserved(server=s, reason="capacity") for s in unserved])
