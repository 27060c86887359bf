"""Small native fleets for optimizer tests (profiles from inferno's H100 fits, scaled)."""

from __future__ import annotations

import copy
from typing import Any

from specs.documents import FleetSpec

BASE: dict[str, Any] = {
    "accelerators": [
        {"name": "H100", "card_type": "H100", "cost_per_hour": 8.22},
        {"name": "A100", "card_type": "A100", "cost_per_hour": 4.6},
        {"name": "L4", "card_type": "L4", "cost_per_hour": 0.81},
    ],
    "capacity": {"H100": 16, "A100": 16, "L4": 64},
    "profiles": [
        {
            "model": "llama",
            "accelerator": "H100",
            "alpha_ms": 6.49,
            "beta_ms": 0.0219,
            "gamma_ms": 4.96e-05,
            "max_batch": 64,
        },
        {
            "model": "llama",
            "accelerator": "A100",
            "alpha_ms": 10.66,
            "beta_ms": 0.0694,
            "gamma_ms": 8.1e-05,
            "max_batch": 64,
        },
        {
            "model": "llama",
            "accelerator": "L4",
            "alpha_ms": 72.5,
            "beta_ms": 0.179,
            "gamma_ms": 5.5e-04,
            "max_batch": 16,
        },
    ],
    "service_classes": [
        {
            "name": "gold",
            "priority": 1,
            "targets": [{"model": "llama", "ttft_ms": 1000, "itl_ms": 60}],
        },
        {
            "name": "bronze",
            "priority": 2,
            "targets": [{"model": "llama", "ttft_ms": 4000, "itl_ms": 200}],
        },
    ],
    "servers": [],
    "optimizer": {"solver": "milp", "queue_model": "batch-queue"},
}


def server(name: str, klass: str = "gold", rate: float = 4.0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "model": "llama",
        "service_class": klass,
        "load": {"arrival_rate_rps": rate, "in_tokens": 512, "out_tokens": 128},
        **extra,
    }


def fleet(servers: list[dict[str, Any]], **changes: Any) -> FleetSpec:
    doc = copy.deepcopy(BASE)
    doc["servers"] = servers
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return FleetSpec.model_validate(doc)
